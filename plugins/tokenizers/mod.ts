/**
 * Tokenizer plugins.
 * @module
 */

export * from "./bpe.ts";
