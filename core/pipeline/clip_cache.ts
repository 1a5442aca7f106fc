/**
 * CLIP conditioning of a batch, and the cache of CLIP embeddings of a whole image set that the
 * prior trains on (the thesis encodes the dataset once with the frozen CLIP before training the
 * prior).
 *
 * @module
 */
import { type ClipModel, l2Normalize, tokenBatch } from "../clip.ts";
import type { CaptionedImage, ClipConditioning, TokenBatch, Tokenizer } from "../components.ts";
import { toNchw } from "../data/images.ts";
import {
  clone,
  embedding,
  noGrad,
  reshape,
  scope,
  type Tensor,
  tensor,
  zeros,
} from "../tensor/mod.ts";

/**
 * CLIP conditioning of tokens for the prior and decoder: the text encoding [B, T, W] and the
 * L2-normalised text embedding [B, E] (thesis 3.4.1).
 *
 * @example
 * ```ts
 * import type { ClipModel } from "../clip.ts";
 * import type { TokenBatch } from "../components.ts";
 * import { noGrad } from "../tensor/mod.ts";
 * function condition(clip: ClipModel, tokens: TokenBatch) {
 *   return noGrad(() => clipConditioning(clip, tokens));
 * }
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
 * import type { ClipModel } from "../clip.ts";
 * import type { CaptionedImage, Tokenizer } from "../components.ts";
 * function cache(clip: ClipModel, tokenizer: Tokenizer, train: CaptionedImage[]): ClipCache {
 *   return buildClipCache(clip, tokenizer, train, 64);
 * }
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
 * function batchOf(cache: ClipCache, indices: number[]) {
 *   const { cond, imageEmbedding } = gatherClipCache(cache, indices);
 *   return { cond, imageEmbedding }; // the prior's conditioning and target
 * }
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
