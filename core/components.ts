/**
 * The interfaces each plugin kind implements (`ComponentKinds` maps each kind to its interface).
 * The pipeline, training and evaluation only talk to these, so any plugin of a kind can replace
 * the shipped one by editing the config.
 *
 * Shapes: B batch, T context length, W text width, E CLIP embedding size, C/H/W image.
 *
 * @module
 */
import type { Module } from "./nn/module.ts";
import type { Tensor } from "./tensor/mod.ts";
import type { NoiseSchedule } from "./diffusion/schedule.ts";

export type { NoiseSchedule };

/** The interface every tokenizer plugin provides. */
export interface Tokenizer {
  /** Size of the id space (ids are < vocabSize): the text encoder's embedding table size. */
  readonly vocabSize: number;
  /** Tokens per encoded row, start and end included. */
  readonly contextLength: number;
  /** Id of the padding token. */
  readonly padId: number;
  /** Id of the start token. */
  readonly startId: number;
  /** Id of the end token. */
  readonly endId: number;
  /** One padded row of `contextLength` ids. */
  encode(text: string): Int32Array;
  /** Rows of `contextLength` ids, contiguous. */
  encodeBatch(texts: readonly string[]): Int32Array;
  /** Text of a row of ids. */
  decode(ids: ArrayLike<number>): string;
  /** Position of the end token in each row. */
  endIndices(ids: Int32Array): Int32Array;
  /** JSON form to store in checkpoints. */
  toJSON(): unknown;
  /**
   * The words of `text` that the training captions never contained (the model learned nothing
   * about them), or undefined when the tokenizer does not know its training words.
   */
  unseenWords?(text: string): string[] | undefined;
}

/** A dataset split: training, held-out test, and zero-shot (colour-shape pairs unseen in training). */
export type DatasetSplit = "train" | "test" | "zeroshot";

/**
 * An RGB image with its caption and, for generated data, ground-truth labels whose type belongs
 * to the dataset (the shapes datasets use `FigureLabel`; core never reads them).
 */
export interface CaptionedImage<Label = unknown> {
  /** RGB bytes, row-major, height x width x 3. */
  image: Uint8Array;
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** The text caption. */
  caption: string;
  /** Per-figure ground truth; absent for user data. */
  labels?: Label[];
}

/** What a dataset plugin creates: captioned images by split, all of one size. */
export interface ImageTextDataset {
  /** Image side in pixels. */
  readonly imageSize: number;
  /** Whether training batches are flipped at random (captions fixed up). */
  readonly flip: boolean;
  /** The images of a split ("train", "test" or "zeroshot"), at most `limit` of them. */
  split(name: DatasetSplit, limit?: number): Promise<CaptionedImage[]>;
  /**
   * A caption with the same words as `caption` that is true of no image `caption` is true of (its
   * attributes bound to the wrong objects), or null where the dataset cannot make one: the hard
   * negatives of CLIP training with `train.clip.hardNegatives` (NegCLIP, Yuksekgonul et al. 2023).
   * Optional; a dataset without it cannot train with hard negatives.
   */
  hardNegative?(caption: string): string | null;
}

/**
 * A noise schedule (the "schedule" kind): a `NoiseSchedule` built from the plugin's betas. The
 * tables it derives are the diffusion maths every prior, decoder and sampler shares.
 */
export type Schedule = NoiseSchedule;

/** Token ids of a batch of captions, on the GPU. */
export interface TokenBatch {
  /** i32 [B, T]. */
  ids: Tensor;
  /** i32 [B]: position of the end token in each row. */
  endIndex: Tensor;
}

/** CLIP text tower: causal transformer over tokens (thesis 3.2). */
export interface TextEncoder extends Module {
  readonly embedDim: number;
  readonly width: number;
  /**
   * `embedding` [B, E] (the end-token feature projected, not normalised) and `sequence`
   * [B, T, W] (the final-LN output at every position: the "text encoding" the prior reads).
   */
  encode(tokens: TokenBatch): { embedding: Tensor; sequence: Tensor };
}

/** CLIP image tower (thesis 3.2: a small ResNet). */
export interface ImageEncoder extends Module {
  readonly embedDim: number;
  /** images [B, 3, H, W] in [-1, 1] -> [B, E] (not normalised). */
  encode(images: Tensor): Tensor;
}

/** CLIP conditioning of one batch, as the prior and decoder consume it. */
export interface ClipConditioning {
  /** [B, T, W] text encoding. */
  textSequence: Tensor;
  /** [B, E] L2-normalised text embedding. */
  textEmbedding: Tensor;
}

/**
 * Diffusion prior: p(z_i | y) over CLIP image embeddings (thesis 3.4). It trains itself
 * (`loss`, Algorithm 4) and is sampled by any sampler plugin through its `denoiser`
 * (Algorithm 5; `samplePrior` in core/diffusion/prior_sampling.ts runs the two together).
 */
export interface Prior extends Module {
  readonly embedDim: number;
  /** Training loss (Algorithm 4) for normalised image embeddings [B, E]. */
  loss(cond: ClipConditioning, imageEmbedding: Tensor, schedule: NoiseSchedule): Tensor;
  /**
   * The network as a sampler drives it for the captions of `cond`: what to sample (`shape`,
   * candidates included), the predictor with guidance applied, and how to turn the sampler's
   * result into one embedding per caption. Call in eval mode and under `noGrad`; dispose after.
   */
  denoiser(cond: ClipConditioning, options?: PriorSampleOptions): PriorDenoiser;
}

/** Options of `Prior.denoiser`. */
export interface PriorSampleOptions {
  /** Chains per caption; the one with the highest dot product with the text embedding wins. */
  candidates?: number;
  /** Classifier-free guidance scale (1 = off). */
  guidance?: number;
}

/** A prior prepared for one sampling run (see `Prior.denoiser`). */
export interface PriorDenoiser {
  /** The shape the sampler draws: [candidates * B, E]. */
  readonly shape: number[];
  /** What `predict` returns: the thesis prior predicts x_0 (Ramesh et al. 2022, section 2.2). */
  readonly prediction: PredictionType;
  /** Whether a sampler may clamp the x_0 estimate to [-1, 1] (false for embeddings). */
  readonly clipDenoised: boolean;
  /** The (guided) network output at x_t and an original timestep index. */
  readonly predict: NoisePredictor;
  /** The sampler's result [candidates * B, E] -> [B, E] (best candidate, unit scale). */
  finish(x: Tensor): Tensor;
  /** Frees the conditioning it holds. */
  dispose(): void;
}

/** Conditioning of the decoder for a batch. */
export interface DecoderConditioning {
  /** i32 [B, T] caption tokens (the decoder has its own text transformer). */
  tokens: TokenBatch;
  /** [B, E] CLIP image embedding. */
  imageEmbedding: Tensor;
  /** f32 [B]: 1 keeps the condition, 0 replaces text and embedding by the null condition. */
  keep: Tensor;
  /**
   * f32 [B], training only: 0 also replaces the caption alone by its null condition (DALL-E 2
   * drops the caption 50% of the time, Ramesh et al. 2022, section 2.1). Absent = 1.
   */
  keepText?: Tensor;
  /** f32 [B], training only: 0 also replaces the CLIP embedding alone (DALL-E 2: 10%). */
  keepClip?: Tensor;
}

/**
 * A decoder's conditioning already encoded (its text transformer and CLIP projection run), to be
 * reused by every step of one sample: the caption does not change between steps. Opaque to
 * samplers; only the decoder that made it reads it.
 */
export interface EncodedConditioning {
  readonly encoded: true;
  /** Rows (images) it conditions. */
  readonly batch: number;
}

/** The decoder: an epsilon-predicting network p(x | z_i, y) (thesis 3.3). */
export interface Decoder extends Module {
  readonly imageSize: number;
  readonly channels: number;
  /**
   * What `predictNoise` returns: the noise ("eps", the thesis's choice and the default when
   * absent) or the velocity ("v"). Training targets and samplers follow it.
   */
  readonly prediction?: Exclude<PredictionType, "x0">;
  /**
   * Self-conditioning (Chen et al. 2022; core/diffusion/self_condition.ts): above 0, it reads its
   * own previous x_0 estimate, which samplers feed it at each step, and this fraction of the
   * training steps runs the estimating pass first. Absent or 0: not self-conditioned.
   */
  readonly selfCondition?: number;
  /**
   * x_t [B, C, H, W], t f32 [B] (original timestep indices) -> predicted noise (or v, see
   * `prediction`). `cond` may be the result of `encodeConditioning` (sampling) or raw
   * conditioning (training). `estimate`, shaped like x_t, is the previous x_0 estimate a
   * self-conditioned decoder reads (absent: none yet, zeros); other decoders ignore it.
   */
  predictNoise(
    xt: Tensor,
    t: Tensor,
    cond: DecoderConditioning | EncodedConditioning,
    estimate?: Tensor,
  ): Tensor;
  /** Encodes the step-independent conditioning once per sample (optional). */
  encodeConditioning?(cond: DecoderConditioning): EncodedConditioning;
}

/**
 * How an upsampler's low-resolution conditioning image is corrupted (conditioning augmentation):
 * Gaussian noise of standard deviation `level` (Ho et al. 2021, "Cascaded Diffusion Models",
 * section 3.2), a Gaussian blur of sigma 2 x `level` low-resolution pixels (Ramesh et al. 2022,
 * Appendix C, first upsampler), or nothing. Applied by core (`augmentLowRes` in
 * core/diffusion/augment.ts), so every upsampler plugin gets the same maths.
 */
export type AugmentKind = "noise" | "blur" | "none";

/** What an upsampler is conditioned on (no text or CLIP: DALL-E 2's upsamplers have none). */
export interface UpsamplerConditioning {
  /** [B, C, lowResSize, lowResSize], in [-1, 1], already augmented. */
  lowRes: Tensor;
  /** f32 [B]: the augmentation level applied to `lowRes`, in [0, 1] (the network sees it). */
  level: Tensor;
}

/**
 * A diffusion upsampler (DALL-E 2's cascade, Ramesh et al. 2022, section 2.1 / Appendix C; SR3,
 * Saharia et al. 2021): an epsilon-predicting network p(x | low-res x) at `imageSize`, conditioned
 * on the image at `lowResSize`. Trains with `decoderLoss` like a decoder; sampled by any sampler.
 */
export interface Upsampler extends Module {
  /** Side of the conditioning image (the decoder's output). */
  readonly lowResSize: number;
  /** Side of the output image. */
  readonly imageSize: number;
  readonly channels: number;
  /** The conditioning augmentation it trains with. */
  readonly augment: AugmentKind;
  /** Training levels are drawn uniformly from [0, augmentMax]. */
  readonly augmentMax: number;
  /** The fixed level used when sampling (a small one; Ho et al. 2021, section 4.2). */
  readonly sampleAugment: number;
  /** What `predictNoise` returns: "eps" (the default when absent) or the velocity "v". */
  readonly prediction?: Exclude<PredictionType, "x0">;
  /** x_t [B, C, imageSize, imageSize], t f32 [B] (original timestep indices) -> noise (or v). */
  predictNoise(xt: Tensor, t: Tensor, cond: UpsamplerConditioning): Tensor;
}

/**
 * What a denoising network outputs (diffusers' `prediction_type`): the noise eps (the decoder,
 * thesis Algorithm 3), the clean sample x_0 (the prior, Algorithm 5), or the velocity v =
 * sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022, "Progressive Distillation",
 * section 4), a decoder option.
 */
export type PredictionType = "eps" | "x0" | "v";

/**
 * The network's output for x_t at one timestep index of the original schedule: the noise, or
 * x_0 when the sampler is run with `prediction: "x0"`.
 */
export type NoisePredictor = (xt: Tensor, timestep: number) => Tensor;

/** A reverse-process sampler (DDPM, DDIM, ...). */
export interface Sampler {
  readonly name: string;
  /**
   * Runs the reverse process from pure noise of `shape` to x_0, calling `predict` once per step.
   * `schedule` is the training schedule; samplers respace it as their options ask.
   */
  sample(
    predict: NoisePredictor,
    shape: number[],
    schedule: NoiseSchedule,
    options?: SamplerRunOptions,
  ): Tensor;
}

/** Per-call sampler options. */
export interface SamplerRunOptions {
  /** Number of steps (respaced), default: all of the schedule's. */
  steps?: number;
  /** Clamp predicted x_0 to [-1, 1]. */
  clipDenoised?: boolean;
  /** What the predictor returns (default "eps"). */
  prediction?: PredictionType;
  /** Called after each step (progress). */
  onStep?: (step: number, total: number) => void;
}

/**
 * The component each plugin kind creates: what `Registry.use(kind, ...)` returns and what a
 * `definePlugin({ kind, create })` must build.
 */
export interface ComponentKinds {
  tokenizer: Tokenizer;
  textEncoder: TextEncoder;
  imageEncoder: ImageEncoder;
  prior: Prior;
  decoder: Decoder;
  upsampler: Upsampler;
  schedule: Schedule;
  sampler: Sampler;
  dataset: ImageTextDataset;
}
