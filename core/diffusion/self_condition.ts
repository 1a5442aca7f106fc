/**
 * Self-conditioning (Chen, Zhang & Hinton 2022, "Analog Bits", section 3.2 and Figure 3): the
 * denoiser also reads its own latest estimate of x_0. At training, on a fraction of the steps,
 * a first pass without an estimate gives one, which (without gradient) conditions the pass the
 * loss is computed on; on the other steps the estimate is zeros. When sampling, each step feeds
 * the estimate of the step before it (zeros at the first). The network learns to refine its
 * previous answer instead of starting over at every step. This module holds the parts every
 * decoder shares: the per-sample estimate, the seeded per-step choice and the sampling state.
 *
 * @module
 */
import { clamp, mul, noGrad, sub, type Tensor, zeros } from "../tensor/mod.ts";
import type { NoisePredictor, PredictionType } from "../components.ts";
import { deriveSeed } from "../data/rng.ts";
import { gatherSteps, perSample, type StepTable } from "./process.ts";
import { predictX0 } from "./reverse.ts";
import type { NoiseSchedule } from "./schedule.ts";

/**
 * x_0 estimated per sample from a network `output` at step indices t (f32 [B]) of `schedule`:
 * (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) (Ho et al. 2020, eq. 4 solved for x_0), or
 * sqrt(abar_t) x_t - sqrt(1 - abar_t) v for a v-predicting network (Salimans & Ho 2022,
 * section 4); clamped to [-1, 1], the images' range, as the sampler clamps its own estimate.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function estimate(xt: Tensor, eps: Tensor, t: Tensor, schedule: NoiseSchedule): Tensor {
 *   return estimateX0(xt, eps, t, schedule, "eps"); // shaped like xt
 * }
 * ```
 */
export function estimateX0(
  xt: Tensor,
  output: Tensor,
  t: Tensor,
  schedule: NoiseSchedule,
  prediction: Exclude<PredictionType, "x0">,
): Tensor {
  const at = (name: StepTable): Tensor => perSample(gatherSteps(schedule, name, t), xt);
  const x0 = prediction === "v"
    ? sub(mul(xt, at("sqrtAlphaBar")), mul(output, at("sqrtOneMinusAlphaBar")))
    : sub(mul(xt, at("sqrtRecipAlphaBar")), mul(output, at("sqrtRecipM1AlphaBar")));
  return clamp(x0, -1, 1);
}

/**
 * Whether training step `step` of a run seeded `seed` is self-conditioned: a fraction `rate` of
 * the steps, chosen by a hash of (seed, step), so a resumed run makes the same choices without
 * any state. Chen et al. choose per example with rate 0.5; choosing per step skips the extra
 * pass on the other steps, which halves its cost.
 *
 * @example
 * ```ts
 * selfConditionedStep(1234, 17, 0.5); // true or false, the same on every machine
 * ```
 */
export function selfConditionedStep(seed: number, step: number, rate: number): boolean {
  if (!(rate >= 0 && rate <= 1)) {
    throw new RangeError(`Self-conditioning rate "${rate}" is not in [0, 1]`);
  }
  return deriveSeed(seed, "self-condition", step) / 2 ** 32 < rate;
}

/** A network's output at x_t given the previous step's x_0 estimate (none at the first step). */
export type SelfConditionedPrediction = (
  xt: Tensor,
  timestep: number,
  estimate: Tensor | null,
) => Tensor;

/** A `NoisePredictor` that keeps its last x_0 estimate between steps: `release` frees it. */
export interface StatefulPredictor extends NoisePredictor {
  /** Frees the estimate it holds; the next call starts afresh, as at a first step. */
  release(): void;
}

/**
 * Turns `predict` into a sampler's `NoisePredictor` that feeds each call the x_0 estimate of the
 * call before (none at the first), the estimate being `predictX0` of that call's output at its
 * timestep of `schedule`, the training schedule the timesteps index (the guided output when
 * `predict` applies guidance: the estimate the sampler itself steps towards). Call `release`
 * once the sampler is done.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function predictor(net: (xt: Tensor, t: number, est: Tensor | null) => Tensor, s: NoiseSchedule) {
 *   return selfConditionedPredictor(net, s, "eps"); // then sampler.sample(...); .release()
 * }
 * ```
 */
export function selfConditionedPredictor(
  predict: SelfConditionedPrediction,
  schedule: NoiseSchedule,
  prediction: Exclude<PredictionType, "x0">,
): StatefulPredictor {
  let estimate: Tensor | null = null;
  const release = (): void => {
    estimate?.dispose();
    estimate = null;
  };
  const call = (xt: Tensor, timestep: number): Tensor => {
    if (estimate && estimate.shape.join() !== xt.shape.join()) release();
    const output = predict(xt, timestep, estimate);
    // Kept past the sampler's per-step scope; the previous one is freed.
    const next = noGrad(() => predictX0(xt, output, schedule, timestep, true, prediction)).keep();
    release();
    estimate = next;
    return output;
  };
  return Object.assign(call, { release });
}

/**
 * The estimate a self-conditioned network reads when it has none: zeros shaped like x_t.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * const none = (xt: Tensor): Tensor => noEstimate(xt); // [B, C, H, W] of 0
 * ```
 */
export function noEstimate(xt: Tensor): Tensor {
  return zeros(xt.shape);
}
