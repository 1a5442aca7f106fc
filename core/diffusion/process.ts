/**
 * Gaussian-diffusion helpers on the GPU, shared by the prior and the decoder: the forward process
 * q(x_t | x_0) with per-sample timesteps, and the posterior q(x_{t-1} | x_t, x_0) at one timestep
 * shared by the whole batch (the reverse process always steps every sample together).
 *
 * Per-sample coefficients are gathered on the GPU: each schedule's coefficient tables are uploaded
 * once (as float32 [T, 1] tensors, cached per `NoiseSchedule` object and kept alive for the
 * process) and indexed by an f32 timestep tensor with a one-hot matmul, so a training step never
 * reads back and never uploads per-step data.
 *
 * @module
 */
import {
  add,
  affine,
  arange,
  equal,
  greaterEqual,
  matmul,
  mul,
  rand,
  reshape,
  sum,
  type Tensor,
  tensor,
  unsqueeze,
} from "../tensor/mod.ts";
import type { NoiseSchedule, ScheduleArray } from "./schedule.ts";

/** A gatherable per-step table: a schedule coefficient or the original timestep indices. */
export type StepTable = ScheduleArray | "timesteps";

const tables = new WeakMap<NoiseSchedule, Map<string, Tensor>>();
const ranges = new Map<number, Tensor>();

/** 0..n-1 as f32 [1, n], cached and kept. */
function stepRange(n: number): Tensor {
  let r = ranges.get(n);
  if (!r || r.disposed) {
    r = reshape(arange(0, n), [1, n]).keep();
    ranges.set(n, r);
  }
  return r;
}

/**
 * The f32 [T, 1] GPU copy of one per-step table of `schedule`, uploaded on first use and cached
 * (kept across scopes) for as long as the schedule object lives.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function table(schedule: NoiseSchedule): Tensor {
 *   return scheduleTable(schedule, "sqrtAlphaBar"); // [T, 1]
 * }
 * ```
 */
export function scheduleTable(schedule: NoiseSchedule, name: StepTable): Tensor {
  return derivedTable(
    schedule,
    name,
    () => name === "timesteps" ? Float32Array.from(schedule.timesteps) : schedule.coefficient(name),
  );
}

/**
 * The f32 [T, 1] GPU copy of a per-step table computed from `schedule` by `make` (called once),
 * cached under `key` beside the schedule's own tables (e.g. loss weights per step).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function weights(schedule: NoiseSchedule, weightsPerStep: Float32Array): Tensor {
 *   return derivedTable(schedule, "minSnr5", () => weightsPerStep); // [T, 1]
 * }
 * ```
 */
export function derivedTable(
  schedule: NoiseSchedule,
  key: string,
  make: () => Float32Array,
): Tensor {
  let bySchedule = tables.get(schedule);
  if (!bySchedule) tables.set(schedule, bySchedule = new Map());
  let t = bySchedule.get(key);
  if (!t || t.disposed) {
    t = tensor(make(), [schedule.numSteps, 1]).keep();
    bySchedule.set(key, t);
  }
  return t;
}

/**
 * One-hot rows [B, T] of step indices t (f32 [B], integral values in 0..T-1).
 *
 * @example
 * ```ts
 * import { type Tensor, tensor } from "../tensor/mod.ts";
 * function rows(): Tensor {
 *   return oneHotSteps(tensor([0, 2], [2]), 3); // [[1, 0, 0], [0, 0, 1]]
 * }
 * ```
 */
export function oneHotSteps(t: Tensor, numSteps: number): Tensor {
  if (t.rank !== 1 || t.dtype !== "f32") {
    throw new Error(`Timesteps must be f32 of shape [B], got ${t.dtype} [${t.shape}]`);
  }
  return equal(unsqueeze(t, 1), stepRange(numSteps));
}

/**
 * Per-sample values [B, 1] of a schedule table at step indices t (f32 [B]), gathered on the GPU
 * (one-hot [B, T] times the [T, 1] table; exact, since each row has a single 1).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function coefficients(schedule: NoiseSchedule, t: Tensor): Tensor {
 *   return gatherSteps(schedule, "sqrtAlphaBar", t); // [B, 1]
 * }
 * ```
 */
export function gatherSteps(schedule: NoiseSchedule, name: StepTable, t: Tensor): Tensor {
  return gatherTable(schedule, scheduleTable(schedule, name), t);
}

/** Per-sample values [B, 1] of any [T, 1] per-step `table` of `schedule` at step indices t. */
export function gatherTable(schedule: NoiseSchedule, table: Tensor, t: Tensor): Tensor {
  return matmul(oneHotSteps(t, schedule.numSteps), table);
}

/**
 * Uniform random step indices in 0..T-1 as f32 [B] (Algorithm 4, line 4), drawn on the GPU from
 * the engine's seeded generator: floor(u T) computed as the number of k in 1..T-1 with u T >= k.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function steps(schedule: NoiseSchedule): Tensor {
 *   return randomSteps(8, schedule.numSteps); // f32 [8]
 * }
 * ```
 */
export function randomSteps(batch: number, numSteps: number): Tensor {
  const scaled = unsqueeze(affine(rand([batch]), numSteps, 0), 1);
  const thresholds = affine(stepRange(numSteps), 1, 1); // 1..T
  return sum(greaterEqual(scaled, thresholds), 1);
}

/** Broadcasts a [B, 1] coefficient (e.g. from `gatherSteps`) against x [B, ...]. */
export function perSample(coef: Tensor, x: Tensor): Tensor {
  return x.rank === 2 ? coef : reshape(coef, [x.shape[0], ...x.shape.slice(1).map(() => 1)]);
}

/**
 * Forward noising x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (Ho et al. 2020, eq. 4; thesis
 * Algorithm 4, line 9) with a timestep per sample: x0 and noise [B, ...], t f32 [B] of step
 * indices into `schedule`. Coefficients are gathered on the GPU.
 *
 * @example
 * ```ts
 * import { randn, type Tensor } from "../tensor/mod.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function noisy(x0: Tensor, t: Tensor, schedule: NoiseSchedule): Tensor {
 *   return qSample(x0, t, randn(x0.shape), schedule);
 * }
 * ```
 */
export function qSample(x0: Tensor, t: Tensor, noise: Tensor, schedule: NoiseSchedule): Tensor {
  if (t.shape[0] !== x0.shape[0]) {
    throw new Error(
      `Timesteps have shape [${t.shape}] but the batch of x0 [${x0.shape}] is ${x0.shape[0]}`,
    );
  }
  const a = perSample(gatherSteps(schedule, "sqrtAlphaBar", t), x0);
  const b = perSample(gatherSteps(schedule, "sqrtOneMinusAlphaBar", t), x0);
  return add(mul(x0, a), mul(noise, b));
}

/**
 * The velocity target of a v-predicting network at steps t (f32 [B]): v = sqrt(abar_t) eps -
 * sqrt(1 - abar_t) x_0 (Salimans & Ho 2022, "Progressive Distillation", section 4 and Appendix
 * D), shaped like x0. It is x_t's rate of change along the circle x_t = cos(phi) x_0 + sin(phi)
 * eps: mostly eps at low noise, mostly -x_0 at high noise, where an eps target says little.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function target(x0: Tensor, t: Tensor, eps: Tensor, schedule: NoiseSchedule): Tensor {
 *   return velocity(x0, t, eps, schedule); // [B, C, H, W]
 * }
 * ```
 */
export function velocity(x0: Tensor, t: Tensor, noise: Tensor, schedule: NoiseSchedule): Tensor {
  // q_sample's coefficients with the roles swapped: sqrt(abar) eps + sqrt(1 - abar) (-x_0).
  return qSample(noise, t, affine(x0, -1, 0), schedule);
}

/** The posterior q(x_{t-1} | x_t, x_0) at one step. */
export interface Posterior {
  /** mu-tilde_t, shaped like x_t. */
  mean: Tensor;
  /** beta-tilde_t (zero at step 0). */
  variance: number;
  /** log beta-tilde_t, clipped at step 0 to step 1's value (reference-code convention). */
  logVariance: number;
}

/**
 * Posterior mean and variance at step index `tIndex`, shared by the whole batch:
 * mu-tilde = c1 x_0 + c2 x_t, c1 = sqrt(abar_{t-1}) beta_t / (1 - abar_t),
 * c2 = sqrt(alpha_t) (1 - abar_{t-1}) / (1 - abar_t) (thesis eq. 2.8), and
 * beta-tilde = (1 - abar_{t-1}) / (1 - abar_t) beta_t (thesis eq. 2.9). The coefficients are
 * float64 host values applied as kernel constants.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function posterior(x0Pred: Tensor, xt: Tensor, schedule: NoiseSchedule): Posterior {
 *   return posteriorMeanVariance(x0Pred, xt, 10, schedule); // { mean, variance, logVariance }
 * }
 * ```
 */
export function posteriorMeanVariance(
  x0: Tensor,
  xt: Tensor,
  tIndex: number,
  schedule: NoiseSchedule,
): Posterior {
  if (!Number.isInteger(tIndex) || tIndex < 0 || tIndex >= schedule.numSteps) {
    throw new RangeError(`Timestep "${tIndex}" is out of range 0..${schedule.numSteps - 1}`);
  }
  const c1 = schedule.posteriorMeanCoef1[tIndex], c2 = schedule.posteriorMeanCoef2[tIndex];
  return {
    mean: add(affine(x0, c1, 0), affine(xt, c2, 0)),
    variance: schedule.posteriorVariance[tIndex],
    logVariance: schedule.posteriorLogVarianceClipped[tIndex],
  };
}
