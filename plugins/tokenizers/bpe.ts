/**
 * A lower-cased byte-level BPE tokenizer trained from scratch on captions (a deliberate difference
 * from the thesis, which used OpenAI's CLIP vocabulary; see README). One file per job, re-exported
 * here:
 *
 * - `bpe_text.ts`: the fixed ids, the normalisation of captions and their split into chunks;
 * - `bpe_merges.ts`: learning merges from captions;
 * - `bpe_tokenizer.ts`: `BpeTokenizer`, encoding and decoding, and its JSON form;
 * - `bpe_plugin.ts`: the `tokenizer` plugin definition.
 * @module
 */

export {
  BYTE_OFFSET,
  captionWords,
  END_ID,
  FIRST_MERGE_ID,
  normalizeText,
  PAD_ID,
  shortCaption,
  START_ID,
} from "./bpe_text.ts";
export { type BpeJson, type BpeOptions, BpeTokenizer, type Overflow } from "./bpe_tokenizer.ts";
export {
  type BpePluginOptions,
  bpeTokenizerOptions,
  type BpeTokenizerPlugin,
  bpeTokenizerPlugin,
  type TokenizerContext,
} from "./bpe_plugin.ts";
