/**
 * The unCLIP inference pipeline (thesis Figure 3.1): caption -> tokenizer -> CLIP text encoder
 * -> prior -> decoder with classifier-free guidance -> (upsampler, when the run has DALL-E 2's
 * cascade) -> images, and image variations (DALL-E 2 section 3.1), with the checks of their
 * public options.
 *
 * @module
 */
import { l2Normalize, tokenBatch } from "../clip.ts";
import type {
  ClipConditioning,
  Decoder,
  DecoderConditioning,
  NoisePredictor,
  TokenBatch,
} from "../components.ts";
import type { ResolvedConfig, TrainStage } from "../config.ts";
import {
  checkGuidanceInterval,
  conditionalPrediction,
  FULL_GUIDANCE_INTERVAL,
  type GuidanceInterval,
  guidedPrediction,
} from "../diffusion/guidance.ts";
import { selfConditionedPredictor, type StatefulPredictor } from "../diffusion/self_condition.ts";
import { downsampleArea } from "../diffusion/augment.ts";
import { samplePrior } from "../diffusion/prior_sampling.ts";
import type { Module } from "../nn/module.ts";
import { concat, full, manualSeed, noGrad, scope, type Tensor, tensor } from "../tensor/mod.ts";
import { decoderDropRates } from "./build.ts";
import { clipConditioning } from "./clip_cache.ts";
import { clipSide, type Components } from "./load.ts";
import { imageTextScores, rerankerScores } from "./reranker.ts";
import { upsampleImages } from "./upsample.ts";

/**
 * The most images one `textToImage` / `imageVariations` call (and `deno task sample --n`)
 * produces: larger batches exceed the GPU's workgroup limits (and take minutes with no output).
 */
export const MAX_IMAGES = 1024;

/** Options of `textToImage` and `imageVariations`. */
export interface GenerateImagesOptions {
  /** Images per caption (default 1). */
  n?: number;
  /**
   * Classifier-free guidance scale s of the decoder (default: the model config's
   * `sampling.guidance`, 2 unless the config sets it; thesis best 2-2.5).
   */
  guidance?: number;
  /**
   * Where along the decoder's reverse process guidance applies, as fractions t / T of its
   * training schedule (1 = pure noise): [lo, hi], default [0, 1] (every step, thesis Algorithm
   * 3). Outside it each step runs the conditional pass alone, half the work (Kynkäänniemi et al.
   * 2024); docs/training.md measures [0.4, 1] on weights/default.
   */
  guidanceInterval?: GuidanceInterval;
  /** Reverse-process steps of the decoder (respaced; default all). */
  steps?: number;
  /** Reverse-process steps of the prior (respaced; default the pipeline's `priorSampler`'s). */
  priorSteps?: number;
  /** Guidance scale of the prior (default the pipeline's `priorGuidance`, 1 unless set). */
  priorGuidance?: number;
  /** Prior candidates per caption (Algorithm 5: 2). */
  candidates?: number;
  /**
   * Decoder candidates per returned image (default: the model config's `sampling.rerank`, 1 unless
   * the config sets it): each image is drawn this many times and the one whose CLIP image
   * embedding is closest to its caption's text embedding is kept (reranking, as DALL-E (Ramesh et
   * al. 2021) reranks with CLIP; the run's reranking CLIP, `Components.reranker`, when it has
   * one). Costs this many times the decoder's work. `textToImage` only;
   * the other functions ignore the config's and reject this option above 1.
   */
  rerank?: number;
  /** Seed of the GPU generator (default 0). */
  seed?: number;
  /** Called after each decoder step. */
  onStep?: (step: number, total: number) => void;
  /** Run the pipeline's upsampler after the decoder, when it has one (default true). */
  upsample?: boolean;
  /** The upsampler's conditioning augmentation level (default its `sampleAugment`). */
  upsamplerAugment?: number;
  /** Reverse-process steps of the upsampler (respaced; default `steps`). */
  upsamplerSteps?: number;
}

/** Generated images on the host. */
export interface GeneratedImages {
  /** NCHW float32 in [-1, 1]. */
  images: Float32Array;
  /** [N, 3, H, W]. */
  shape: [number, number, number, number];
  /** The caption of each image. */
  captions: string[];
  /**
   * The captions' words that the training captions never contained (see {@link unseenWords});
   * absent when the checkpoint does not record its training words (older checkpoints).
   */
  unseenWords?: string[];
}

/**
 * The words of `captions` that the training captions never contained, in order of appearance: the
 * model knows only its training vocabulary, so such words ("dragon", emoji, other languages) are
 * not drawn. Undefined when the tokenizer cannot tell (checkpoints saved before the training
 * words were recorded, such as weights/default, or a tokenizer plugin without `unseenWords`).
 *
 * @example
 * ```ts
 * import { clipSide, type Components } from "./load.ts";
 * function unknown(pipeline: Components) {
 *   return unseenWords(pipeline, ["a purple dragon"]); // e.g. ["dragon"]
 * }
 * ```
 */
export function unseenWords(p: Components, captions: readonly string[]): string[] | undefined {
  if (!p.tokenizer.unseenWords) return undefined;
  const words = new Set<string>();
  for (const c of captions) {
    const unseen = p.tokenizer.unseenWords(c);
    if (unseen === undefined) return undefined;
    for (const w of unseen) words.add(w);
  }
  return [...words];
}

function checkCount(value: unknown, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > max) {
    throw new RangeError(
      `Option "${name}" must be an integer from 1 to ${max}, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * Validates the options of `textToImage` / `imageVariations` at the public surface, so that a
 * bad value is a clear error rather than an internal failure or a wrong result. Returns `n`.
 */
function checkGenerateOptions(options: GenerateImagesOptions, defaultN: number): number {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`Options must be an object, got ${String(options)}`);
  }
  const n = checkCount(options.n, "n", defaultN, MAX_IMAGES);
  for (const name of ["guidance", "priorGuidance"] as const) {
    const g = options[name];
    if (g !== undefined && (typeof g !== "number" || !Number.isFinite(g) || g < 0)) {
      throw new RangeError(`Option "${name}" must be a finite number >= 0, got ${String(g)}`);
    }
  }
  if (options.guidanceInterval !== undefined) {
    checkGuidanceInterval(options.guidanceInterval, 'Option "guidanceInterval"');
  }
  checkCount(options.steps, "steps", 1, Number.MAX_SAFE_INTEGER);
  checkCount(options.priorSteps, "priorSteps", 1, Number.MAX_SAFE_INTEGER);
  checkCount(options.upsamplerSteps, "upsamplerSteps", 1, Number.MAX_SAFE_INTEGER);
  checkCount(options.candidates, "candidates", 1, MAX_IMAGES);
  checkCount(options.rerank, "rerank", 1, MAX_IMAGES);
  const level = options.upsamplerAugment;
  if (level !== undefined && (typeof level !== "number" || !(level >= 0 && level <= 1))) {
    throw new RangeError(`Option "upsamplerAugment" must be a number from 0 to 1, got ${level}`);
  }
  const seed = options.seed;
  if (seed !== undefined && (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)) {
    throw new RangeError(`Option "seed" must be an integer from 0 to 4294967295, got ${seed}`);
  }
  return n;
}

/** Reranking needs a caption per image to score against: only `textToImage` offers it. */
function rejectRerank(options: GenerateImagesOptions, fn: string): void {
  if (options.rerank !== undefined && options.rerank !== 1) {
    throw new RangeError(
      `${fn}() does not rerank (got rerank ${options.rerank}); use textToImage()`,
    );
  }
}

/** Captions must be a non-empty array of strings. */
function checkCaptions(captions: unknown): readonly string[] {
  if (!Array.isArray(captions) || captions.length === 0) {
    throw new TypeError(
      `Captions must be a non-empty array of strings, got ${
        Array.isArray(captions) ? "an empty array" : typeof captions
      }`,
    );
  }
  const bad = captions.findIndex((c) => typeof c !== "string");
  if (bad >= 0) {
    throw new TypeError(`Caption ${bad} must be a string, got ${typeof captions[bad]}`);
  }
  return captions;
}

/**
 * The decoder's guidance scale for `options`: theirs, else the model config's default
 * (`sampling.guidance`).
 *
 * @example
 * ```ts
 * import { clipSide, type Components } from "./load.ts";
 * const scaleOf = (p: Components): number => decoderGuidance(p, {}); // 2 unless the config says
 * ```
 */
export function decoderGuidance(
  p: Pick<Components, "config">,
  options: Pick<GenerateImagesOptions, "guidance">,
): number {
  return options.guidance ?? p.config.sampling.guidance;
}

/**
 * Decoder candidates per text-to-image image for `options`: theirs, else the model config's
 * default (`sampling.rerank`, 1 unless the config sets it).
 *
 * @example
 * ```ts
 * import { clipSide, type Components } from "./load.ts";
 * const candidatesOf = (p: Components): number => decoderRerank(p, {}); // 1 unless the config says
 * ```
 */
export function decoderRerank(
  p: Pick<Components, "config">,
  options: Pick<GenerateImagesOptions, "rerank">,
): number {
  return options.rerank ?? p.config.sampling.rerank;
}

/**
 * One reverse process from two networks, as eDiff-I's expert denoisers split the noise levels
 * (Balaji et al. 2022, section 4): `late` predicts the steps with t / T < `below` (t the training
 * schedule's index, T its `timesteps`), `early` the noisier rest.
 *
 * @example
 * ```ts
 * import type { NoisePredictor } from "../components.ts";
 * function experts(a: NoisePredictor, b: NoisePredictor): NoisePredictor {
 *   return switchedPredictor(a, b, 0.8, 1000); // b for t < 800
 * }
 * ```
 */
export function switchedPredictor(
  early: NoisePredictor,
  late: NoisePredictor,
  below: number,
  timesteps: number,
): NoisePredictor {
  const cut = below * timesteps;
  return (xt, timestep) => (timestep < cut ? late : early)(xt, timestep);
}

/**
 * The decoder half of unCLIP for given image embeddings (one row per image) and token rows:
 * guided sampling with the pipeline's sampler (its late decoder below `lateDecoder.below`), then
 * its upsampler when it runs one. Inside a `scope` and `noGrad`; returns the NCHW images on the
 * device.
 *
 * @example
 * ```ts
 * import { clipSide, type Components } from "./load.ts";
 * import type { TokenBatch } from "../components.ts";
 * import type { Tensor } from "../tensor/mod.ts";
 * function decode(p: Components, tokens: TokenBatch, z: Tensor): Tensor {
 *   return decodeImages(p, tokens, z, { guidance: 2, steps: 50 });
 * }
 * ```
 */
export function decodeImages(
  p: Components,
  tokens: TokenBatch,
  imageEmbedding: Tensor,
  options: GenerateImagesOptions,
): Tensor {
  const B = imageEmbedding.shape[0];
  const cond: DecoderConditioning = { tokens, imageEmbedding, keep: full([B], 1) };
  const scale = decoderGuidance(p, options);
  if (scale !== 1) {
    checkNullConditionTrained(p.config, scale, "decoder");
    if (p.lateDecoder) checkNullConditionTrained(p.lateDecoder.config, scale, "late decoder");
  }
  // s = 1 is the conditional prediction alone: skip the unconditional half of the batch.
  const predictionOf = (decoder: Decoder) =>
    scale === 1 ? conditionalPrediction(decoder, cond) : guidedPrediction(decoder, cond, scale, {
      interval: options.guidanceInterval ?? FULL_GUIDANCE_INTERVAL,
      timesteps: p.decoderSchedule.numSteps,
    });
  // A self-conditioned decoder reads its estimate of x_0 from its previous step.
  const stateful: StatefulPredictor[] = [];
  const predictorOf = (decoder: Decoder): NoisePredictor => {
    const predict = predictionOf(decoder);
    if (!((decoder.selfCondition ?? 0) > 0)) return (xt, timestep) => predict(xt, timestep, null);
    const own = selfConditionedPredictor(predict, p.decoderSchedule, decoder.prediction ?? "eps");
    stateful.push(own);
    return own;
  };
  const late = p.lateDecoder;
  const predict = late
    ? switchedPredictor(
      predictorOf(p.decoder),
      predictorOf(late.decoder),
      late.below,
      p.decoderSchedule.numSteps,
    )
    : predictorOf(p.decoder);
  const { imageSize: S, channels: C } = p.decoder;
  let x: Tensor;
  try {
    x = p.sampler.sample(predict, [B, C, S, S], p.decoderSchedule, {
      steps: options.steps,
      prediction: p.decoder.prediction ?? "eps",
      onStep: options.onStep,
    });
  } finally {
    for (const own of stateful) own.release();
  }
  if (!p.upsampler || !p.upsamplerSchedule || options.upsample === false) return x;
  // DALL-E 2's cascade: the decoder's images condition the upsampler (the decoder's sampler,
  // its steps unless told otherwise, a fixed small augmentation level).
  return upsampleImages(p.upsampler, x, p.sampler, p.upsamplerSchedule, {
    steps: options.upsamplerSteps ?? options.steps,
    augment: options.upsamplerAugment,
  });
}

/**
 * The side of the images `textToImage` and `imageVariations` return: the upsampler's when the
 * pipeline runs one (DALL-E 2's cascade), else the decoder's.
 *
 * @example
 * ```ts
 * import { clipSide, type Components } from "./load.ts";
 * function side(pipeline: Components): number {
 *   return outputImageSize(pipeline); // 32 for presets/cpu16-up32.jsonc, 16 without its upsampler
 * }
 * ```
 */
export function outputImageSize(p: Components): number {
  return p.upsampler?.imageSize ?? p.decoder.imageSize;
}

/**
 * The side of the images CLIP reads (its image encoder's `imageSize`; the decoder's size when
 * the plugin has no such option): what `imageVariations` takes. With an upsampler it is the
 * final size, above the decoder's.
 *
 * @example
 * ```ts
 * import { clipSide, type Components } from "./load.ts";
 * function side(pipeline: Components): number {
 *   return inputImageSize(pipeline); // 32 for presets/cpu16-up32.jsonc
 * }
 * ```
 */
export function inputImageSize(p: Components): number {
  return clipSide(p.config, p.decoder);
}

/**
 * Sampling produced NaN or infinite values (all-black images otherwise): `cause` names the
 * stage whose weights are not finite, or says that the weights are finite.
 */
export class NonFiniteOutputError extends Error {
  /** The stage whose weights hold NaN/Inf, or null when every weight is finite. */
  readonly stage: TrainStage | null;
  /** Creates the error. */
  constructor(message: string, stage: TrainStage | null) {
    super(message);
    this.name = "NonFiniteOutputError";
    this.stage = stage;
  }
}

/** The first parameter of `m` (dotted name) that holds a NaN or infinite value, if any. */
async function firstNonFinite(m: Module): Promise<string | undefined> {
  for (const [name, t] of m.namedParameters()) {
    if (t.dtype !== "f32") continue;
    const data = await t.read() as Float32Array;
    if (!data.every(Number.isFinite)) return name;
  }
  return undefined;
}

/** Throws a `NonFiniteOutputError` naming the likely cause when `images` is not all finite. */
async function checkFinite(
  p: Components,
  images: Float32Array,
  options: GenerateImagesOptions,
): Promise<void> {
  const bad = images.findIndex((v) => !Number.isFinite(v));
  if (bad < 0) return;
  const what = Number.isNaN(images[bad]) ? "NaN" : "infinite values";
  const stages: [TrainStage, Module][] = [
    ...(p.upsampler ? [["upsampler", p.upsampler] as [TrainStage, Module]] : []),
    ["decoder", p.decoder],
    ["prior", p.prior],
    ["clip", p.clip],
  ];
  for (const [stage, m] of stages) {
    const name = await firstNonFinite(m);
    if (name !== undefined) {
      throw new NonFiniteOutputError(
        `Sampling produced ${what}: the ${stage} checkpoint's weights hold NaN/Inf ` +
          `(first: "${name}"); retrain the ${stage} stage or use another checkpoint`,
        stage,
      );
    }
  }
  throw new NonFiniteOutputError(
    `Sampling produced ${what} although every weight is finite (guidance ` +
      `${decoderGuidance(p, options)}); try a guidance scale nearer 2 or more steps`,
    null,
  );
}

async function readImages(
  p: Components,
  x: Tensor,
  captions: string[],
  options: GenerateImagesOptions,
): Promise<GeneratedImages> {
  const data = await x.read() as Float32Array;
  x.dispose();
  await checkFinite(p, data, options);
  const [n, c, h, w] = x.shape;
  const unseen = unseenWords(p, [...new Set(captions)]);
  return { images: data, shape: [n, c, h, w], captions, ...(unseen && { unseenWords: unseen }) };
}

/**
 * The full unCLIP pipeline (thesis Figure 3.1): captions -> tokens -> CLIP text encoding and
 * embedding -> prior samples of image embeddings (best of `candidates`, Algorithm 5) -> decoder
 * with classifier-free guidance -> images. One readback at the end.
 *
 * @example
 * ```ts
 * import { clipSide, type Components } from "./load.ts";
 * async function circles(pipeline: Components) {
 *   const out = await textToImage(pipeline, ["a red circle"], { n: 4, guidance: 2 });
 *   return out.shape; // [4, 3, 32, 32] for a 32x32 decoder
 * }
 * ```
 */
export async function textToImage(
  p: Components,
  captions: readonly string[],
  options: GenerateImagesOptions = {},
): Promise<GeneratedImages> {
  checkCaptions(captions);
  const n = checkGenerateOptions(options, 1);
  // The size with the given candidates first, before anything reads the pipeline; then with the
  // model config's, when they are what applies.
  const given = options.rerank ?? 1;
  checkImagesDrawn(captions.length, n, given, false);
  const k = decoderRerank(p, options);
  if (k !== given) checkImagesDrawn(captions.length, n, k, true);
  // Each caption's n images, each drawn k times: k consecutive rows per returned image.
  const rows = captions.flatMap((c) => Array.from({ length: n * k }, () => c));
  // Encode first so that a too-long caption fails before any GPU work.
  for (const c of captions) p.tokenizer.encode(c);
  const reranker = k > 1 ? p.reranker : undefined;
  if (reranker) { for (const c of captions) reranker.tokenizer.encode(c); }
  manualSeed(options.seed ?? 0);
  const { x, scores } = noGrad(() =>
    scope(() => {
      const tokens = tokenBatch(p.tokenizer, rows);
      const cond = clipConditioning(p.clip, tokens);
      const z = l2Normalize(sampleEmbeddings(p, cond, options));
      const x = decodeImages(p, tokens, z, options);
      // CLIP reranking: the run's reranking CLIP when it has one, else the pipeline's CLIP.
      const scores = k === 1
        ? null
        : reranker
        ? rerankerScores(reranker, x, rows)
        : imageTextScores(p.clip, inputImageSize(p), x, cond.textEmbedding);
      return { x, scores };
    })
  );
  const all = await readImages(p, x, rows, options);
  if (scores === null) return all;
  const s = await scores.read() as Float32Array;
  scores.dispose();
  return keepRows(all, bestOfCandidates(s, k));
}

/** `captions` x `n` x `k` candidates must fit in one call (MAX_IMAGES); a one-line RangeError. */
function checkImagesDrawn(captions: number, n: number, k: number, stored: boolean): void {
  const drawn = captions * n * k;
  if (drawn <= MAX_IMAGES) return;
  const source = stored ? " (the model config's sampling.rerank)" : "";
  throw new RangeError(
    `${captions} captions x n ${n}${k > 1 ? ` x rerank ${k}${source}` : ""} = ${drawn} images, ` +
      `more than ${MAX_IMAGES} per call; split the captions into several calls` +
      (stored ? " or pass a smaller rerank" : ""),
  );
}

/**
 * Guidance s != 1 reads the decoder's null condition, which trains only on the steps that drop
 * the caption, the CLIP embedding or both (`nullRate`, `textDropRate`, `clipDropRate`): a
 * decoder trained with all three at 0 has it at its initial values, so it is a one-line error,
 * as for the prior (plugins/priors/denoiser.ts).
 */
function checkNullConditionTrained(config: ResolvedConfig, scale: number, which: string): void {
  const drop = decoderDropRates(config);
  if (drop.both > 0 || drop.text > 0 || drop.clip > 0) return;
  throw new RangeError(
    `Guidance "${scale}" needs a decoder trained with the null condition (nullRate, textDropRate ` +
      `or clipDropRate above 0; the ${which} has all three at 0); use guidance 1 (--guidance 1) ` +
      `or retrain it with nullRate`,
  );
}

/**
 * The row index of the best score in each group of `k` consecutive scores (the first one on a
 * tie): which of k candidates CLIP reranking keeps for each returned image.
 *
 * @example
 * ```ts
 * bestOfCandidates(Float32Array.of(0.1, 0.7, 0.3, 0.9, 0.2, 0.4), 3); // [1, 3]
 * ```
 */
export function bestOfCandidates(scores: ArrayLike<number>, k: number): number[] {
  if (!Number.isInteger(k) || k < 1 || scores.length % k !== 0) {
    throw new RangeError(`${scores.length} scores do not split into groups of ${k}`);
  }
  const best: number[] = [];
  for (let g = 0; g < scores.length; g += k) {
    let b = g;
    for (let i = g + 1; i < g + k; i++) if (scores[i] > scores[b]) b = i;
    best.push(b);
  }
  return best;
}

/** The images (and their captions) of `generated` at `indices`, in that order. */
function keepRows(generated: GeneratedImages, indices: readonly number[]): GeneratedImages {
  const [, c, h, w] = generated.shape;
  const per = c * h * w;
  const images = new Float32Array(indices.length * per);
  indices.forEach((r, i) => images.set(generated.images.subarray(r * per, (r + 1) * per), i * per));
  return {
    ...generated,
    images,
    shape: [indices.length, c, h, w],
    captions: indices.map((r) => generated.captions[r]),
  };
}

/**
 * The prior's image embeddings [B, E] for a text conditioning (not normalised), sampled with the
 * pipeline's prior sampler and guidance unless `options` override the steps, guidance or
 * candidates (Algorithm 5: 2 candidates).
 *
 * @example
 * ```ts
 * import type { ClipConditioning } from "../components.ts";
 * import { clipSide, type Components } from "./load.ts";
 * function embeddings(pipeline: Components, cond: ClipConditioning) {
 *   return sampleEmbeddings(pipeline, cond, { priorSteps: 25 });
 * }
 * ```
 */
export function sampleEmbeddings(
  p: Components,
  cond: ClipConditioning,
  options: Pick<GenerateImagesOptions, "priorSteps" | "priorGuidance" | "candidates"> = {},
): Tensor {
  return samplePrior(p.prior, cond, p.priorSchedule, {
    sampler: p.priorSampler,
    steps: options.priorSteps,
    guidance: options.priorGuidance ?? p.priorGuidance,
    candidates: options.candidates ?? p.priorCandidates,
  });
}

/**
 * Variations of an image (DALL-E 2 section 3.1): its CLIP image embedding is decoded `n` times.
 * The decoder's text input is `caption` (default empty). The image is NCHW at
 * `inputImageSize(p)` (CLIP's side; the decoder's without an upsampler).
 *
 * @example
 * ```ts
 * import { clipSide, type Components } from "./load.ts";
 * async function variations(pipeline: Components, nchwImage: Float32Array) {
 *   return await imageVariations(pipeline, nchwImage, { n: 4 });
 * }
 * ```
 */
export async function imageVariations(
  p: Components,
  image: Float32Array,
  options: GenerateImagesOptions & { caption?: string } = {},
): Promise<GeneratedImages> {
  const n = checkGenerateOptions(options, 4);
  rejectRerank(options, "imageVariations");
  const caption = options.caption ?? "";
  if (typeof caption !== "string") {
    throw new TypeError(`Option "caption" must be a string, got ${typeof caption}`);
  }
  return await decodeClipEmbeddingsOf(
    p,
    image,
    1,
    Array.from({ length: n }, () => caption),
    options,
  );
}

/**
 * Decodes each image's own CLIP image embedding once, with the decoder's text input the image's
 * entry of `captions` ("" for none): the pipeline with a perfect prior, or, with empty captions,
 * what the decoder draws from the embedding alone (`eval pipeline --from image|variations`).
 * `images` holds `captions.length` NCHW images at `inputImageSize(p)`.
 *
 * @example
 * ```ts
 * import { clipSide, type Components } from "./load.ts";
 * async function withTrueEmbeddings(pipeline: Components, two: Float32Array) {
 *   return await reconstructImages(pipeline, two, ["a red circle", ""]);
 * }
 * ```
 */
export async function reconstructImages(
  p: Components,
  images: Float32Array,
  captions: readonly string[],
  options: GenerateImagesOptions = {},
): Promise<GeneratedImages> {
  checkGenerateOptions(options, 1);
  if (options.n !== undefined && options.n !== 1) {
    throw new RangeError(`reconstructImages() decodes each image once; got n ${options.n}`);
  }
  rejectRerank(options, "reconstructImages");
  if (!Array.isArray(captions) || captions.some((c) => typeof c !== "string")) {
    throw new TypeError('Captions must be an array of strings ("" for none)');
  }
  if (captions.length < 1 || captions.length > MAX_IMAGES) {
    throw new RangeError(
      `Expected 1 to ${MAX_IMAGES} captions, one per image; got ${captions.length}`,
    );
  }
  return await decodeClipEmbeddingsOf(p, images, captions.length, [...captions], options);
}

/**
 * DALL-E 2's upsampler alone: area-downsamples `count` NCHW images at `inputImageSize(p)` (real
 * images, in [-1, 1]) to the decoder's size, as the upsampler was trained (its condition is each
 * image's own area average), and upsamples them back with the pipeline's sampler. What comes back
 * is what the cascade would draw from a perfect decoder: its ceiling. Throws when the pipeline has
 * no upsampler. `options.upsamplerSteps` (else `steps`), `upsamplerAugment` and `seed` apply.
 *
 * @example
 * ```ts
 * import { clipSide, type Components } from "./load.ts";
 * async function ceiling(cascade: Components, real: Float32Array, count: number) {
 *   return (await upsampleRealImages(cascade, real, count)).shape; // [count, 3, 32, 32]
 * }
 * ```
 */
export async function upsampleRealImages(
  p: Components,
  images: Float32Array,
  count: number,
  options: GenerateImagesOptions = {},
): Promise<GeneratedImages> {
  checkGenerateOptions(options, 1);
  const up = p.upsampler, schedule = p.upsamplerSchedule;
  if (!up || !schedule) {
    throw new Error("This pipeline has no upsampler: only a cascade's runs can upsample images");
  }
  if (!Number.isInteger(count) || count < 1 || count > MAX_IMAGES) {
    throw new RangeError(`Expected 1 to ${MAX_IMAGES} images, got ${count}`);
  }
  const S = inputImageSize(p);
  if (images.length !== count * up.channels * S * S) {
    throw new Error(
      `Input holds ${images.length} values; expected ${count} image(s) of ` +
        `${up.channels}x${S}x${S}`,
    );
  }
  manualSeed(options.seed ?? 0);
  const x = noGrad(() =>
    scope(() => {
      const lowRes = downsampleArea(tensor(images, [count, up.channels, S, S]), up.lowResSize);
      return upsampleImages(up, lowRes, p.sampler, schedule, {
        steps: options.upsamplerSteps ?? options.steps,
        augment: options.upsamplerAugment,
      });
    })
  );
  return await readImages(p, x, Array.from({ length: count }, () => ""), options);
}

/**
 * The shared path of the two above: embeds `count` NCHW images with CLIP and decodes the
 * embeddings with the rows' captions: one row per image, or one image for every row.
 */
async function decodeClipEmbeddingsOf(
  p: Components,
  images: Float32Array,
  count: number,
  rows: string[],
  options: GenerateImagesOptions,
): Promise<GeneratedImages> {
  for (const c of new Set(rows)) p.tokenizer.encode(c);
  const S = inputImageSize(p);
  if (images.length !== count * 3 * S * S) {
    throw new Error(
      `Input holds ${images.length / 3} pixels per channel; CLIP expects ${count} image(s) of ` +
        `${S}x${S}`,
    );
  }
  const repeat = rows.length / count;
  if (repeat !== 1 && count !== 1) throw new RangeError(`${rows.length} rows for ${count} images`);
  manualSeed(options.seed ?? 0);
  const x = noGrad(() =>
    scope(() => {
      const z = l2Normalize(p.clip.encodeImages(tensor(images, [count, 3, S, S])));
      const zs = repeat === 1 ? z : concat(Array.from({ length: repeat }, () => z), 0);
      return decodeImages(p, tokenBatch(p.tokenizer, rows), zs, options);
    })
  );
  return await readImages(p, x, rows, options);
}
