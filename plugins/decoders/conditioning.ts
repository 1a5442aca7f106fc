/**
 * The decoder's conditioning (thesis section 3.3.1, Figure 3.6): its own text transformer, the
 * CLIP image embedding projected into extra tokens (Ramesh et al. 2022, section 2.1), and the
 * learned null condition for classifier-free guidance (thesis Algorithm 2, line 7). For the
 * attribute-binding experiment (thesis section 4.5) either input can be left out: a decoder
 * conditioned on the CLIP image embedding only, or on the caption only (GLIDE, Nichol et al. 2022).
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

/**
 * What the decoder is conditioned on: the caption and the CLIP image embedding (the thesis's and
 * DALL-E 2's decoder), the CLIP image embedding only, or the caption only (GLIDE).
 */
export const CONDITIONING_INPUTS = ["clip+text", "clip", "text"] as const;

/** One of `CONDITIONING_INPUTS`. */
export type ConditioningInputs = (typeof CONDITIONING_INPUTS)[number];

/** Sizes of `DecoderConditioner`. */
export interface ConditionerOptions {
  /** The inputs used (default "clip+text"); the others are ignored and have no parameters. */
  inputs?: ConditioningInputs;
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
  /**
   * With "clip+text", also add a projection of the CLIP embedding to the time embedding, beside
   * the caption's end token (DALL-E 2, Ramesh et al. 2022, section 2.1; default false, the thesis's
   * Figure 3.6, where only the caption reaches it).
   */
  clipToTime?: boolean;
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
  readonly #text?: {
    tokenEmbedding: Embedding;
    position: Tensor;
    blocks: TransformerBlock[];
    finalNorm: LayerNorm;
    pooledProj: Linear;
    nullText: Tensor;
    nullPooled: Tensor;
  };
  readonly #clip?: {
    proj: Linear;
    /** CLIP-only decoders: the embedding's projection added to the time embedding. */
    pooledProj?: Linear;
    nullClip: Tensor;
  };

  /**
   * Creates the conditioner with freshly initialised parameters.
   *
   * @example
   * ```ts
   * function conditioner(): DecoderConditioner {
   *   return new DecoderConditioner({
   *     vocabSize: 512,
   *     contextLength: 33,
   *     width: 64,
   *     layers: 6,
   *     heads: 8,
   *     clipEmbedDim: 256,
   *     clipTokens: 4,
   *     embDim: 128,
   *   });
   * }
   * ```
   */
  constructor(options: ConditionerOptions) {
    super();
    this.options = { ...options };
    const inputs = options.inputs ?? "clip+text";
    const { vocabSize, contextLength: T, width: W } = options;
    // Registered in the order of the first version (checkpoints list parameters in this order).
    const text = inputs === "clip" ? undefined : {
      tokenEmbedding: this.addModule("tokenEmbedding", new Embedding(vocabSize, W)),
      position: this.addParameter("position", normalInit([T, W], 0.01)),
      blocks: Array.from(
        { length: options.layers },
        (_, i) =>
          this.addModule(`blocks.${i}`, new TransformerBlock(W, options.heads, { causal: false })),
      ),
      finalNorm: this.addModule("finalNorm", new LayerNorm(W)),
      pooledProj: this.addModule("pooledProj", new Linear(W, options.embDim)),
    };
    const clipProj = inputs === "text"
      ? undefined
      : this.addModule("clipProj", new Linear(options.clipEmbedDim, options.clipTokens * W));
    if (text) {
      this.#text = {
        ...text,
        nullText: this.addParameter("nullText", normalInit([1, T, W], 0.02)),
        nullPooled: this.addParameter("nullPooled", normalInit([1, W], 0.02)),
      };
    }
    if (clipProj) {
      this.#clip = {
        proj: clipProj,
        // DALL-E 2 section 2.1 also adds a projection of the CLIP embedding to the time
        // embedding; with text, the caption's end token takes that place (thesis Figure 3.6)
        // unless clipToTime adds both.
        pooledProj: inputs === "clip" || (options.clipToTime && inputs === "clip+text")
          ? this.addModule("clipPooledProj", new Linear(options.clipEmbedDim, options.embDim))
          : undefined,
        // Algorithm 2 sets the dropped embedding to 0; we start there and let it learn.
        nullClip: this.addParameter("nullClip", zeros([1, options.clipEmbedDim])),
      };
    }
  }

  /**
   * Encodes a batch's conditioning for the U-Net.
   *
   * @example
   * ```ts
   * import type { DecoderConditioning } from "../../core/components.ts";
   * import type { Tensor } from "../../core/tensor/mod.ts";
   * function tokensOf(conditioner: DecoderConditioner, cond: DecoderConditioning): Tensor {
   *   const { tokens } = conditioner.forward(cond);
   *   return tokens; // [B, contextLength + clipTokens, width]: the attention blocks read them
   * }
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
    for (const [name, k] of [["keepText", cond.keepText], ["keepClip", cond.keepClip]] as const) {
      if (k && k.size !== B) {
        throw new RangeError(`Conditioning ${name} has shape [${k.shape}]; expected [${B}]`);
      }
    }
    // Null condition: x' = keep * x + (1 - keep) * null, per row (Algorithm 2, line 7). DALL-E 2
    // also drops the caption and the CLIP embedding apart (keepText, keepClip; training only).
    const keepText = cond.keepText ? mul(cond.keep, cond.keepText) : cond.keep;
    const keepClip = cond.keepClip ? mul(cond.keep, cond.keepClip) : cond.keep;
    const mix = (x: Tensor, nul: Tensor, k: Tensor): Tensor =>
      add(mul(x, k), mul(nul, affine(k, -1, 1)));

    const tokens: Tensor[] = [];
    let pooled: Tensor | undefined;
    if (this.#text) {
      const t = this.#text;
      let h = add(t.tokenEmbedding.forward(ids), t.position);
      for (const block of t.blocks) h = block.forward(h);
      const seq = t.finalNorm.forward(h); // [B, T, W]
      // Thesis 3.3.1 / GLIDE: the last (end) token's output summarises the caption.
      const last = takeAlong(seq, endIndex); // [B, W]
      tokens.push(mix(seq, t.nullText, reshape(keepText, [B, 1, 1])));
      pooled = t.pooledProj.forward(mix(last, t.nullPooled, reshape(keepText, [B, 1])));
    }
    if (this.#clip) {
      const c = this.#clip;
      const clip = mix(cond.imageEmbedding, c.nullClip, reshape(keepClip, [B, 1]));
      // DALL-E 2 (Ramesh et al. 2022, section 2.1): the CLIP embedding becomes K extra tokens and,
      // for CLIP-only decoders or with clipToTime, is added to the time embedding.
      tokens.push(reshape(c.proj.forward(clip), [B, K, W]));
      if (c.pooledProj) {
        const p = c.pooledProj.forward(clip);
        pooled = pooled ? add(pooled, p) : p;
      }
    }
    return {
      tokens: tokens.length === 1 ? tokens[0] : concat(tokens, 1),
      pooled: pooled!,
    };
  }
}
