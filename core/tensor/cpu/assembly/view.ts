// The strided copy behind every layout op of the CPU backend (see `copyStrided` in `view.ts` one
// folder up), as a WebAssembly kernel: for each coordinate c of a box of up to six dimensions,
// dst[c . dstStrides] = src[c . srcStrides], 4-byte words copied bit for bit (v128 or scalar
// integer loads and stores, never float arithmetic). Addresses are byte addresses; strides count
// words.

import { chunkSize, nextChunk } from "./share";

/**
 * Copies the box d0 x .. x d5 (d5 innermost; pad unused leading dimensions with size 1). Rows
 * that are contiguous on both sides (s5 = t5 = 1) are block copies. The threads claim chunks of
 * rows from the counter at `counter` (see share.ts).
 */
export function copy_strided(
  src: usize, dst: usize,
  d0: i32, d1: i32, d2: i32, d3: i32, d4: i32, d5: i32,
  s0: i32, s1: i32, s2: i32, s3: i32, s4: i32, s5: i32,
  t0: i32, t1: i32, t2: i32, t3: i32, t4: i32, t5: i32,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const rows = d0 * d1 * d2 * d3 * d4;
  const size = chunkSize(rows, nthreads);
  for (let k = nextChunk(counter, nthreads, -1); k * size < rows; k = nextChunk(counter, nthreads, k)) {
    copyRows(
      src, dst, k * size, min(rows, (k + 1) * size),
      d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5, t0, t1, t2, t3, t4, t5,
    );
  }
}

/** Rows r0..r1 of `copy_strided`'s box (a row: all coordinates but the last). */
// @ts-ignore: decorator
@inline function copyRows(
  src: usize, dst: usize, r0: i32, r1: i32,
  d1: i32, d2: i32, d3: i32, d4: i32, d5: i32,
  s0: i32, s1: i32, s2: i32, s3: i32, s4: i32, s5: i32,
  t0: i32, t1: i32, t2: i32, t3: i32, t4: i32, t5: i32,
): void {
  // Coordinates of row r0, then an odometer over the outer dimensions.
  let q = r0;
  let c4 = q % d4; q /= d4;
  let c3 = q % d3; q /= d3;
  let c2 = q % d2; q /= d2;
  let c1 = q % d1; q /= d1;
  const c0 = q;
  let s = <isize>(c0 * s0 + c1 * s1 + c2 * s2 + c3 * s3 + c4 * s4);
  let t = <isize>(c0 * t0 + c1 * t1 + c2 * t2 + c3 * t3 + c4 * t4);
  const contiguous = s5 == 1 && t5 == 1;
  for (let r = r0; r < r1; r++) {
    const from = src + <usize>(s * 4), to = dst + <usize>(t * 4);
    if (contiguous) {
      copyWords(to, from, d5);
    } else {
      for (let j = 0; j < d5; j++) {
        store<i32>(to + <usize>(j * t5) * 4, load<i32>(from + <usize>(j * s5) * 4));
      }
    }
    s += s4; t += t4;
    if (++c4 < d4) continue;
    c4 = 0; s -= <isize>s4 * d4; t -= <isize>t4 * d4;
    s += s3; t += t3;
    if (++c3 < d3) continue;
    c3 = 0; s -= <isize>s3 * d3; t -= <isize>t3 * d3;
    s += s2; t += t2;
    if (++c2 < d2) continue;
    c2 = 0; s -= <isize>s2 * d2; t -= <isize>t2 * d2;
    s += s1; t += t1;
    if (++c1 < d1) continue;
    c1 = 0; s -= <isize>s1 * d1; t -= <isize>t1 * d1;
    s += s0; t += t0;
  }
}

/** Copies `n` words from `src` to `dst` (memmove semantics are not needed: the blocks differ). */
// @ts-ignore: decorator
@inline function copyWords(dst: usize, src: usize, n: i32): void {
  if (n >= 256) {
    memory.copy(dst, src, <usize>n * 4);
    return;
  }
  let j = 0;
  for (; j + 4 <= n; j += 4) v128.store(dst + <usize>j * 4, v128.load(src + <usize>j * 4));
  for (; j < n; j++) store<i32>(dst + <usize>j * 4, load<i32>(src + <usize>j * 4));
}
