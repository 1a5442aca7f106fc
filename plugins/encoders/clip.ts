/**
 * CLIP (Radford et al. 2021; thesis 2.2 and 3.2): a text tower and an image tower trained with
 * the symmetric contrastive loss of thesis Algorithm 1, a learnable logit scale, and the helpers
 * that turn captions into token batches, count parameters, and rank captions for an image.
 * and the evaluation of thesis Table 4.1.
 *
 * @module
 */
import { derangement } from "../../core/host_random.ts";
import type { ImageEncoder, TextEncoder, TokenBatch, Tokenizer } from "../../core/components.ts";
import { Module } from "../../core/nn/module.ts";
import { copyInto } from "../../core/optim/adam.ts";
import {
  add,
  affine,
  clamp,
  concat,
  crossEntropy,
  exp,
  matmul,
  mul,
  noGrad,
  rsqrt,
  scope,
  square,
  sum,
  type Tensor,
  tensor,
} from "../../core/tensor/mod.ts";

/** CLIP's initial temperature tau = 0.07 (Radford et al. 2021, section 2.5; thesis 3.2.3). */
export const INITIAL_TEMPERATURE = 0.07;

/** Upper bound of exp(logit scale): 100 (Radford et al. 2021, section 2.5). */
export const MAX_LOGIT_SCALE = 100;

/**
 * x / ||x||_2 along the last axis (eps inside the root keeps zero rows finite).
 *
 * @example
 * ```ts
 * const z = l2Normalize(embeddings); // [B, E], unit rows
 * ```
 */
export function l2Normalize(x: Tensor, eps = 1e-12): Tensor {
  return mul(x, rsqrt(add(sum(square(x), -1, true), eps)));
}

/**
 * The symmetric contrastive loss of thesis Algorithm 1 (Radford et al. 2021, Figure 3):
 * S = exp(s) * norm(I) norm(T)^T, loss = (CE(S, arange(B)) + CE(S^T, arange(B))) / 2, where CE
 * is the row-wise cross-entropy averaged over the batch. `logitScale` is s (the log of the
 * inverse temperature), a one-element tensor or a number.
 *
 * @example
 * ```ts
 * const loss = clipLoss(imageEmb, textEmb, model.logitScale); // scalar tensor
 * ```
 */
export function clipLoss(imageEmb: Tensor, textEmb: Tensor, logitScale: Tensor | number): Tensor {
  if (
    imageEmb.rank !== 2 || textEmb.rank !== 2 || imageEmb.shape[0] !== textEmb.shape[0] ||
    imageEmb.shape[1] !== textEmb.shape[1]
  ) {
    throw new Error(
      `clipLoss needs image and text embeddings of the same shape [B, E], got [${imageEmb.shape}] and [${textEmb.shape}].`,
    );
  }
  const B = imageEmb.shape[0];
  const i = l2Normalize(imageEmb), t = l2Normalize(textEmb);
  const scale = typeof logitScale === "number" ? Math.exp(logitScale) : exp(logitScale);
  // Algorithm 1, line 8: cosine similarities scaled by the learned inverse temperature.
  // Both directions come from a GEMM with a transpose flag, so S^T is never copied.
  const scaled = (a: Tensor, b: Tensor): Tensor => {
    const s = matmul(a, b, { transB: true });
    return typeof scale === "number" ? affine(s, scale, 0) : mul(s, scale);
  };
  const targets = Array.from({ length: B }, (_, k) => k);
  // Algorithm 1, lines 9-11: image-direction and text-direction cross-entropies, averaged.
  const lossImage = crossEntropy(scaled(i, t), targets);
  const lossText = crossEntropy(scaled(t, i), targets);
  return affine(add(lossImage, lossText), 0.5, 0);
}

/** Options of `ClipModel`. */
export interface ClipModelOptions {
  /** Initial temperature tau (default 0.07): the logit scale starts at log(1 / tau). */
  temperature?: number;
  /** Largest allowed exp(logit scale) (default 100). */
  maxLogitScale?: number;
}

/**
 * The CLIP model: both towers and the learnable logit scale s (exp(s) multiplies the cosine
 * similarities; Radford et al. 2021, section 2.5).
 *
 * The clamp exp(s) <= 100 is applied to the parameter in place by `clampLogitScale()`, which a
 * training loop calls after each optimizer step, as CLIP's reference code does. Clamping inside
 * the forward pass instead would zero the gradient at the bound and freeze s there for good.
 *
 * @example
 * ```ts
 * const clip = new ClipModel(textEncoder, imageEncoder);
 * scope(() => clip.loss(images, tokens).backward());
 * opt.step(); opt.zeroGrad(); clip.clampLogitScale();
 * ```
 */
export class ClipModel extends Module {
  /** The text tower. */
  readonly text: TextEncoder;
  /** The image tower. */
  readonly image: ImageEncoder;
  /** s, shape [1]: the log of the inverse temperature. */
  readonly logitScale: Tensor;
  /** Upper bound of exp(s). */
  readonly maxLogitScale: number;

  /** Combines two towers of the same embedding size. */
  constructor(text: TextEncoder, image: ImageEncoder, opts: ClipModelOptions = {}) {
    super();
    if (text.embedDim !== image.embedDim) {
      throw new Error(
        `Text embedding size ${text.embedDim} differs from image embedding size "${image.embedDim}".`,
      );
    }
    const tau = opts.temperature ?? INITIAL_TEMPERATURE;
    this.maxLogitScale = opts.maxLogitScale ?? MAX_LOGIT_SCALE;
    if (!(tau > 0) || !(this.maxLogitScale > 0)) {
      throw new Error(
        `Temperature "${tau}" and max logit scale "${this.maxLogitScale}" must be positive.`,
      );
    }
    this.text = this.addModule("text", text);
    this.image = this.addModule("image", image);
    // Thesis 3.2.3: tau initialised to 0.07, i.e. s = log(1 / 0.07) = 2.659.
    this.logitScale = this.addParameter("logitScale", tensor([Math.log(1 / tau)], [1]));
  }

  /** The CLIP embedding size. */
  get embedDim(): number {
    return this.text.embedDim;
  }

  /** Clamps s in place to [0, log(maxLogitScale)] (CLIP's code clamps to [0, log 100]). */
  clampLogitScale(): void {
    noGrad(() =>
      scope(() => {
        copyInto(
          this.logitScale,
          clamp(this.logitScale, 0, Math.log(this.maxLogitScale)),
          "logit scale",
        );
      })
    );
  }

  /** Unnormalised image embeddings [B, E]. */
  encodeImages(images: Tensor): Tensor {
    return this.image.encode(images);
  }

  /** Unnormalised text embeddings [B, E] and the text encoding [B, T, W]. */
  encodeText(tokens: TokenBatch): { embedding: Tensor; sequence: Tensor } {
    return this.text.encode(tokens);
  }

  /** The scalar contrastive loss of a batch of (image, caption) pairs (Algorithm 1). */
  loss(images: Tensor, tokens: TokenBatch): Tensor {
    return clipLoss(this.encodeImages(images), this.encodeText(tokens).embedding, this.logitScale);
  }

  /** Parameter counts per tower, as a few printable lines. */
  describeParameters(): string {
    return describeParameterCounts(this.parameterCounts());
  }

  /** Parameter counts: text tower, image tower, logit scale, total. */
  parameterCounts(): ClipParameterCounts {
    const text = this.text.parameterCount(), image = this.image.parameterCount();
    return { text, image, logitScale: this.logitScale.size, total: this.parameterCount() };
  }
}

/** Parameter counts of a `ClipModel`. */
export interface ClipParameterCounts {
  /** Text tower. */
  text: number;
  /** Image tower. */
  image: number;
  /** The logit scale (1). */
  logitScale: number;
  /** Everything. */
  total: number;
}

/**
 * Formats parameter counts, e.g. "text encoder   319,168".
 *
 * @example
 * ```ts
 * console.log(describeParameterCounts(clip.parameterCounts()));
 * ```
 */
export function describeParameterCounts(c: ClipParameterCounts): string {
  const fmt = (n: number): string => n.toLocaleString("en-US").padStart(11);
  return [
    `text encoder  ${fmt(c.text)}`,
    `image encoder ${fmt(c.image)}`,
    `logit scale   ${fmt(c.logitScale)}`,
    `total         ${fmt(c.total)} (${(c.total / 1e6).toFixed(2)}M; thesis Table 4.3: 4.3M)`,
  ].join("\n");
}

/**
 * Tokenizes captions into a GPU `TokenBatch` (ids i32 [B, T], end positions i32 [B]).
 *
 * @example
 * ```ts
 * const tokens = tokenBatch(tokenizer, ["a red circle", "a blue square"]);
 * ```
 */
export function tokenBatch(tokenizer: Tokenizer, captions: readonly string[]): TokenBatch {
  const ids = tokenizer.encodeBatch(captions);
  return tokenBatchFromIds(ids, tokenizer.endIndices(ids), captions.length);
}

/**
 * A `TokenBatch` from host ids (B rows, contiguous) and end positions.
 *
 * @example
 * ```ts
 * const ids = tokenizer.encodeBatch(captions);
 * const tokens = tokenBatchFromIds(ids, tokenizer.endIndices(ids), captions.length);
 * ```
 */
export function tokenBatchFromIds(ids: Int32Array, endIndex: Int32Array, rows: number): TokenBatch {
  if (rows < 1 || ids.length % rows !== 0 || endIndex.length !== rows) {
    throw new Error(
      `Token ids (${ids.length}) and end indices (${endIndex.length}) do not make ${rows} rows.`,
    );
  }
  return {
    ids: tensor(ids, [rows, ids.length / rows], "i32"),
    endIndex: tensor(endIndex, [rows], "i32"),
  };
}

/** One ranked candidate of `rankCaptions`. */
export interface RankedCaption {
  /** The candidate text. */
  caption: string;
  /** Cosine similarity between the image and caption embeddings. */
  score: number;
}

/**
 * Zero-shot classification (thesis 2.2.4, Radford et al. 2021 Figure 1): the candidate captions
 * sorted by cosine similarity with the image, best first. One GPU readback.
 *
 * @example
 * ```ts
 * const ranked = await rankCaptions(clip, tokenizer, image, ["a red circle", "a blue square"]);
 * ranked[0].caption; // the best match
 * ```
 */
export async function rankCaptions(
  model: ClipModel,
  tokenizer: Tokenizer,
  image: Float32Array,
  candidates: readonly string[],
): Promise<RankedCaption[]> {
  if (candidates.length === 0) return [];
  const side = Math.round(Math.sqrt(image.length / 3));
  if (side * side * 3 !== image.length) {
    throw new Error(`Image of ${image.length} values is not a square [3, H, W] image.`);
  }
  const wasTraining = model.training;
  model.eval();
  try {
    const scores = noGrad(() =>
      scope(() => {
        const img = l2Normalize(model.encodeImages(tensor(image, [1, 3, side, side])));
        const txt = l2Normalize(model.encodeText(tokenBatch(tokenizer, candidates)).embedding);
        return matmul(img, txt, { transB: true });
      })
    );
    const values = await scores.read() as Float32Array;
    scores.dispose();
    return candidates.map((caption, k) => ({ caption, score: values[k] }))
      .sort((a, b) => b.score - a.score);
  } finally {
    model.train(wasTraining);
  }
}

/** Thesis Table 4.1: CLIP on the held-out test set (accuracies as fractions). */
export const THESIS_TABLE_4_1: Readonly<ClipEvalResult> = Object.freeze({
  count: 2000,
  meanCosine: 0.852,
  meanRandomCosine: -0.016,
  top1: 0.8371,
  top5: 0.8432,
});

/** Images with their captions: a `datasets` `Batch` fits, and so does a whole split. */
export interface ClipEvalSet {
  /** NCHW float32 in [-1, 1], contiguous. */
  images: Float32Array;
  /** [N, 3, H, W]. */
  shape: readonly [number, number, number, number] | readonly number[];
  /** One caption per image. */
  captions: readonly string[];
}

/** Options of `evaluateClip`. */
export interface ClipEvalOptions {
  /** Images (and captions) encoded per forward pass (default 64). */
  batchSize?: number;
  /** Seed of the fixed derangement that pairs images with random captions (default 0). */
  seed?: number;
}

/** The four numbers of thesis Table 4.1, plus the number of test pairs. */
export interface ClipEvalResult {
  /** Number of (image, caption) pairs evaluated. */
  count: number;
  /** Mean cosine similarity of the true (image, caption) pairs. */
  meanCosine: number;
  /** Mean cosine similarity of images paired with another image's caption (a derangement). */
  meanRandomCosine: number;
  /** Fraction of images whose best-scoring caption among ALL test captions is the true text. */
  top1: number;
  /** Fraction of images whose true caption text is among the 5 best-scoring captions. */
  top5: number;
}

/**
 * Evaluates CLIP as thesis Table 4.1: mean cosine similarity of true pairs and of random pairs
 * (a seeded derangement), and top-1 / top-5 retrieval of the true caption among all test
 * captions. Embeddings are computed in batches under `noGrad`, one GPU readback per batch, in
 * eval mode (BatchNorm running statistics); the ranking runs on the host in float64.
 *
 * Duplicated captions: the test split repeats some captions verbatim (e.g. "a red circle"), whose
 * embeddings are then identical, so "the true caption" is ambiguous by index. A retrieved
 * caption counts as a hit when its text (lower-cased, whitespace collapsed) equals the true
 * caption's text. The thesis code does not say how it handled this; by index, ties between
 * identical texts would be broken arbitrarily. Note that the top 5 can hold several copies of
 * one wrong caption, which is why top-5 is barely above top-1 in the thesis as well.
 *
 * @example
 * ```ts
 * const test = new DataLoader(generateSplit({ split: "test" }), { batchSize: 2000 }).batch(0);
 * const r = await evaluateClip(clip, tokenizer, test);
 * console.log(r.top1, THESIS_TABLE_4_1.top1);
 * ```
 */
export async function evaluateClip(
  model: ClipModel,
  tokenizer: Tokenizer,
  sets: ClipEvalSet | readonly ClipEvalSet[],
  options: ClipEvalOptions = {},
): Promise<ClipEvalResult> {
  const list: readonly ClipEvalSet[] = Array.isArray(sets) ? sets : [sets as ClipEvalSet];
  const batchSize = options.batchSize ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`Evaluation batch size "${batchSize}" is not a positive integer.`);
  }
  const E = model.embedDim;
  const captions: string[] = [];
  const imageEmb: Float32Array[] = [];
  const textEmb: Float32Array[] = [];
  const wasTraining = model.training;
  model.eval();
  try {
    for (const set of list) {
      const [N, C, H, W] = set.shape;
      if (
        set.shape.length !== 4 || set.images.length !== N * C * H * W || set.captions.length !== N
      ) {
        throw new Error(
          `Evaluation set of shape [${set.shape}] has ${set.images.length} values and ${set.captions.length} captions.`,
        );
      }
      const per = C * H * W;
      for (let start = 0; start < N; start += batchSize) {
        const b = Math.min(batchSize, N - start);
        const caps = set.captions.slice(start, start + b);
        const both = noGrad(() =>
          scope(() => {
            const x = tensor(set.images.subarray(start * per, (start + b) * per), [b, C, H, W]);
            const img = l2Normalize(model.encodeImages(x));
            const txt = l2Normalize(model.encodeText(tokenBatch(tokenizer, caps)).embedding);
            return concat([img, txt], 0);
          })
        );
        const values = await both.read() as Float32Array;
        both.dispose();
        for (let k = 0; k < b; k++) {
          imageEmb.push(values.slice(k * E, (k + 1) * E));
          textEmb.push(values.slice((b + k) * E, (b + k + 1) * E));
        }
        captions.push(...caps);
      }
    }
  } finally {
    model.train(wasTraining);
  }
  return clipMetrics(imageEmb, textEmb, captions, options.seed ?? 0);
}

/**
 * Table 4.1 metrics from L2-normalised embeddings (host side, float64 sums); see `evaluateClip`.
 *
 * @example
 * ```ts
 * const r = clipMetrics([new Float32Array([1, 0])], [new Float32Array([1, 0])], ["a"], 0);
 * r.top1; // 1
 * ```
 */
export function clipMetrics(
  imageEmb: readonly Float32Array[],
  textEmb: readonly Float32Array[],
  captions: readonly string[],
  seed = 0,
): ClipEvalResult {
  const N = imageEmb.length;
  if (N === 0 || textEmb.length !== N || captions.length !== N) {
    throw new Error(
      `Need as many text embeddings and captions as images, got ${N}, ${textEmb.length}, ${captions.length}.`,
    );
  }
  const dot = (a: Float32Array, b: Float32Array): number => {
    let s = 0;
    for (let k = 0; k < a.length; k++) s += a[k] * b[k];
    return s;
  };
  const key = captions.map((c) => c.toLowerCase().replace(/\s+/g, " ").trim());
  const perm = N > 1 ? derangement(N, seed) : null;
  let cosine = 0, random = 0, top1 = 0, top5 = 0;
  const scores = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    cosine += dot(imageEmb[i], textEmb[i]);
    random += perm ? dot(imageEmb[i], textEmb[perm[i]]) : 0;
    for (let j = 0; j < N; j++) scores[j] = dot(imageEmb[i], textEmb[j]);
    const best = topK(scores, 5);
    if (best.length && key[best[0]] === key[i]) top1++;
    if (best.some((j) => key[j] === key[i])) top5++;
  }
  return {
    count: N,
    meanCosine: cosine / N,
    meanRandomCosine: random / N,
    top1: top1 / N,
    top5: top5 / N,
  };
}

/** Indices of the k largest scores, best first (ties: lower index first). */
function topK(scores: Float64Array, k: number): number[] {
  const best: number[] = [];
  for (let j = 0; j < scores.length; j++) {
    if (best.length === k && scores[j] <= scores[best[k - 1]]) continue;
    let p = Math.min(best.length, k - 1);
    if (best.length < k) best.push(j);
    while (p > 0 && scores[best[p - 1]] < scores[j]) {
      best[p] = best[p - 1];
      p--;
    }
    best[p] = j;
  }
  return best;
}
