/**
 * Discrete-time Gaussian diffusion schedules (Ho et al. 2020, "Denoising Diffusion Probabilistic
 * Models"; Nichol & Dhariwal 2021, "Improved Denoising Diffusion Probabilistic Models").
 *
 * All coefficients are computed once in float64; models upload the arrays they need (as float32)
 * to the GPU. The Float32Array helpers here are CPU references for tests and small tools.
 *
 * @module
 */

/** Arrays of a schedule that `NoiseSchedule.coefficient` can return by name. */
export type ScheduleArray =
  | "betas"
  | "alphas"
  | "alphaBar"
  | "alphaBarPrev"
  | "sqrtAlphaBar"
  | "sqrtOneMinusAlphaBar"
  | "sqrtRecipAlphaBar"
  | "sqrtRecipM1AlphaBar"
  | "posteriorVariance"
  | "posteriorLogVarianceClipped"
  | "posteriorMeanCoef1"
  | "posteriorMeanCoef2";

/**
 * A noise schedule q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I), indexed 0..T-1
 * (index i is the paper's t = i + 1).
 *
 * @example
 * ```ts
 * const s = new NoiseSchedule(new Float64Array([0.1, 0.2, 0.3]));
 * s.alphaBar[2]; // 0.9 * 0.8 * 0.7
 * ```
 */
export class NoiseSchedule {
  /** Number of steps T. */
  readonly numSteps: number;
  /** beta_t. */
  readonly betas: Float64Array;
  /** alpha_t = 1 - beta_t (Ho et al. 2020, section 2). */
  readonly alphas: Float64Array;
  /** alphaBar_t = prod_{s<=t} alpha_s (Ho et al. 2020, eq. 4). */
  readonly alphaBar: Float64Array;
  /** alphaBar_{t-1}, with alphaBar_{-1} = 1. */
  readonly alphaBarPrev: Float64Array;
  /** sqrt(alphaBar_t): the scale of x_0 in q(x_t | x_0) (Ho et al. 2020, eq. 4). */
  readonly sqrtAlphaBar: Float64Array;
  /** sqrt(1 - alphaBar_t): the scale of the noise in q(x_t | x_0). */
  readonly sqrtOneMinusAlphaBar: Float64Array;
  /** 1 / sqrt(alphaBar_t). */
  readonly sqrtRecipAlphaBar: Float64Array;
  /** sqrt(1 / alphaBar_t - 1). */
  readonly sqrtRecipM1AlphaBar: Float64Array;
  /**
   * Posterior variance beta-tilde_t = (1 - alphaBar_{t-1}) / (1 - alphaBar_t) * beta_t
   * (thesis eq. 2.9; Ho et al. 2020, eq. 7). Zero at t = 0.
   */
  readonly posteriorVariance: Float64Array;
  /**
   * log(beta-tilde_t) with the t = 0 entry replaced by beta-tilde_1, since beta-tilde_0 = 0
   * (the clipping used by Nichol & Dhariwal's reference code).
   */
  readonly posteriorLogVarianceClipped: Float64Array;
  /**
   * Coefficient of x_0 in the posterior mean mu-tilde_t = c1 x_0 + c2 x_t:
   * c1 = sqrt(alphaBar_{t-1}) beta_t / (1 - alphaBar_t) (thesis eq. 2.8; Ho et al. 2020, eq. 7).
   */
  readonly posteriorMeanCoef1: Float64Array;
  /** Coefficient of x_t: c2 = sqrt(alpha_t) (1 - alphaBar_{t-1}) / (1 - alphaBar_t) (eq. 2.8). */
  readonly posteriorMeanCoef2: Float64Array;
  /**
   * The original timestep of each step, fed to the model's time embedding. Identity for a fresh
   * schedule; a subsequence after `respace`.
   */
  readonly timesteps: Int32Array;

  /**
   * Builds every derived coefficient from `betas` (each in (0, 1): at 1 a step keeps no signal,
   * alphaBar reaches 0 and the x_0 estimate 1 / sqrt(alphaBar) is infinite).
   *
   * @example
   * ```ts
   * const s = new NoiseSchedule(new Float64Array(10).fill(0.02));
   * ```
   */
  constructor(betas: Float64Array, timesteps?: ArrayLike<number>) {
    const n = betas.length;
    if (n === 0) throw new RangeError("A noise schedule needs at least one step");
    for (let i = 0; i < n; i++) {
      if (!(betas[i] > 0 && betas[i] < 1)) {
        throw new RangeError(`Beta at step ${i} is "${betas[i]}"; expected a value in (0, 1)`);
      }
    }
    if (timesteps !== undefined && timesteps.length !== n) {
      throw new RangeError(`Got ${timesteps.length} timesteps for ${n} betas`);
    }
    this.numSteps = n;
    this.betas = Float64Array.from(betas);
    this.timesteps = timesteps === undefined
      ? Int32Array.from({ length: n }, (_, i) => i)
      : Int32Array.from(timesteps);
    this.alphas = new Float64Array(n);
    this.alphaBar = new Float64Array(n);
    this.alphaBarPrev = new Float64Array(n);
    this.sqrtAlphaBar = new Float64Array(n);
    this.sqrtOneMinusAlphaBar = new Float64Array(n);
    this.sqrtRecipAlphaBar = new Float64Array(n);
    this.sqrtRecipM1AlphaBar = new Float64Array(n);
    this.posteriorVariance = new Float64Array(n);
    this.posteriorLogVarianceClipped = new Float64Array(n);
    this.posteriorMeanCoef1 = new Float64Array(n);
    this.posteriorMeanCoef2 = new Float64Array(n);
    let prod = 1;
    for (let i = 0; i < n; i++) {
      const beta = this.betas[i];
      const alpha = 1 - beta;
      this.alphaBarPrev[i] = prod;
      prod *= alpha;
      this.alphas[i] = alpha;
      this.alphaBar[i] = prod;
      this.sqrtAlphaBar[i] = Math.sqrt(prod);
      this.sqrtOneMinusAlphaBar[i] = Math.sqrt(1 - prod);
      this.sqrtRecipAlphaBar[i] = Math.sqrt(1 / prod);
      this.sqrtRecipM1AlphaBar[i] = Math.sqrt(1 / prod - 1);
      const prev = this.alphaBarPrev[i];
      // Thesis eq. 2.9 / Ho et al. eq. 7: beta-tilde_t = (1 - abar_{t-1}) / (1 - abar_t) * beta_t.
      this.posteriorVariance[i] = (1 - prev) / (1 - prod) * beta;
      // Thesis eq. 2.8 / Ho et al. eq. 7: the posterior mean coefficients.
      this.posteriorMeanCoef1[i] = Math.sqrt(prev) * beta / (1 - prod);
      this.posteriorMeanCoef2[i] = Math.sqrt(alpha) * (1 - prev) / (1 - prod);
    }
    // beta-tilde_0 = 0, whose log is -inf; reuse step 1's value as the reference code does.
    for (let i = 0; i < n; i++) {
      const v = i === 0
        ? (n > 1 ? this.posteriorVariance[1] : this.betas[0])
        : this.posteriorVariance[i];
      this.posteriorLogVarianceClipped[i] = Math.log(v);
    }
  }

  /**
   * One coefficient array as float32, ready for a GPU upload.
   *
   * @example
   * ```ts
   * const s = new NoiseSchedule(new Float64Array([0.1, 0.2]));
   * const f = s.coefficient("sqrtAlphaBar"); // Float32Array(2)
   * ```
   */
  coefficient(name: ScheduleArray): Float32Array {
    return Float32Array.from(this[name]);
  }

  /**
   * Samples x_t ~ q(x_t | x_0) = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Ho et al. 2020, eq. 4),
   * given the noise `eps`.
   *
   * @example
   * ```ts
   * const s = new NoiseSchedule(new Float64Array([0.5]));
   * s.qSample(new Float32Array([1]), 0, new Float32Array([0])); // [sqrt(0.5)]
   * ```
   */
  qSample(x0: Float32Array, t: number, eps: Float32Array): Float32Array {
    this.#check(t, x0, eps);
    const a = this.sqrtAlphaBar[t], b = this.sqrtOneMinusAlphaBar[t];
    const out = new Float32Array(x0.length);
    for (let i = 0; i < x0.length; i++) out[i] = a * x0[i] + b * eps[i];
    return out;
  }

  /**
   * Inverts eq. 4 for x_0: x_0 = x_t / sqrt(abar_t) - sqrt(1 / abar_t - 1) eps
   * (Ho et al. 2020, eq. 4 solved for x_0; Nichol & Dhariwal 2021, eq. 9 context).
   *
   * @example
   * ```ts
   * const s = new NoiseSchedule(new Float64Array([0.5]));
   * s.predictX0FromEps(new Float32Array([1]), 0, new Float32Array([1]));
   * ```
   */
  predictX0FromEps(xt: Float32Array, t: number, eps: Float32Array): Float32Array {
    this.#check(t, xt, eps);
    const a = this.sqrtRecipAlphaBar[t], b = this.sqrtRecipM1AlphaBar[t];
    const out = new Float32Array(xt.length);
    for (let i = 0; i < xt.length; i++) out[i] = a * xt[i] - b * eps[i];
    return out;
  }

  /**
   * The noise implied by x_t and a prediction of x_0: eps = (x_t / sqrt(abar_t) - x_0) /
   * sqrt(1 / abar_t - 1) (eq. 4 solved for eps; used by DDIM and by x0-predicting priors).
   *
   * @example
   * ```ts
   * const s = new NoiseSchedule(new Float64Array([0.5]));
   * s.predictEpsFromX0(new Float32Array([1]), 0, new Float32Array([0]));
   * ```
   */
  predictEpsFromX0(xt: Float32Array, t: number, x0: Float32Array): Float32Array {
    this.#check(t, xt, x0);
    const a = this.sqrtRecipAlphaBar[t], b = this.sqrtRecipM1AlphaBar[t];
    const out = new Float32Array(xt.length);
    for (let i = 0; i < xt.length; i++) out[i] = (a * xt[i] - x0[i]) / b;
    return out;
  }

  /**
   * Posterior mean mu-tilde_t(x_t, x_0) = c1 x_0 + c2 x_t (thesis eq. 2.8; Ho et al. 2020, eq. 7).
   *
   * @example
   * ```ts
   * const s = new NoiseSchedule(new Float64Array([0.1, 0.2]));
   * s.posteriorMean(new Float32Array([0.5]), new Float32Array([0.3]), 1);
   * ```
   */
  posteriorMean(x0: Float32Array, xt: Float32Array, t: number): Float32Array {
    this.#check(t, x0, xt);
    const c1 = this.posteriorMeanCoef1[t], c2 = this.posteriorMeanCoef2[t];
    const out = new Float32Array(x0.length);
    for (let i = 0; i < x0.length; i++) out[i] = c1 * x0[i] + c2 * xt[i];
    return out;
  }

  /**
   * A schedule over a subsequence of this one's steps (Nichol & Dhariwal 2021, section 4,
   * "respacing"): alphaBar is kept at the chosen steps and the betas are recomputed as
   * beta_i = 1 - abar_{s_i} / abar_{s_{i-1}}. `timesteps` keeps the original indices for the
   * model's time input. A count picks that many evenly spaced steps, always including the first
   * and the last.
   *
   * @example
   * ```ts
   * const s = new NoiseSchedule(new Float64Array(1000).fill(0.01));
   * const fast = s.respace(50); // 50 steps, fast.timesteps = [0, 20, ..., 999]
   * ```
   */
  respace(steps: number | readonly number[]): NoiseSchedule {
    const n = this.numSteps;
    let use: number[];
    if (typeof steps === "number") {
      if (!Number.isInteger(steps) || steps < 1 || steps > n) {
        throw new RangeError(
          `Cannot respace ${n} steps to "${steps}"; expected an integer in 1..${n}`,
        );
      }
      if (steps === 1) use = [n - 1];
      else {
        const stride = (n - 1) / (steps - 1);
        use = Array.from({ length: steps }, (_, i) => Math.round(i * stride));
      }
    } else {
      use = [...steps];
      if (use.length === 0) throw new RangeError("Cannot respace to an empty list of steps");
      for (let i = 0; i < use.length; i++) {
        const s = use[i];
        if (!Number.isInteger(s) || s < 0 || s >= n || (i > 0 && s <= use[i - 1])) {
          throw new RangeError(
            `Respacing step "${s}" at position ${i} is invalid; expected strictly increasing integers in 0..${
              n - 1
            }`,
          );
        }
      }
    }
    const betas = new Float64Array(use.length);
    let last = 1;
    for (let i = 0; i < use.length; i++) {
      const ab = this.alphaBar[use[i]];
      betas[i] = 1 - ab / last;
      last = ab;
    }
    return new NoiseSchedule(betas, use.map((s) => this.timesteps[s]));
  }

  #check(t: number, a: Float32Array, b: Float32Array): void {
    if (!Number.isInteger(t) || t < 0 || t >= this.numSteps) {
      throw new RangeError(`Timestep "${t}" is out of range 0..${this.numSteps - 1}`);
    }
    if (a.length !== b.length) {
      throw new RangeError(`Array lengths differ: ${a.length} and ${b.length}`);
    }
  }
}
