/**
 * The decoder's training loss (thesis Algorithm 2) with optional min-SNR-gamma weighting, for
 * noise (eps) or velocity (v) predicting networks. It needs only `predictNoise` (the `Decoder`
 * interface), so every decoder plugin, and every upsampler, trains with it.
 *
 * @module
 */
import { add, mean, mse, mul, noGrad, randn, reshape, type Tensor } from "../tensor/mod.ts";
import type { DecoderConditioning, PredictionType, Upsampler } from "../components.ts";
import type { NoiseSchedule } from "./schedule.ts";
import { derivedTable, gatherSteps, gatherTable, qSample, velocity } from "./process.ts";
import { drawTimesteps, type LogitNormal } from "./timesteps.ts";
import { augmentLowRes, downsampleArea, drawLevels } from "./augment.ts";
import { estimateX0 } from "./self_condition.ts";

/**
 * Any network that predicts the noise in x_t given a conditioning of type `C`: a decoder
 * (`DecoderConditioning`) or an upsampler (`UpsamplerConditioning`).
 */
export interface NoisePredictingNetwork<C> {
  /**
   * x_t [B, ...], t f32 [B] of original timestep indices -> predicted noise shaped like x_t;
   * `estimate` is the x_0 estimate a self-conditioned network reads (see `Decoder`).
   */
  predictNoise(xt: Tensor, t: Tensor, cond: C, estimate?: Tensor): Tensor;
}

/** Options of `decoderLoss`. */
export interface DecoderLossOptions {
  /** Use these timestep indices (of `schedule`, f32 [B]) instead of drawing them. */
  timesteps?: Tensor;
  /**
   * Draw the timesteps logit-normally (Esser et al. 2024; core/diffusion/timesteps.ts) instead
   * of uniformly (null/absent, thesis Algorithm 2).
   */
  logitNormal?: LogitNormal | null;
  /** Weight each sample by min-SNR-gamma (see `minSnrWeights`); null/absent = L_simple. */
  minSnrGamma?: number | null;
  /**
   * Also score the error area-averaged to each of these sides (see `multiscaleError`);
   * null/absent = the full size only.
   */
  multiscale?: number[] | null;
  /** What the network predicts, so what it is scored against: "eps" (default) or "v". */
  prediction?: Exclude<PredictionType, "x0">;
  /**
   * Self-condition this step (Chen et al. 2022, section 3.2): a first pass, without gradient,
   * estimates x_0, and the scored pass reads that estimate. Absent/false: the scored pass reads
   * no estimate (zeros for a self-conditioned network).
   */
  selfCondition?: boolean;
}

/**
 * Min-SNR-gamma weights per step of `schedule` (Hang et al. 2023, "Efficient Diffusion Training
 * via Min-SNR Weighting Strategy", section 3.4) with SNR_t = abar_t / (1 - abar_t): for eps
 * targets w_t = min(SNR_t, gamma) / SNR_t, for v targets min(SNR_t, gamma) / (SNR_t + 1). The
 * v error is the eps error times sqrt((SNR_t + 1) / SNR_t), so both weight the x_0 error
 * identically. High-SNR (nearly clean) steps, whose gradients conflict with the noisy steps',
 * count less.
 *
 * @example
 * ```ts
 * import { NoiseSchedule } from "./schedule.ts";
 * const schedule = new NoiseSchedule(new Float64Array(100).fill(0.02));
 * minSnrWeights(schedule, 5)[0]; // about 0.1: step 0 is almost clean
 * ```
 */
export function minSnrWeights(
  schedule: NoiseSchedule,
  gamma: number,
  prediction: Exclude<PredictionType, "x0"> = "eps",
): Float32Array {
  const w = new Float32Array(schedule.numSteps);
  for (let i = 0; i < schedule.numSteps; i++) {
    const snr = schedule.alphaBar[i] / (1 - schedule.alphaBar[i]);
    w[i] = Math.min(snr, gamma) / (prediction === "v" ? snr + 1 : snr);
  }
  return w;
}

/**
 * Algorithm 2 (thesis section 3.3.2; Ho et al. 2020, Algorithm 1): t ~ U{0..T-1} (or
 * logit-normal, `logitNormal`), eps ~ N(0, I),
 * x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (eq. 2.4), loss = MSE(eps_theta(x_t, t), eps)
 * (L_simple, eq. 2.14), or MSE against the velocity `velocity(x0, t, eps)` for a v-predicting
 * network (Salimans & Ho 2022). Any noise-predicting network trains with it (the upsampler too,
 * with its low-resolution conditioning as `cond`). Timesteps and noise come from the engine's
 * seeded generator and the coefficients are gathered on the device (the helpers the prior
 * uses): no upload, no readback. With `selfCondition` the scored pass reads the x_0 estimate of
 * a first pass run without gradient (self-conditioning, Chen et al. 2022, section 3.2).
 *
 * @example
 * ```ts
 * import type { DecoderConditioning } from "../components.ts";
 * import { scope, type Tensor } from "../tensor/mod.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * import type { Decoder } from "../components.ts";
 * function step(unet: Decoder, x0: Tensor, cond: DecoderConditioning, schedule: NoiseSchedule) {
 *   scope(() => decoderLoss(unet, x0, cond, schedule, { minSnrGamma: 5 }).backward());
 * }
 * ```
 */
export function decoderLoss<C = DecoderConditioning>(
  decoder: NoisePredictingNetwork<C>,
  x0: Tensor,
  cond: C,
  schedule: NoiseSchedule,
  options: DecoderLossOptions = {},
): Tensor {
  const t = options.timesteps ??
    drawTimesteps(x0.shape[0], schedule, options.logitNormal ?? null);
  const eps = randn(x0.shape);
  const xt = qSample(x0, t, eps, schedule);
  // The model sees the original schedule's timestep (respaced schedules keep them).
  const B = x0.shape[0];
  const modelT = reshape(gatherSteps(schedule, "timesteps", t), [B]);
  const prediction = options.prediction ?? "eps";
  const estimate = options.selfCondition
    ? noGrad(() => estimateX0(xt, decoder.predictNoise(xt, modelT, cond), t, schedule, prediction))
    : undefined;
  const predicted = decoder.predictNoise(xt, modelT, cond, estimate);
  const target = prediction === "v" ? velocity(x0, t, eps, schedule) : eps;
  const gamma = options.minSnrGamma ?? null;
  const sizes = options.multiscale ?? [];
  if (gamma === null && sizes.length === 0) return mse(predicted, target);
  // Per-sample error [B, 1], times the step's weight under min-SNR, averaged over the batch.
  const perSample = multiscaleError(predicted, target, sizes);
  if (gamma === null) return mean(perSample);
  const weights = derivedTable(
    schedule,
    `minSnr${gamma}-${prediction}`,
    () => minSnrWeights(schedule, gamma, prediction),
  );
  return mean(mul(perSample, gatherTable(schedule, weights, t)));
}

/**
 * Per-sample mean squared error [B, 1] of `predicted` against `target` [B, C, S, S], plus the
 * mean squared error of the two area-averaged to each side in `sizes`: the multiscale loss of
 * Hoogeboom et al. (2023, "simple diffusion"), sum over s of ||D_s[eps] - D_s[eps_hat]||^2 / s^2,
 * with D_s area downsampling to s x s. Averaging a k x k block divides white noise's variance by
 * k^2 but keeps an error that is constant over the block, so each added side raises the weight of
 * the errors coarser than its blocks (a figure's place and extent) against the pixel-level ones.
 * Every term has weight 1 here; with an empty `sizes` it is the plain per-sample MSE.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function coarseToo(predicted: Tensor, noise: Tensor): Tensor {
 *   return multiscaleError(predicted, noise, [4, 2]); // [B, 1] for [B, C, 8, 8] inputs
 * }
 * ```
 */
export function multiscaleError(predicted: Tensor, target: Tensor, sizes: number[]): Tensor {
  const B = predicted.shape[0];
  const perSample = (p: Tensor, q: Tensor) => mean(reshape(mse(p, q, "none"), [B, -1]), 1, true);
  let total = perSample(predicted, target);
  for (const size of sizes) {
    total = add(total, perSample(downsampleArea(predicted, size), downsampleArea(target, size)));
  }
  return total;
}

/**
 * The upsampler's training loss (DALL-E 2 section 2.1, Ho et al. 2021 section 4.2): `decoderLoss`
 * on images `x0` at the final size, conditioned on their own area-downsampled versions at
 * `lowResSize`, augmented at levels drawn per image uniformly from [0, augmentMax].
 *
 * @example
 * ```ts
 * import type { Upsampler } from "../components.ts";
 * import { scope, type Tensor } from "../tensor/mod.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function step(up: Upsampler, x0: Tensor, schedule: NoiseSchedule) {
 *   scope(() => upsamplerLoss(up, x0, schedule, { minSnrGamma: 5 }).backward());
 * }
 * ```
 */
export function upsamplerLoss(
  upsampler: Upsampler,
  x0: Tensor,
  schedule: NoiseSchedule,
  options: DecoderLossOptions = {},
): Tensor {
  const level = drawLevels(x0.shape[0], upsampler.augmentMax, upsampler.augment);
  const low = downsampleArea(x0, upsampler.lowResSize);
  const cond = { lowRes: augmentLowRes(low, level, upsampler.augment), level };
  return decoderLoss(upsampler, x0, cond, schedule, options);
}
