/**
 * The text side of the byte-level BPE tokenizer: the fixed token ids, the normalisation every
 * caption goes through (lower case, collapsed whitespace), and its split into chunks (a letter
 * run, a digit, or a punctuation run, each with the space before it) that merges never cross.
 * @module
 */

/** Id of the padding token. */
export const PAD_ID: number = 0;
/** Id of the start-of-text token. */
export const START_ID: number = 1;
/** Id of the end-of-text token (CLIP's text feature is read at its position). */
export const END_ID: number = 2;
/** Id of byte 0; byte b has id b + BYTE_OFFSET. */
export const BYTE_OFFSET: number = 3;
/** Id of the first learned merge. */
export const FIRST_MERGE_ID: number = BYTE_OFFSET + 256;

/** A caption as error messages quote it: its first 60 characters, then "..." if longer. */
export function shortCaption(text: string, max = 60): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max).join("")}...`;
}

/** Lower-cases and collapses whitespace: the text the tokenizer actually sees. */
export function normalizeText(text: string): string {
  return text.toLowerCase().replace(/\s+/g, " ").trim();
}

const CHUNK = / ?\p{L}+| ?\p{N}| ?[^\s\p{L}\p{N}]+/gu;
const encoder = new TextEncoder();

/**
 * The chunks BPE works on: a letter run, a digit, or a punctuation run, each with the space
 * before it, from the normalised text. Merges never cross chunks, so never cross words.
 */
export function textChunks(text: string): string[] {
  const norm = normalizeText(text);
  return norm === "" ? [] : (" " + norm).match(CHUNK) ?? [];
}

/** The byte tokens of a chunk, before any merge: its UTF-8 bytes, each plus BYTE_OFFSET. */
export function byteIds(chunk: string): number[] {
  return Array.from(encoder.encode(chunk), (b) => b + BYTE_OFFSET);
}

/**
 * The distinct words of texts as the tokenizer splits them (lower-cased letter runs, single
 * digits, runs of other symbols such as emoji), in order of first appearance.
 *
 * @example
 * ```ts
 * captionWords(["A red circle", "a blue circle!"]); // ["a", "red", "circle", "blue", "!"]
 * ```
 */
export function captionWords(texts: Iterable<string>): string[] {
  const words = new Set<string>();
  for (const text of texts) for (const c of textChunks(text)) words.add(c.trim());
  return [...words];
}
