/**
 * A second CLIP that only reranks: `<run>/reranker`, trained by the `reranker` stage
 * (`train.reranker`: the config's CLIP with its own training settings, e.g. grain on the images;
 * docs/tasks.md). When a run has one, `textToImage` keeps the candidate it matches best to the
 * caption instead of the one the pipeline's CLIP does; the prior and decoder still read the
 * pipeline's CLIP, whose embeddings they learnt. CLIP reranking as DALL-E does it (Ramesh et al.
 * 2021, section 2.5); a reranker trained on grained images judges generated images, which carry
 * grain, more as it judges real ones (docs/training.md, "A second CLIP to rerank the candidates").
 *
 * @module
 */
import { type ClipModel, l2Normalize, tokenBatch } from "../clip.ts";
import { clipConditioning } from "./clip_cache.ts";
import type { Tokenizer } from "../components.ts";
import type { ResolvedConfig } from "../config.ts";
import { upsampleToSize } from "../diffusion/augment.ts";
import { joinPath as join, type WeightReader } from "../io/mod.ts";
import { mul, sum, type Tensor } from "../tensor/mod.ts";
import {
  assertConfigMatches,
  CheckpointError,
  hasStage,
  type LoadedCheckpoint,
} from "../train/checkpoint.ts";

/** A run's reranking CLIP, ready to score candidates. */
export interface LoadedReranker {
  clip: ClipModel;
  /** Its own tokenizer (trained on the same captions as the pipeline's, stored with it). */
  tokenizer: Tokenizer;
  /** The side of the images it reads. */
  imageSize: number;
  /** Its checkpoint's step folder. */
  dir: string;
  /** Steps it was trained for. */
  step: number;
  /** Its training settings (`train.reranker` of its stored config). */
  train: NonNullable<ResolvedConfig["train"]["reranker"]>;
}

/** The side of the images a CLIP config's image encoder reads, when its options say it. */
function clipImageSize(config: ResolvedConfig): number | undefined {
  const s = config.components.imageEncoder.options.imageSize;
  return typeof s === "number" ? s : undefined;
}

/**
 * Loads `<run>/reranker` when the run has one (else undefined): a CLIP checkpoint of the run's
 * dataset whose image encoder reads the images the pipeline's CLIP reads (`side`: its image
 * encoder's `imageSize`, else the decoder's). `loadResolved` is
 * load.ts's `loadResolvedCheckpoint` and `loadClip` its `loadClip` (passed in to keep the import
 * one way).
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../config.ts";
 * import type { WeightReader } from "../io/mod.ts";
 * import type { Registry } from "../registry.ts";
 * import { loadClip, loadResolvedCheckpoint } from "./load.ts";
 * async function reranker(config: ResolvedConfig, registry: Registry, reader: WeightReader) {
 *   const load = (dir: string) => loadResolvedCheckpoint(dir, "reranker", registry, reader);
 *   return await loadReranker("runs/default", 32, config, reader, load, (ckpt) =>
 *     loadClip(ckpt, ckpt.meta.config, registry));
 * }
 * ```
 */
export async function loadReranker(
  runDir: string,
  side: number,
  config: ResolvedConfig,
  reader: WeightReader,
  loadResolved: (dir: string) => Promise<LoadedCheckpoint>,
  loadClip: (ckpt: LoadedCheckpoint) => Promise<{ clip: ClipModel; tokenizer: Tokenizer }>,
): Promise<LoadedReranker | undefined> {
  const dir = join(runDir, "reranker");
  if (!(await hasStage(reader, dir))) return undefined;
  const ckpt = await loadResolved(dir);
  const own = ckpt.meta.config;
  assertConfigMatches(ckpt, config, ["dataset"]);
  const train = own.train.reranker;
  if (!train) {
    throw new CheckpointError(`Checkpoint "${ckpt.dir}" holds a config without train.reranker`);
  }
  // A reranker whose encoder states no size reads what the run's CLIP reads.
  const reads = clipImageSize(own) ?? side;
  if (reads !== side) {
    throw new CheckpointError(
      `Checkpoint "${ckpt.dir}" reads ${reads}x${reads} images but the run's CLIP reads ` +
        `${side}x${side} ones; retrain the reranker on this run's config, or sample ` +
        `without it (--no-reranker)`,
    );
  }
  const { clip, tokenizer } = await loadClip(ckpt);
  return { clip, tokenizer, imageSize: reads, dir: ckpt.dir, step: ckpt.meta.step, train };
}

/**
 * Cosine similarity [B] of each image with its caption under the reranking CLIP: `captions[i]`
 * scores `images[i]` (NCHW in [-1, 1]; images smaller than it reads are enlarged as blocks).
 * Inside `noGrad` and a `scope`.
 *
 * @example
 * ```ts
 * import { noGrad, scope, type Tensor } from "../tensor/mod.ts";
 * function scores(r: LoadedReranker, images: Tensor, captions: string[]) {
 *   return noGrad(() => scope(() => rerankerScores(r, images, captions).read()));
 * }
 * ```
 */
export function rerankerScores(
  r: LoadedReranker,
  images: Tensor,
  captions: readonly string[],
): Tensor {
  const text = clipConditioning(r.clip, tokenBatch(r.tokenizer, captions)).textEmbedding;
  return imageTextScores(r.clip, r.imageSize, images, text);
}

/**
 * Cosine similarity [B] of each image's embedding under `clip` (which reads `side`x`side` images;
 * smaller ones, such as a cascade's decoder images drawn without the upsampler, are enlarged as
 * blocks) with its row of `textEmbedding` (L2-normalised [B, E]): the score CLIP reranking sorts
 * by. Inside `noGrad` and a `scope`.
 *
 * @example
 * ```ts
 * import type { ClipModel } from "../clip.ts";
 * import { noGrad, scope, type Tensor } from "../tensor/mod.ts";
 * function scores(clip: ClipModel, images: Tensor, text: Tensor) {
 *   return noGrad(() => scope(() => imageTextScores(clip, 32, images, text).read()));
 * }
 * ```
 */
export function imageTextScores(
  clip: ClipModel,
  side: number,
  images: Tensor,
  textEmbedding: Tensor,
): Tensor {
  const seen = images.shape[2] === side ? images : upsampleToSize(images, side);
  return sum(mul(l2Normalize(clip.encodeImages(seen)), textEmbedding), 1);
}
