/**
 * Building components from a resolved config through the plugin registry: one function per
 * slot, each handing the plugin the context it needs (the tokenizer and its sizes). The other
 * sizes components share (the CLIP embedding size and text width, the image side) reach each
 * plugin through its options, which validation filled from the component that states them
 * (core/config/sizes.ts).
 *
 * @module
 */
import { ClipModel } from "../clip.ts";
import type {
  CaptionedImage,
  ComponentKinds,
  DatasetSplit,
  Decoder,
  ImageEncoder,
  ImageTextDataset,
  Prior,
  Sampler,
  TextEncoder,
  Tokenizer,
  Upsampler,
} from "../components.ts";
import {
  COMPONENT_SLOTS,
  type ComponentSlot,
  type ResolvedConfig,
  type TrainStage,
} from "../config.ts";
import { checkImages } from "../data/loader.ts";
import type { Module } from "../nn/module.ts";
import type { PluginContextOf, Registry, SizeContext } from "../registry.ts";

/** The plugin kind a config slot takes (`priorSchedule` -> `schedule`). */
export type SlotKind<S extends ComponentSlot> = (typeof COMPONENT_SLOTS)[S];

/** A prior component (the interface plus the Module base every shipped prior has). */
export type PriorModel = Prior & Module;

/** Component slots each stage's checkpoint depends on (compared against the current config). */
export const STAGE_SLOTS: Readonly<Record<TrainStage, readonly ComponentSlot[]>> = {
  clip: ["tokenizer", "textEncoder", "imageEncoder", "dataset"],
  // The reranking CLIP: the config's CLIP, trained with train.reranker's settings.
  reranker: ["tokenizer", "textEncoder", "imageEncoder", "dataset"],
  prior: ["tokenizer", "textEncoder", "imageEncoder", "dataset", "prior", "priorSchedule"],
  decoder: ["tokenizer", "textEncoder", "imageEncoder", "dataset", "decoder", "decoderSchedule"],
  // The upsampler needs no CLIP: it learns the dataset's images from their own low-res versions.
  upsampler: ["dataset", "upsampler", "decoderSchedule"],
};

/** The CLIP slots (what the prior and decoder stages need from the clip checkpoint). */
export const CLIP_SLOTS: readonly ComponentSlot[] = STAGE_SLOTS.clip;

/** Context handed to a model plugin's `create`: the sizes it takes from the tokenizer. */
function contextFor(tokenizer?: Tokenizer): SizeContext {
  return tokenizer
    ? { tokenizer, vocabSize: tokenizer.vocabSize, contextLength: tokenizer.contextLength }
    : {};
}

/**
 * Creates the component in a config slot through the registry, typed as the component of the
 * slot's kind (or as a subtype named explicitly).
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../config.ts";
 * import type { Registry } from "../registry.ts";
 * async function schedule(config: ResolvedConfig, registry: Registry) {
 *   const schedule = await createComponent(config, registry, "decoderSchedule");
 *   return schedule.numSteps; // a NoiseSchedule
 * }
 * ```
 */
export async function createComponent<
  T extends ComponentKinds[SlotKind<S>],
  S extends ComponentSlot = ComponentSlot,
>(
  config: ResolvedConfig,
  registry: Registry,
  slot: S,
  context: PluginContextOf<SlotKind<S>> = {} as PluginContextOf<SlotKind<S>>,
): Promise<T> {
  const c = config.components[slot];
  if (!c) throw new Error(`Config "${config.name}" has no components.${slot}`);
  const kind: SlotKind<S> = COMPONENT_SLOTS[slot];
  return await registry.use<T, SlotKind<S>>(kind, c.plugin, c.options, context);
}

/**
 * The dataset of a config.
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../config.ts";
 * import type { Registry } from "../registry.ts";
 * async function train(config: ResolvedConfig, registry: Registry) {
 *   return await (await createDataset(config, registry)).split("train");
 * }
 * ```
 */
export function createDataset(
  config: ResolvedConfig,
  registry: Registry,
): Promise<ImageTextDataset> {
  return createComponent<ImageTextDataset>(config, registry, "dataset");
}

/**
 * The first `limit` images of a split of the run's dataset (all when undefined), each checked
 * for its byte length and size (a wrong one would be misread silently, as in training).
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../config.ts";
 * import type { Registry } from "../registry.ts";
 * async function test64(config: ResolvedConfig, registry: Registry) {
 *   return await loadCheckedSplit(config, registry, "test", 64);
 * }
 * ```
 */
export async function loadCheckedSplit(
  config: ResolvedConfig,
  registry: Registry,
  split: DatasetSplit,
  limit: number | undefined,
): Promise<CaptionedImage[]> {
  const dataset = await createDataset(config, registry);
  const data = await dataset.split(split, limit);
  checkImages(data, {
    name: `Dataset "${config.components.dataset.plugin}", ${split} split`,
    imageSize: dataset.imageSize,
  });
  return data;
}

/**
 * The tokenizer: restored from `state` (a checkpoint's vocabulary) or trained on `captions`.
 *
 * @example
 * ```ts
 * import type { CaptionedImage } from "../components.ts";
 * import type { ResolvedConfig } from "../config.ts";
 * import type { Registry } from "../registry.ts";
 * async function tokenizer(config: ResolvedConfig, registry: Registry, train: CaptionedImage[]) {
 *   return await createTokenizer(config, registry, { captions: train.map((s) => s.caption) });
 * }
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
 * import type { Tokenizer } from "../components.ts";
 * import type { ResolvedConfig } from "../config.ts";
 * import type { Registry } from "../registry.ts";
 * async function fresh(config: ResolvedConfig, registry: Registry, tokenizer: Tokenizer) {
 *   return await createClip(config, registry, tokenizer); // fresh weights
 * }
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
 * import type { Tokenizer } from "../components.ts";
 * import type { ResolvedConfig } from "../config.ts";
 * import type { Registry } from "../registry.ts";
 * async function fresh(config: ResolvedConfig, registry: Registry, tokenizer: Tokenizer) {
 *   return await createPrior(config, registry, tokenizer); // fresh weights
 * }
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
 * import type { Tokenizer } from "../components.ts";
 * import type { ResolvedConfig } from "../config.ts";
 * import type { Registry } from "../registry.ts";
 * async function fresh(config: ResolvedConfig, registry: Registry, tokenizer: Tokenizer) {
 *   return await createDecoder(config, registry, tokenizer); // fresh weights
 * }
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
 * The upsampler of a config (fresh weights); the config must have one.
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../config.ts";
 * import type { Registry } from "../registry.ts";
 * async function fresh(config: ResolvedConfig, registry: Registry) {
 *   return config.components.upsampler ? await createUpsampler(config, registry) : undefined;
 * }
 * ```
 */
export function createUpsampler(config: ResolvedConfig, registry: Registry): Promise<Upsampler> {
  return createComponent<Upsampler>(config, registry, "upsampler");
}

/**
 * The config's sampler, or the named sampler plugin with default options; `overrides` replace
 * options of either (a name the plugin does not have is an error, not silently dropped).
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../config.ts";
 * import type { Registry } from "../registry.ts";
 * async function ddim(config: ResolvedConfig, registry: Registry) {
 *   return await createSampler(config, registry, "ddim");
 * }
 * ```
 */
export async function createSampler(
  config: ResolvedConfig,
  registry: Registry,
  name?: string,
  overrides: Record<string, unknown> = {},
): Promise<Sampler> {
  const own = config.components.sampler;
  const plugin = name ?? own.plugin;
  const shape = (registry.lookup("sampler", plugin).options as { shape?: object }).shape;
  const unknown = shape ? Object.keys(overrides).filter((k) => !(k in shape)) : [];
  if (shape && unknown.length > 0) {
    throw new Error(
      `Sampler "${plugin}" has no option "${unknown[0]}"; its options are ` +
        Object.keys(shape).join(", "),
    );
  }
  const base = plugin === own.plugin ? own.options ?? {} : {};
  return await registry.use<Sampler>("sampler", plugin, { ...base, ...overrides });
}

/**
 * The classifier-free-guidance "drop" rate of the decoder config (thesis Appendix A: 0.2): the
 * probability that a training sample's text and CLIP conditioning are replaced by the null one.
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../config.ts";
 * function dropRate(config: ResolvedConfig): number {
 *   return decoderNullRate(config); // 0.2 in the thesis preset
 * }
 * ```
 */
export function decoderNullRate(config: ResolvedConfig): number {
  const r = config.components.decoder.options.nullRate;
  return typeof r === "number" ? r : 0.2;
}

/** The decoder's three classifier-free-guidance drop rates at training (`decoderDropRates`). */
export interface DecoderDropRates {
  /** Caption and CLIP embedding dropped together (`nullRate`; the thesis's 0.2). */
  both: number;
  /** Caption dropped alone (`textDropRate`; DALL-E 2's 0.5, Ramesh et al. 2022, section 2.1). */
  text: number;
  /** CLIP embedding dropped alone (`clipDropRate`; DALL-E 2's 0.1). */
  clip: number;
}

/**
 * The decoder config's drop rates; the three draws are independent, so a sample is fully
 * unconditional with probability 1 - (1 - both)(1 - text)(1 - clip). Options a decoder plugin
 * does not have count as the thesis's (0.2 together, nothing apart).
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../config.ts";
 * function captionKept(config: ResolvedConfig): number {
 *   const { both, text } = decoderDropRates(config);
 *   return (1 - both) * (1 - text); // 0.8 in the thesis preset
 * }
 * ```
 */
export function decoderDropRates(config: ResolvedConfig): DecoderDropRates {
  const options = config.components.decoder.options;
  const rate = (key: string): number => typeof options[key] === "number" ? options[key] : 0;
  return { both: decoderNullRate(config), text: rate("textDropRate"), clip: rate("clipDropRate") };
}
