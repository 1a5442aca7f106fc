// Winograd F(2x2, 3x3) convolution transforms for the CPU backend (AssemblyScript, compiled by
// `deno task wasm`): Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks",
// section 4. A 3x3, stride-1, padding-1 convolution is cut into 2x2 output tiles; each tile's
// 4x4 input patch d and each 3x3 filter g are transformed,
//   V = B^T d B,  U = G g G^T,
// the sixteen elementwise products summed over input channels are sixteen GEMMs
// (M[k] = U[k] V[k], [O, C] x [C, tiles]: `winograd.ts` one folder up runs them), and the
// output tile is A^T M A: 16 multiplications per tile and channel pair where direct convolution
// needs 36 (2.25x fewer). With
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1],
// the input and output transforms are additions only, and G's halves are exact in float32, so
// the results differ from direct convolution by rounding alone.
//
// Layouts: V [16, C, T] and M [16, O, T] with T = images x tiles (tile t = image * TH * TW +
// ty * TW + tx, TH = ceil(H / 2), TW = ceil(W / 2)); U [16, O, C]; each block k padded by a cache
// line (`winograd_block_floats`). Pointers are byte addresses;
// each kernel takes `(args..., counter, tid, nthreads)` and its threads claim chunks of units
// from the counter (see share.ts): filters, input planes (image, c) or output planes (image, o).
// Planes go channel-major (unit p is image p % cnt of channel p / cnt), the order of the
// transforms' tiles, so that a chunk of planes reads or writes each block in one run; image-major
// order broke each block into runs of one image's tiles (a few cache lines for F(4x4) at 32x32),
// too short for the prefetchers, and the output transforms ran at half speed.
import { chunkSize, nextChunk } from "./share";
import { activate4 } from "./gemm";

const HALF: f32 = 0.5;

/**
 * U [16, O, C] from 3x3 filters: U[k][o][c] = (G g G^T)[k] with g = w[o, c] (w [O, C, 3, 3]),
 * or with `adjoint` = 1 and w [C, O, 3, 3] (a transposed convolution's layout), g = w[c, o]
 * turned by 180 degrees: the forward convolution by those is the adjoint of the one by w.
 */
export function winograd_filter(
  w: usize, O: i32, C: i32, adjoint: i32, dst: usize,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const filters = O * C, plane = <usize>winograd_block_floats(O, C) * 4;
  const size = chunkSize(filters, nthreads);
  for (let u = nextChunk(counter, nthreads, -1); u * size < filters; u = nextChunk(counter, nthreads, u)) {
    const f1 = min(filters, (u + 1) * size);
    for (let f = u * size; f < f1; f++) {
      const o = f / C, c = f % C;
      // g[r][s] at src + (r * 3 + s) * step * 4 (step -1 walks the turned filter backwards).
      const src = adjoint ? w + (<usize>(c * O + o) * 9 + 8) * 4 : w + <usize>f * 36;
      const step: isize = adjoint ? -4 : 4;
      const g0 = load<f32>(src), g1 = load<f32>(src + step), g2 = load<f32>(src + 2 * step);
      const g3 = load<f32>(src + 3 * step), g4 = load<f32>(src + 4 * step);
      const g5 = load<f32>(src + 5 * step), g6 = load<f32>(src + 6 * step);
      const g7 = load<f32>(src + 7 * step), g8 = load<f32>(src + 8 * step);
      // q = G g, row by row (4 x 3).
      const q00 = g0, q01 = g1, q02 = g2;
      const q10 = HALF * (g0 + g3 + g6), q11 = HALF * (g1 + g4 + g7), q12 = HALF * (g2 + g5 + g8);
      const q20 = HALF * (g0 - g3 + g6), q21 = HALF * (g1 - g4 + g7), q22 = HALF * (g2 - g5 + g8);
      const q30 = g6, q31 = g7, q32 = g8;
      // U = q G^T, stored U[r * 4 + s] at dst + ((r * 4 + s) * O * C + f) * 4.
      const out = dst + <usize>f * 4;
      filterRow(out, plane * 0, plane, q00, q01, q02);
      filterRow(out, plane * 4, plane, q10, q11, q12);
      filterRow(out, plane * 8, plane, q20, q21, q22);
      filterRow(out, plane * 12, plane, q30, q31, q32);
    }
  }
}

/** One row of U: (a, b, c) G^T = (a, (a + b + c) / 2, (a - b + c) / 2, c). */
// @ts-ignore: decorator
@inline function filterRow(out: usize, at: usize, plane: usize, a: f32, b: f32, c: f32): void {
  store<f32>(out + at, a);
  store<f32>(out + at + plane, HALF * (a + b + c));
  store<f32>(out + at + 2 * plane, HALF * (a - b + c));
  store<f32>(out + at + 3 * plane, c);
}

/**
 * Floats from the start of block k of a [16, rows, cols] transform (V, M, E, U or D; [36, rows,
 * cols] for F(4x4, 3x3) in winograd4.ts) to the start of block k + 1: rows * cols and one cache line more. Blocks exactly rows * cols apart are a
 * power of two bytes apart at the U-Net's shapes (32 channels x 8,192 tiles: 1 MiB), so the
 * sixteen blocks a kernel writes or reads side by side fall into the same cache sets, and sixteen
 * streams overflow L1's eight ways: the transforms ran at a seventh of the store bandwidth.
 * `winograd.ts` one folder up sizes and strides the buffers and the GEMMs by this.
 */
export function winograd_block_floats(rows: i32, cols: i32): i32 {
  return rows * cols + 16;
}

/** Bytes between the blocks k and k + 1 of a [16 or 36, channels, cnt * tiles] transform. */
// @ts-ignore: decorator
@inline export function transformStride(channels: i32, cnt: i32, tiles: i32): usize {
  return <usize>winograd_block_floats(channels, cnt * tiles) * 4;
}

/**
 * Image plane of unit p of a transform's loop over cnt images x `channels` (in the channel-major
 * order above: image p % cnt of channel p / cnt) in the images [cnt, channels, H, W] at `images`.
 */
// @ts-ignore: decorator
@inline export function imagePlane(images: usize, p: i32, cnt: i32, channels: i32, H: i32, W: i32): usize {
  return images + <usize>((p % cnt) * channels + p / cnt) * <usize>(H * W) * 4;
}

/**
 * Address of block 0's value for the first tile of unit p (channel p / cnt, image p % cnt): rows
 * of a block are channels of cnt x tiles values, so in channel-major order it is p x tiles in.
 */
// @ts-ignore: decorator
@inline export function planeTiles(buf: usize, p: i32, tiles: i32): usize {
  return buf + <usize>p * <usize>tiles * 4;
}

/**
 * Floats of `winograd_input`'s scratch per thread for images W wide: four patch rows, each with
 * a zero column on the left and zeros past the right edge to the end of the last group of four
 * tiles.
 */
export function winograd_input_scratch(W: i32): i32 {
  return 4 * paddedWidth(W);
}

/** A patch row in the scratch: image columns -1 .. 2 * ceil4(TW) + 6, padded with zeros. */
// @ts-ignore: decorator
@inline function paddedWidth(W: i32): i32 {
  const TW = (W + 1) >> 1;
  return 2 * ((TW + 3) & ~3) + 8;
}

/**
 * V [16, C, T] from images x [cnt, C, H, W] (at `src`): the 4x4 patch of each 2x2 output tile
 * (rows 2ty-1 .. 2ty+2, columns 2tx-1 .. 2tx+2; zero outside the image) as B^T d B. For each
 * row of tiles the four patch rows are first copied into the thread's scratch (at `scratch` +
 * tid * `winograd_input_scratch(W)` floats) between zeros, so that every group of four
 * neighbouring tiles, one per vector lane, is read by vector loads alone; each of their sixteen
 * values is then one vector store into V.
 */
export function winograd_input(
  src: usize, C: i32, H: i32, W: i32, cnt: i32, dst: usize, scratch: usize,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const TH = (H + 1) >> 1, TW = (W + 1) >> 1, tiles = TH * TW;
  const kStride = transformStride(C, cnt, tiles); // bytes from V[k] to V[k + 1]
  const Wp = paddedWidth(W), rowBytes = <usize>Wp * 4;
  const rows = scratch + <usize>tid * <usize>winograd_input_scratch(W) * 4;
  memory.fill(rows, 0, 4 * rowBytes);
  const planes = cnt * C;
  const size = chunkSize(planes, nthreads);
  for (let u = nextChunk(counter, nthreads, -1); u * size < planes; u = nextChunk(counter, nthreads, u)) {
    const p1 = min(planes, (u + 1) * size);
    for (let p = u * size; p < p1; p++) {
      const plane = imagePlane(src, p, cnt, C, H, W);
      const first = planeTiles(dst, p, tiles);
      for (let ty = 0; ty < TH; ty++) {
        // Patch rows 2ty-1 .. 2ty+2 into the scratch, image column x at x + 1; rows outside
        // the image are zeros (the columns outside it stay zero from the fill above).
        for (let r = 0; r < 4; r++) {
          const y = 2 * ty - 1 + r, to = rows + <usize>r * rowBytes + 4;
          if (y >= 0 && y < H) memory.copy(to, plane + <usize>(y * W) * 4, <usize>W * 4);
          else memory.fill(to, 0, <usize>W * 4);
        }
        for (let tx = 0; tx < TW; tx += 4) {
          // Lane q holds tile tx + q: patch columns 2(tx + q) .. + 3 of the scratch rows.
          const at = rows + <usize>(2 * tx) * 4;
          const out = first + <usize>(ty * TW + tx) * 4;
          const lanes = min(4, TW - tx);
          // Each patch row's taps are loaded once (lane q of t_j: the row's value 2q + j, two
          // vector loads and a shuffle of their even or odd lanes), and the row times B is
          // (t0 - t2, t1 + t2, t2 - t1, t1 - t3).
          let lo = v128.load(at), hi = v128.load(at + 16);
          let mid = v128.load(at + 8), top = v128.load(at + 24);
          let t0 = v128.shuffle<f32>(lo, hi, 0, 2, 4, 6), t1 = v128.shuffle<f32>(lo, hi, 1, 3, 5, 7);
          let t2 = v128.shuffle<f32>(mid, top, 0, 2, 4, 6), t3 = v128.shuffle<f32>(mid, top, 1, 3, 5, 7);
          const a0 = f32x4.sub(t0, t2), a1 = f32x4.add(t1, t2), a2 = f32x4.sub(t2, t1), a3 = f32x4.sub(t1, t3);
          lo = v128.load(at + rowBytes); hi = v128.load(at + rowBytes + 16);
          mid = v128.load(at + rowBytes + 8); top = v128.load(at + rowBytes + 24);
          t0 = v128.shuffle<f32>(lo, hi, 0, 2, 4, 6); t1 = v128.shuffle<f32>(lo, hi, 1, 3, 5, 7);
          t2 = v128.shuffle<f32>(mid, top, 0, 2, 4, 6); t3 = v128.shuffle<f32>(mid, top, 1, 3, 5, 7);
          const b0 = f32x4.sub(t0, t2), b1 = f32x4.add(t1, t2), b2 = f32x4.sub(t2, t1), b3 = f32x4.sub(t1, t3);
          lo = v128.load(at + 2 * rowBytes); hi = v128.load(at + 2 * rowBytes + 16);
          mid = v128.load(at + 2 * rowBytes + 8); top = v128.load(at + 2 * rowBytes + 24);
          t0 = v128.shuffle<f32>(lo, hi, 0, 2, 4, 6); t1 = v128.shuffle<f32>(lo, hi, 1, 3, 5, 7);
          t2 = v128.shuffle<f32>(mid, top, 0, 2, 4, 6); t3 = v128.shuffle<f32>(mid, top, 1, 3, 5, 7);
          const c0 = f32x4.sub(t0, t2), c1 = f32x4.add(t1, t2), c2 = f32x4.sub(t2, t1), c3 = f32x4.sub(t1, t3);
          lo = v128.load(at + 3 * rowBytes); hi = v128.load(at + 3 * rowBytes + 16);
          mid = v128.load(at + 3 * rowBytes + 8); top = v128.load(at + 3 * rowBytes + 24);
          t0 = v128.shuffle<f32>(lo, hi, 0, 2, 4, 6); t1 = v128.shuffle<f32>(lo, hi, 1, 3, 5, 7);
          t2 = v128.shuffle<f32>(mid, top, 0, 2, 4, 6); t3 = v128.shuffle<f32>(mid, top, 1, 3, 5, 7);
          const d0 = f32x4.sub(t0, t2), d1 = f32x4.add(t1, t2), d2 = f32x4.sub(t2, t1), d3 = f32x4.sub(t1, t3);
          // B^T over the rows, column by column: (r0 - r2, r1 + r2, r2 - r1, r1 - r3).
          inputColumn(out, 0, kStride, a0, b0, c0, d0, lanes);
          inputColumn(out, 1, kStride, a1, b1, c1, d1, lanes);
          inputColumn(out, 2, kStride, a2, b2, c2, d2, lanes);
          inputColumn(out, 3, kStride, a3, b3, c3, d3, lanes);
        }
      }
    }
  }
}

/** Values s, 4 + s, 8 + s and 12 + s of four tiles from column s of the patch rows times B. */
// @ts-ignore: decorator
@inline function inputColumn(
  out: usize, s: i32, kStride: usize, r0: v128, r1: v128, r2: v128, r3: v128, lanes: i32,
): void {
  storeTiles(out + <usize>s * kStride, f32x4.sub(r0, r2), lanes);
  storeTiles(out + <usize>(4 + s) * kStride, f32x4.add(r1, r2), lanes);
  storeTiles(out + <usize>(8 + s) * kStride, f32x4.sub(r2, r1), lanes);
  storeTiles(out + <usize>(12 + s) * kStride, f32x4.sub(r1, r3), lanes);
}

/** Stores the first `lanes` lanes of v at out (all four as one vector store). */
// @ts-ignore: decorator
@inline export function storeTiles(out: usize, v: v128, lanes: i32): void {
  if (lanes == 4) {
    v128.store(out, v);
    return;
  }
  store<f32>(out, f32x4.extract_lane(v, 0));
  if (lanes > 1) store<f32>(out + 4, f32x4.extract_lane(v, 1));
  if (lanes > 2) store<f32>(out + 8, f32x4.extract_lane(v, 2));
}

/**
 * y [cnt, O, H, W] (at `dst`) from M [16, O, T]: each 2x2 output tile A^T m A, plus bias[o]
 * (`bias` 0: none), through activation `act` (the GEMM epilogue's codes); the tiles' rows and
 * columns past an odd H or W are dropped. Four neighbouring tiles at a time, one per lane: each
 * of their sixteen values is one vector load from M, and each output row of the four tiles two
 * vector stores.
 */
export function winograd_output(
  src: usize, O: i32, H: i32, W: i32, cnt: i32, bias: usize, act: i32, dst: usize,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const TH = (H + 1) >> 1, TW = (W + 1) >> 1, tiles = TH * TW;
  const kStride = transformStride(O, cnt, tiles);
  const planes = cnt * O;
  const size = chunkSize(planes, nthreads);
  for (let u = nextChunk(counter, nthreads, -1); u * size < planes; u = nextChunk(counter, nthreads, u)) {
    const p1 = min(planes, (u + 1) * size);
    for (let p = u * size; p < p1; p++) {
      const b = f32x4.splat(bias ? load<f32>(bias + <usize>(p / cnt) * 4) : 0);
      const plane = imagePlane(dst, p, cnt, O, H, W);
      const first = planeTiles(src, p, tiles);
      for (let ty = 0; ty < TH; ty++) {
        for (let tx = 0; tx < TW; tx += 4) {
          const m = first + <usize>(ty * TW + tx) * 4;
          const lanes = min(4, TW - tx);
          // A^T over the rows of m, then A over each row's columns: with s0 = m0 + m1 + m2 and
          // s1 = m1 - m2 - m3 (rows), y[r] = (s_r0 + s_r1 + s_r2, s_r1 - s_r2 - s_r3).
          const y = 2 * ty, x = 2 * tx;
          const top = plane + <usize>(y * W + x) * 4;
          outputRow(m, kStride, 0, b, act, top, W - x, lanes);
          if (y + 1 < H) outputRow(m, kStride, 1, b, act, top + <usize>W * 4, W - x, lanes);
        }
      }
    }
  }
}

/**
 * Output row r (0 or 1) of four tiles: (A^T m)[r] = m0 + m1 + m2 or m1 - m2 - m3 per column,
 * then the two pixels of each tile, interleaved into 8 consecutive pixels (fewer at the edge:
 * `room` pixels are left in the row).
 */
// @ts-ignore: decorator
@inline function outputRow(
  m: usize, kStride: usize, r: i32, b: v128, act: i32, out: usize, room: i32, lanes: i32,
): void {
  const s0 = rowOfAtM(m, kStride, r, 0), s1 = rowOfAtM(m, kStride, r, 1);
  const s2 = rowOfAtM(m, kStride, r, 2), s3 = rowOfAtM(m, kStride, r, 3);
  const left = activate4(f32x4.add(f32x4.add(f32x4.add(s0, s1), s2), b), act);
  const right = activate4(f32x4.add(f32x4.sub(f32x4.sub(s1, s2), s3), b), act);
  const p0 = v128.shuffle<f32>(left, right, 0, 4, 1, 5);
  const p1 = v128.shuffle<f32>(left, right, 2, 6, 3, 7);
  if (lanes == 4 && room >= 8) {
    v128.store(out, p0);
    v128.store(out + 16, p1);
    return;
  }
  const n = min(room, 2 * lanes);
  for (let j = 0; j < n; j++) {
    const v = j < 4 ? p0 : p1;
    const k = j & 3;
    store<f32>(
      out + <usize>j * 4,
      k == 0 ? f32x4.extract_lane(v, 0) : k == 1 ? f32x4.extract_lane(v, 1) : k == 2
        ? f32x4.extract_lane(v, 2)
        : f32x4.extract_lane(v, 3),
    );
  }
}

/** Column s of (A^T m)[r] for four tiles: m[0][s] + m[1][s] + m[2][s], or m[1][s] - m[2][s] - m[3][s]. */
// @ts-ignore: decorator
@inline function rowOfAtM(m: usize, kStride: usize, r: i32, s: i32): v128 {
  const m1 = v128.load(m + <usize>(4 + s) * kStride), m2 = v128.load(m + <usize>(8 + s) * kStride);
  if (r == 0) return f32x4.add(f32x4.add(v128.load(m + <usize>s * kStride), m1), m2);
  return f32x4.sub(f32x4.sub(m1, m2), v128.load(m + <usize>(12 + s) * kStride));
}

// The weight gradient. Forward, y_t = A^T [U ⊙ V_t] A per tile t, with U = G w G^T; so for an
// output gradient e_t (2x2) dL/dw = G^T [sum_t (A e_t A^T) ⊙ V_t] G: the output gradient's tiles
// transformed by A e A^T (`winograd_grad_output`), sixteen GEMMs [O, T] x [T, C] summing over the
// tiles (`winograd.ts` one folder up), and G^T . G back to 3x3 (`winograd_filter_grad`).

/**
 * E [16, O, T] from an output gradient g [cnt, O, H, W] (at `src`): each 2x2 tile e (zeros past
 * an odd H or W) as A e A^T, with A e A^T = rows (e0, e0 + e1, e0 - e1, -e1) of e, then the same
 * over each row's two columns. Four neighbouring tiles at a time, one per lane.
 */
export function winograd_grad_output(
  src: usize, O: i32, H: i32, W: i32, cnt: i32, dst: usize,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const TH = (H + 1) >> 1, TW = (W + 1) >> 1, tiles = TH * TW;
  const kStride = transformStride(O, cnt, tiles);
  const planes = cnt * O;
  const size = chunkSize(planes, nthreads);
  for (let u = nextChunk(counter, nthreads, -1); u * size < planes; u = nextChunk(counter, nthreads, u)) {
    const p1 = min(planes, (u + 1) * size);
    for (let p = u * size; p < p1; p++) {
      const plane = imagePlane(src, p, cnt, O, H, W);
      const first = planeTiles(dst, p, tiles);
      for (let ty = 0; ty < TH; ty++) {
        const y = 2 * ty;
        for (let tx = 0; tx < TW; tx += 4) {
          const x = 2 * tx, lanes = min(4, TW - tx);
          const row0 = plane + <usize>(y * W + x) * 4;
          // Lane q: the tile's left and right pixel of each of its two rows.
          const full = lanes == 4 && x + 8 <= W;
          const l0 = tilePixels(row0, W - x, full, 0), r0 = tilePixels(row0, W - x, full, 1);
          const second = y + 1 < H;
          const row1 = row0 + <usize>W * 4;
          const zero = f32x4.splat(0);
          const l1 = second ? tilePixels(row1, W - x, full, 0) : zero;
          const r1 = second ? tilePixels(row1, W - x, full, 1) : zero;
          // Rows of A e: (e0, e0 + e1, e0 - e1, -e1), each a (left, right) pair.
          const out = first + <usize>(ty * TW + tx) * 4;
          gradRow(out, 0, kStride, l0, r0, lanes);
          gradRow(out, 4, kStride, f32x4.add(l0, l1), f32x4.add(r0, r1), lanes);
          gradRow(out, 8, kStride, f32x4.sub(l0, l1), f32x4.sub(r0, r1), lanes);
          gradRow(out, 12, kStride, f32x4.neg(l1), f32x4.neg(r1), lanes);
        }
      }
    }
  }
}

/**
 * Lane q: pixel 2q + j of a row (j = 0 left, 1 right), zero at or past `room` pixels. With
 * `full` (8 pixels in the row) two vector loads and one shuffle.
 */
// @ts-ignore: decorator
@inline function tilePixels(row: usize, room: i32, full: bool, j: i32): v128 {
  if (full) {
    const lo = v128.load(row), hi = v128.load(row + 16);
    return j ? v128.shuffle<f32>(lo, hi, 1, 3, 5, 7) : v128.shuffle<f32>(lo, hi, 0, 2, 4, 6);
  }
  return f32x4(
    rowPixel(row, room, j),
    rowPixel(row, room, 2 + j),
    rowPixel(row, room, 4 + j),
    rowPixel(row, room, 6 + j),
  );
}

// @ts-ignore: decorator
@inline function rowPixel(row: usize, room: i32, x: i32): f32 {
  return x < room ? load<f32>(row + <usize>x * 4) : 0;
}

/** Values k0 .. k0 + 3 of four tiles: a row (a, b) of A e times A^T, (a, a + b, a - b, -b). */
// @ts-ignore: decorator
@inline function gradRow(out: usize, k0: i32, kStride: usize, a: v128, b: v128, lanes: i32): void {
  storeTiles(out + <usize>k0 * kStride, a, lanes);
  storeTiles(out + <usize>(k0 + 1) * kStride, f32x4.add(a, b), lanes);
  storeTiles(out + <usize>(k0 + 2) * kStride, f32x4.sub(a, b), lanes);
  storeTiles(out + <usize>(k0 + 3) * kStride, f32x4.neg(b), lanes);
}

/**
 * dW [O, C, 3, 3] (at `dst`) from the summed products D [16, O, C] (at `src`): G^T D G per
 * filter, with G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1].
 */
export function winograd_filter_grad(
  src: usize, O: i32, C: i32, dst: usize,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const filters = O * C, plane = <usize>winograd_block_floats(O, C) * 4;
  const size = chunkSize(filters, nthreads);
  for (let u = nextChunk(counter, nthreads, -1); u * size < filters; u = nextChunk(counter, nthreads, u)) {
    const f1 = min(filters, (u + 1) * size);
    for (let f = u * size; f < f1; f++) {
      const d = src + <usize>f * 4;
      // Rows r of D as vectors (columns s in the lanes), then G^T over the rows.
      const d0 = filterLanes(d, 0, plane), d1 = filterLanes(d, 4, plane);
      const d2 = filterLanes(d, 8, plane), d3 = filterLanes(d, 12, plane);
      const half = f32x4.splat(HALF);
      const q0 = f32x4.add(d0, f32x4.mul(half, f32x4.add(d1, d2)));
      const q1 = f32x4.mul(half, f32x4.sub(d1, d2));
      const q2 = f32x4.add(d3, f32x4.mul(half, f32x4.add(d1, d2)));
      // Then G over each row's four columns: (c0 + (c1 + c2) / 2, (c1 - c2) / 2, c3 + (c1 + c2) / 2).
      const out = dst + <usize>f * 36;
      filterGradRow(out, q0);
      filterGradRow(out + 12, q1);
      filterGradRow(out + 24, q2);
    }
  }
}

/** D[k0 .. k0 + 3] of one filter as a vector (its entries lie `plane` bytes apart). */
// @ts-ignore: decorator
@inline function filterLanes(d: usize, k0: i32, plane: usize): v128 {
  return f32x4(
    load<f32>(d + <usize>k0 * plane),
    load<f32>(d + <usize>(k0 + 1) * plane),
    load<f32>(d + <usize>(k0 + 2) * plane),
    load<f32>(d + <usize>(k0 + 3) * plane),
  );
}

/** One row of the 3x3 gradient from a row (c0, c1, c2, c3) of G^T D. */
// @ts-ignore: decorator
@inline function filterGradRow(out: usize, c: v128): void {
  const c0 = f32x4.extract_lane(c, 0), c1 = f32x4.extract_lane(c, 1);
  const c2 = f32x4.extract_lane(c, 2), c3 = f32x4.extract_lane(c, 3);
  store<f32>(out, c0 + HALF * (c1 + c2));
  store<f32>(out + 4, HALF * (c1 - c2));
  store<f32>(out + 8, c3 + HALF * (c1 + c2));
}
