/**
 * Small seeded generators on the host, for evaluation pairings and test data (dataset
 * generation has its own generator in core/data/rng.ts, pinned for byte-identical data).
 *
 * @module
 */

/**
 * mulberry32 (Tommy Ettinger's 32-bit generator): uniform numbers in [0, 1) from a seed.
 *
 * @example
 * ```ts
 * const next = mulberry32(42);
 * next(); // 0.6011037519201636
 * ```
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A seeded derangement of 0..n-1 (Sattolo's algorithm: a uniformly random n-cycle, so no index
 * stays in place). Pairs each item with a different one, e.g. an image with another's caption.
 *
 * @example
 * ```ts
 * derangement(4, 1); // Int32Array [3, 2, 0, 1]
 * ```
 */
export function derangement(n: number, seed: number): Int32Array {
  if (!Number.isInteger(n) || n < 2) {
    throw new RangeError(`Cannot derange "${n}" items; need at least 2`);
  }
  const random = mulberry32(seed);
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * i); // j < i: Sattolo, not Fisher-Yates
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}
