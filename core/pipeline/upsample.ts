/**
 * The last step of DALL-E 2's cascade in a trained run: loading `<run>/upsampler` when it exists,
 * and sampling it on the decoder's images (Ramesh et al. 2022, section 2.1): the decoder's output
 * is augmented at a fixed small level (Ho et al. 2021, section 4.2) and conditions the upsampler,
 * which the decoder's sampler runs with the decoder's steps.
 *
 * @module
 */
import type { Decoder, NoiseSchedule, Sampler, Upsampler } from "../components.ts";
import type { ResolvedConfig } from "../config.ts";
import { augmentLowRes, trainedLevelMax } from "../diffusion/augment.ts";
import { joinPath as join, type WeightReader } from "../io/mod.ts";
import type { Registry } from "../registry.ts";
import { clamp, full, type Tensor } from "../tensor/mod.ts";
import {
  assertConfigMatches,
  CheckpointError,
  hasStage,
  type LoadedCheckpoint,
  loadModuleWeights,
} from "../train/checkpoint.ts";
import { createComponent, createUpsampler } from "./build.ts";

/** A run's trained upsampler, ready to sample. */
export interface LoadedUpsampler {
  upsampler: Upsampler;
  /** The noise schedule it was trained with (its config's `decoderSchedule`). */
  schedule: NoiseSchedule;
  /** Its config's upsampler component. */
  component: NonNullable<ResolvedConfig["components"]["upsampler"]>;
  /** Its training settings. */
  train: NonNullable<ResolvedConfig["train"]["upsampler"]>;
  /** Steps it was trained for. */
  step: number;
}

/**
 * Loads `<run>/upsampler` (EMA weights, eval mode) when the run has one, else undefined. The
 * checkpoint must be of the run's dataset, and its low-resolution side the decoder's size.
 * `loadResolved` is load.ts's `loadResolvedCheckpoint` (passed in to keep the import one way).
 *
 * @example
 * ```ts
 * import type { Decoder } from "../components.ts";
 * import type { ResolvedConfig } from "../config.ts";
 * import type { WeightReader } from "../io/mod.ts";
 * import type { Registry } from "../registry.ts";
 * import { loadResolvedCheckpoint } from "./load.ts";
 * async function up(c: ResolvedConfig, r: Registry, reader: WeightReader, decoder: Decoder) {
 *   const load = (dir: string) => loadResolvedCheckpoint(dir, "upsampler", r, reader);
 *   return await loadUpsampler("runs/up", c, r, reader, decoder, load);
 * }
 * ```
 */
export async function loadUpsampler(
  runDir: string,
  config: ResolvedConfig,
  registry: Registry,
  reader: WeightReader,
  decoder: Decoder,
  loadResolved: (dir: string) => Promise<LoadedCheckpoint>,
): Promise<LoadedUpsampler | undefined> {
  const dir = join(runDir, "upsampler");
  if (!(await hasStage(reader, dir))) return undefined;
  const ckpt = await loadResolved(dir);
  const upConfig = ckpt.meta.config;
  assertConfigMatches(ckpt, config, ["dataset"]);
  const component = upConfig.components.upsampler;
  const train = upConfig.train.upsampler;
  if (!component || !train) {
    throw new CheckpointError(`Checkpoint "${ckpt.dir}" holds a config without an upsampler`);
  }
  const upsampler = await createUpsampler(upConfig, registry);
  if (upsampler.lowResSize !== decoder.imageSize || upsampler.channels !== decoder.channels) {
    upsampler.dispose();
    throw new CheckpointError(
      `Checkpoint "${ckpt.dir}" upsamples ${upsampler.lowResSize}x${upsampler.lowResSize} ` +
        `images but the decoder draws ${decoder.imageSize}x${decoder.imageSize}; retrain one of ` +
        `them, or sample without the upsampler (--no-upsampler)`,
    );
  }
  loadModuleWeights(upsampler, ckpt, { ema: true });
  upsampler.eval();
  const schedule = await createComponent<NoiseSchedule>(upConfig, registry, "decoderSchedule");
  return { upsampler, schedule, component, train, step: ckpt.meta.step };
}

/** How `upsampleImages` samples. */
export interface UpsampleOptions {
  /** Reverse-process steps (respaced; default the sampler's). */
  steps?: number;
  /** The augmentation level of the condition (default the upsampler's `sampleAugment`). */
  augment?: number;
  /** Called after each step. */
  onStep?: (step: number, total: number) => void;
}

/**
 * Upsamples images x [B, C, lowResSize, lowResSize] in [-1, 1] (clamped first) to
 * [B, C, imageSize, imageSize]: the condition is augmented at one fixed level for the whole
 * batch, then `sampler` runs the upsampler from pure noise. Call under `noGrad`.
 *
 * @example
 * ```ts
 * import type { NoiseSchedule, Sampler, Upsampler } from "../components.ts";
 * import type { Tensor } from "../tensor/mod.ts";
 * function big(up: Upsampler, x: Tensor, sampler: Sampler, schedule: NoiseSchedule): Tensor {
 *   return upsampleImages(up, x, sampler, schedule, { steps: 25 });
 * }
 * ```
 */
export function upsampleImages(
  up: Upsampler,
  x: Tensor,
  sampler: Sampler,
  schedule: NoiseSchedule,
  options: UpsampleOptions = {},
): Tensor {
  const level = options.augment ?? up.sampleAugment;
  const trainedMax = trainedLevelMax(up.augmentMax, up.augment);
  if (!Number.isFinite(level) || level < 0 || level > trainedMax) {
    const trainedWith = up.augment === "none" ? "" : `, augmentMax ${up.augmentMax}`;
    throw new RangeError(
      `Upsampler augmentation level must lie in [0, ${trainedMax}], the levels it trained on ` +
        `(augment "${up.augment}"${trainedWith}); got ${level}`,
    );
  }
  const B = x.shape[0];
  const levels = full([B], level);
  const lowRes = augmentLowRes(clamp(x, -1, 1), levels, up.augment);
  const S = up.imageSize;
  const cond = { lowRes, level: levels };
  return sampler.sample(
    (xt, timestep) => up.predictNoise(xt, full([B], timestep), cond),
    [B, up.channels, S, S],
    schedule,
    { steps: options.steps, onStep: options.onStep, prediction: up.prediction ?? "eps" },
  );
}
