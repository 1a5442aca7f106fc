/**
 * The CLIP text encoder (thesis 3.2.1, Figure 3.3; Radford et al. 2021, section 2.4): token
 * embedding + learned positional embedding, pre-LN causal transformer blocks, a final LayerNorm,
 * and the feature at the end token linearly projected (no bias) into the CLIP embedding space.
 *
 * @module
 */
import { z } from "../../core/deps.ts";
import { definePlugin, type PluginDefinition } from "../../core/registry.ts";
import type { TextEncoder, TokenBatch } from "../../core/components.ts";
import { Module, normalInit } from "../../core/nn/module.ts";
import { Embedding, LayerNorm, Linear, TransformerBlock } from "../../core/nn/mod.ts";
import { add, slice, takeAlong, type Tensor } from "../../core/tensor/mod.ts";

/** Options of `TextTransformer` (defaults: thesis Appendix A, CLIP column). */
export interface TextTransformerOptions {
  /** Token embedding table size; must equal the tokenizer's `vocabSize`. */
  vocabSize: number;
  /** Maximum tokens per caption, start and end tokens included (33 in the thesis). */
  contextLength: number;
  /** Transformer width (64). */
  width: number;
  /** Attention heads (16). */
  heads: number;
  /** Transformer blocks (8). */
  layers: number;
  /** MLP hidden width as a multiple of `width` (2 in the thesis code). */
  mlpRatio: number;
  /** CLIP embedding size (256). */
  embedDim: number;
}

/**
 * The CLIP text tower. `encode` returns the projected end-token feature (not normalised) and the
 * whole final-LN sequence (the "text encoding" the prior reads, thesis 3.2.1 and 3.4.1).
 *
 * @example
 * ```ts
 * import type { TokenBatch } from "../../core/components.ts";
 * function encode(tokens: TokenBatch) {
 *   const enc = new TextTransformer({
 *     vocabSize: 512,
 *     contextLength: 33,
 *     width: 64,
 *     heads: 16,
 *     layers: 8,
 *     mlpRatio: 2,
 *     embedDim: 256,
 *   });
 *   return enc.encode(tokens); // { embedding: [B, 256], sequence: [B, 33, 64] }
 * }
 * ```
 */
export class TextTransformer extends Module implements TextEncoder {
  /** CLIP embedding size E. */
  readonly embedDim: number;
  /** Transformer width W. */
  readonly width: number;
  /** Maximum tokens per caption (positional embedding rows). */
  readonly contextLength: number;
  /** Token embedding table size. */
  readonly vocabSize: number;
  /** Token embedding [vocabSize, W]. */
  readonly tokenEmbedding: Embedding;
  /** Learned positional embedding [contextLength, W]. */
  readonly positionalEmbedding: Tensor;
  /** The causal pre-LN blocks. */
  readonly blocks: TransformerBlock[];
  /** LayerNorm after the last block. */
  readonly finalNorm: LayerNorm;
  /** End-token feature -> CLIP embedding (no bias). */
  readonly projection: Linear;

  /** Builds the tower (parameters drawn from the engine RNG: seed with `manualSeed`). */
  constructor(o: TextTransformerOptions) {
    super();
    if (o.width % o.heads !== 0) {
      throw new Error(`Text encoder width ${o.width} is not divisible by heads "${o.heads}".`);
    }
    this.embedDim = o.embedDim;
    this.width = o.width;
    this.contextLength = o.contextLength;
    this.vocabSize = o.vocabSize;
    this.tokenEmbedding = this.addModule("tokenEmbedding", new Embedding(o.vocabSize, o.width));
    // CLIP initialises the positional embedding with std 0.01 (openai/CLIP model.py).
    this.positionalEmbedding = this.addParameter(
      "positionalEmbedding",
      normalInit([o.contextLength, o.width], 0.01),
    );
    this.blocks = [];
    for (let i = 0; i < o.layers; i++) {
      this.blocks.push(this.addModule(
        `blocks.${i}`,
        new TransformerBlock(o.width, o.heads, { mlpRatio: o.mlpRatio, causal: true }),
      ));
    }
    this.finalNorm = this.addModule("finalNorm", new LayerNorm(o.width));
    this.projection = this.addModule(
      "projection",
      new Linear(o.width, o.embedDim, { bias: false }),
    );
  }

  /** tokens.ids i32 [B, T] (T <= contextLength) -> embedding [B, E], sequence [B, T, W]. */
  encode(tokens: TokenBatch): { embedding: Tensor; sequence: Tensor } {
    const ids = tokens.ids;
    if (ids.rank !== 2 || ids.shape[1] > this.contextLength) {
      throw new Error(
        `Token ids of shape [${ids.shape}] do not fit the text encoder's context length ${this.contextLength}.`,
      );
    }
    const T = ids.shape[1];
    const pos = T === this.contextLength
      ? this.positionalEmbedding
      : slice(this.positionalEmbedding, 0, 0, T);
    // Thesis 3.2.1: token embedding plus learned positional embedding.
    let x = add(this.tokenEmbedding.forward(ids), pos);
    for (const block of this.blocks) x = block.forward(x);
    const sequence = this.finalNorm.forward(x);
    // The end token's feature is the caption's representation (thesis 3.2.1, Radford et al. 2021).
    const embedding = this.projection.forward(takeAlong(sequence, tokens.endIndex));
    return { embedding, sequence };
  }
}

/** Options schema of the "transformer" text encoder plugin. */
export const textTransformerOptions: z.ZodObject<
  {
    vocabSize: z.ZodDefault<z.ZodNumber>;
    contextLength: z.ZodDefault<z.ZodNumber>;
    width: z.ZodDefault<z.ZodNumber>;
    heads: z.ZodDefault<z.ZodNumber>;
    layers: z.ZodDefault<z.ZodNumber>;
    mlpRatio: z.ZodDefault<z.ZodNumber>;
    embedDim: z.ZodDefault<z.ZodNumber>;
  },
  z.core.$strict
> = z.object({
  vocabSize: z.number().int().positive().default(512).describe(
    "Token table size; context.vocabSize (the tokenizer's) overrides it",
  ),
  contextLength: z.number().int().positive().default(33).describe(
    "Tokens per caption (start/end included)",
  ),
  width: z.number().int().positive().default(64).describe("Transformer width"),
  heads: z.number().int().positive().default(16).describe("Attention heads"),
  layers: z.number().int().nonnegative().default(8).describe("Transformer blocks"),
  mlpRatio: z.number().positive().default(2).describe(
    "MLP hidden width / width (2 in the thesis code)",
  ),
  embedDim: z.number().int().positive().default(256).describe("CLIP embedding size"),
}).strict();

/**
 * The "transformer" text encoder plugin. `context.vocabSize` and `context.contextLength`, when
 * given (tasks pass the trained tokenizer's), win over the options so the embedding table always
 * matches the tokenizer.
 */
export const textTransformerPlugin: PluginDefinition<
  "textEncoder",
  typeof textTransformerOptions,
  TextTransformer
> = definePlugin({
  kind: "textEncoder",
  name: "transformer",
  description: "CLIP text encoder: causal pre-LN transformer, end-token projection (thesis 3.2.1)",
  options: textTransformerOptions,
  create: (o, context) =>
    new TextTransformer({
      ...o,
      vocabSize: positiveInt(context.vocabSize, "context.vocabSize") ?? o.vocabSize,
      contextLength: positiveInt(context.contextLength, "context.contextLength") ?? o.contextLength,
    }),
});

function positiveInt(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new Error(`${what} "${String(value)}" is not a positive integer.`);
  }
  return value;
}
