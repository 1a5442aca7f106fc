/**
 * Loading a trained run (`<run>/clip`, `<run>/prior`, `<run>/decoder`, `<run>/upsampler` when
 * the run has DALL-E 2's cascade, and `<run>/reranker` when it has a reranking CLIP) into
 * `Components`: the stored configs are revalidated against the registry, checked against each
 * other and against the CLIP each stage was trained with, and every model gets its trained
 * weights.
 *
 * @module
 */
import type { ClipModel } from "../clip.ts";
import type { Decoder, NoiseSchedule, Sampler, Tokenizer, Upsampler } from "../components.ts";
import {
  CONFIG_NAME,
  type CoreStage,
  loadPluginModule,
  type ResolvedConfig,
  type TrainStage,
  validateConfig,
} from "../config.ts";
import { joinPath as join, readerFor, type WeightReader } from "../io/mod.ts";
import type { Registry } from "../registry.ts";
import {
  assertConfigMatches,
  assertSameClip,
  CheckpointError,
  clipIdentity,
  describeClip,
  loadCheckpoint,
  type LoadedCheckpoint,
  loadModuleWeights,
  preferredWeights,
  sameClip,
} from "../train/checkpoint.ts";
import {
  CLIP_SLOTS,
  createClip,
  createComponent,
  createDecoder,
  createPrior,
  createSampler,
  createTokenizer,
  type PriorModel,
} from "./build.ts";
import { type LoadedReranker, loadReranker } from "./reranker.ts";
import { loadUpsampler } from "./upsample.ts";

/** How `loadPipeline` sets up sampling (all optional). */
export interface LoadPipelineOptions {
  /** Decoder sampler plugin (default the config's). */
  sampler?: string;
  /**
   * Options of the decoder's sampler, over the config's when it is the config's plugin (e.g.
   * `{ eta: 1 }` for DDIM); names the plugin does not have are an error.
   */
  samplerOptions?: Record<string, unknown>;
  /** Prior sampler plugin (default "ddpm": ancestral, thesis Algorithm 5). */
  priorSampler?: string;
  /** Prior sampling steps, respaced (default the sampler's, else the prior schedule's). */
  priorSteps?: number;
  /** Prior guidance scale (default 1; other values need a prior trained with text dropping). */
  priorGuidance?: number;
  /**
   * Prior samples per caption, the one with the largest dot product with the caption's CLIP text
   * embedding kept (default 2, as in DALL-E 2 section 2.2 and thesis Algorithm 5).
   */
  priorCandidates?: number;
  /** Where the weights come from (default: files, or HTTP for URLs). */
  reader?: WeightReader;
  /** Load `<run>/upsampler` when the run has one (default true); false leaves it out. */
  upsampler?: boolean;
  /**
   * Load `<run>/reranker`, the CLIP that reranks the decoder's candidates, when the run has one
   * (default true); false leaves it out, and the pipeline's CLIP reranks.
   */
  reranker?: boolean;
  /**
   * Load the decoder's raw weights instead of their exponential moving average (default false:
   * the EMA, what training keeps for sampling). Needs a checkpoint saved by `train`, which holds
   * both; an exported model has only the EMA.
   */
  rawDecoder?: boolean;
  /**
   * Another run's decoder that takes over the reverse process at the low-noise steps, as
   * eDiff-I's expert denoisers split the noise levels between networks (Balaji et al. 2022):
   * it predicts every step with t / T < `below`, the run's own decoder the steps above. `dir` is
   * a run folder with a decoder/ stage, or the stage folder itself; the decoder must have been
   * trained on the run's CLIP, with the same schedule, image size and prediction.
   */
  lateDecoder?: LateDecoderOption;
}

/** `LoadPipelineOptions.lateDecoder`: where the decoder is, and where it takes over. */
export interface LateDecoderOption {
  dir: string;
  /** The fraction t / T of the schedule below which it predicts, in (0, 1]. */
  below: number;
}

/**
 * Loads `LoadPipelineOptions.lateDecoder` (its EMA weights where it has them) and checks it
 * against the run's CLIP and decoder: the two decoders share one reverse process, so they must
 * read the same CLIP embeddings and tokens and agree on the schedule, image size and what they
 * predict.
 */
async function loadLateDecoder(
  option: LateDecoderOption,
  run: {
    clipCkpt: LoadedCheckpoint;
    decoderCkpt: LoadedCheckpoint;
    decoder: Decoder;
    tokenizer: Tokenizer;
  },
  registry: Registry,
  reader: WeightReader,
): Promise<NonNullable<Components["lateDecoder"]>> {
  const { dir, below } = option;
  if (!(below > 0 && below <= 1)) {
    throw new RangeError(`The late decoder's switch point must be in (0, 1] (got ${below})`);
  }
  const staged = join(dir, "decoder");
  const where = reader.list && !(await reader.exists(staged)) ? dir : staged;
  const ckpt = await loadResolvedCheckpoint(where, "decoder", registry, reader).catch((e) => {
    throw new CheckpointError(
      `Late decoder "${dir}" holds no decoder checkpoint (looked for ${staged} and ${dir} ` +
        `itself): ${(e as Error).message.split("\n")[0]}`,
    );
  });
  const clip = clipIdentity(run.clipCkpt);
  const problems: string[] = [];
  if (ckpt.meta.clip && !sameClip(ckpt.meta.clip, clip)) {
    problems.push(
      `it was trained with CLIP ${describeClip(ckpt.meta.clip)}, the run's CLIP is ` +
        describeClip(clip),
    );
  }
  if (JSON.stringify(ckpt.meta.tokenizer) !== JSON.stringify(run.clipCkpt.meta.tokenizer)) {
    problems.push("its tokenizer is not the run's CLIP's");
  }
  const schedule = (c: LoadedCheckpoint) =>
    JSON.stringify(c.meta.config.components.decoderSchedule);
  if (schedule(ckpt) !== schedule(run.decoderCkpt)) problems.push("its noise schedule differs");
  const decoder = await createDecoder(ckpt.meta.config, registry, run.tokenizer);
  const same = (k: "imageSize" | "channels") => decoder[k] === run.decoder[k];
  if (!same("imageSize") || !same("channels")) {
    problems.push(
      `it makes ${decoder.channels}x${decoder.imageSize}x${decoder.imageSize} images, the ` +
        `run's decoder ${run.decoder.channels}x${run.decoder.imageSize}x${run.decoder.imageSize}`,
    );
  }
  if ((decoder.prediction ?? "eps") !== (run.decoder.prediction ?? "eps")) {
    problems.push(`it predicts ${decoder.prediction ?? "eps"}, the run's decoder does not`);
  }
  if (problems.length > 0) {
    decoder.dispose();
    throw new CheckpointError(
      `Late decoder ${ckpt.dir} cannot share the run's reverse process: ${problems.join("; ")}`,
    );
  }
  try {
    loadModuleWeights(decoder, ckpt, { ema: preferredWeights(ckpt) === "ema" });
  } catch (e) {
    decoder.dispose();
    throw e;
  }
  decoder.eval();
  return { decoder, below, dir: ckpt.dir, step: ckpt.meta.step, config: ckpt.meta.config };
}

/**
 * The side of the images a run's CLIP reads: its image encoder's `imageSize`, else the decoder's.
 *
 * @example
 * ```ts
 * import type { Components } from "./load.ts";
 * function side(p: Components): number {
 *   return clipSide(p.config, p.decoder); // 32 for weights/default
 * }
 * ```
 */
export function clipSide(config: ResolvedConfig, decoder: Pick<Decoder, "imageSize">): number {
  const s = config.components.imageEncoder.options.imageSize;
  return typeof s === "number" ? s : decoder.imageSize;
}

/** The prior's sampler when none is asked for: ancestral DDPM (thesis Algorithm 5). */
export const DEFAULT_PRIOR_SAMPLER = "ddpm";

/**
 * The prior's sampler as `options` ask: the named plugin (default `DEFAULT_PRIOR_SAMPLER`)
 * with `priorSteps` as its `steps` option.
 *
 * @example
 * ```ts
 * import type { Registry } from "../registry.ts";
 * async function ddim(registry: Registry) {
 *   return await createPriorSampler(registry, { priorSampler: "ddim", priorSteps: 25 });
 * }
 * ```
 */
export async function createPriorSampler(
  registry: Registry,
  options: Pick<LoadPipelineOptions, "priorSampler" | "priorSteps">,
): Promise<Sampler> {
  const steps = options.priorSteps;
  return await registry.use<Sampler>(
    "sampler",
    options.priorSampler ?? DEFAULT_PRIOR_SAMPLER,
    steps === undefined ? {} : { steps },
  );
}

/**
 * The decoder weights to load, and what they are: the EMA where the checkpoint has one, unless
 * `raw` asks for the raw weights, which only a checkpoint with training state holds. An exported
 * checkpoint has no training state; its weights are what the export wrote (its `weights` label:
 * the EMA where the run kept one).
 */
function chooseDecoderWeights(ckpt: LoadedCheckpoint, raw: boolean): "ema" | "raw" {
  if (!ckpt.training && raw && ckpt.meta.exportedWeights !== "trained") {
    throw new CheckpointError(
      `Checkpoint "${ckpt.dir}" has only the EMA of the decoder's weights (an exported ` +
        `model); the raw weights are in the checkpoints of the run that trained it`,
    );
  }
  return raw && ckpt.training ? "raw" : preferredWeights(ckpt);
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
  /** The decoder's reverse process. */
  sampler: Sampler;
  /** The prior's reverse process (default ancestral DDPM over every step: Algorithm 5). */
  priorSampler: Sampler;
  /** Classifier-free guidance scale of the prior (1 = off, the thesis's choice). */
  priorGuidance: number;
  /** Prior samples per caption, the best by dot product with the text embedding kept (2). */
  priorCandidates: number;
  /**
   * DALL-E 2's diffusion upsampler, when the run has an `upsampler/` stage (and loading it was
   * not turned off): `textToImage` and `imageVariations` run it after the decoder.
   */
  upsampler?: Upsampler;
  /** The noise schedule the upsampler was trained with (present with `upsampler`). */
  upsamplerSchedule?: NoiseSchedule;
  /**
   * A second CLIP that chooses among the decoder's candidates (reranker.ts), when the run has a
   * `reranker/` stage (and loading it was not turned off); else the pipeline's CLIP reranks.
   */
  reranker?: LoadedReranker;
  /** Steps each model was trained for. */
  steps: Record<CoreStage, number> & { upsampler?: number; reranker?: number };
  /**
   * Which of the decoder's weights were loaded: the EMA, or the raw ones (asked for with
   * `rawDecoder`, or the only ones a checkpoint trained without an EMA has).
   */
  decoderWeights: "ema" | "raw";
  /**
   * The decoder that predicts the steps below t / T = `below` (`LoadPipelineOptions.lateDecoder`),
   * loaded from `dir` (its training step `step`, its stored `config`).
   */
  lateDecoder?: {
    decoder: Decoder;
    below: number;
    dir: string;
    step: number;
    config: ResolvedConfig;
  };
  /** Frees every model's GPU memory. */
  dispose(): void;
}

/**
 * Loads the plugin modules a stored config names (relative paths from the current directory)
 * and validates the config against the registry.
 *
 * @example
 * ```ts
 * import type { Registry } from "../registry.ts";
 * import type { LoadedCheckpoint } from "../train/checkpoint.ts";
 * async function configOf(ckpt: LoadedCheckpoint, registry: Registry) {
 *   return await revalidateStoredConfig(ckpt.meta.config, registry, ckpt.dir);
 * }
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
 * `loadCheckpoint` with its stored config resolved by `revalidateStoredConfig`: an option added
 * since the checkpoint was saved is absent from what it stored, and its default (which keeps the
 * old behaviour) is what it was trained with. Config checks (`assertConfigMatches`) then compare
 * resolved configs on both sides.
 *
 * @example
 * ```ts
 * import type { Registry } from "../registry.ts";
 * async function decoderOf(registry: Registry) {
 *   return await loadResolvedCheckpoint("runs/tiny/decoder", "decoder", registry);
 * }
 * ```
 */
export async function loadResolvedCheckpoint(
  dir: string,
  stage: TrainStage,
  registry: Registry,
  reader?: WeightReader,
): Promise<LoadedCheckpoint> {
  const ckpt = await loadCheckpoint(dir, stage, reader);
  const config = await revalidateStoredConfig(ckpt.meta.config, registry, ckpt.dir);
  return { ...ckpt, meta: { ...ckpt.meta, config } };
}

/**
 * Loads the CLIP of a clip checkpoint with its tokenizer (weights on the GPU, eval mode).
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../config.ts";
 * import type { Registry } from "../registry.ts";
 * import { loadCheckpoint } from "../train/checkpoint.ts";
 * async function clipOf(config: ResolvedConfig, registry: Registry) {
 *   const ckpt = await loadCheckpoint("runs/tiny/clip", "clip");
 *   const { clip, tokenizer } = await loadClip(ckpt, config, registry);
 *   return { clip, tokenizer };
 * }
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
  try {
    loadModuleWeights(clip, ckpt);
  } catch (e) {
    clip.dispose();
    throw e;
  }
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
 * import type { Registry } from "../registry.ts";
 * async function tiny(registry: Registry): Promise<Components> {
 *   return await loadPipeline("runs/tiny", registry); // e.g. builtins() from plugins/mod.ts
 * }
 * ```
 */
export async function loadPipeline(
  runDir: string,
  registry: Registry,
  options: LoadPipelineOptions = {},
): Promise<Components> {
  const candidates = options.priorCandidates;
  if (candidates !== undefined && !(Number.isInteger(candidates) && candidates >= 1)) {
    throw new RangeError(`Option "priorCandidates" must be a positive integer, got ${candidates}`);
  }
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
  const load = (stage: TrainStage) =>
    loadResolvedCheckpoint(join(runDir, stage), stage, registry, reader);
  const clipCkpt = await load("clip");
  const priorCkpt = await load("prior");
  const decoderCkpt = await load("decoder");
  const config = clipCkpt.meta.config;
  const priorConfig = priorCkpt.meta.config;
  const decoderConfig = decoderCkpt.meta.config;
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
  const decoderWeights = chooseDecoderWeights(decoderCkpt, options.rawDecoder === true);
  const decoder = await createDecoder(decoderConfig, registry, tokenizer);
  loadModuleWeights(decoder, decoderCkpt, { ema: decoderWeights === "ema" });
  decoder.eval();
  // The optional parts load after the models above: a failure frees everything loaded so far.
  const loaded: { dispose(): void }[] = [clip, prior, decoder];
  const orFree = <T>(part: Promise<T>): Promise<T> =>
    part.catch((e) => {
      for (const m of loaded) m.dispose();
      throw e;
    });
  const lateDecoder = options.lateDecoder &&
    await orFree(loadLateDecoder(
      options.lateDecoder,
      { clipCkpt, decoderCkpt, decoder, tokenizer },
      registry,
      reader,
    ));
  if (lateDecoder) loaded.push(lateDecoder.decoder);
  const loadResolved = (dir: string) => loadResolvedCheckpoint(dir, "upsampler", registry, reader);
  const up = options.upsampler === false
    ? undefined
    : await orFree(loadUpsampler(runDir, config, registry, reader, decoder, loadResolved));
  if (up) loaded.push(up.upsampler);
  const reranker = options.reranker === false ? undefined : await orFree(loadReranker(
    runDir,
    clipSide(config, decoder),
    config,
    reader,
    (dir) => loadResolvedCheckpoint(dir, "reranker", registry, reader),
    (ckpt) => loadClip(ckpt, ckpt.meta.config, registry),
  ));
  if (reranker) loaded.push(reranker.clip);
  const merged: ResolvedConfig = {
    ...config,
    components: {
      ...config.components,
      prior: priorConfig.components.prior,
      priorSchedule: priorConfig.components.priorSchedule,
      decoder: decoderConfig.components.decoder,
      decoderSchedule: decoderConfig.components.decoderSchedule,
      sampler: decoderConfig.components.sampler,
      ...(up && { upsampler: up.component }),
    },
    train: {
      clip: config.train.clip,
      prior: priorConfig.train.prior,
      decoder: decoderConfig.train.decoder,
      ...(up && { upsampler: up.train }),
      ...(reranker && { reranker: reranker.train }),
    },
    // Guidance belongs to the decoder: its checkpoint's config holds the model's default.
    sampling: decoderConfig.sampling,
  };
  const [priorSchedule, decoderSchedule, sampler, priorSampler] = await orFree(Promise.all([
    createComponent<NoiseSchedule>(merged, registry, "priorSchedule"),
    createComponent<NoiseSchedule>(merged, registry, "decoderSchedule"),
    createSampler(merged, registry, options.sampler, options.samplerOptions),
    createPriorSampler(registry, options),
  ]));
  return {
    config: merged,
    registry,
    tokenizer,
    clip,
    prior,
    decoder,
    priorSchedule,
    decoderSchedule,
    sampler,
    priorSampler,
    priorGuidance: options.priorGuidance ?? 1,
    priorCandidates: options.priorCandidates ?? 2,
    ...(up && { upsampler: up.upsampler, upsamplerSchedule: up.schedule }),
    ...(reranker && { reranker }),
    steps: {
      clip: clipCkpt.meta.step,
      prior: priorCkpt.meta.step,
      decoder: decoderCkpt.meta.step,
      ...(up && { upsampler: up.step }),
      ...(reranker && { reranker: reranker.step }),
    },
    decoderWeights,
    ...(lateDecoder && { lateDecoder }),
    dispose() {
      for (const m of loaded) m.dispose();
    },
  };
}
