// Winograd F(4x4, 3x3) convolution transforms for the CPU backend (AssemblyScript, compiled by
// `deno task wasm`): Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks",
// section 4 (the F(4x4, 3x3) of its section 4.2, interpolation points 0, 1, -1, 2, -2 and
// infinity). The same scheme as F(2x2, 3x3) in winograd.ts beside this file with 4x4 output
// tiles: each tile's 6x6 input patch d and each 3x3 filter g are transformed,
//   V = B^T d B,  U = G g G^T,
// thirty-six GEMMs over the channels give M[k] = U[k] V[k] ([O, C] x [C, tiles]), and the
// output tile is A^T M A: 36 multiplications per 16 outputs (2.25 per pixel against F(2x2)'s 4
// and direct convolution's 9), and 36 / 16 = 2.25 transform values per pixel for V, M and E
// against F(2x2)'s 4. With
//   B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
//          0 4 0 -5 0 1],
//   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1],
//   A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1],
// the input and output transforms multiply by small powers of two and by 5 (exact), but G's
// sixths are not exact in float32 and the transforms scale values by up to 100 before the
// sums cancel them, so the rounding error is several times F(2x2)'s (Lavin & Gray 2016, 5.1;
// tests/ops_conv_test.ts states the bounds).
//
// Layouts: V [36, C, T] and M [36, O, T] with T = images x tiles (tile t = image * TH * TW +
// ty * TW + tx, TH = ceil(H / 4), TW = ceil(W / 4)); U [36, O, C]; blocks padded by a cache
// line as F(2x2)'s (`winograd_block_floats`: thirty-six streams side by side would collide in L1
// sets all the more). Pointers are byte addresses; each kernel takes `(args..., counter, tid,
// nthreads)` and its threads claim chunks of units from the counter (see share.ts), planes
// channel-major as in winograd.ts.
//
// Four neighbouring tiles go one per vector lane, as in F(2x2). A tile's pixels are four
// consecutive floats, so a vector load holds one tile's row: the kernels combine whole rows
// first (B^T over the patch rows, A^T over M's rows, A over the gradient's rows: elementwise on
// such vectors, no shuffles), and transpose 4x4 once per combined row.
import { chunkSize, nextChunk } from "./share";
import { activate4 } from "./gemm";
import { imagePlane, planeTiles, storeTiles, transformStride, winograd_block_floats } from "./winograd";

const QUARTER: f32 = 0.25;
const SIXTH: f32 = <f32>(1.0 / 6.0);
const TWELFTH: f32 = <f32>(1.0 / 12.0);
const TWENTY_FOURTH: f32 = <f32>(1.0 / 24.0);

/**
 * U [36, O, C] from 3x3 filters: U[k][o][c] = (G g G^T)[k] with g = w[o, c] (w [O, C, 3, 3]),
 * or with `adjoint` = 1 and w [C, O, 3, 3], g = w[c, o] turned by 180 degrees (the transposed
 * convolution, as `winograd_filter`).
 */
export function winograd4_filter(
  w: usize, O: i32, C: i32, adjoint: i32, dst: usize,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const filters = O * C, plane = <usize>winograd_block_floats(O, C) * 4;
  const size = chunkSize(filters, nthreads);
  for (let u = nextChunk(counter, nthreads, -1); u * size < filters; u = nextChunk(counter, nthreads, u)) {
    const f1 = min(filters, (u + 1) * size);
    for (let f = u * size; f < f1; f++) {
      const o = f / C, c = f % C;
      const src = adjoint ? w + (<usize>(c * O + o) * 9 + 8) * 4 : w + <usize>f * 36;
      const step: isize = adjoint ? -4 : 4;
      const g0 = load<f32>(src), g1 = load<f32>(src + step), g2 = load<f32>(src + 2 * step);
      const g3 = load<f32>(src + 3 * step), g4 = load<f32>(src + 4 * step);
      const g5 = load<f32>(src + 5 * step), g6 = load<f32>(src + 6 * step);
      const g7 = load<f32>(src + 7 * step), g8 = load<f32>(src + 8 * step);
      // q = G g, row by row (6 x 3), then U = q G^T row by row, U[r * 6 + s] at plane * (r * 6 + s).
      const out = dst + <usize>f * 4;
      filterRow4(out, 0, plane, QUARTER * g0, QUARTER * g1, QUARTER * g2);
      filterRow4(out, 6, plane, -SIXTH * (g0 + g3 + g6), -SIXTH * (g1 + g4 + g7), -SIXTH * (g2 + g5 + g8));
      filterRow4(out, 12, plane, -SIXTH * (g0 - g3 + g6), -SIXTH * (g1 - g4 + g7), -SIXTH * (g2 - g5 + g8));
      filterRow4(
        out, 18, plane,
        TWENTY_FOURTH * g0 + TWELFTH * g3 + SIXTH * g6,
        TWENTY_FOURTH * g1 + TWELFTH * g4 + SIXTH * g7,
        TWENTY_FOURTH * g2 + TWELFTH * g5 + SIXTH * g8,
      );
      filterRow4(
        out, 24, plane,
        TWENTY_FOURTH * g0 - TWELFTH * g3 + SIXTH * g6,
        TWENTY_FOURTH * g1 - TWELFTH * g4 + SIXTH * g7,
        TWENTY_FOURTH * g2 - TWELFTH * g5 + SIXTH * g8,
      );
      filterRow4(out, 30, plane, g6, g7, g8);
    }
  }
}

/** One row of U, values k0 .. k0 + 5: (a, b, c) G^T. */
// @ts-ignore: decorator
@inline function filterRow4(out: usize, k0: i32, plane: usize, a: f32, b: f32, c: f32): void {
  const at = out + <usize>k0 * plane;
  const even = TWENTY_FOURTH * a + SIXTH * c, odd = TWELFTH * b;
  store<f32>(at, QUARTER * a);
  store<f32>(at + plane, -SIXTH * (a + b + c));
  store<f32>(at + 2 * plane, -SIXTH * (a - b + c));
  store<f32>(at + 3 * plane, even + odd);
  store<f32>(at + 4 * plane, even - odd);
  store<f32>(at + 5 * plane, c);
}

/**
 * Floats of `winograd4_input`'s scratch per thread for images W wide: six patch rows, each with a
 * zero column on the left and zeros past the right edge to the end of the last group of four
 * tiles and one vector more.
 */
export function winograd4_input_scratch(W: i32): i32 {
  return 6 * paddedWidth4(W);
}

/** A patch row in the scratch: image columns -1 .. 4 * ceil4(TW) + 2, padded with zeros. */
// @ts-ignore: decorator
@inline function paddedWidth4(W: i32): i32 {
  const TW = (W + 3) >> 2;
  return 4 * ((TW + 3) & ~3) + 4;
}

/**
 * V [36, C, T] from images x [cnt, C, H, W] (at `src`): the 6x6 patch of each 4x4 output tile
 * (rows 4ty-1 .. 4ty+4, columns 4tx-1 .. 4tx+4; zero outside the image) as B^T d B. For each row
 * of tiles the six patch rows are copied into the thread's scratch between zeros (as
 * `winograd_input`); for four neighbouring tiles, the vector at scratch column 4(tx + q) is
 * tile q's patch columns 0 .. 3, and the one after it tile q + 1's, whose first two are tile q's
 * columns 4 and 5. So B^T over the rows is vector arithmetic on five loads per patch row, and
 * each of its six rows one 4x4 transpose (lane q: tile q) before B over the columns.
 */
export function winograd4_input(
  src: usize, C: i32, H: i32, W: i32, cnt: i32, dst: usize, scratch: usize,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const TH = (H + 3) >> 2, TW = (W + 3) >> 2, tiles = TH * TW;
  const kStride = transformStride(C, cnt, tiles);
  const Wp = paddedWidth4(W), rowBytes = <usize>Wp * 4;
  const rows = scratch + <usize>tid * <usize>winograd4_input_scratch(W) * 4;
  memory.fill(rows, 0, 6 * rowBytes);
  const planes = cnt * C;
  const size = chunkSize(planes, nthreads);
  for (let u = nextChunk(counter, nthreads, -1); u * size < planes; u = nextChunk(counter, nthreads, u)) {
    const p1 = min(planes, (u + 1) * size);
    for (let p = u * size; p < p1; p++) {
      const plane = imagePlane(src, p, cnt, C, H, W);
      const first = planeTiles(dst, p, tiles);
      for (let ty = 0; ty < TH; ty++) {
        for (let r = 0; r < 6; r++) {
          const y = 4 * ty - 1 + r, to = rows + <usize>r * rowBytes + 4;
          if (y >= 0 && y < H) memory.copy(to, plane + <usize>(y * W) * 4, <usize>W * 4);
          else memory.fill(to, 0, <usize>W * 4);
        }
        for (let tx = 0; tx < TW; tx += 4) {
          const at = rows + <usize>(4 * tx) * 4;
          const out = first + <usize>(ty * TW + tx) * 4;
          const lanes = min(4, TW - tx);
          inputRow4(out, 0, kStride, at, rowBytes, lanes);
          inputRow4(out, 1, kStride, at, rowBytes, lanes);
          inputRow4(out, 2, kStride, at, rowBytes, lanes);
          inputRow4(out, 3, kStride, at, rowBytes, lanes);
          inputRow4(out, 4, kStride, at, rowBytes, lanes);
          inputRow4(out, 5, kStride, at, rowBytes, lanes);
        }
      }
    }
  }
}

/**
 * Row i of B^T d B for four tiles, V[6i .. 6i + 5]: row i of B^T d from the scratch vectors
 * (`rowOfBtD`), transposed to columns t0 .. t5 (lane q: tile q's column j), times B.
 */
// @ts-ignore: decorator
@inline function inputRow4(
  out: usize, i: i32, kStride: usize, at: usize, rowBytes: usize, lanes: i32,
): void {
  const v0 = rowOfBtD(at, rowBytes, i), v1 = rowOfBtD(at + 16, rowBytes, i);
  const v2 = rowOfBtD(at + 32, rowBytes, i), v3 = rowOfBtD(at + 48, rowBytes, i);
  const v4 = rowOfBtD(at + 64, rowBytes, i);
  const a = v128.shuffle<f32>(v0, v1, 0, 4, 1, 5), b = v128.shuffle<f32>(v2, v3, 0, 4, 1, 5);
  const c = v128.shuffle<f32>(v0, v1, 2, 6, 3, 7), d = v128.shuffle<f32>(v2, v3, 2, 6, 3, 7);
  const t0 = v128.shuffle<f32>(a, b, 0, 1, 4, 5), t1 = v128.shuffle<f32>(a, b, 2, 3, 6, 7);
  const t2 = v128.shuffle<f32>(c, d, 0, 1, 4, 5), t3 = v128.shuffle<f32>(c, d, 2, 3, 6, 7);
  const t4 = v128.shuffle<f32>(t0, v4, 1, 2, 3, 4), t5 = v128.shuffle<f32>(t1, v4, 1, 2, 3, 5);
  const k = out + <usize>(6 * i) * kStride;
  const four = f32x4.splat(4), five = f32x4.splat(5), two = f32x4.splat(2);
  // (t0 .. t5) B: (4t0 - 5t2 + t4, (t3 + t4) - 4(t1 + t2), (t4 - t3) + 4(t1 - t2),
  // (t4 - t2) + 2(t3 - t1), (t4 - t2) - 2(t3 - t1), 4t1 - 5t3 + t5).
  const e = f32x4.sub(t4, t2), o = f32x4.mul(two, f32x4.sub(t3, t1));
  storeTiles(k, f32x4.add(f32x4.sub(f32x4.mul(four, t0), f32x4.mul(five, t2)), t4), lanes);
  storeTiles(k + kStride, f32x4.sub(f32x4.add(t3, t4), f32x4.mul(four, f32x4.add(t1, t2))), lanes);
  storeTiles(k + 2 * kStride, f32x4.add(f32x4.sub(t4, t3), f32x4.mul(four, f32x4.sub(t1, t2))), lanes);
  storeTiles(k + 3 * kStride, f32x4.add(e, o), lanes);
  storeTiles(k + 4 * kStride, f32x4.sub(e, o), lanes);
  storeTiles(k + 5 * kStride, f32x4.add(f32x4.sub(f32x4.mul(four, t1), f32x4.mul(five, t3)), t5), lanes);
}

/** Row i of B^T d at one vector position p of the six patch rows (`rowBytes` apart). */
// @ts-ignore: decorator
@inline function rowOfBtD(p: usize, rowBytes: usize, i: i32): v128 {
  const four = f32x4.splat(4), five = f32x4.splat(5), two = f32x4.splat(2);
  if (i == 0) {
    const d0 = v128.load(p), d2 = v128.load(p + 2 * rowBytes), d4 = v128.load(p + 4 * rowBytes);
    return f32x4.add(f32x4.sub(f32x4.mul(four, d0), f32x4.mul(five, d2)), d4);
  }
  if (i == 5) {
    const d1 = v128.load(p + rowBytes), d3 = v128.load(p + 3 * rowBytes), d5 = v128.load(p + 5 * rowBytes);
    return f32x4.add(f32x4.sub(f32x4.mul(four, d1), f32x4.mul(five, d3)), d5);
  }
  const d1 = v128.load(p + rowBytes), d2 = v128.load(p + 2 * rowBytes);
  const d3 = v128.load(p + 3 * rowBytes), d4 = v128.load(p + 4 * rowBytes);
  if (i == 1) return f32x4.sub(f32x4.add(d3, d4), f32x4.mul(four, f32x4.add(d1, d2)));
  if (i == 2) return f32x4.add(f32x4.sub(d4, d3), f32x4.mul(four, f32x4.sub(d1, d2)));
  if (i == 3) return f32x4.add(f32x4.sub(d4, d2), f32x4.mul(two, f32x4.sub(d3, d1)));
  return f32x4.sub(f32x4.sub(d4, d2), f32x4.mul(two, f32x4.sub(d3, d1)));
}

/** 4x4 transpose: returns column j (lane q: lane j of r_q). */
// @ts-ignore: decorator
@inline function column(r0: v128, r1: v128, r2: v128, r3: v128, j: i32): v128 {
  if (j == 0 || j == 1) {
    const a = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), b = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
    return j == 0 ? v128.shuffle<f32>(a, b, 0, 1, 4, 5) : v128.shuffle<f32>(a, b, 2, 3, 6, 7);
  }
  const c = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7), d = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  return j == 2 ? v128.shuffle<f32>(c, d, 0, 1, 4, 5) : v128.shuffle<f32>(c, d, 2, 3, 6, 7);
}

/**
 * y [cnt, O, H, W] (at `dst`) from M [36, O, T]: each 4x4 output tile A^T m A, plus bias[o]
 * (`bias` 0: none), through activation `act`; rows and columns past H or W dropped. Four
 * neighbouring tiles at a time, one per lane: each output row is A^T over M's rows (vector
 * arithmetic on M's loads), A over the columns, and a 4x4 transpose into four tiles' four
 * consecutive pixels, 16 pixels in four vector stores.
 */
export function winograd4_output(
  src: usize, O: i32, H: i32, W: i32, cnt: i32, bias: usize, act: i32, dst: usize,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const TH = (H + 3) >> 2, TW = (W + 3) >> 2, tiles = TH * TW;
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
          const y = 4 * ty, x = 4 * tx;
          const top = plane + <usize>(y * W + x) * 4, rowBytes = <usize>W * 4;
          outputRow4(m, kStride, 0, b, act, top, W - x, lanes);
          if (y + 1 < H) outputRow4(m, kStride, 1, b, act, top + rowBytes, W - x, lanes);
          if (y + 2 < H) outputRow4(m, kStride, 2, b, act, top + 2 * rowBytes, W - x, lanes);
          if (y + 3 < H) outputRow4(m, kStride, 3, b, act, top + 3 * rowBytes, W - x, lanes);
        }
      }
    }
  }
}

/**
 * Output row r of four tiles: z = (A^T m)[r] (six columns), then z A = (z0 + z1 + z2 + z3 + z4,
 * (z1 - z2) + 2(z3 - z4), (z1 + z2) + 4(z3 + z4), (z1 - z2) + 8(z3 - z4) + z5), bias and
 * activation, transposed to the tiles' pixels (`room` pixels left in the row).
 */
// @ts-ignore: decorator
@inline function outputRow4(
  m: usize, kStride: usize, r: i32, b: v128, act: i32, out: usize, room: i32, lanes: i32,
): void {
  const z0 = rowOfAtM4(m, kStride, r, 0), z1 = rowOfAtM4(m, kStride, r, 1);
  const z2 = rowOfAtM4(m, kStride, r, 2), z3 = rowOfAtM4(m, kStride, r, 3);
  const z4 = rowOfAtM4(m, kStride, r, 4), z5 = rowOfAtM4(m, kStride, r, 5);
  const sp = f32x4.add(z1, z2), sm = f32x4.sub(z1, z2);
  const tp = f32x4.add(z3, z4), tm = f32x4.sub(z3, z4);
  const y0 = activate4(f32x4.add(f32x4.add(f32x4.add(z0, sp), tp), b), act);
  const y1 = activate4(f32x4.add(f32x4.add(sm, f32x4.mul(f32x4.splat(2), tm)), b), act);
  const y2 = activate4(f32x4.add(f32x4.add(sp, f32x4.mul(f32x4.splat(4), tp)), b), act);
  const y3 = activate4(
    f32x4.add(f32x4.add(f32x4.add(sm, f32x4.mul(f32x4.splat(8), tm)), z5), b),
    act,
  );
  // Tile q's four pixels: lane q of y0 .. y3.
  const p0 = column(y0, y1, y2, y3, 0), p1 = column(y0, y1, y2, y3, 1);
  const p2 = column(y0, y1, y2, y3, 2), p3 = column(y0, y1, y2, y3, 3);
  if (lanes == 4 && room >= 16) {
    v128.store(out, p0);
    v128.store(out + 16, p1);
    v128.store(out + 32, p2);
    v128.store(out + 48, p3);
    return;
  }
  storePixels(out, p0, room);
  if (lanes > 1) storePixels(out + 16, p1, room - 4);
  if (lanes > 2) storePixels(out + 32, p2, room - 8);
  if (lanes > 3) storePixels(out + 48, p3, room - 12);
}

/** The first min(4, room) lanes of v at out. */
// @ts-ignore: decorator
@inline function storePixels(out: usize, v: v128, room: i32): void {
  if (room >= 4) {
    v128.store(out, v);
    return;
  }
  if (room > 0) store<f32>(out, f32x4.extract_lane(v, 0));
  if (room > 1) store<f32>(out + 4, f32x4.extract_lane(v, 1));
  if (room > 2) store<f32>(out + 8, f32x4.extract_lane(v, 2));
}

/** Column s of (A^T m)[r] for four tiles (m's rows i at blocks 6i + s). */
// @ts-ignore: decorator
@inline function rowOfAtM4(m: usize, kStride: usize, r: i32, s: i32): v128 {
  const m1 = v128.load(m + <usize>(6 + s) * kStride), m2 = v128.load(m + <usize>(12 + s) * kStride);
  const m3 = v128.load(m + <usize>(18 + s) * kStride), m4 = v128.load(m + <usize>(24 + s) * kStride);
  if (r == 0) {
    return f32x4.add(f32x4.add(f32x4.add(v128.load(m + <usize>s * kStride), m1), m2), f32x4.add(m3, m4));
  }
  if (r == 1) return f32x4.add(f32x4.sub(m1, m2), f32x4.mul(f32x4.splat(2), f32x4.sub(m3, m4)));
  if (r == 2) return f32x4.add(f32x4.add(m1, m2), f32x4.mul(f32x4.splat(4), f32x4.add(m3, m4)));
  return f32x4.add(
    f32x4.add(f32x4.sub(m1, m2), f32x4.mul(f32x4.splat(8), f32x4.sub(m3, m4))),
    v128.load(m + <usize>(30 + s) * kStride),
  );
}

// The weight gradient, as F(2x2)'s (winograd.ts): dL/dw = G^T [sum_t (A e_t A^T) ⊙ V_t] G with
// e_t the 4x4 output gradient tile.

/**
 * E [36, O, T] from an output gradient g [cnt, O, H, W] (at `src`): each 4x4 tile e (zeros past
 * H or W) as A e A^T. Four neighbouring tiles at a time: their four rows as vectors (one tile's
 * row each), A over the rows, six rows (A e)[i] = e0, e0 + e1 + e2 + e3, e0 - e1 + e2 - e3,
 * e0 + 2e1 + 4e2 + 8e3, e0 - 2e1 + 4e2 - 8e3, e3, each transposed (lane q: tile q) and times A^T.
 */
export function winograd4_grad_output(
  src: usize, O: i32, H: i32, W: i32, cnt: i32, dst: usize,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const TH = (H + 3) >> 2, TW = (W + 3) >> 2, tiles = TH * TW;
  const kStride = transformStride(O, cnt, tiles);
  const planes = cnt * O;
  const size = chunkSize(planes, nthreads);
  for (let u = nextChunk(counter, nthreads, -1); u * size < planes; u = nextChunk(counter, nthreads, u)) {
    const p1 = min(planes, (u + 1) * size);
    for (let p = u * size; p < p1; p++) {
      const plane = imagePlane(src, p, cnt, O, H, W);
      const first = planeTiles(dst, p, tiles);
      for (let ty = 0; ty < TH; ty++) {
        const y = 4 * ty;
        for (let tx = 0; tx < TW; tx += 4) {
          const x = 4 * tx, lanes = min(4, TW - tx), room = W - x;
          const row0 = plane + <usize>(y * W + x) * 4, rowBytes = <usize>W * 4;
          const out = first + <usize>(ty * TW + tx) * 4;
          // e_rq: tile q's row r (four pixels), zeros past the edges.
          const ok1 = y + 1 < H, ok2 = y + 2 < H, ok3 = y + 3 < H;
          const e00 = tileRow(row0, room, true), e01 = tileRow(row0 + 16, room - 4, true);
          const e02 = tileRow(row0 + 32, room - 8, true), e03 = tileRow(row0 + 48, room - 12, true);
          const r1 = row0 + rowBytes, r2 = row0 + 2 * rowBytes, r3 = row0 + 3 * rowBytes;
          const e10 = tileRow(r1, room, ok1), e11 = tileRow(r1 + 16, room - 4, ok1);
          const e12 = tileRow(r1 + 32, room - 8, ok1), e13 = tileRow(r1 + 48, room - 12, ok1);
          const e20 = tileRow(r2, room, ok2), e21 = tileRow(r2 + 16, room - 4, ok2);
          const e22 = tileRow(r2 + 32, room - 8, ok2), e23 = tileRow(r2 + 48, room - 12, ok2);
          const e30 = tileRow(r3, room, ok3), e31 = tileRow(r3 + 16, room - 4, ok3);
          const e32 = tileRow(r3 + 32, room - 8, ok3), e33 = tileRow(r3 + 48, room - 12, ok3);
          gradRow4(out, 0, kStride, e00, e01, e02, e03, lanes);
          gradRow4(out, 5, kStride, e30, e31, e32, e33, lanes);
          // Rows 1 and 2 share e0 + e2 and e1 + e3; rows 3 and 4 e0 + 4e2 and 2e1 + 8e3.
          const s0 = f32x4.add(e00, e20), s1 = f32x4.add(e01, e21);
          const s2 = f32x4.add(e02, e22), s3 = f32x4.add(e03, e23);
          const t0 = f32x4.add(e10, e30), t1 = f32x4.add(e11, e31);
          const t2 = f32x4.add(e12, e32), t3 = f32x4.add(e13, e33);
          gradRow4(out, 1, kStride, f32x4.add(s0, t0), f32x4.add(s1, t1), f32x4.add(s2, t2), f32x4.add(s3, t3), lanes);
          gradRow4(out, 2, kStride, f32x4.sub(s0, t0), f32x4.sub(s1, t1), f32x4.sub(s2, t2), f32x4.sub(s3, t3), lanes);
          const four = f32x4.splat(4), eight = f32x4.splat(8), two = f32x4.splat(2);
          const u0 = f32x4.add(e00, f32x4.mul(four, e20)), u1 = f32x4.add(e01, f32x4.mul(four, e21));
          const u2 = f32x4.add(e02, f32x4.mul(four, e22)), u3 = f32x4.add(e03, f32x4.mul(four, e23));
          const v0 = f32x4.add(f32x4.mul(two, e10), f32x4.mul(eight, e30));
          const v1 = f32x4.add(f32x4.mul(two, e11), f32x4.mul(eight, e31));
          const v2 = f32x4.add(f32x4.mul(two, e12), f32x4.mul(eight, e32));
          const v3 = f32x4.add(f32x4.mul(two, e13), f32x4.mul(eight, e33));
          gradRow4(out, 3, kStride, f32x4.add(u0, v0), f32x4.add(u1, v1), f32x4.add(u2, v2), f32x4.add(u3, v3), lanes);
          gradRow4(out, 4, kStride, f32x4.sub(u0, v0), f32x4.sub(u1, v1), f32x4.sub(u2, v2), f32x4.sub(u3, v3), lanes);
        }
      }
    }
  }
}

/** Four pixels of a tile's row (zeros at or past `room`, or all zero when the row is not `ok`). */
// @ts-ignore: decorator
@inline function tileRow(row: usize, room: i32, ok: bool): v128 {
  if (!ok || room <= 0) return f32x4.splat(0);
  if (room >= 4) return v128.load(row);
  return f32x4(
    load<f32>(row),
    room > 1 ? load<f32>(row + 4) : 0,
    room > 2 ? load<f32>(row + 8) : 0,
    0,
  );
}

/**
 * E[6i .. 6i + 5] of four tiles from row i of A e as the tiles' vectors a_q (lane j: column j):
 * transposed (lane q: tile q), then (c0 .. c3) A^T = (c0, c0 + c1 + c2 + c3, c0 - c1 + c2 - c3,
 * c0 + 2c1 + 4c2 + 8c3, c0 - 2c1 + 4c2 - 8c3, c3).
 */
// @ts-ignore: decorator
@inline function gradRow4(
  out: usize, i: i32, kStride: usize, a0: v128, a1: v128, a2: v128, a3: v128, lanes: i32,
): void {
  const c0 = column(a0, a1, a2, a3, 0), c1 = column(a0, a1, a2, a3, 1);
  const c2 = column(a0, a1, a2, a3, 2), c3 = column(a0, a1, a2, a3, 3);
  const k = out + <usize>(6 * i) * kStride;
  const s = f32x4.add(c0, c2), t = f32x4.add(c1, c3);
  const u = f32x4.add(c0, f32x4.mul(f32x4.splat(4), c2));
  const v = f32x4.add(f32x4.mul(f32x4.splat(2), c1), f32x4.mul(f32x4.splat(8), c3));
  storeTiles(k, c0, lanes);
  storeTiles(k + kStride, f32x4.add(s, t), lanes);
  storeTiles(k + 2 * kStride, f32x4.sub(s, t), lanes);
  storeTiles(k + 3 * kStride, f32x4.add(u, v), lanes);
  storeTiles(k + 4 * kStride, f32x4.sub(u, v), lanes);
  storeTiles(k + 5 * kStride, c3, lanes);
}

/**
 * dW [O, C, 3, 3] (at `dst`) from the summed products D [36, O, C] (at `src`): G^T D G per
 * filter, with G^T = [1/4 -1/6 -1/6 1/24 1/24 0; 0 -1/6 1/6 1/12 -1/12 0;
 * 0 -1/6 -1/6 1/6 1/6 1].
 */
export function winograd4_filter_grad(
  src: usize, O: i32, C: i32, dst: usize,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const filters = O * C, plane = <usize>winograd_block_floats(O, C) * 4;
  const size = chunkSize(filters, nthreads);
  for (let u = nextChunk(counter, nthreads, -1); u * size < filters; u = nextChunk(counter, nthreads, u)) {
    const f1 = min(filters, (u + 1) * size);
    for (let f = u * size; f < f1; f++) {
      const d = src + <usize>f * 4;
      // Columns s of G^T D: rows 0 .. 5 of D's column s (lanes: s = 0 .. 3, then 4 and 5).
      const lo0 = filterLanes4(d, 0, plane), lo1 = filterLanes4(d, 6, plane);
      const lo2 = filterLanes4(d, 12, plane), lo3 = filterLanes4(d, 18, plane);
      const lo4 = filterLanes4(d, 24, plane), lo5 = filterLanes4(d, 30, plane);
      const hi0 = filterPair(d, 4, plane), hi1 = filterPair(d, 10, plane);
      const hi2 = filterPair(d, 16, plane), hi3 = filterPair(d, 22, plane);
      const hi4 = filterPair(d, 28, plane), hi5 = filterPair(d, 34, plane);
      const qlo0 = gtRow(lo0, lo1, lo2, lo3, lo4, lo5, 0), qhi0 = gtRow(hi0, hi1, hi2, hi3, hi4, hi5, 0);
      const qlo1 = gtRow(lo0, lo1, lo2, lo3, lo4, lo5, 1), qhi1 = gtRow(hi0, hi1, hi2, hi3, hi4, hi5, 1);
      const qlo2 = gtRow(lo0, lo1, lo2, lo3, lo4, lo5, 2), qhi2 = gtRow(hi0, hi1, hi2, hi3, hi4, hi5, 2);
      const out = dst + <usize>f * 36;
      filterGradRow4(out, qlo0, qhi0);
      filterGradRow4(out + 12, qlo1, qhi1);
      filterGradRow4(out + 24, qlo2, qhi2);
    }
  }
}

/** D[k0 .. k0 + 3] of one filter as a vector (its entries lie `plane` bytes apart). */
// @ts-ignore: decorator
@inline function filterLanes4(d: usize, k0: i32, plane: usize): v128 {
  return f32x4(
    load<f32>(d + <usize>k0 * plane),
    load<f32>(d + <usize>(k0 + 1) * plane),
    load<f32>(d + <usize>(k0 + 2) * plane),
    load<f32>(d + <usize>(k0 + 3) * plane),
  );
}

/** D[k0] and D[k0 + 1] of one filter in lanes 0 and 1. */
// @ts-ignore: decorator
@inline function filterPair(d: usize, k0: i32, plane: usize): v128 {
  return f32x4(load<f32>(d + <usize>k0 * plane), load<f32>(d + <usize>(k0 + 1) * plane), 0, 0);
}

/** Row r of G^T D over the columns in the lanes, from D's rows d0 .. d5. */
// @ts-ignore: decorator
@inline function gtRow(d0: v128, d1: v128, d2: v128, d3: v128, d4: v128, d5: v128, r: i32): v128 {
  if (r == 0) {
    return f32x4.add(
      f32x4.sub(f32x4.mul(f32x4.splat(QUARTER), d0), f32x4.mul(f32x4.splat(SIXTH), f32x4.add(d1, d2))),
      f32x4.mul(f32x4.splat(TWENTY_FOURTH), f32x4.add(d3, d4)),
    );
  }
  if (r == 1) {
    return f32x4.add(
      f32x4.mul(f32x4.splat(SIXTH), f32x4.sub(d2, d1)),
      f32x4.mul(f32x4.splat(TWELFTH), f32x4.sub(d3, d4)),
    );
  }
  return f32x4.add(
    f32x4.mul(f32x4.splat(SIXTH), f32x4.sub(f32x4.add(d3, d4), f32x4.add(d1, d2))),
    d5,
  );
}

/** One row of the 3x3 gradient from a row (c0 .. c5) of G^T D (c0 .. c3 in `lo`, c4, c5 in `hi`). */
// @ts-ignore: decorator
@inline function filterGradRow4(out: usize, lo: v128, hi: v128): void {
  const c0 = f32x4.extract_lane(lo, 0), c1 = f32x4.extract_lane(lo, 1);
  const c2 = f32x4.extract_lane(lo, 2), c3 = f32x4.extract_lane(lo, 3);
  const c4 = f32x4.extract_lane(hi, 0), c5 = f32x4.extract_lane(hi, 1);
  store<f32>(out, QUARTER * c0 - SIXTH * (c1 + c2) + TWENTY_FOURTH * (c3 + c4));
  store<f32>(out + 4, SIXTH * (c2 - c1) + TWELFTH * (c3 - c4));
  store<f32>(out + 8, SIXTH * ((c3 + c4) - (c1 + c2)) + c5);
}
