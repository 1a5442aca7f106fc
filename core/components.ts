/**
 * The interfaces each plugin kind implements. Tasks (train, sample, eval) only talk to these,
 * so any plugin of a kind can replace the shipped one by editing the config.
 *
 * Shapes: B batch, T context length, W text width, E CLIP embedding size, C/H/W image.
 */
import type { Module } from "./nn/module.ts";
import type { Tensor } from "./tensor/mod.ts";
import type { NoiseSchedule } from "../plugins/schedules/mod.ts";

export type { Tokenizer } from "../plugins/tokenizers/bpe.ts";

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

/** Diffusion prior: p(z_i | y) over CLIP image embeddings (thesis 3.4). */
export interface Prior extends Module {
  readonly embedDim: number;
  /** Training loss (Algorithm 4) for normalised image embeddings [B, E]. */
  loss(cond: ClipConditioning, imageEmbedding: Tensor, schedule: NoiseSchedule): Tensor;
  /** Samples [B, E] image embeddings (Algorithm 5). */
  sample(cond: ClipConditioning, schedule: NoiseSchedule, options: PriorSampleOptions): Tensor;
}

/** Options of `Prior.sample`. */
export interface PriorSampleOptions {
  /** Chains per caption; the one with the highest dot product with the text embedding wins. */
  candidates?: number;
  /** Classifier-free guidance scale (1 = off). */
  guidance?: number;
}

/** Conditioning of the decoder for a batch. */
export interface DecoderConditioning {
  /** i32 [B, T] caption tokens (the decoder has its own text transformer). */
  tokens: TokenBatch;
  /** [B, E] CLIP image embedding. */
  imageEmbedding: Tensor;
  /** f32 [B]: 1 keeps the condition, 0 replaces text and embedding by the null condition. */
  keep: Tensor;
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
   * x_t [B, C, H, W], t f32 [B] (original timestep indices) -> predicted noise. `cond` may be
   * the result of `encodeConditioning` (sampling) or raw conditioning (training).
   */
  predictNoise(xt: Tensor, t: Tensor, cond: DecoderConditioning | EncodedConditioning): Tensor;
  /** Encodes the step-independent conditioning once per sample (optional). */
  encodeConditioning?(cond: DecoderConditioning): EncodedConditioning;
}

/** Predicts noise for x_t at one timestep index (of the original schedule). */
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
  /** Called after each step (progress). */
  onStep?: (step: number, total: number) => void;
}
