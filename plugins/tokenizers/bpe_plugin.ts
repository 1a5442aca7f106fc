/**
 * The byte-level BPE tokenizer as a `tokenizer` plugin: its options schema and `create`, which
 * restores a saved vocabulary or trains one on the training captions.
 * @module
 */

import { z } from "../../core/deps.ts";
import type { PluginDefinition, TokenizerSource } from "../../core/registry.ts";
import { FIRST_MERGE_ID } from "./bpe_text.ts";
import { BpeTokenizer } from "./bpe_tokenizer.ts";

/** What {@link bpeTokenizerPlugin}'s create() may receive: the tokenizer kind's context. */
export type TokenizerContext = TokenizerSource;

/** Options schema of {@link bpeTokenizerPlugin} (strict, with defaults). */
export const bpeTokenizerOptions: z.ZodObject<
  { vocabSize: z.ZodDefault<z.ZodNumber>; contextLength: z.ZodDefault<z.ZodNumber> },
  z.core.$strict
> = z.object({
  vocabSize: z.number().int().min(FIRST_MERGE_ID + 1).default(512),
  contextLength: z.number().int().min(3).default(33),
}).strict();

/** Validated options of {@link bpeTokenizerPlugin}. */
export type BpePluginOptions = {
  /** Vocabulary size (default 512). */
  vocabSize: number;
  /** Context length (default 33). */
  contextLength: number;
};

/** The type of {@link bpeTokenizerPlugin}: `create` returns the tokenizer synchronously. */
export interface BpeTokenizerPlugin
  extends PluginDefinition<"tokenizer", typeof bpeTokenizerOptions, BpeTokenizer> {
  /** Restores `context.state` or trains on `context.captions`. */
  create(options: BpePluginOptions, context?: TokenizerContext): BpeTokenizer;
}

/**
 * Plugin definition of the byte-level BPE tokenizer. `create(options, ctx)` restores
 * `ctx.state` (a saved vocabulary, e.g. from a checkpoint) when given, otherwise trains on
 * `ctx.captions` (the training split's captions); with neither it throws, since an untrained
 * byte tokenizer would not fit the context length.
 *
 * @example
 * ```ts
 * const captions = ["a red circle", "the blue square"];
 * const tok = bpeTokenizerPlugin.create(bpeTokenizerPlugin.options.parse({}), { captions });
 * ```
 */
export const bpeTokenizerPlugin: BpeTokenizerPlugin = {
  kind: "tokenizer",
  name: "bpe",
  description: "Lower-cased byte-level BPE trained on the training captions",
  options: bpeTokenizerOptions,
  create(options, context: TokenizerContext = {}): BpeTokenizer {
    if (context.state !== undefined) {
      const tok = BpeTokenizer.fromJSON(context.state);
      if (tok.vocabSize !== options.vocabSize || tok.contextLength !== options.contextLength) {
        throw new Error(
          `Saved tokenizer has vocabulary size ${tok.vocabSize} and context length ` +
            `${tok.contextLength}, but the config asks for "${options.vocabSize}" and ` +
            `"${options.contextLength}"`,
        );
      }
      return tok;
    }
    const captions = context.captions;
    if (
      captions === undefined || captions === null ||
      typeof (captions as Iterable<string>)[Symbol.iterator] !== "function"
    ) {
      throw new Error(
        "The bpe tokenizer needs training captions (context.captions) or a saved vocabulary " +
          "(context.state)",
      );
    }
    const list = [...captions];
    const bad = list.findIndex((c) => typeof c !== "string");
    if (bad >= 0) {
      throw new Error(`Training caption ${bad} "${String(list[bad])}" is not a string`);
    }
    return BpeTokenizer.train(list, options);
  },
};
