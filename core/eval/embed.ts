/**
 * CLIP-space helpers of the experiments (thesis chapter 4): L2-normalised CLIP image and text
 * embeddings read back to the host, decoding images from given image embeddings (the decoder
 * half of unCLIP, as `imageVariations` does for one image), spherical and linear interpolation,
 * principal components and nearest neighbours.
 *
 * @module
 */
import { type Components, decodeImages } from "../pipeline.ts";
import { type ClipModel, l2Normalize, tokenBatch } from "../clip.ts";
import type { Tokenizer } from "../components.ts";
import { manualSeed, noGrad, scope, tensor } from "../tensor/mod.ts";
import { meanCov, symmetricEigen } from "./linalg.ts";

/**
 * L2-normalised CLIP image embeddings of `count` NCHW images in [-1, 1], one row each (eval mode,
 * one readback per batch).
 *
 * @example
 * ```ts
 * import type { Components } from "../pipeline.ts";
 * import type { CaptionedImage } from "../components.ts";
 * import { imagesToNchw } from "../data/images.ts";
 * async function rows(p: Components, test: CaptionedImage[]) {
 *   return await imageEmbeddings(p.clip, imagesToNchw(test), test.length); // unit rows
 * }
 * ```
 */
export async function imageEmbeddings(
  clip: ClipModel,
  images: Float32Array,
  count: number,
  batchSize = 64,
): Promise<Float32Array[]> {
  const per = images.length / count;
  const S = Math.round(Math.sqrt(per / 3));
  if (!Number.isInteger(per) || 3 * S * S !== per) {
    throw new Error(`${images.length} values are not ${count} square RGB images`);
  }
  const E = clip.embedDim;
  const rows: Float32Array[] = [];
  const wasTraining = clip.training;
  clip.eval();
  try {
    for (let i = 0; i < count; i += batchSize) {
      const b = Math.min(batchSize, count - i);
      const z = noGrad(() =>
        scope(() =>
          l2Normalize(
            clip.encodeImages(tensor(images.subarray(i * per, (i + b) * per), [b, 3, S, S])),
          )
        )
      );
      const v = (await z.read()) as Float32Array;
      z.dispose();
      for (let k = 0; k < b; k++) rows.push(v.slice(k * E, (k + 1) * E));
    }
  } finally {
    clip.train(wasTraining);
  }
  return rows;
}

/**
 * L2-normalised CLIP text embeddings of captions, one row each.
 *
 * @example
 * ```ts
 * import type { Components } from "../pipeline.ts";
 * async function rows(p: Components) {
 *   return await textEmbeddings(p.clip, p.tokenizer, ["a red circle"]); // [Float32Array(E)]
 * }
 * ```
 */
export async function textEmbeddings(
  clip: ClipModel,
  tokenizer: Tokenizer,
  captions: readonly string[],
  batchSize = 64,
): Promise<Float32Array[]> {
  const E = clip.embedDim;
  const rows: Float32Array[] = [];
  const wasTraining = clip.training;
  clip.eval();
  try {
    for (let i = 0; i < captions.length; i += batchSize) {
      const caps = captions.slice(i, i + batchSize);
      const z = noGrad(() =>
        scope(() => l2Normalize(clip.encodeText(tokenBatch(tokenizer, caps)).embedding))
      );
      const v = (await z.read()) as Float32Array;
      z.dispose();
      for (let k = 0; k < caps.length; k++) rows.push(v.slice(k * E, (k + 1) * E));
    }
  } finally {
    clip.train(wasTraining);
  }
  return rows;
}

/** Options of `decodeEmbeddings`. */
export interface DecodeOptions {
  /** Classifier-free guidance scale (default 2). */
  guidance?: number;
  /** Decoder steps (respaced; default the sampler's). */
  steps?: number;
  /** Seed of the generator (default 0). */
  seed?: number;
  /** The decoder's text input for every image (default "", as in `imageVariations`). */
  caption?: string;
}

/**
 * Decodes one image per CLIP image embedding (rows are L2-normalised first) with the decoder and
 * classifier-free guidance, then the upsampler when the pipeline runs one: `imageVariations` for
 * given embeddings (DALL-E 2 section 3.1-3.2).
 * Returns NCHW float32 in [-1, 1]; non-finite values are an error.
 *
 * @example
 * ```ts
 * import type { Components } from "../pipeline.ts";
 * async function halfway(p: Components, a: Float32Array, b: Float32Array) {
 *   return await decodeEmbeddings(p, [slerp(a, b, 0.5)], { steps: 50 }); // NCHW of one image
 * }
 * ```
 */
export async function decodeEmbeddings(
  p: Components,
  embeddings: readonly ArrayLike<number>[],
  options: DecodeOptions = {},
): Promise<Float32Array> {
  const B = embeddings.length, E = p.clip.embedDim;
  if (B === 0) return new Float32Array(0);
  const flat = new Float32Array(B * E);
  embeddings.forEach((z, i) => {
    if (z.length !== E) throw new Error(`Embedding ${i} has ${z.length} values, CLIP has ${E}`);
    flat.set(z, i * E);
  });
  const caption = options.caption ?? "";
  manualSeed(options.seed ?? 0);
  const x = noGrad(() =>
    scope(() => {
      const tokens = tokenBatch(p.tokenizer, Array.from({ length: B }, () => caption));
      const imageEmbedding = l2Normalize(tensor(flat, [B, E]));
      return decodeImages(p, tokens, imageEmbedding, options);
    })
  );
  const data = (await x.read()) as Float32Array;
  x.dispose();
  if (!data.every(Number.isFinite)) {
    throw new Error("Decoding produced NaN or infinite values; check the decoder checkpoint");
  }
  return data;
}

/** The cosine of the angle between two vectors. */
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let j = 0; j < a.length; j++) {
    ab += a[j] * b[j];
    aa += a[j] * a[j];
    bb += b[j] * b[j];
  }
  return ab / Math.sqrt(aa * bb || 1);
}

/**
 * Spherical linear interpolation (Shoemake 1985) between the directions of `a` and `b`: unit
 * vectors along the great circle, t = 0 gives a / |a|, t = 1 gives b / |b| (DALL-E 2 section 3.2
 * interpolates CLIP image embeddings this way).
 *
 * @example
 * ```ts
 * slerp([1, 0], [0, 1], 0.5); // [0.7071, 0.7071]
 * ```
 */
export function slerp(a: ArrayLike<number>, b: ArrayLike<number>, t: number): Float64Array {
  const na = Math.hypot(...Array.from(a)), nb = Math.hypot(...Array.from(b));
  const theta = Math.acos(Math.min(1, Math.max(-1, cosine(a, b))));
  const out = new Float64Array(a.length);
  if (theta < 1e-8) {
    for (let j = 0; j < a.length; j++) out[j] = a[j] / na;
    return out;
  }
  const wa = Math.sin((1 - t) * theta) / Math.sin(theta),
    wb = Math.sin(t * theta) / Math.sin(theta);
  for (let j = 0; j < a.length; j++) out[j] = (wa * a[j]) / na + (wb * b[j]) / nb;
  return out;
}

/**
 * Linear interpolation (1 - t) a + t b (decoding renormalises it onto the sphere).
 *
 * @example
 * ```ts
 * lerp([1, 0], [0, 1], 0.5); // [0.5, 0.5]
 * ```
 */
export function lerp(a: ArrayLike<number>, b: ArrayLike<number>, t: number): Float64Array {
  return Float64Array.from({ length: a.length }, (_, j) => (1 - t) * a[j] + t * b[j]);
}

/** Principal components of a set of rows. */
export interface Pca {
  /** The mean row (subtracted before projecting). */
  mean: Float64Array;
  /** The first `k` components, unit vectors. */
  components: Float64Array[];
  /** Their variances (eigenvalues of the covariance). */
  variances: number[];
  /** Their share of the total variance. */
  explained: number[];
  /** Projects a row onto the components. */
  project(row: ArrayLike<number>): number[];
}

/**
 * PCA by the eigendecomposition of the sample covariance (Jacobi, float64): the `k` directions
 * of largest variance and the fraction of the total variance each explains.
 *
 * @example
 * ```ts
 * const p = pca([[0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 1, 1]], 2);
 * p.explained; // the share of variance along each of the 2 components
 * ```
 */
export function pca(rows: readonly ArrayLike<number>[], k = 2): Pca {
  const { mean, cov, d } = meanCov(rows);
  if (k > d) throw new RangeError(`PCA: ${k} components of ${d}-dimensional rows`);
  const { values, vectors } = symmetricEigen(cov, d);
  const total = values.reduce((s, v) => s + Math.max(v, 0), 0) || 1;
  const components = Array.from(
    { length: k },
    (_, c) => Float64Array.from({ length: d }, (_, j) => vectors[j * d + c]),
  );
  const variances = Array.from(values.slice(0, k));
  return {
    mean,
    components,
    variances,
    explained: variances.map((v) => Math.max(v, 0) / total),
    project: (row) => components.map((c) => c.reduce((s, cj, j) => s + cj * (row[j] - mean[j]), 0)),
  };
}

/**
 * The `k` rows of `pool` nearest to `query` by cosine distance 1 - cos, nearest first.
 *
 * @example
 * ```ts
 * nearest([0, 0], [[3, 4], [1, 0], [0, 2]], 2); // [{ index: 1, distance: 1 }, { index: 2, distance: 2 }]
 * ```
 */
export function nearest(
  query: ArrayLike<number>,
  pool: readonly ArrayLike<number>[],
  k: number,
): { index: number; distance: number }[] {
  const best: { index: number; distance: number }[] = [];
  pool.forEach((row, index) => {
    const distance = 1 - cosine(query, row);
    if (best.length < k || distance < best[best.length - 1].distance) {
      best.push({ index, distance });
      best.sort((x, y) => x.distance - y.distance);
      if (best.length > k) best.pop();
    }
  });
  return best;
}
