/**
 * Arrays for the tests of the CPU backend's WebAssembly kernels, which run on arrays in the CPU
 * memory (while the TypeScript loops they replace take arrays anywhere): seeded random values,
 * and copies placed in that memory.
 */
import { cpu } from "../../core/tensor/backend.ts";
import { hostRandom } from "./check.ts";

/** `n` uniform values in [lo, hi) from a seeded generator, in ordinary (host) memory. */
export function random(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = hostRandom(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** Copies of `arrays` in the CPU memory (one block, allocated before any view is taken). */
export function inMemory(...arrays: Float32Array[]): Float32Array[] {
  const total = arrays.reduce((s, a) => s + a.length, 0);
  const buf = cpu().allocate(Math.max(4, total * 4));
  let at = buf.offset;
  return arrays.map((a) => {
    const v = new Float32Array(cpu().mem.buffer, at, a.length);
    v.set(a);
    at += a.length * 4;
    return v;
  });
}
