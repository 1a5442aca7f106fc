/**
 * CLIP (Radford et al. 2021; thesis 2.2 and 3.2): a text tower and an image tower trained with
 * the symmetric contrastive loss of thesis Algorithm 1, a learnable logit scale, and the helpers
 * that turn captions into token batches and count parameters. The towers are plugins (kinds
 * `textEncoder` and `imageEncoder`); this model only combines them, so any pair of encoder plugins
 * of one embedding size makes a CLIP. Its evaluation (thesis Table 4.1) is in core/eval/clip.ts.
 *
 * @module
 */
import type { ImageEncoder, TextEncoder, TokenBatch, Tokenizer } from "./components.ts";
import { Module } from "./nn/module.ts";
import { copyInto } from "./optim/adam.ts";
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
} from "./tensor/mod.ts";

/** CLIP's initial temperature tau = 0.07 (Radford et al. 2021, section 2.5; thesis 3.2.3). */
export const INITIAL_TEMPERATURE = 0.07;

/** Upper bound of exp(logit scale): 100 (Radford et al. 2021, section 2.5). */
export const MAX_LOGIT_SCALE = 100;

/**
 * x / ||x||_2 along the last axis (eps inside the root keeps zero rows finite).
 *
 * @example
 * ```ts
 * import type { Tensor } from "./tensor/mod.ts";
 * function unitRows(embeddings: Tensor): Tensor {
 *   return l2Normalize(embeddings); // [B, E], unit rows
 * }
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
 * `hardNegatives` [H, E], when given, are the embeddings of H captions true of no image in the
 * batch (a caption with its figures' colours swapped, say): they join the texts each image is
 * scored against, so the image direction is a softmax over B + H texts, while the text direction
 * keeps the B true captions (a hard negative has no image to find). This is NegCLIP's objective
 * (Yuksekgonul et al. 2023, section 4), which teaches CLIP which attribute goes with which object
 * instead of a bag of words.
 *
 * @example
 * ```ts
 * import type { Tensor } from "./tensor/mod.ts";
 * function loss(model: ClipModel, imageEmb: Tensor, textEmb: Tensor): Tensor {
 *   return clipLoss(imageEmb, textEmb, model.logitScale); // scalar tensor
 * }
 * ```
 */
export function clipLoss(
  imageEmb: Tensor,
  textEmb: Tensor,
  logitScale: Tensor | number,
  hardNegatives?: Tensor,
): Tensor {
  if (
    imageEmb.rank !== 2 || textEmb.rank !== 2 || imageEmb.shape[0] !== textEmb.shape[0] ||
    imageEmb.shape[1] !== textEmb.shape[1]
  ) {
    throw new Error(
      `clipLoss needs image and text embeddings of the same shape [B, E], got [${imageEmb.shape}] and [${textEmb.shape}].`,
    );
  }
  if (hardNegatives && (hardNegatives.rank !== 2 || hardNegatives.shape[1] !== textEmb.shape[1])) {
    throw new Error(
      `clipLoss needs hard negatives of shape [H, ${
        textEmb.shape[1]
      }], got [${hardNegatives.shape}].`,
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
  // With hard negatives the image direction also scores each image against them (columns B..).
  const texts = hardNegatives ? concat([t, l2Normalize(hardNegatives)], 0) : t;
  const lossImage = crossEntropy(scaled(i, texts), targets);
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
 * import type { ImageEncoder, TextEncoder, TokenBatch } from "./components.ts";
 * import { Adam } from "./optim/adam.ts";
 * import { scope, type Tensor } from "./tensor/mod.ts";
 * function trainStep(text: TextEncoder, image: ImageEncoder, images: Tensor, tokens: TokenBatch) {
 *   const clip = new ClipModel(text, image);
 *   const opt = new Adam(clip.parameters(), { lr: 3e-4 });
 *   scope(() => clip.loss(images, tokens).backward());
 *   opt.step();
 *   opt.zeroGrad();
 *   clip.clampLogitScale();
 * }
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

  /**
   * The scalar contrastive loss of a batch of (image, caption) pairs (Algorithm 1), with the
   * captions of `hardNegatives` (true of no image in the batch) as further texts for the images
   * to tell apart from their own (see `clipLoss`).
   */
  loss(images: Tensor, tokens: TokenBatch, hardNegatives?: TokenBatch): Tensor {
    const negatives = hardNegatives ? this.encodeText(hardNegatives).embedding : undefined;
    return clipLoss(
      this.encodeImages(images),
      this.encodeText(tokens).embedding,
      this.logitScale,
      negatives,
    );
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
 * const text = describeParameterCounts({ text: 319168, image: 1000, logitScale: 1, total: 320169 });
 * text.split("\n")[0]; // "text encoder      319,168"
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
 * import type { TokenBatch, Tokenizer } from "./components.ts";
 * function tokens(tokenizer: Tokenizer): TokenBatch {
 *   return tokenBatch(tokenizer, ["a red circle", "a blue square"]); // ids i32 [2, T]
 * }
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
 * import type { TokenBatch, Tokenizer } from "./components.ts";
 * function tokens(tokenizer: Tokenizer, captions: string[]): TokenBatch {
 *   const ids = tokenizer.encodeBatch(captions);
 *   return tokenBatchFromIds(ids, tokenizer.endIndices(ids), captions.length);
 * }
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
