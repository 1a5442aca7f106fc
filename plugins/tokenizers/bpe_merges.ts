/**
 * Learning BPE merges from captions, and applying one merge to a token sequence: the counting
 * half of the byte-level BPE tokenizer (Sennrich et al. 2016), kept apart from encoding.
 * @module
 */

import { byteIds, FIRST_MERGE_ID, textChunks } from "./bpe_text.ts";

/** Pairs of ids are counted under one number key: `a * PAIR_KEY + b` (ids stay below 65536). */
const PAIR_KEY = 65536;

/** The number key of the adjacent pair (a, b). */
export function pairKey(a: number, b: number): number {
  return a * PAIR_KEY + b;
}

/**
 * `ids` with every non-overlapping occurrence of the pair (a, b), left to right, replaced by
 * `id`.
 *
 * @example
 * ```ts
 * mergePair([5, 6, 5, 6, 7], 5, 6, 300); // [300, 300, 7]
 * ```
 */
export function mergePair(ids: readonly number[], a: number, b: number, id: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (i + 1 < ids.length && ids[i] === a && ids[i + 1] === b) {
      out.push(id);
      i++;
    } else {
      out.push(ids[i]);
    }
  }
  return out;
}

/** What {@link learnMerges} found. */
export interface LearnedMerges {
  /** Merges in learned order: merge i makes id FIRST_MERGE_ID + i from the pair. */
  merges: [number, number][];
  /** The distinct chunks of the captions, in order of first appearance. */
  chunks: string[];
}

/**
 * Learns merges from captions: repeatedly merges the most frequent adjacent pair (ties: the
 * smallest ids) until `vocabSize` ids are in use or every chunk is one token.
 *
 * @example
 * ```ts
 * const { merges } = learnMerges(["a red circle", "a red square"], 262);
 * merges.length; // 3
 * ```
 */
export function learnMerges(captions: Iterable<string>, vocabSize: number): LearnedMerges {
  const counts = new Map<string, number>();
  for (const caption of captions) {
    for (const c of textChunks(caption)) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  const words: { ids: number[]; count: number }[] = [];
  for (const [c, count] of counts) words.push({ ids: byteIds(c), count });
  const merges: [number, number][] = [];
  while (FIRST_MERGE_ID + merges.length < vocabSize) {
    const pairs = new Map<number, number>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.ids.length; i++) {
        const key = pairKey(w.ids[i], w.ids[i + 1]);
        pairs.set(key, (pairs.get(key) ?? 0) + w.count);
      }
    }
    let best = -1, bestCount = 0;
    for (const [key, count] of pairs) {
      if (count > bestCount || (count === bestCount && key < best)) {
        best = key;
        bestCount = count;
      }
    }
    if (best < 0) break;
    const a = Math.floor(best / PAIR_KEY), b = best % PAIR_KEY;
    const id = FIRST_MERGE_ID + merges.length;
    merges.push([a, b]);
    for (const w of words) w.ids = mergePair(w.ids, a, b, id);
  }
  return { merges, chunks: [...counts.keys()] };
}
