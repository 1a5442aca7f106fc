/**
 * The decoder's conditioning (thesis section 3.3.1, Figure 3.6): its own text transformer, the
 * CLIP image embedding projected into extra tokens (Ramesh et al. 2022, section 2.1), and the
 * learned null condition for classifier-free guidance (thesis Algorithm 2, line 7).
 *
 * @module
 */
import { Embedding, LayerNorm, Linear, TransformerBlock } from "../../core/nn/mod.ts";
import { Module, normalInit } from "../../core/nn/module.ts";
import {
  add,
  affine,
  concat,
  mul,
  reshape,
  takeAlong,
  type Tensor,
  zeros,
} from "../../core/tensor/mod.ts";
import type { DecoderConditioning } from "../../core/components.ts";

/** Sizes of `DecoderConditioner`. */
export interface ConditionerOptions {
  /** Token vocabulary size. */
  vocabSize: number;
  /** Tokens per caption (33 in the thesis). */
  contextLength: number;
  /** Transformer width (64). */
  width: number;
  /** Transformer layers (6). */
  layers: number;
  /** Attention heads (8). */
  heads: number;
  /** Size of the CLIP image embedding (256). */
  clipEmbedDim: number;
  /** Tokens the CLIP embedding is projected into (4, as DALL-E 2). */
  clipTokens: number;
  /** Width of the U-Net's time embedding, which the pooled text feature is added to. */
  embDim: number;
}

/** What the U-Net consumes. */
export interface ConditionerOutput {
  /** [B, T + clipTokens, width]: text encoding followed by the CLIP tokens (keys/values). */
  tokens: Tensor;
  /** [B, embDim]: the projected end-token feature, added to the time embedding. */
  pooled: Tensor;
}

/**
 * Text transformer (no mask) + CLIP-to-tokens projection + null condition. Where `keep` is 0 the
 * whole text output (sequence and end-token feature) and the CLIP embedding are replaced by
 * learned null values together (thesis section 3.3.2: one unconditional model), with broadcast
 * multiplies on the GPU so nothing is read back.
 */
export class DecoderConditioner extends Module {
  /** The sizes it was built with. */
  readonly options: ConditionerOptions;
  readonly #tokenEmbedding: Embedding;
  readonly #position: Tensor;
  readonly #blocks: TransformerBlock[] = [];
  readonly #finalNorm: LayerNorm;
  readonly #pooledProj: Linear;
  readonly #clipProj: Linear;
  readonly #nullText: Tensor;
  readonly #nullPooled: Tensor;
  readonly #nullClip: Tensor;

  /**
   * Creates the conditioner with freshly initialised parameters.
   *
   * @example
   * ```ts
   * const c = new DecoderConditioner({ vocabSize: 512, contextLength: 33, width: 64, layers: 6,
   *   heads: 8, clipEmbedDim: 256, clipTokens: 4, embDim: 128 });
   * ```
   */
  constructor(options: ConditionerOptions) {
    super();
    this.options = { ...options };
    const { vocabSize, contextLength: T, width: W } = options;
    this.#tokenEmbedding = this.addModule("tokenEmbedding", new Embedding(vocabSize, W));
    this.#position = this.addParameter("position", normalInit([T, W], 0.01));
    for (let i = 0; i < options.layers; i++) {
      this.#blocks.push(
        this.addModule(`blocks.${i}`, new TransformerBlock(W, options.heads, { causal: false })),
      );
    }
    this.#finalNorm = this.addModule("finalNorm", new LayerNorm(W));
    this.#pooledProj = this.addModule("pooledProj", new Linear(W, options.embDim));
    this.#clipProj = this.addModule(
      "clipProj",
      new Linear(options.clipEmbedDim, options.clipTokens * W),
    );
    this.#nullText = this.addParameter("nullText", normalInit([1, T, W], 0.02));
    this.#nullPooled = this.addParameter("nullPooled", normalInit([1, W], 0.02));
    // Algorithm 2 sets the dropped embedding to 0; we start there and let it learn.
    this.#nullClip = this.addParameter("nullClip", zeros([1, options.clipEmbedDim]));
  }

  /**
   * Encodes a batch's conditioning for the U-Net.
   *
   * @example
   * ```ts
   * const { tokens, pooled } = conditioner.forward(cond);
   * ```
   */
  forward(cond: DecoderConditioning): ConditionerOutput {
    const { ids, endIndex } = cond.tokens;
    const { contextLength: T, width: W, clipTokens: K } = this.options;
    if (ids.rank !== 2 || ids.shape[1] !== T) {
      throw new RangeError(`Token ids have shape [${ids.shape}]; expected [B, ${T}]`);
    }
    const B = ids.shape[0];
    if (cond.keep.size !== B || cond.imageEmbedding.shape[0] !== B) {
      throw new RangeError(
        `Conditioning batch sizes differ: ids [${ids.shape}], keep [${cond.keep.shape}], ` +
          `imageEmbedding [${cond.imageEmbedding.shape}]`,
      );
    }
    let h = add(this.#tokenEmbedding.forward(ids), this.#position);
    for (const block of this.#blocks) h = block.forward(h);
    const seq = this.#finalNorm.forward(h); // [B, T, W]
    // Thesis 3.3.1 / GLIDE: the last (end) token's output summarises the caption.
    const last = takeAlong(seq, endIndex); // [B, W]

    // Null condition: x' = keep * x + (1 - keep) * null, per row (Algorithm 2, line 7).
    const k2 = reshape(cond.keep, [B, 1]);
    const k3 = reshape(cond.keep, [B, 1, 1]);
    const mix = (x: Tensor, nul: Tensor, k: Tensor): Tensor =>
      add(mul(x, k), mul(nul, affine(k, -1, 1)));
    const text = mix(seq, this.#nullText, k3);
    const pooledText = mix(last, this.#nullPooled, k2);
    const clip = mix(cond.imageEmbedding, this.#nullClip, k2);

    // DALL-E 2 (Ramesh et al. 2022, section 2.1): the CLIP embedding becomes K extra tokens.
    const clipTokens = reshape(this.#clipProj.forward(clip), [B, K, W]);
    return {
      tokens: concat([text, clipTokens], 1),
      pooled: this.#pooledProj.forward(pooledText),
    };
  }
}
