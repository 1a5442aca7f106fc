/**
 * Optimizers and training utilities: Adam/AdamW with fused kernels, global gradient-norm
 * clipping, learning-rate schedules and an exponential moving average of the weights.
 *
 * @example
 * ```ts
 * import { Adam, clipGradNorm, Ema, learningRateAt } from "./mod.ts";
 * ```
 */
export { Adam, copyInto } from "./adam.ts";
export type { AdamOptions, AdamState, AdamStateInput } from "./adam.ts";
export { clipGradNorm, gradNorm } from "./clip_grad.ts";
export { learningRateAt } from "./lr_schedule.ts";
export type { LrScheduleOptions } from "./lr_schedule.ts";
export { Ema, emaWarmupNote, emaWarmupUpdates } from "./ema.ts";
export type { EmaOptions, EmaState } from "./ema.ts";
