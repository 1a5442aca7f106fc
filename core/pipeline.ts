/**
 * Builds components from a resolved config through the plugin registry, loads a trained run
 * (`<run>/clip`, `<run>/prior`, `<run>/decoder`), and runs the full unCLIP text-to-image
 * pipeline (thesis Figure 3.1): caption -> tokenizer -> CLIP text encoder -> prior -> decoder
 * with classifier-free guidance -> images. Also the CLIP embedding cache the prior trains on.
 *
 * @module
 */
import type {
  CaptionedImage,
  ClipConditioning,
  Decoder,
  DecoderConditioning,
  ImageEncoder,
  ImageTextDataset,
  NoiseSchedule,
  Prior,
  Sampler,
  TextEncoder,
  TokenBatch,
  Tokenizer,
} from "./components.ts";
import {
  type ComponentSlot,
  CONFIG_NAME,
  loadPluginModule,
  type ResolvedConfig,
  type TrainStage,
  validateConfig,
} from "./config.ts";
import { joinPath as join, readerFor, type WeightReader } from "./io/mod.ts";
import type { Module } from "./nn/module.ts";
import type { Registry } from "./registry.ts";
import {
  clone,
  concat,
  embedding,
  full,
  manualSeed,
  noGrad,
  reshape,
  scope,
  type Tensor,
  tensor,
  zeros,
} from "./tensor/mod.ts";
import {
  assertConfigMatches,
  assertSameClip,
  CheckpointError,
  loadCheckpoint,
  type LoadedCheckpoint,
  loadModuleWeights,
} from "./train/checkpoint.ts";
import { ClipModel, l2Normalize, tokenBatch } from "./clip.ts";
import { conditionalPredictor, guidedPredictor } from "./diffusion/guidance.ts";
import { toNchw } from "./data/images.ts";

/** A prior component (the interface plus the Module base every shipped prior has). */
export type PriorModel = Prior & Module;

/** Component slots each stage's checkpoint depends on (compared against the current config). */
export const STAGE_SLOTS: Readonly<Record<TrainStage, readonly ComponentSlot[]>> = {
  clip: ["tokenizer", "textEncoder", "imageEncoder", "dataset"],
  prior: ["tokenizer", "textEncoder", "imageEncoder", "dataset", "prior", "priorSchedule"],
  decoder: ["tokenizer", "textEncoder", "imageEncoder", "dataset", "decoder", "decoderSchedule"],
};

/** The CLIP slots (what the prior and decoder stages need from the clip checkpoint). */
export const CLIP_SLOTS: readonly ComponentSlot[] = STAGE_SLOTS.clip;

/** Context handed to every plugin's `create`: what components need from the tokenizer. */
function contextFor(tokenizer?: Tokenizer): Record<string, unknown> {
  return tokenizer
    ? { tokenizer, vocabSize: tokenizer.vocabSize, contextLength: tokenizer.contextLength }
    : {};
}

/**
 * Creates the component in a config slot through the registry.
 *
 * @example
 * ```ts
 * const schedule = await createComponent<NoiseSchedule>(config, registry, "decoderSchedule");
 * ```
 */
export async function createComponent<T>(
  config: ResolvedConfig,
  registry: Registry,
  slot: ComponentSlot,
  context: Record<string, unknown> = {},
): Promise<T> {
  const c = config.components[slot];
  const kind = slot === "priorSchedule" || slot === "decoderSchedule" ? "schedule" : slot;
  return await registry.use<T>(kind, c.plugin, c.options, context);
}

/**
 * The dataset of a config.
 *
 * @example
 * ```ts
 * const train = await (await createDataset(config, registry)).split("train");
 * ```
 */
export function createDataset(
  config: ResolvedConfig,
  registry: Registry,
): Promise<ImageTextDataset> {
  return createComponent<ImageTextDataset>(config, registry, "dataset");
}

/**
 * The tokenizer: restored from `state` (a checkpoint's vocabulary) or trained on `captions`.
 *
 * @example
 * ```ts
 * const tok = await createTokenizer(config, registry, { captions: train.map((s) => s.caption) });
 * ```
 */
export function createTokenizer(
  config: ResolvedConfig,
  registry: Registry,
  from: { captions?: Iterable<string>; state?: unknown },
): Promise<Tokenizer> {
  return createComponent<Tokenizer>(config, registry, "tokenizer", { ...from });
}

/**
 * A CLIP model from the config's text and image encoders (fresh weights).
 *
 * @example
 * ```ts
 * const clip = await createClip(config, registry, tokenizer);
 * ```
 */
export async function createClip(
  config: ResolvedConfig,
  registry: Registry,
  tokenizer: Tokenizer,
): Promise<ClipModel> {
  const ctx = contextFor(tokenizer);
  const text = await createComponent<TextEncoder>(config, registry, "textEncoder", ctx);
  const image = await createComponent<ImageEncoder>(config, registry, "imageEncoder", ctx);
  return new ClipModel(text, image);
}

/**
 * The prior of a config (fresh weights).
 *
 * @example
 * ```ts
 * const prior = await createPrior(config, registry, tokenizer);
 * ```
 */
export function createPrior(
  config: ResolvedConfig,
  registry: Registry,
  tokenizer: Tokenizer,
): Promise<PriorModel> {
  return createComponent<PriorModel>(config, registry, "prior", contextFor(tokenizer));
}

/**
 * The decoder of a config (fresh weights).
 *
 * @example
 * ```ts
 * const decoder = await createDecoder(config, registry, tokenizer);
 * ```
 */
export function createDecoder(
  config: ResolvedConfig,
  registry: Registry,
  tokenizer: Tokenizer,
): Promise<Decoder> {
  return createComponent<Decoder>(config, registry, "decoder", contextFor(tokenizer));
}

/**
 * The config's sampler, or the named sampler plugin with default options.
 *
 * @example
 * ```ts
 * const sampler = await createSampler(config, registry, "ddim");
 * ```
 */
export async function createSampler(
  config: ResolvedConfig,
  registry: Registry,
  name?: string,
): Promise<Sampler> {
  if (name === undefined || name === config.components.sampler.plugin) {
    return await createComponent<Sampler>(config, registry, "sampler");
  }
  return await registry.use<Sampler>("sampler", name, {});
}

/**
 * The classifier-free-guidance "drop" rate of the decoder config (thesis Appendix A: 0.2): the
 * probability that a training sample's text and CLIP conditioning are replaced by the null one.
 *
 * @example
 * ```ts
 * decoderNullRate(config); // 0.2
 * ```
 */
export function decoderNullRate(config: ResolvedConfig): number {
  const r = config.components.decoder.options.nullRate;
  return typeof r === "number" ? r : 0.2;
}

/** Every component an end-to-end run needs, all with trained weights. */
export interface Components {
  config: ResolvedConfig;
  registry: Registry;
  tokenizer: Tokenizer;
  clip: ClipModel;
  prior: PriorModel;
  decoder: Decoder;
  priorSchedule: NoiseSchedule;
  decoderSchedule: NoiseSchedule;
  sampler: Sampler;
  /** Steps each model was trained for. */
  steps: Record<TrainStage, number>;
  /** Frees every model's GPU memory. */
  dispose(): void;
}

/**
 * Loads the plugin modules a stored config names (relative paths from the current directory)
 * and validates the config against the registry.
 *
 * @example
 * ```ts
 * const config = await revalidateStoredConfig(ckpt.meta.config, registry, ckpt.dir);
 * ```
 */
export async function revalidateStoredConfig(
  stored: unknown,
  registry: Registry,
  source: string,
): Promise<ResolvedConfig> {
  const plugins = (stored as { plugins?: unknown })?.plugins;
  if (Array.isArray(plugins)) {
    for (const spec of plugins) {
      if (typeof spec !== "string") continue;
      try {
        await loadPluginModule(registry, spec);
      } catch (e) {
        throw new CheckpointError(
          `Checkpoint "${source}" needs plugin module "${spec}": ${
            (e as Error).message.split("\n")[0]
          }`,
        );
      }
    }
  }
  // Checkpoints saved before CONFIG_NAME may carry any name; sampling never makes a folder of
  // it, so an old name is validated as a placeholder and kept rather than refusing the run.
  const name = (stored as { name?: unknown } | null)?.name;
  const oldName = typeof name === "string" && name !== "" && !CONFIG_NAME.test(name);
  try {
    // Not re-checked across components: a run trained before those checks must keep loading.
    const options = { crossChecks: false };
    if (!oldName) return validateConfig(stored, registry, source, options);
    const renamed = { ...(stored as object), name: "checkpoint" };
    const config = validateConfig(renamed, registry, source, options);
    return { ...config, name: name as string };
  } catch (e) {
    throw new CheckpointError(
      `Checkpoint "${source}" holds a config this version cannot use: ${
        (e as Error).message.split("\n")[0]
      }`,
    );
  }
}

/**
 * Loads the CLIP of a clip checkpoint with its tokenizer (weights on the GPU, eval mode).
 *
 * @example
 * ```ts
 * const { clip, tokenizer } = await loadClip(await loadCheckpoint("runs/tiny/clip", "clip"), config, registry);
 * ```
 */
export async function loadClip(
  ckpt: LoadedCheckpoint,
  config: ResolvedConfig,
  registry: Registry,
): Promise<{ clip: ClipModel; tokenizer: Tokenizer }> {
  let tokenizer: Tokenizer;
  try {
    tokenizer = await createTokenizer(config, registry, { state: ckpt.meta.tokenizer });
  } catch (e) {
    throw new CheckpointError(
      `Checkpoint "${ckpt.dir}" has an unusable tokenizer: ${(e as Error).message.split("\n")[0]}`,
    );
  }
  const clip = await createClip(config, registry, tokenizer);
  loadModuleWeights(clip, ckpt);
  clip.eval();
  return { clip, tokenizer };
}

/**
 * Loads a trained run folder (`<run>/clip`, `<run>/prior`, `<run>/decoder`, each through its
 * `latest` pointer). The config comes from the checkpoints, which must agree with each other;
 * the prior and decoder get their EMA weights when saved.
 *
 * @example
 * ```ts
 * const pipeline = await loadPipeline("runs/tiny", builtins());
 * ```
 */
export async function loadPipeline(
  runDir: string,
  registry: Registry,
  options: { sampler?: string; reader?: WeightReader } = {},
): Promise<Components> {
  const reader = options.reader ?? readerFor(runDir);
  // Folders can be asked about only on a file system; over HTTP a missing stage shows up as
  // the 404 of its "latest" file, named in the error.
  if (reader.list) {
    if (!(await reader.exists(runDir))) {
      throw new CheckpointError(`Checkpoint folder "${runDir}" does not exist; check --checkpoint`);
    }
    for (const stage of ["clip", "prior", "decoder"] as const) {
      if (!(await reader.exists(join(runDir, stage)))) {
        throw new CheckpointError(
          `Checkpoint folder "${runDir}" has no "${stage}" stage; train it with ` +
            `"deno task train ${stage} --config FILE --out ${runDir}"`,
        );
      }
    }
  }
  const clipCkpt = await loadCheckpoint(join(runDir, "clip"), "clip", reader);
  const priorCkpt = await loadCheckpoint(join(runDir, "prior"), "prior", reader);
  const decoderCkpt = await loadCheckpoint(join(runDir, "decoder"), "decoder", reader);
  const config = await revalidateStoredConfig(clipCkpt.meta.config, registry, clipCkpt.dir);
  const priorConfig = await revalidateStoredConfig(priorCkpt.meta.config, registry, priorCkpt.dir);
  const decoderConfig = await revalidateStoredConfig(
    decoderCkpt.meta.config,
    registry,
    decoderCkpt.dir,
  );
  assertConfigMatches(priorCkpt, config, CLIP_SLOTS);
  assertConfigMatches(decoderCkpt, config, CLIP_SLOTS);
  // The prior must sample embeddings of this very CLIP, and the decoder must have learnt them.
  assertSameClip([priorCkpt, decoderCkpt], clipCkpt, runDir);
  const tokJson = JSON.stringify(clipCkpt.meta.tokenizer);
  for (const c of [priorCkpt, decoderCkpt]) {
    if (JSON.stringify(c.meta.tokenizer) !== tokJson) {
      throw new CheckpointError(
        `Checkpoint "${c.dir}" was trained on another CLIP (its tokenizer differs from ` +
          `"${clipCkpt.dir}"); retrain it from this CLIP`,
      );
    }
  }
  const { clip, tokenizer } = await loadClip(clipCkpt, config, registry);
  const prior = await createPrior(priorConfig, registry, tokenizer);
  loadModuleWeights(prior, priorCkpt, { ema: true });
  prior.eval();
  const decoder = await createDecoder(decoderConfig, registry, tokenizer);
  loadModuleWeights(decoder, decoderCkpt, { ema: true });
  decoder.eval();
  const merged: ResolvedConfig = {
    ...config,
    components: {
      ...config.components,
      prior: priorConfig.components.prior,
      priorSchedule: priorConfig.components.priorSchedule,
      decoder: decoderConfig.components.decoder,
      decoderSchedule: decoderConfig.components.decoderSchedule,
      sampler: decoderConfig.components.sampler,
    },
    train: {
      clip: config.train.clip,
      prior: priorConfig.train.prior,
      decoder: decoderConfig.train.decoder,
    },
  };
  return {
    config: merged,
    registry,
    tokenizer,
    clip,
    prior,
    decoder,
    priorSchedule: await createComponent<NoiseSchedule>(merged, registry, "priorSchedule"),
    decoderSchedule: await createComponent<NoiseSchedule>(merged, registry, "decoderSchedule"),
    sampler: await createSampler(merged, registry, options.sampler),
    steps: { clip: clipCkpt.meta.step, prior: priorCkpt.meta.step, decoder: decoderCkpt.meta.step },
    dispose() {
      clip.dispose();
      prior.dispose();
      decoder.dispose();
    },
  };
}

/**
 * CLIP conditioning of tokens for the prior and decoder: the text encoding [B, T, W] and the
 * L2-normalised text embedding [B, E] (thesis 3.4.1).
 *
 * @example
 * ```ts
 * const cond = noGrad(() => clipConditioning(clip, tokens));
 * ```
 */
export function clipConditioning(clip: ClipModel, tokens: TokenBatch): ClipConditioning {
  const { embedding: e, sequence } = clip.encodeText(tokens);
  return { textSequence: sequence, textEmbedding: l2Normalize(e) };
}

/** CLIP embeddings of a whole image set, kept on the GPU (rows in dataset order). */
export interface ClipCache {
  /** [N, T, W] text encodings. */
  textSequence: Tensor;
  /** [N, E] L2-normalised text embeddings. */
  textEmbedding: Tensor;
  /** [N, E] L2-normalised image embeddings. */
  imageEmbedding: Tensor;
  /** Frees the three tensors. */
  dispose(): void;
}

/** Copies `src` (made contiguous) into `dst` at element offset `offset`. */
function copyRows(dst: Tensor, src: Tensor, offset: number): void {
  scope(() => {
    const c = clone(src);
    dst.copyFrom(c, offset);
  });
}

/**
 * Encodes every image and caption of `data` once with a frozen CLIP (eval mode, no gradients),
 * as the thesis does before training the prior: text sequence, text embedding and image
 * embedding per sample, held on the GPU. Images are not flipped.
 *
 * @example
 * ```ts
 * const cache = await buildClipCache(clip, tokenizer, train, 64);
 * ```
 */
export function buildClipCache(
  clip: ClipModel,
  tokenizer: Tokenizer,
  data: readonly CaptionedImage[],
  batchSize = 64,
): ClipCache {
  const N = data.length;
  if (N === 0) throw new Error("Cannot cache CLIP embeddings of an empty dataset");
  const { width: w, height: h } = data[0];
  const T = tokenizer.contextLength;
  clip.eval();
  let textSequence: Tensor | null = null;
  const E = clip.embedDim;
  const textEmbedding = zeros([N, E]).keep();
  const imageEmbedding = zeros([N, E]).keep();
  for (let start = 0; start < N; start += batchSize) {
    const b = Math.min(batchSize, N - start);
    const rows = data.slice(start, start + b);
    const images = new Float32Array(b * 3 * w * h);
    rows.forEach((r, k) => toNchw(r.image, w, h, images, k * 3 * w * h, false));
    noGrad(() =>
      scope(() => {
        const tokens = tokenBatch(tokenizer, rows.map((r) => r.caption));
        const cond = clipConditioning(clip, tokens);
        const img = l2Normalize(clip.encodeImages(tensor(images, [b, 3, h, w])));
        if (!textSequence) {
          const W = cond.textSequence.shape[2];
          textSequence = zeros([N, cond.textSequence.shape[1], W]).keep();
        }
        const W = textSequence.shape[2];
        copyRows(textSequence, cond.textSequence, start * T * W);
        copyRows(textEmbedding, cond.textEmbedding, start * E);
        copyRows(imageEmbedding, img, start * E);
      })
    );
  }
  const seq = textSequence as unknown as Tensor;
  return {
    textSequence: seq,
    textEmbedding,
    imageEmbedding,
    dispose() {
      seq.dispose();
      textEmbedding.dispose();
      imageEmbedding.dispose();
    },
  };
}

/**
 * Gathers rows of a `ClipCache` on the GPU: the prior's conditioning and target of a batch.
 *
 * @example
 * ```ts
 * const { cond, imageEmbedding } = gatherClipCache(cache, batch.indices);
 * ```
 */
export function gatherClipCache(
  cache: ClipCache,
  indices: readonly number[],
): { cond: ClipConditioning; imageEmbedding: Tensor } {
  const B = indices.length;
  const [N, T, W] = cache.textSequence.shape;
  const idx = tensor(Int32Array.from(indices), [B], "i32");
  const seq = embedding(idx, reshape(cache.textSequence, [N, T * W]));
  return {
    cond: {
      textSequence: reshape(seq, [B, T, W]),
      textEmbedding: embedding(idx, cache.textEmbedding),
    },
    imageEmbedding: embedding(idx, cache.imageEmbedding),
  };
}

/**
 * The most images one `textToImage` / `imageVariations` call (and `deno task sample --n`)
 * produces: larger batches exceed the GPU's workgroup limits (and take minutes with no output).
 */
export const MAX_IMAGES = 1024;

/** Options of `textToImage` and `imageVariations`. */
export interface GenerateImagesOptions {
  /** Images per caption (default 1). */
  n?: number;
  /** Classifier-free guidance scale s of the decoder (default 2; thesis best 2-2.5). */
  guidance?: number;
  /** Reverse-process steps of the decoder (respaced; default all). */
  steps?: number;
  /** Reverse-process steps of the prior (respaced; default all). */
  priorSteps?: number;
  /** Prior candidates per caption (Algorithm 5: 2). */
  candidates?: number;
  /** Seed of the GPU generator (default 0). */
  seed?: number;
  /** Called after each decoder step. */
  onStep?: (step: number, total: number) => void;
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
 * unseenWords(pipeline, ["a purple dragon"]); // e.g. ["dragon"]
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
  const g = options.guidance;
  if (g !== undefined && (typeof g !== "number" || !Number.isFinite(g) || g < 0)) {
    throw new RangeError(`Option "guidance" must be a finite number >= 0, got ${String(g)}`);
  }
  checkCount(options.steps, "steps", 1, Number.MAX_SAFE_INTEGER);
  checkCount(options.priorSteps, "priorSteps", 1, Number.MAX_SAFE_INTEGER);
  checkCount(options.candidates, "candidates", 1, MAX_IMAGES);
  const seed = options.seed;
  if (seed !== undefined && (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)) {
    throw new RangeError(`Option "seed" must be an integer from 0 to 4294967295, got ${seed}`);
  }
  return n;
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

function decodeImages(
  p: Components,
  tokens: TokenBatch,
  imageEmbedding: Tensor,
  options: GenerateImagesOptions,
): Tensor {
  const B = imageEmbedding.shape[0];
  const cond: DecoderConditioning = { tokens, imageEmbedding, keep: full([B], 1) };
  const scale = options.guidance ?? 2;
  // s = 1 is the conditional prediction alone: skip the unconditional half of the batch.
  const predict = scale === 1
    ? conditionalPredictor(p.decoder, cond)
    : guidedPredictor(p.decoder, cond, scale);
  const { imageSize: S, channels: C } = p.decoder;
  return p.sampler.sample(predict, [B, C, S, S], p.decoderSchedule, {
    steps: options.steps,
    onStep: options.onStep,
  });
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
  const stages: [TrainStage, Module][] = [["decoder", p.decoder], ["prior", p.prior], [
    "clip",
    p.clip,
  ]];
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
      `${options.guidance ?? 2}); try a guidance scale nearer 2 or more steps`,
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
 * const out = await textToImage(pipeline, ["a red circle"], { n: 4, guidance: 2 });
 * out.shape; // [4, 3, 32, 32]
 * ```
 */
export async function textToImage(
  p: Components,
  captions: readonly string[],
  options: GenerateImagesOptions = {},
): Promise<GeneratedImages> {
  checkCaptions(captions);
  const n = checkGenerateOptions(options, 1);
  if (captions.length * n > MAX_IMAGES) {
    throw new RangeError(
      `${captions.length} captions x n ${n} = ${captions.length * n} images, more than ` +
        `${MAX_IMAGES} per call; split the captions into several calls`,
    );
  }
  const rows = captions.flatMap((c) => Array.from({ length: n }, () => c));
  // Encode first so that a too-long caption fails before any GPU work.
  for (const c of captions) p.tokenizer.encode(c);
  manualSeed(options.seed ?? 0);
  const x = noGrad(() =>
    scope(() => {
      const tokens = tokenBatch(p.tokenizer, rows);
      const cond = clipConditioning(p.clip, tokens);
      const ps = options.priorSteps === undefined || options.priorSteps === p.priorSchedule.numSteps
        ? p.priorSchedule
        : p.priorSchedule.respace(options.priorSteps);
      const z = l2Normalize(p.prior.sample(cond, ps, { candidates: options.candidates ?? 2 }));
      return decodeImages(p, tokens, z, options);
    })
  );
  return await readImages(p, x, rows, options);
}

/**
 * Variations of an image (DALL-E 2 section 3.1): its CLIP image embedding is decoded `n` times.
 * The decoder's text input is `caption` (default empty).
 *
 * @example
 * ```ts
 * const out = await imageVariations(pipeline, nchwImage, { n: 4 });
 * ```
 */
export async function imageVariations(
  p: Components,
  image: Float32Array,
  options: GenerateImagesOptions & { caption?: string } = {},
): Promise<GeneratedImages> {
  const n = checkGenerateOptions(options, 4);
  const caption = options.caption ?? "";
  if (typeof caption !== "string") {
    throw new TypeError(`Option "caption" must be a string, got ${typeof caption}`);
  }
  p.tokenizer.encode(caption);
  const S = p.decoder.imageSize;
  if (image.length !== 3 * S * S) {
    throw new Error(`Input image has ${image.length / 3} pixels; the decoder expects ${S}x${S}`);
  }
  manualSeed(options.seed ?? 0);
  const rows = Array.from({ length: n }, () => caption);
  const x = noGrad(() =>
    scope(() => {
      const z = l2Normalize(p.clip.encodeImages(tensor(image, [1, 3, S, S])));
      const zs = concat(Array.from({ length: n }, () => z), 0);
      return decodeImages(p, tokenBatch(p.tokenizer, rows), zs, options);
    })
  );
  return await readImages(p, x, rows, options);
}
