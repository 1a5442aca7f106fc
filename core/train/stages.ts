/**
 * The training stages of unCLIP (thesis chapter 3) as step definitions for the loop in
 * `loop.ts`: CLIP (Algorithm 1, contrastive loss; also a second CLIP that only reranks the
 * decoder's candidates, for configs with `train.reranker`), the diffusion prior (Algorithm 4, on CLIP
 * embeddings cached once before training), the decoder (Algorithm 2, with conditioning dropped
 * at the null rate for classifier-free guidance) and, for configs with one, DALL-E 2's diffusion
 * upsampler (eps-MSE on the dataset's images given their own area-downsampled, augmented
 * low-resolution versions; Ramesh et al. 2022, Appendix C; Ho et al. 2021).
 *
 * @module
 */
import { dirname, join } from "node:path";
import type {
  CaptionedImage,
  Decoder,
  ImageTextDataset,
  NoiseSchedule,
  Tokenizer,
} from "../components.ts";
import { isClipStage, type ResolvedConfig, stageTrain, type TrainStage } from "../config.ts";
import type { Module } from "../nn/module.ts";
import type { Registry } from "../registry.ts";
import { bernoulli, manualSeed, noGrad, type Tensor, tensor } from "../tensor/mod.ts";
import { type Batch, checkImages, DataLoader } from "../data/loader.ts";
import { grainImages } from "../data/images.ts";
import { Rng } from "../data/rng.ts";
import { type ClipModel, l2Normalize, tokenBatch } from "../clip.ts";
import { decoderLoss, type DecoderLossOptions, upsamplerLoss } from "../diffusion/loss.ts";
import type { LogitNormal } from "../diffusion/timesteps.ts";

import { downsampleArea } from "../diffusion/augment.ts";
import { selfConditionedStep } from "../diffusion/self_condition.ts";
import {
  buildClipCache,
  CLIP_SLOTS,
  type ClipCache,
  createClip,
  createComponent,
  createDataset,
  createDecoder,
  createPrior,
  createTokenizer,
  createUpsampler,
  decoderDropRates,
  gatherClipCache,
  loadClip,
  loadResolvedCheckpoint,
  type PriorModel,
} from "../pipeline.ts";
import {
  assertConfigMatches,
  assertSameClip,
  CheckpointError,
  type ClipIdentity,
  clipIdentity,
  describeClip,
  type InitSource,
  type LoadedCheckpoint,
  loadModuleWeights,
  preferredWeights,
  sameClip,
} from "./checkpoint.ts";

/** A stage ready to train: the model, its data, and the loss of one step. */
export interface StageSetup {
  stage: TrainStage;
  /** What is trained and saved. */
  model: Module;
  /** The tokenizer (its vocabulary goes into every checkpoint; none for the upsampler). */
  tokenizer?: Tokenizer;
  /** The CLIP a prior or decoder trains with, recorded in its checkpoints (none for clip). */
  clip?: ClipIdentity;
  /** The checkpoint the weights started from (`train --init-from`), recorded in checkpoints. */
  initFrom?: InitSource;
  /**
   * Seeded batches: batch k is a pure function of (seed, k), k counted from the start of the
   * learning-rate cycle (core/train/cycles.ts: each warm restart starts again at batch 0).
   */
  loader: DataLoader;
  /**
   * The scalar loss of one batch. Called inside `scope`; must not read back. `step` is the
   * 0-based step index within the cycle, for host randomness derived from (seed, stage, step).
   */
  loss(batch: Batch, step: number): Tensor;
  /** Runs after each optimizer step (e.g. CLIP's logit-scale clamp). */
  afterStep?(): void;
  /** Lines describing the setup (parameter counts, cache). */
  summary: string[];
  /** Frees the model and any frozen helpers. */
  dispose(): void;
}

/** Inputs of `setupStage`. */
export interface StageSetupOptions {
  config: ResolvedConfig;
  registry: Registry;
  /** The run folder (`<out>`): the prior and decoder read `<out>/clip`. */
  outDir: string;
  /** The checkpoint being resumed, if any (its tokenizer is reused). */
  resumeFrom?: LoadedCheckpoint | null;
  /**
   * A checkpoint of the same stage (loaded as one, `loadCheckpoint(dir, stage)`) whose weights (its
   * EMA ones where it has them) replace the seeded initialisation of a run that is not resumed (`train --init-from`); a clip stage also
   * takes its tokenizer.
   */
  initFrom?: LoadedCheckpoint | null;
  /** The config file, for the retrain command in errors (default "FILE"). */
  configPath?: string;
  /** Progress messages. */
  log?: (line: string) => void;
}

/**
 * Upper bound on the images loaded for a stage's training split (all of them by default).
 * Exposed for tests that train on a few images.
 */
export interface StageDataLimit {
  trainLimit?: number;
}

/**
 * The loss options a decoder's or upsampler's plugin options carry (validated by its schema):
 * min-SNR-gamma weighting and logit-normal timesteps, each null when off.
 *
 * @example
 * ```ts
 * lossOptions({ minSnrGamma: 5 }); // { minSnrGamma: 5, logitNormal: null, multiscale: null }
 * ```
 */
export function lossOptions(
  options: Record<string, unknown> | undefined,
): Pick<DecoderLossOptions, "minSnrGamma" | "logitNormal" | "multiscale"> {
  const gamma = options?.minSnrGamma;
  const logitNormal = options?.logitNormalTimesteps as LogitNormal | null | undefined;
  return {
    minSnrGamma: typeof gamma === "number" ? gamma : null,
    logitNormal: logitNormal ?? null,
    multiscale: (options?.multiscaleLoss as number[] | null | undefined) ?? null,
  };
}

/**
 * The stage's batch loader over `data`: the stage's batch size and seed, with the data's name for
 * error messages about bad images.
 */
function stageLoader(
  data: CaptionedImage[],
  train: { batchSize: number; seed: number },
  dataName: string,
  imageSize: number,
  flip: boolean,
): DataLoader {
  return new DataLoader(data, {
    batchSize: train.batchSize,
    seed: train.seed,
    name: dataName,
    imageSize,
    flip,
  });
}

/**
 * The upsampler stage: no CLIP. Each batch's images at the dataset's size are the targets; their
 * area-downsampled versions at `lowResSize`, augmented at levels drawn uniformly from
 * [0, augmentMax], are the condition (the levels go to the network too).
 */
async function upsamplerStage(
  options: StageSetupOptions,
  data: CaptionedImage[],
  dataName: string,
  dataset: ImageTextDataset,
): Promise<StageSetup> {
  const { config, registry } = options;
  const train = stageTrain(config, "upsampler");
  const schedule = await createComponent<NoiseSchedule>(config, registry, "decoderSchedule");
  manualSeed(train.seed);
  const up = await createUpsampler(config, registry);
  if (up.imageSize !== dataset.imageSize) {
    up.dispose();
    throw new RangeError(
      `The upsampler's image size ${up.imageSize} is not the dataset's ${dataset.imageSize}`,
    );
  }
  const weighting = lossOptions(config.components.upsampler?.options);
  const loader = stageLoader(data, train, dataName, dataset.imageSize, dataset.flip);
  return {
    stage: "upsampler",
    model: up,
    loader,
    loss: (batch) => {
      return upsamplerLoss(up, tensor(batch.images, batch.shape), schedule, {
        ...weighting,
        prediction: up.prediction ?? "eps",
      });
    },
    summary: [
      `upsampler: ${count(up.parameterCount())} parameters, ${up.lowResSize} -> ` +
      `${up.imageSize}, augmentation ${up.augment} (levels 0 to ${up.augmentMax})`,
    ],
    dispose: () => up.dispose(),
  };
}

/**
 * The dataset's hard-negative maker when `train.<stage>.hardNegatives` asks for one (a CLIP
 * stage); a one-line error when the dataset plugin has none.
 */
function hardNegativeMaker(
  config: ResolvedConfig,
  stage: "clip" | "reranker",
  dataset: ImageTextDataset,
): ((caption: string) => string | null) | null {
  if (!stageTrain(config, stage).hardNegatives) return null;
  if (!dataset.hardNegative) {
    throw new Error(
      `train.${stage}.hardNegatives: dataset "${config.components.dataset.plugin}" cannot make ` +
        `hard-negative captions (it has no hardNegative); remove the option or use the shapes dataset`,
    );
  }
  return dataset.hardNegative.bind(dataset);
}

function count(n: number): string {
  return n.toLocaleString("en-US");
}

async function loadTrainedClip(
  o: StageSetupOptions,
): Promise<{ clip: ClipModel; tokenizer: Tokenizer; identity: ClipIdentity }> {
  const dir = join(o.outDir, "clip");
  let ckpt: LoadedCheckpoint;
  try {
    ckpt = await loadResolvedCheckpoint(dir, "clip", o.registry);
  } catch (e) {
    if (e instanceof CheckpointError && /does not exist|no "latest"/.test(e.message)) {
      // The run folder of the --init-from checkpoint (<run>/<stage>/step-N).
      const source = o.initFrom ? dirname(dirname(o.initFrom.dir)) : null;
      const copy = source
        ? `, or copy the CLIP of the --init-from run (cp -r ${join(source, "clip")} ${o.outDir}/)`
        : "";
      throw new CheckpointError(
        `No trained CLIP in "${dir}"; train it first: ` +
          `deno task train clip --config FILE --out ${o.outDir}${copy}`,
      );
    }
    throw e;
  }
  assertConfigMatches(ckpt, o.config, CLIP_SLOTS);
  // A prior or decoder resumes only on the CLIP it was trained with (also checked by the train
  // task before any work; here again because `train all` may have just trained CLIP further).
  if (o.resumeFrom) assertSameClip([o.resumeFrom], ckpt, o.outDir, o.configPath);
  const { clip, tokenizer } = await loadClip(ckpt, o.config, o.registry);
  if (
    o.resumeFrom &&
    JSON.stringify(o.resumeFrom.meta.tokenizer) !== JSON.stringify(ckpt.meta.tokenizer)
  ) {
    throw new CheckpointError(
      `Checkpoint "${o.resumeFrom.dir}" was trained on another CLIP than "${ckpt.dir}"; ` +
        `start it again without --resume, or use another --out`,
    );
  }
  return { clip, tokenizer, identity: clipIdentity(ckpt) };
}

/**
 * Builds a stage: loads data, the tokenizer (trained for the clip stage, from the clip
 * checkpoint otherwise), frozen helpers and the fresh model (initialised from the stage's seed).
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../config.ts";
 * import type { Registry } from "../registry.ts";
 * async function clip(config: ResolvedConfig, registry: Registry) {
 *   return await setupStage("clip", { config, registry, outDir: "runs/tiny" });
 * }
 * ```
 */
export async function setupStage(
  stage: TrainStage,
  options: StageSetupOptions & StageDataLimit,
): Promise<StageSetup> {
  const setup = await buildStage(stage, options);
  const resumed = options.resumeFrom?.meta.initFrom;
  if (resumed) return { ...setup, initFrom: resumed };
  const from = options.initFrom;
  if (!from) return setup;
  let fresh: string[];
  try {
    fresh = loadModuleWeights(setup.model, from, { ema: true, allowMissing: true });
  } catch (e) {
    setup.dispose();
    throw e;
  }
  const log = options.log ?? (() => {});
  const weights = preferredWeights(from) === "ema" ? "EMA weights" : "weights";
  log(
    `${stage}: starts from the ${weights} of ${from.dir} (its step ${from.meta.step}); ` +
      "optimizer, EMA, step count and learning-rate schedule start afresh",
  );
  // A module the config adds (e.g. the decoder's self-conditioning input) starts from its seed.
  if (fresh.length) {
    log(
      `${stage}: ${fresh.length} tensors are not in ${from.dir} and keep their seeded ` +
        `initialisation: ${fresh.slice(0, 4).join(", ")}${fresh.length > 4 ? ", ..." : ""}`,
    );
  }
  // A prior or decoder sees its new CLIP's embeddings from the first step; say when they are not
  // the ones it learnt on (the fine-tune then adapts it to them).
  const source = from.meta.clip;
  if (setup.clip && source && !sameClip(source, setup.clip)) {
    const [was, now] = [describeClip(source), describeClip(setup.clip)];
    log(
      `${stage}: note: ${from.dir} was trained with CLIP ${was}, this run's is ${now} (to keep ` +
        `that CLIP, copy its run's clip folder into --out and train only the ${stage})`,
    );
  }
  return { ...setup, initFrom: { dir: from.dir, step: from.meta.step } };
}

async function buildStage(
  stage: TrainStage,
  options: StageSetupOptions & StageDataLimit,
): Promise<StageSetup> {
  const { config, registry } = options;
  const log = options.log ?? (() => {});
  const train = stageTrain(config, stage);
  const dataset = await createDataset(config, registry);
  const data = await dataset.split("train", options.trainLimit);
  // Every image must be imageSize square and hold width x height x 3 bytes, checked before any
  // use (the prior encodes all images with CLIP before its loader exists).
  const dataName = `Dataset "${config.components.dataset.plugin}", train split`;
  checkImages(data, { name: dataName, imageSize: dataset.imageSize });
  log(
    `${stage}: ${count(data.length)} training images of ${dataset.imageSize}x${dataset.imageSize}`,
  );

  // The pipeline's CLIP, or the second one that only reranks (the same model and loss, its own
  // training settings: train.reranker over train.clip).
  if (isClipStage(stage)) {
    const hardNegative = hardNegativeMaker(config, stage, dataset);
    const tokenizer = await createTokenizer(
      config,
      registry,
      (options.resumeFrom ?? options.initFrom)
        ? { state: (options.resumeFrom ?? options.initFrom)!.meta.tokenizer }
        : { captions: data.map((d) => d.caption) },
    );
    manualSeed(train.seed);
    const clip = await createClip(config, registry, tokenizer);
    const loader = stageLoader(data, train, dataName, dataset.imageSize, dataset.flip);
    return {
      stage,
      model: clip,
      tokenizer,
      loader,
      // Thesis Algorithm 1: symmetric cross-entropy over scaled cosine similarities, with the
      // batch's hard-negative captions as further texts when the config asks for them.
      loss: (batch) => {
        const negatives = hardNegative
          ? batch.captions.map(hardNegative).filter((c): c is string => c !== null)
          : [];
        // Grain drawn afresh for each step from the seed and the step alone, so a resumed run
        // sees what an unbroken one would (the key names no stage: a reranker is the same CLIP
        // as a clip stage with its settings).
        let images = batch.images;
        if (train.grain > 0) {
          images = Float32Array.from(images);
          const rng = new Rng(`clip-grain-${train.seed}-${batch.step}`);
          grainImages(images, batch.shape[0], train.grain, rng);
        }
        return clip.loss(
          tensor(images, batch.shape),
          tokenBatch(tokenizer, batch.captions),
          negatives.length > 0 ? tokenBatch(tokenizer, negatives) : undefined,
        );
      },
      afterStep: () => clip.clampLogitScale(),
      summary: [
        `${stage}: ${count(clip.parameterCount())} parameters` +
        (stage === "reranker" ? ", a second CLIP that reranks the decoder's candidates" : "") +
        (hardNegative ? `; hard-negative captions (train.${stage}.hardNegatives)` : "") +
        (train.grain > 0 ? `; grain up to ${train.grain} (train.${stage}.grain)` : ""),
      ],
      dispose: () => clip.dispose(),
    };
  }

  if (stage === "upsampler") return await upsamplerStage(options, data, dataName, dataset);

  const { clip, tokenizer, identity } = await loadTrainedClip(options);
  log(`${stage}: using CLIP from step ${identity.step}`);

  if (stage === "prior") {
    const schedule = await createComponent<NoiseSchedule>(config, registry, "priorSchedule");
    // The thesis encodes the training set with the frozen CLIP once, before training the prior.
    const t0 = performance.now();
    let cache: ClipCache;
    try {
      cache = buildClipCache(clip, tokenizer, data, Math.min(256, train.batchSize));
    } finally {
      clip.dispose();
    }
    log(
      `prior: cached CLIP embeddings of ${count(data.length)} images in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s`,
    );
    manualSeed(train.seed);
    const prior: PriorModel = await createPrior(config, registry, tokenizer);
    // Cached embeddings belong to unflipped images, so the prior's batches are not flipped.
    const loader = stageLoader(data, train, dataName, dataset.imageSize, false);
    return {
      stage,
      model: prior,
      tokenizer,
      clip: identity,
      loader,
      // Thesis Algorithm 4: predict the clean image embedding from its noised version.
      loss: (batch) => {
        const { cond, imageEmbedding } = gatherClipCache(cache, batch.indices);
        return prior.loss(cond, imageEmbedding, schedule);
      },
      summary: [`prior: ${count(prior.parameterCount())} parameters`],
      dispose: () => {
        prior.dispose();
        cache.dispose();
      },
    };
  }

  const schedule = await createComponent<NoiseSchedule>(config, registry, "decoderSchedule");
  manualSeed(train.seed);
  const decoder: Decoder = await createDecoder(config, registry, tokenizer);
  // With an upsampler the decoder draws below the dataset's size: it learns the images
  // area-downsampled to its own size, while CLIP embeds them at full size (as when sampling).
  const S = decoder.imageSize;
  if (dataset.imageSize % S !== 0) {
    decoder.dispose();
    clip.dispose();
    throw new RangeError(
      `The decoder's image size ${S} does not divide the dataset's ${dataset.imageSize}`,
    );
  }
  if (S !== dataset.imageSize) {
    log(`decoder: trains at ${S}x${S} on the images area-downsampled from ${dataset.imageSize}`);
  }
  const drop = decoderDropRates(config);
  const weighting = lossOptions(config.components.decoder.options);
  const selfCondition = decoder.selfCondition ?? 0;
  const loader = stageLoader(data, train, dataName, dataset.imageSize, dataset.flip);
  clip.eval();
  return {
    stage,
    model: decoder,
    tokenizer,
    clip: identity,
    loader,
    // Thesis Algorithm 2 with classifier-free guidance training (section 3.3.3): text and CLIP
    // embedding are dropped together with probability nullRate (keep ~ Bernoulli(1 - nullRate));
    // DALL-E 2's recipe (Ramesh et al. 2022, section 2.1) also drops each alone.
    loss: (batch, step) => {
      const x0 = tensor(batch.images, batch.shape);
      const z = noGrad(() => l2Normalize(clip.encodeImages(x0)));
      const B = batch.shape[0];
      const cond = {
        tokens: tokenBatch(tokenizer, batch.captions),
        imageEmbedding: z,
        keep: bernoulli([B], 1 - drop.both),
        ...(drop.text > 0 ? { keepText: bernoulli([B], 1 - drop.text) } : {}),
        ...(drop.clip > 0 ? { keepClip: bernoulli([B], 1 - drop.clip) } : {}),
      };
      return decoderLoss(decoder, downsampleArea(x0, S), cond, schedule, {
        ...weighting,
        prediction: decoder.prediction ?? "eps",
        selfCondition: selfCondition > 0 && selfConditionedStep(train.seed, step, selfCondition),
      });
    },
    summary: [
      `decoder: ${count(decoder.parameterCount())} parameters (CLIP frozen)` +
      (selfCondition > 0 ? `, self-conditioned on ${selfCondition * 100}% of the steps` : ""),
    ],
    dispose: () => {
      decoder.dispose();
      clip.dispose();
    },
  };
}
