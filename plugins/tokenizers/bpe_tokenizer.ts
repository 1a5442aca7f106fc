/**
 * The byte-level BPE tokenizer itself: encoding captions to padded id rows and back, and its JSON
 * form for checkpoints. Ids: 0 = pad, 1 = start, 2 = end, 3..258 = the 256 bytes (byte fallback:
 * any text encodes), 259... = learned merges (`bpe_merges.ts`). Text is normalised and chunked as
 * `bpe_text.ts` describes, so decoding restores the normalised text exactly.
 * @module
 */

import { z } from "../../core/deps.ts";
import type { Tokenizer } from "../../core/components.ts";
import {
  BYTE_OFFSET,
  byteIds,
  captionWords,
  END_ID,
  FIRST_MERGE_ID,
  PAD_ID,
  shortCaption,
  START_ID,
  textChunks,
} from "./bpe_text.ts";
import { learnMerges, mergePair, pairKey } from "./bpe_merges.ts";

const decoder = new TextDecoder();

/** What to do with a text longer than the context length. */
export type Overflow = "truncate" | "error";

/** Options of {@link BpeTokenizer}. */
export interface BpeOptions {
  /** Vocabulary (embedding table) size: 259 fixed tokens + merges. Default 512, at least 260. */
  vocabSize?: number;
  /** Tokens per encoded row, start and end included. Default 33. */
  contextLength?: number;
  /** "error" (default): throw on too-long text; "truncate": cut, keeping the end token. */
  overflow?: Overflow;
  /**
   * The distinct words (chunks, see {@link captionWords}) of the training captions, which
   * `train` records so that {@link BpeTokenizer.unseenWords} can name what a caption adds.
   */
  words?: readonly string[];
}

const jsonSchema = z.object({
  format: z.literal("bpe-tokenizer"),
  version: z.literal(1),
  vocabSize: z.number().int().min(FIRST_MERGE_ID + 1),
  contextLength: z.number().int().min(3),
  overflow: z.enum(["truncate", "error"]).default("error"),
  merges: z.array(z.tuple([z.number().int().min(BYTE_OFFSET), z.number().int().min(BYTE_OFFSET)])),
  // Optional: tokenizers saved before it was recorded (e.g. weights/default) have none.
  words: z.array(z.string()).optional(),
});

/** The JSON form of a tokenizer, stored in checkpoints. */
export interface BpeJson {
  /** Always "bpe-tokenizer". */
  format: "bpe-tokenizer";
  /** Format version (1). */
  version: 1;
  /** Size of the id space. */
  vocabSize: number;
  /** Tokens per row. */
  contextLength: number;
  /** Overflow behaviour. */
  overflow: Overflow;
  /** Merges in order, as pairs of ids. */
  merges: [number, number][];
  /** The training captions' words, sorted (absent in tokenizers saved before it was kept). */
  words?: string[];
}

function checkSizes(vocabSize: number, contextLength: number): void {
  if (!Number.isInteger(vocabSize) || vocabSize < FIRST_MERGE_ID + 1) {
    throw new Error(
      `Vocabulary size "${vocabSize}" must be an integer of at least ${FIRST_MERGE_ID + 1}`,
    );
  }
  if (!Number.isInteger(contextLength) || contextLength < 3) {
    throw new Error(`Context length "${contextLength}" must be an integer of at least 3`);
  }
}

/** Byte-level BPE tokenizer with start, end and pad tokens. */
export class BpeTokenizer implements Tokenizer {
  /** Size of the id space (the embedding table size); merges may use fewer ids. */
  readonly vocabSize: number;
  /** Tokens per encoded row, start and end included. */
  readonly contextLength: number;
  /** What happens to too-long texts. */
  readonly overflow: Overflow;
  /** Id of the padding token. */
  readonly padId: number = PAD_ID;
  /** Id of the start token. */
  readonly startId: number = START_ID;
  /** Id of the end token. */
  readonly endId: number = END_ID;
  /** Merges in learned order: merge i makes id FIRST_MERGE_ID + i from the pair. */
  readonly merges: readonly (readonly [number, number])[];
  /** The training captions' words, sorted; undefined when unknown (an older saved tokenizer). */
  readonly words: readonly string[] | undefined;
  #known: Set<string> | undefined;
  #ranks = new Map<number, number>();
  #bytes: Uint8Array[] = [];
  #cache = new Map<string, number[]>();

  /**
   * Creates a tokenizer from a list of merges (use {@link BpeTokenizer.train} to learn them).
   *
   * @example
   * ```ts
   * const bytesOnly = new BpeTokenizer([], { vocabSize: 260, contextLength: 64 });
   * bytesOnly.encode("hi").length; // 64
   * ```
   */
  constructor(merges: readonly (readonly [number, number])[], options: BpeOptions = {}) {
    this.vocabSize = options.vocabSize ?? 512;
    this.contextLength = options.contextLength ?? 33;
    this.overflow = options.overflow ?? "error";
    this.words = options.words && [...new Set(options.words)].sort();
    this.#known = this.words && new Set(this.words);
    checkSizes(this.vocabSize, this.contextLength);
    if (FIRST_MERGE_ID + merges.length > this.vocabSize) {
      throw new Error(
        `Tokenizer has ${merges.length} merges, more than vocabulary size "${this.vocabSize}" allows`,
      );
    }
    this.merges = merges.map(([a, b]) => [a, b] as const);
    for (let b = 0; b < 256; b++) this.#bytes[BYTE_OFFSET + b] = new Uint8Array([b]);
    this.merges.forEach(([a, b], i) => {
      const id = FIRST_MERGE_ID + i;
      if (a >= id || b >= id) throw new Error(`Merge ${i} "${a} ${b}" refers to a later token`);
      this.#ranks.set(pairKey(a, b), i);
      const ba = this.#bytes[a], bb = this.#bytes[b];
      const joined = new Uint8Array(ba.length + bb.length);
      joined.set(ba);
      joined.set(bb, ba.length);
      this.#bytes[id] = joined;
    });
  }

  /**
   * Learns merges from captions: repeatedly merges the most frequent adjacent pair (ties: the
   * smallest ids) until the vocabulary is full or every chunk is one token.
   *
   * @example
   * ```ts
   * const tok = BpeTokenizer.train(["a red circle", "the blue square"], { vocabSize: 300 });
   * ```
   */
  static train(captions: Iterable<string>, options: BpeOptions = {}): BpeTokenizer {
    const vocabSize = options.vocabSize ?? 512;
    checkSizes(vocabSize, options.contextLength ?? 33);
    const { merges, chunks } = learnMerges(captions, vocabSize);
    // The words are kept so that sampling can say which words of a caption are new to the model.
    return new BpeTokenizer(merges, { ...options, vocabSize, words: captionWords(chunks) });
  }

  /**
   * The words of `text` (as {@link captionWords} splits it) that the training captions never
   * contained, in order; undefined when this tokenizer does not know its training words.
   *
   * @example
   * ```ts
   * BpeTokenizer.train(["a red circle"]).unseenWords("a purple dragon"); // ["purple", "dragon"]
   * ```
   */
  unseenWords(text: string): string[] | undefined {
    const known = this.#known;
    return known && captionWords([text]).filter((w) => !known.has(w));
  }

  /** Number of ids in use (fixed tokens + merges); at most vocabSize. */
  get usedSize(): number {
    return FIRST_MERGE_ID + this.merges.length;
  }

  /**
   * Tokens of a text without start/end/padding.
   *
   * @example
   * ```ts
   * const tok = BpeTokenizer.train(["a red circle", "the blue square"], { vocabSize: 300 });
   * tok.tokenize("a red circle"); // e.g. [263, 270, 281]
   * ```
   */
  tokenize(text: string): number[] {
    const out: number[] = [];
    for (const c of textChunks(text)) {
      let ids = this.#cache.get(c);
      if (ids === undefined) {
        ids = this.#bpe(c);
        if (this.#cache.size < 100000) this.#cache.set(c, ids);
      }
      out.push(...ids);
    }
    return out;
  }

  #bpe(chunk: string): number[] {
    let ids = byteIds(chunk);
    for (;;) {
      let bestRank = Infinity, bestI = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const r = this.#ranks.get(pairKey(ids[i], ids[i + 1]));
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          bestI = i;
        }
      }
      if (bestI < 0) return ids;
      const [a, b] = this.merges[bestRank];
      ids = mergePair(ids, a, b, FIRST_MERGE_ID + bestRank);
    }
  }

  /**
   * Encodes a text into one padded row: start, tokens, end, pad...
   *
   * @throws Error when the text is too long and overflow is "error".
   * @example
   * ```ts
   * const tok = BpeTokenizer.train(["a red circle", "the blue square"], { vocabSize: 300 });
   * const row = tok.encode("a red circle"); // Int32Array(33)
   * ```
   */
  encode(text: string): Int32Array {
    const row = new Int32Array(this.contextLength);
    this.#encodeInto(text, row, 0);
    return row;
  }

  #encodeInto(text: string, out: Int32Array, offset: number): void {
    const ctx = this.contextLength;
    let tokens = this.tokenize(text);
    if (tokens.length + 2 > ctx) {
      if (this.overflow === "error") {
        const count = tokens.length + 2;
        throw new Error(
          `Caption "${
            shortCaption(text)
          }" is ${count} tokens, longer than the context length ${ctx}`,
        );
      }
      tokens = tokens.slice(0, ctx - 2);
    }
    out[offset] = START_ID;
    out.set(tokens, offset + 1);
    out[offset + 1 + tokens.length] = END_ID;
    out.fill(PAD_ID, offset + 2 + tokens.length, offset + ctx);
  }

  /**
   * Encodes texts into one contiguous [B, contextLength] array (one GPU upload).
   *
   * @example
   * ```ts
   * const tok = BpeTokenizer.train(["a red circle", "the blue square"], { vocabSize: 300 });
   * const ids = tok.encodeBatch(["a red circle", "the blue square"]); // Int32Array(2 * 33)
   * ```
   */
  encodeBatch(texts: readonly string[]): Int32Array {
    const out = new Int32Array(texts.length * this.contextLength);
    texts.forEach((t, i) => this.#encodeInto(t, out, i * this.contextLength));
    return out;
  }

  /**
   * Decodes ids back to (normalised) text; start and pad are skipped, the end token stops it.
   *
   * @example
   * ```ts
   * const tok = BpeTokenizer.train(["a red circle", "the blue square"], { vocabSize: 300 });
   * tok.decode(tok.encode("A  Red circle")); // "a red circle"
   * ```
   */
  decode(ids: ArrayLike<number>): string {
    const parts: Uint8Array[] = [];
    let length = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (id === END_ID) break;
      if (id === START_ID || id === PAD_ID) continue;
      const bytes = this.#bytes[id];
      if (bytes === undefined) throw new Error(`Token id "${id}" is not in the vocabulary`);
      parts.push(bytes);
      length += bytes.length;
    }
    const all = new Uint8Array(length);
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    return decoder.decode(all).replace(/^ /, "");
  }

  /**
   * Position of the end token in each row of a [B, contextLength] id array (where CLIP reads the
   * text feature). A row without one gives its last position.
   *
   * @example
   * ```ts
   * const tok = BpeTokenizer.train(["a red circle", "the blue square"], { vocabSize: 300 });
   * tok.endIndices(tok.encodeBatch(["a red circle"])); // Int32Array [position of the end token]
   * ```
   */
  endIndices(ids: Int32Array): Int32Array {
    const ctx = this.contextLength;
    const rows = Math.floor(ids.length / ctx);
    const out = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      let k = ctx - 1;
      for (let i = 0; i < ctx; i++) {
        if (ids[r * ctx + i] === END_ID) {
          k = i;
          break;
        }
      }
      out[r] = k;
    }
    return out;
  }

  /**
   * The bytes a token stands for (fixed tokens give an empty array).
   *
   * @example
   * ```ts
   * const tok = BpeTokenizer.train(["a red circle", "the blue square"], { vocabSize: 300 });
   * new TextDecoder().decode(tok.tokenBytes(300)); // the bytes of a merge, e.g. " circle"
   * ```
   */
  tokenBytes(id: number): Uint8Array {
    return this.#bytes[id] ?? new Uint8Array(0);
  }

  /**
   * The JSON form (merges as id pairs) for checkpoints.
   *
   * @example
   * ```ts
   * const tok = BpeTokenizer.train(["a red circle", "the blue square"], { vocabSize: 300 });
   * const copy = BpeTokenizer.fromJSON(JSON.parse(JSON.stringify(tok)));
   * copy.vocabSize === tok.vocabSize; // true
   * ```
   */
  toJSON(): BpeJson {
    return {
      format: "bpe-tokenizer",
      version: 1,
      vocabSize: this.vocabSize,
      contextLength: this.contextLength,
      overflow: this.overflow,
      merges: this.merges.map(([a, b]) => [a, b]),
      ...(this.words && { words: [...this.words] }),
    };
  }

  /**
   * Restores a tokenizer saved with {@link BpeTokenizer.toJSON}.
   *
   * @throws Error describing the first problem when the JSON is not a saved tokenizer.
   * @example
   * ```ts
   * function restore(state: unknown): BpeTokenizer {
   *   return BpeTokenizer.fromJSON(state); // e.g. a checkpoint's stored tokenizer
   * }
   * ```
   */
  static fromJSON(json: unknown): BpeTokenizer {
    const parsed = jsonSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const path = issue.path.length > 0 ? ` at "${issue.path.join(".")}"` : "";
      throw new Error(`Saved tokenizer is invalid${path}: ${issue.message}`);
    }
    const { merges, vocabSize, contextLength, overflow, words } = parsed.data;
    return new BpeTokenizer(merges, { vocabSize, contextLength, overflow, words });
  }
}
