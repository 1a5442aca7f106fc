/**
 * Seeded host-side random numbers for data generation. Pure integer arithmetic (no Math.random),
 * so the same seed gives the same stream on every machine.
 * @module
 */

/** A seed: a number (used modulo 2^32) or any string (hashed). */
export type Seed = number | string;

/**
 * Hashes a string or number to an unsigned 32-bit integer (FNV-1a followed by a murmur3
 * finaliser, so nearby inputs give unrelated outputs).
 *
 * @example
 * ```ts
 * const s = hashSeed("shapes:1:train"); // 0 <= s < 2 ** 32
 * ```
 */
export function hashSeed(value: Seed): number {
  const text = typeof value === "number" ? `n${value}` : `s${value}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}

/** Murmur3's 32-bit finaliser: a bijective avalanche mix. */
export function fmix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * Derives a child seed from a parent seed and a list of parts (split name, image index, epoch...).
 *
 * @example
 * ```ts
 * const imageSeed = deriveSeed(1234, "train", 17);
 * ```
 */
export function deriveSeed(parent: Seed, ...parts: (string | number)[]): number {
  let h = hashSeed(parent);
  for (const part of parts) {
    h = fmix32((h ^ hashSeed(part)) + 0x9e3779b9);
  }
  return h;
}

/** A small, fast, seeded pseudo-random generator (sfc32). */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /**
   * Creates a generator from a seed.
   *
   * @example
   * ```ts
   * const rng = new Rng("my seed");
   * const x = rng.next(); // in [0, 1)
   * ```
   */
  constructor(seed: Seed) {
    const s = typeof seed === "number" ? seed >>> 0 : hashSeed(seed);
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = s;
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  /** Next unsigned 32-bit integer. */
  nextUint32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [lo, hi] (both inclusive). */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  /** A uniformly chosen element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }
}
