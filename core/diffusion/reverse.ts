/**
 * The reverse process shared by every sampler and both diffusion models (prior and decoder): the
 * clean-sample estimate from a network's output (noise eps or x_0 itself, diffusers'
 * `prediction_type`), the ancestral DDPM step (thesis Algorithm 3 for the decoder, Algorithm 5
 * for the prior; Ho et al. 2020, Algorithm 2), respacing (Nichol & Dhariwal 2021, section 4) and
 * the loop that runs the steps. The sampler plugins (plugins/samplers/) build on these.
 *
 * @module
 */
import { add, affine, clamp, noGrad, randn, scope, sub, type Tensor } from "../tensor/mod.ts";
import type { NoisePredictor, PredictionType, SamplerRunOptions } from "../components.ts";
import { posteriorMeanVariance } from "./process.ts";
import type { NoiseSchedule } from "./schedule.ts";

/** Throws unless `i` is a step of `schedule`. */
export function checkStep(schedule: NoiseSchedule, i: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= schedule.numSteps) {
    throw new RangeError(`Step "${i}" is out of range 0..${schedule.numSteps - 1}`);
  }
}

/**
 * x_0 estimated at step `i` of `schedule` from the network's `output`: the output itself when the
 * network predicts x_0 (the prior, Ramesh et al. 2022 section 2.2), sqrt(abar_t) x_t -
 * sqrt(1 - abar_t) v for a v-predicting one, else x_0 = (x_t - sqrt(1 - abar_t) eps) /
 * sqrt(abar_t) (Ho et al. 2020 eq. 4 solved for x_0); optionally clamped to [-1, 1].
 *
 * @example
 * ```ts
 * import type { NoiseSchedule } from "./schedule.ts";
 * import type { Tensor } from "../tensor/mod.ts";
 * function x0(xt: Tensor, eps: Tensor, schedule: NoiseSchedule): Tensor {
 *   return predictX0(xt, eps, schedule, 10, true);
 * }
 * ```
 */
export function predictX0(
  xt: Tensor,
  output: Tensor,
  schedule: NoiseSchedule,
  i: number,
  clip: boolean,
  prediction: PredictionType = "eps",
): Tensor {
  checkStep(schedule, i);
  let x0: Tensor;
  if (prediction === "x0") x0 = output;
  else if (prediction === "v") {
    // v = sqrt(abar) eps - sqrt(1 - abar) x_0 and x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps give
    // x_0 = sqrt(abar) x_t - sqrt(1 - abar) v (Salimans & Ho 2022, section 4): no division, so
    // well conditioned even where abar_t is near 0.
    x0 = sub(
      affine(xt, schedule.sqrtAlphaBar[i], 0),
      affine(output, schedule.sqrtOneMinusAlphaBar[i], 0),
    );
  } else {
    x0 = sub(
      affine(xt, schedule.sqrtRecipAlphaBar[i], 0),
      affine(output, schedule.sqrtRecipM1AlphaBar[i], 0),
    );
  }
  return clip ? clamp(x0, -1, 1) : x0;
}

/**
 * The noise consistent with x_t and an estimate x_0 at step `i`: eps = (x_t / sqrt(abar_t) - x_0)
 * / sqrt(1 / abar_t - 1) (Ho et al. 2020 eq. 4 solved for eps). DDIM needs it when x_0 is clamped
 * or predicted directly.
 *
 * @example
 * ```ts
 * import type { NoiseSchedule } from "./schedule.ts";
 * import type { Tensor } from "../tensor/mod.ts";
 * function eps(xt: Tensor, x0: Tensor, schedule: NoiseSchedule): Tensor {
 *   return epsFromX0(xt, x0, schedule, 10);
 * }
 * ```
 */
export function epsFromX0(xt: Tensor, x0: Tensor, schedule: NoiseSchedule, i: number): Tensor {
  checkStep(schedule, i);
  return affine(
    sub(affine(xt, schedule.sqrtRecipAlphaBar[i], 0), x0),
    1 / schedule.sqrtRecipM1AlphaBar[i],
    0,
  );
}

/** Options of one DDPM step. */
export interface DdpmStepOptions {
  /** Clamp the predicted x_0 to [-1, 1] before the posterior mean (default true). */
  clipDenoised?: boolean;
  /** Clamp the new x_{t-1} to [-1, 1], as the thesis' Algorithm 3 does (default false). */
  clampXt?: boolean;
  /** What the network output is: "eps" (default) or "x0". */
  prediction?: PredictionType;
  /**
   * The reverse step's fixed variance: "small" (default) is the posterior's beta-tilde_t, "large"
   * is beta_t, the other bound of Ho et al. 2020 (section 3.2), which Nichol & Dhariwal 2021
   * (section 3.1, Figure 8) found better when a model trained on L_simple samples with few steps.
   */
  variance?: ReverseVariance;
}

/** Which fixed variance a reverse step adds: beta-tilde_t ("small") or beta_t ("large"). */
export type ReverseVariance = "small" | "large";

/**
 * One reverse step x_t -> x_{t-1} at step `i` of `schedule`: the posterior mean mu-tilde(x_t, x_0)
 * = c1 x_0 + c2 x_t (thesis eq. 2.8) plus sqrt(beta-tilde_t) * noise (eq. 2.9; sqrt(beta_t) with
 * `variance: "large"`; no noise at i = 0, whose output is the mean). For an eps-predicting network
 * with no clamping this equals Algorithm 3's 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps)
 * (eq. 2.15); for the x_0-predicting prior it is Algorithm 5's step. Pass `noise` = null for the
 * mean alone.
 *
 * @example
 * ```ts
 * import type { NoiseSchedule } from "./schedule.ts";
 * import { randn, type Tensor } from "../tensor/mod.ts";
 * function next(x: Tensor, eps: Tensor, schedule: NoiseSchedule, i: number): Tensor {
 *   return ddpmStep(x, eps, schedule, i, randn(x.shape));
 * }
 * ```
 */
export function ddpmStep(
  xt: Tensor,
  output: Tensor,
  schedule: NoiseSchedule,
  i: number,
  noise: Tensor | null,
  options: DdpmStepOptions = {},
): Tensor {
  const x0 = predictX0(xt, output, schedule, i, options.clipDenoised ?? true, options.prediction);
  const posterior = posteriorMeanVariance(x0, xt, i, schedule);
  let x = posterior.mean;
  const variance = options.variance === "large" ? schedule.betas[i] : posterior.variance;
  if (i > 0 && noise) x = add(x, affine(noise, Math.sqrt(variance), 0));
  return options.clampXt ? clamp(x, -1, 1) : x;
}

/**
 * Runs `step(x, i)` for i = n-1..0 from x_T ~ N(0, I): each step under `noGrad` in its own
 * `scope`, keeping only the new x (shared by the DDPM and DDIM samplers).
 *
 * @example
 * ```ts
 * function identity() {
 *   return runReverse([1, 3, 8, 8], 10, (x) => x); // the starting noise, after 10 steps
 * }
 * ```
 */
export function runReverse(
  shape: number[],
  steps: number,
  step: (x: Tensor, i: number) => Tensor,
  onStep?: (step: number, total: number) => void,
): Tensor {
  let x = noGrad(() => randn(shape)).keep();
  for (let i = steps - 1; i >= 0; i--) {
    const prev = x;
    x = scope(() => noGrad(() => step(prev, i))).keep();
    prev.dispose();
    onStep?.(steps - i, steps);
  }
  return x;
}

/**
 * Resolves a step count to a schedule (respaced when fewer steps are asked for).
 *
 * @example
 * ```ts
 * import type { NoiseSchedule } from "./schedule.ts";
 * function fifty(schedule: NoiseSchedule): NoiseSchedule {
 *   return scheduleFor(schedule, 50);
 * }
 * ```
 */
export function scheduleFor(schedule: NoiseSchedule, steps?: number): NoiseSchedule {
  return steps === undefined || steps === schedule.numSteps ? schedule : schedule.respace(steps);
}

/** Options of `ancestralSample`. */
export interface AncestralOptions extends SamplerRunOptions {
  /** Clamp each new x_{t-1} to [-1, 1] (default false). */
  clampXt?: boolean;
  /** The fixed variance of each step (default "small": beta-tilde_t; see `DdpmStepOptions`). */
  variance?: ReverseVariance;
}

/**
 * Ancestral DDPM sampling from x_T ~ N(0, I) over `schedule` (respaced to `options.steps`):
 * `ddpmStep` at every step, the predictor receiving each step's ORIGINAL timestep index. The
 * "ddpm" sampler plugin runs this, and it is the default reverse process of the prior.
 *
 * @example
 * ```ts
 * import type { NoisePredictor } from "../components.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function sample(predict: NoisePredictor, schedule: NoiseSchedule) {
 *   return ancestralSample(predict, [4, 3, 32, 32], schedule, { steps: 50 });
 * }
 * ```
 */
export function ancestralSample(
  predict: NoisePredictor,
  shape: number[],
  schedule: NoiseSchedule,
  options: AncestralOptions = {},
): Tensor {
  const s = scheduleFor(schedule, options.steps);
  const step = {
    clipDenoised: options.clipDenoised ?? true,
    clampXt: options.clampXt ?? false,
    prediction: options.prediction,
    variance: options.variance,
  };
  return runReverse(
    shape,
    s.numSteps,
    (x, i) => ddpmStep(x, predict(x, s.timesteps[i]), s, i, i > 0 ? randn(shape) : null, step),
    options.onStep,
  );
}
