/**
 * Exponential moving average of parameters (Polyak averaging; used by DDPM, GLIDE and DALL-E 2
 * to evaluate with smoothed weights). One fused kernel per parameter (`emaUpdate`); the
 * per-update decay lives in a one-element tensor so the WebGPU pipeline is reused as the decay
 * warms up.
 */
import { clone, emaUpdate, noGrad, swapValues, type Tensor, zeros } from "../tensor/mod.ts";
import { copyInto } from "./adam.ts";

/** Options for `Ema`. */
export interface EmaOptions {
  /**
   * Warm the decay up as min(decay, (1 + n) / (10 + n)) after n previous updates (TensorFlow's
   * `ExponentialMovingAverage(num_updates=...)`), so early averages are not dominated by the
   * random initialisation. Default false: the constant `decay` from the first update.
   */
  warmup?: boolean;
}

/** EMA state for checkpoints. */
export interface EmaState {
  /** Updates applied so far. */
  updates: number;
  /** Whether the decay warms up (see `EmaOptions.warmup`). */
  warmup: boolean;
  /** Shadow weights in parameter order. */
  shadow: Tensor[];
}

/**
 * The updates after which a warmed-up EMA (`EmaOptions.warmup`) reaches `decay`: the least n with
 * (1 + n) / (10 + n) >= decay, i.e. (10 decay - 1) / (1 - decay) rounded up (8,990 for 0.999).
 *
 * @example
 * ```ts
 * emaWarmupUpdates(0.999); // 8990
 * ```
 */
export function emaWarmupUpdates(decay: number): number {
  // The closed form, then settled against the very expression `currentDecay` evaluates, so that
  // float rounding of the formula cannot put it one update off.
  const reached = (n: number) => (1 + n) / (10 + n) >= decay;
  let n = Math.max(0, Math.round((10 * decay - 1) / (1 - decay)));
  while (!reached(n)) n++;
  while (n > 0 && reached(n - 1)) n--;
  return n;
}

/**
 * The training log's note on the EMAs a run of `steps` steps never takes out of the warm-up (those
 * with `warmup` whose `emaWarmupUpdates` exceed `steps`), or null when there are none. Such EMAs
 * all follow the warm-up's decay (1 + n) / (10 + n) to the end, so several of them are identical.
 * An EMA without warm-up (one started on a resume) is never named. With warm restarts (`cycles`
 * learning-rate cycles, each with fresh EMAs) `steps` is the longest cycle's.
 *
 * @example
 * ```ts
 * emaWarmupNote("decoder", [{ decay: 0.999, warmup: true }], 7000);
 * // 'decoder: EMA 0.999 stays in the warm-up, decay (1 + n) / (10 + n), for all 7000 steps
 * //  (0.999 needs 8990); "emaWarmup": false uses it from the start'
 * ```
 */
export function emaWarmupNote(
  stage: string,
  emas: readonly { decay: number; warmup: boolean }[],
  steps: number,
  cycles = 1,
): string | null {
  const decays = emas.filter((e) => e.warmup && emaWarmupUpdates(e.decay) > steps)
    .map((e) => e.decay);
  if (decays.length === 0) return null;
  const many = decays.length > 1;
  const span = cycles > 1
    ? `in each of the ${cycles} learning-rate cycles (the longest ${steps} steps)`
    : `for all ${steps} steps`;
  return `${stage}: EMA ${decays.join(", ")} ${many ? "stay" : "stays"} in the warm-up, ` +
    `decay (1 + n) / (10 + n), ${span} (` +
    `${decays.map((d) => `${d} needs ${emaWarmupUpdates(d)}`).join(", ")}); ` +
    `"emaWarmup": false uses ${many ? "them" : "it"} from the start`;
}

/**
 * Shadow copies of `params` updated as shadow = d * shadow + (1 - d) * p.
 *
 * @example
 * ```ts
 * import type { Module } from "../nn/mod.ts";
 * import type { Adam } from "./adam.ts";
 * function stepAndEvaluate(model: Module, opt: Adam, evaluate: (m: Module) => void): Ema {
 *   const ema = new Ema(model.parameters(), 0.9999);
 *   opt.step();
 *   ema.update();
 *   ema.swap(); // evaluate with the EMA weights,
 *   evaluate(model);
 *   ema.swap(); // then restore the training weights
 *   return ema;
 * }
 * ```
 */
export class Ema {
  /** The parameters updated, in order. */
  readonly params: Tensor[];
  /** Target decay. */
  readonly decay: number;
  /** Whether the decay warms up (restored by `loadStateDict` when the state says). */
  warmup: boolean;
  /** Updates applied so far. */
  updates = 0;
  #shadow: Tensor[];
  #decayBuf: Tensor;

  /** Creates the state (zeros / copies) for `params`. */
  constructor(params: Tensor[], decay: number, opts: EmaOptions = {}) {
    if (!(decay >= 0 && decay <= 1)) {
      throw new Error(`Ema: decay must lie in [0, 1], got ${decay}.`);
    }
    this.params = [...params];
    this.decay = decay;
    this.warmup = opts.warmup ?? false;
    this.#shadow = noGrad(() => this.params.map((p) => clone(p).keep()));
    this.#decayBuf = zeros([1]).keep();
  }

  /** The decay the next `update()` uses. */
  currentDecay(): number {
    const n = this.updates;
    return this.warmup ? Math.min(this.decay, (1 + n) / (10 + n)) : this.decay;
  }

  /** shadow = d * shadow + (1 - d) * param for every parameter (one kernel each). */
  update(): void {
    this.#decayBuf.write(new Float32Array([this.currentDecay()]));
    this.updates++;
    this.params.forEach((p, k) => emaUpdate(this.#shadow[k], p, this.#decayBuf));
  }

  /** Copies the shadow weights into `params` (default: the tracked parameters). */
  copyTo(params: Tensor[] = this.params): void {
    if (params.length !== this.#shadow.length) {
      throw new Error(
        `Ema.copyTo: got ${params.length} parameters, tracking ${this.#shadow.length}.`,
      );
    }
    params.forEach((p, k) => copyInto(p, this.#shadow[k], `Ema.copyTo: parameter ${k}`));
  }

  /**
   * Exchanges the tracked parameters' values with the shadow weights in place. Call once to
   * evaluate with the EMA weights and again to restore the training weights.
   */
  swap(): void {
    this.params.forEach((p, k) => swapValues(this.#shadow[k], p));
  }

  /** Alias of `swap()` (the name in the agreed API). */
  swapInto(): void {
    this.swap();
  }

  /** The update count, warm-up and shadow weights (the EMA's own tensors: do not dispose). */
  stateDict(): EmaState {
    return { updates: this.updates, warmup: this.warmup, shadow: [...this.#shadow] };
  }

  /**
   * Restores a state from `stateDict()` (tensors or host arrays, in parameter order); the
   * warm-up setting only when the state has one.
   */
  loadStateDict(
    state: { updates: number; warmup?: boolean; shadow: (Tensor | Float32Array)[] },
  ): void {
    if (state.shadow.length !== this.#shadow.length) {
      throw new Error(
        `Ema.loadStateDict: state has ${state.shadow.length} tensors, tracking ${this.#shadow.length}.`,
      );
    }
    state.shadow.forEach((s, k) => copyInto(this.#shadow[k], s, `Ema.loadStateDict: shadow[${k}]`));
    this.updates = state.updates;
    if (state.warmup !== undefined) this.warmup = state.warmup;
  }

  /** Frees the shadow weights. */
  dispose(): void {
    for (const t of [...this.#shadow, this.#decayBuf]) t.dispose();
  }
}
