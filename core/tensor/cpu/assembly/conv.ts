// Convolution layout kernels for the CPU backend (AssemblyScript, compiled by `deno task wasm`):
// im2col, its adjoint col2im, and the batch fold that moves images between NCHW and the GEMMs'
// channel-major [C, images * pixels] layout. See `conv.ts` one folder up for how they are used.
//
// All f32 NCHW, pointers are byte addresses into the shared memory. Each kernel takes
// `(args..., counter, tid, nthreads)`; the threads claim chunks of its units from the counter
// (see share.ts): im2col's units are cols rows (c, ky, kx), col2im's output planes (image, c),
// so no two threads ever write the same float.
import { chunkSize, nextChunk } from "./share";
import { gemm_block } from "./gemm";

/** Copies `n` floats from `src` to `dst` (the ranges do not overlap). */
// @ts-ignore: decorator
@inline function copyRun(dst: usize, src: usize, n: i32): void {
  if (n >= 256) {
    memory.copy(dst, src, <usize>n * 4);
    return;
  }
  let j = 0;
  for (; j + 4 <= n; j += 4) v128.store(dst + <usize>j * 4, v128.load(src + <usize>j * 4));
  for (; j < n; j++) store<f32>(dst + <usize>j * 4, load<f32>(src + <usize>j * 4));
}

/** Sets `n` floats from `dst` to zero. */
// @ts-ignore: decorator
@inline function zeroRun(dst: usize, n: i32): void {
  if (n >= 256) {
    memory.fill(dst, 0, <usize>n * 4);
    return;
  }
  const z = f32x4.splat(0);
  let j = 0;
  for (; j + 4 <= n; j += 4) v128.store(dst + <usize>j * 4, z);
  for (; j < n; j++) store<f32>(dst + <usize>j * 4, 0);
}

/** dst[j] += src[j] for `n` floats. */
// @ts-ignore: decorator
@inline function addRun(dst: usize, src: usize, n: i32): void {
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const o = <usize>j * 4;
    v128.store(dst + o, f32x4.add(v128.load(dst + o), v128.load(src + o)));
  }
  for (; j < n; j++) {
    const o = <usize>j * 4;
    store<f32>(dst + o, load<f32>(dst + o) + load<f32>(src + o));
  }
}

/** First output column whose tap kx lands in an input row (ox*s - p + kx >= 0), clamped to wo. */
// @ts-ignore: decorator
@inline function validLo(s: i32, p: i32, k: i32, wo: i32): i32 {
  const d = p - k;
  return d <= 0 ? 0 : min(wo, (d + s - 1) / s);
}

/** One past the last output column whose tap kx lands in a row of width w (ox*s - p + kx < w). */
// @ts-ignore: decorator
@inline function validHi(s: i32, p: i32, k: i32, w: i32, wo: i32, lo: i32): i32 {
  const d = w - 1 + p - k;
  return d < 0 ? lo : max(lo, min(wo, d / s + 1));
}

/**
 * im2col of `cnt` images x [cnt, C, H, W] (at `src`) -> cols [C*kh*kw, cnt*Ho*Wo] (at `dst`):
 * cols[(c,ky,kx), (i,oy,ox)] = x[i, c, oy*sy-py+ky, ox*sx-px+kx], 0 outside the image.
 */
export function im2col(
  src: usize, C: i32, H: i32, W: i32,
  sy: i32, sx: i32, py: i32, px: i32, kh: i32, kw: i32,
  Ho: i32, Wo: i32, cnt: i32, dst: usize,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const rows = C * kh * kw;
  const size = chunkSize(rows, nthreads);
  for (let u = nextChunk(counter, nthreads, -1); u * size < rows; u = nextChunk(counter, nthreads, u)) {
    im2colRows(
      src, C, H, W, sy, sx, py, px, kh, kw, Ho, Wo, cnt, dst, <usize>cnt * <usize>(Ho * Wo),
      u * size, min(rows, (u + 1) * size),
    );
  }
}

/** Rows r0..r1 of `im2col`'s cols, whose rows lie `ld` floats apart. */
// @ts-ignore: decorator
@inline function im2colRows(
  src: usize, C: i32, H: i32, W: i32,
  sy: i32, sx: i32, py: i32, px: i32, kh: i32, kw: i32,
  Ho: i32, Wo: i32, cnt: i32, dst: usize, ld: usize, r0: i32, r1: i32,
): void {
  const P = Ho * Wo;
  {
    for (let r = r0; r < r1; r++) {
      const kx = r % kw, ky = (r / kw) % kh, c = r / (kw * kh);
      const lo = validLo(sx, px, kx, Wo), hi = validHi(sx, px, kx, W, Wo, lo);
      // Output rows oy in [oyLo, oyHi) read an input row; the others are padding.
      const oyLo = validLo(sy, py, ky, Ho), oyHi = validHi(sy, py, ky, H, Ho, oyLo);
      const row = dst + <usize>r * ld * 4;
      for (let i = 0; i < cnt; i++) {
        const plane = src + (<usize>(i * C + c) * <usize>(H * W)) * 4;
        const out = row + <usize>(i * P) * 4;
        zeroRun(out, oyLo * Wo);
        zeroRun(out + <usize>(oyHi * Wo) * 4, (Ho - oyHi) * Wo);
        if (oyLo >= oyHi) continue;
        if (sx == 1 && sy == 1 && W == Wo && lo < hi) {
          // "Same" geometry: the valid rows are one contiguous run of x shifted by kx - px; copy
          // it whole (from the first valid to the last valid element, so every float read lies
          // inside the plane) and then zero the columns that fell into the padding.
          const first = oyLo * Wo + lo, last = (oyHi - 1) * Wo + hi;
          const from = plane + <usize>((oyLo - py + ky) * W + lo - px + kx) * 4;
          copyRun(out + <usize>first * 4, from, last - first);
          if (lo > 0 || hi < Wo) {
            for (let oy = oyLo; oy < oyHi; oy++) {
              const o = out + <usize>(oy * Wo) * 4;
              for (let ox = 0; ox < lo; ox++) store<f32>(o + <usize>ox * 4, 0);
              for (let ox = hi; ox < Wo; ox++) store<f32>(o + <usize>ox * 4, 0);
            }
          }
          continue;
        }
        for (let oy = oyLo; oy < oyHi; oy++) {
          const o = out + <usize>(oy * Wo) * 4;
          const base = plane + <usize>((oy * sy - py + ky) * W - px + kx) * 4;
          zeroRun(o, lo);
          if (sx == 1) {
            copyRun(o + <usize>lo * 4, base + <usize>lo * 4, hi - lo);
          } else {
            for (let ox = lo; ox < hi; ox++) {
              store<f32>(o + <usize>ox * 4, load<f32>(base + <usize>(ox * sx) * 4));
            }
          }
          zeroRun(o + <usize>hi * 4, Wo - hi);
        }
      }
    }
  }
}

/**
 * col2im, the adjoint of `im2col`: adds every element of cols [C*kh*kw, cnt*Ho*Wo] (at `src`) to
 * the pixel of y [cnt, C, H, W] (at `dst`) that `im2col` would have read it from; taps in the
 * padding are dropped. Each pixel receives its taps in (ky, kx) order, as the TypeScript loop.
 */
export function col2im_add(
  src: usize, C: i32, H: i32, W: i32,
  sy: i32, sx: i32, py: i32, px: i32, kh: i32, kw: i32,
  Ho: i32, Wo: i32, cnt: i32, dst: usize,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const P = Ho * Wo, planes = cnt * C;
  const ld = <usize>cnt * <usize>P;
  const size = chunkSize(planes, nthreads);
  for (let k = nextChunk(counter, nthreads, -1); k * size < planes; k = nextChunk(counter, nthreads, k)) {
    const u1 = min(planes, (k + 1) * size);
    for (let u = k * size; u < u1; u++) {
      const i = u / C, c = u % C;
      const plane = dst + (<usize>u * <usize>(H * W)) * 4;
      for (let ky = 0; ky < kh; ky++) {
        const oyLo = validLo(sy, py, ky, Ho), oyHi = validHi(sy, py, ky, H, Ho, oyLo);
        for (let kx = 0; kx < kw; kx++) {
          const lo = validLo(sx, px, kx, Wo), hi = validHi(sx, px, kx, W, Wo, lo);
          if (lo >= hi) continue;
          const row = src + (<usize>((c * kh + ky) * kw + kx) * ld + <usize>(i * P)) * 4;
          for (let oy = oyLo; oy < oyHi; oy++) {
            const o = row + <usize>(oy * Wo) * 4;
            const base = plane + <usize>((oy * sy - py + ky) * W - px + kx) * 4;
            if (sx == 1) {
              addRun(base + <usize>lo * 4, o + <usize>lo * 4, hi - lo);
            } else {
              for (let ox = lo; ox < hi; ox++) {
                const p = base + <usize>(ox * sx) * 4;
                store<f32>(p, load<f32>(p) + load<f32>(o + <usize>ox * 4));
              }
            }
          }
        }
      }
    }
  }
}

/**
 * Moves `cnt` images between [cnt, Ch, P] (at `nchw`) and channel-major [Ch, cnt*P] (at `major`):
 * towards the channel-major layout with `fold` = 1, back with 0. Split by planes (i, c).
 */
export function fold_batch(
  nchw: usize, Ch: i32, P: i32, cnt: i32, major: usize, fold: i32,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const planes = cnt * Ch, bytes = <usize>P * 4;
  const size = chunkSize(planes, nthreads);
  for (let k = nextChunk(counter, nthreads, -1); k * size < planes; k = nextChunk(counter, nthreads, k)) {
    const u1 = min(planes, (k + 1) * size);
    for (let u = k * size; u < u1; u++) {
      const i = u / Ch, c = u % Ch;
      const a = nchw + <usize>u * bytes, b = major + <usize>(c * cnt + i) * bytes;
      if (fold) copyRun(b, a, P);
      else copyRun(a, b, P);
    }
  }
}

/**
 * `cnt` images from pixel-major [cnt, P, O] (at `src`, the forward GEMM's C^T) to NCHW
 * [cnt, O, P] (at `dst`): dst[i, o, p] = src[i, p, o]. 4 x 4 blocks through v128 shuffles where
 * P and O are multiples of 4. Split by (image, block of 4 channels).
 */
export function unfold_pixels(
  src: usize, P: i32, O: i32, cnt: i32, dst: usize,
  counter: usize, tid: i32, nthreads: i32,
): void {
  const og = (O + 3) / 4, units = cnt * og;
  const size = chunkSize(units, nthreads);
  for (let k = nextChunk(counter, nthreads, -1); k * size < units; k = nextChunk(counter, nthreads, k)) {
    const u1 = min(units, (k + 1) * size);
    for (let u = k * size; u < u1; u++) {
      const i = u / og, g = u % og;
      unfoldImage(
        src + <usize>i * <usize>P * <usize>O * 4, P, O, dst + <usize>i * <usize>O * <usize>P * 4, g, g + 1,
      );
    }
  }
}

/** Channel groups [g0, g1) (4 channels each) of one image: [P, O] at `src` -> [O, P] at `dst`. */
// @ts-ignore: decorator
@inline function unfoldImage(src: usize, P: i32, O: i32, dst: usize, g0: i32, g1: i32): void {
  const ss = <usize>O * 4, ds = <usize>P * 4;
  const simd = P % 4 == 0 && O % 4 == 0;
  for (let g = g0; g < g1; g++) {
    const o0 = g * 4;
    const from = src + <usize>o0 * 4, to = dst + <usize>o0 * ds;
    if (simd) {
      for (let p = 0; p < P; p += 4) {
        const s0 = from + <usize>p * ss;
        const r0 = v128.load(s0), r1 = v128.load(s0 + ss);
        const r2 = v128.load(s0 + 2 * ss), r3 = v128.load(s0 + 3 * ss);
        const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
        const t2 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7), t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
        const d0 = to + <usize>p * 4;
        v128.store(d0, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
        v128.store(d0 + ds, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
        v128.store(d0 + 2 * ds, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5));
        v128.store(d0 + 3 * ds, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7));
      }
      continue;
    }
    const oc = min(4, O - o0);
    for (let p = 0; p < P; p++) {
      for (let j = 0; j < oc; j++) {
        store<f32>(to + <usize>j * ds + <usize>p * 4, load<f32>(from + <usize>p * ss + <usize>j * 4));
      }
    }
  }
}

/**
 * The whole convolution forward for few output channels, one image per unit of work, each on
 * one thread in its own scratch block (`scratchStride` bytes; see `conv_scratch_bytes`): im2col
 * of the image into [K, P] (rows `ldp` floats apart), then C^T [P, O] = cols^T W^T with the
 * pixels as the GEMM's M (cols^T read in place, only W packed; bias and activation in the
 * epilogue), then the transpose into the image's NCHW planes. The image's cols stay in the
 * cache between the im2col and the GEMM, and the convolution is one job of the pool.
 */
export function conv_forward(
  src: usize, C: i32, H: i32, W: i32,
  sy: i32, sx: i32, py: i32, px: i32, kh: i32, kw: i32,
  Ho: i32, Wo: i32, B: i32, w: usize, O: i32, flags: i32, bias: usize, act: i32, dst: usize,
  scratch: usize, scratchStride: i32, counter: usize, tid: i32, nthreads: i32,
): void {
  const P = Ho * Wo, K = C * kh * kw, ldp = paddedLd(P);
  const cols = scratch + <usize>tid * <usize>scratchStride;
  const tmp = cols + align64(<usize>K * <usize>ldp * 4);
  const work = tmp + align64(<usize>P * <usize>O * 4);
  for (let i = nextChunk(counter, nthreads, -1); i < B; i = nextChunk(counter, nthreads, i)) {
    im2colRows(
      src + <usize>i * <usize>(C * H * W) * 4, C, H, W, sy, sx, py, px, kh, kw, Ho, Wo, 1, cols,
      <usize>ldp, 0, K,
    );
    gemm_block(P, O, K, cols, ldp, w, K, tmp, O, flags, bias, act, work, 0, 0, P, 0, O);
    unfoldImage(tmp, P, O, dst + <usize>i * <usize>(O * P) * 4, 0, (O + 3) / 4);
  }
}

/** Bytes of one thread's scratch block for `conv_forward` (gemmBytes: scratch_bytes(P, O, K)). */
export function conv_scratch_bytes(P: i32, O: i32, K: i32, gemmBytes: i32): i32 {
  return <i32>(align64(<usize>K * <usize>paddedLd(P) * 4) + align64(<usize>P * <usize>O * 4)) + gemmBytes;
}

/** Row length of an image's cols: P, padded where rows a multiple of 1 KiB apart would alias. */
// @ts-ignore: decorator
@inline function paddedLd(P: i32): i32 {
  return P % 256 == 0 ? P + 16 : P;
}

// @ts-ignore: decorator
@inline function align64(bytes: usize): usize {
  return (bytes + 63) & ~<usize>63;
}

/**
 * The transposed convolution (see `convAdjointCpu` in conv.ts) one image per unit of work, each
 * on one thread in its own scratch block (`scratchStride` bytes): cols [Co*kh*kw, Pi] = W^T x_i
 * into the scratch (still in the cache for the scatter), then col2im adds it into image i of y
 * (which the caller filled with the bias).
 */
export function conv_adjoint(
  src: usize, Ci: i32, Hi: i32, Wi: i32, w: usize, Co: i32, dst: usize, Ho: i32, Wo: i32,
  sy: i32, sx: i32, py: i32, px: i32, kh: i32, kw: i32, B: i32,
  scratch: usize, scratchStride: i32, counter: usize, tid: i32, nthreads: i32,
): void {
  const Pi = Hi * Wi, Kc = Co * kh * kw;
  const cols = scratch + <usize>tid * <usize>scratchStride;
  const work = cols + align64(<usize>Kc * <usize>Pi * 4);
  for (let i = nextChunk(counter, nthreads, -1); i < B; i = nextChunk(counter, nthreads, i)) {
    // TRANS_A = 1: W [Ci, Co*kh*kw] read as its transpose.
    gemm_block(
      Kc, Pi, Ci, w, Kc, src + <usize>i * <usize>(Ci * Pi) * 4, Pi, cols, Pi, 1, 0, 0, work, 0,
      0, Kc, 0, Pi,
    );
    col2im_add(
      cols, Co, Ho, Wo, sy, sx, py, px, kh, kw, Hi, Wi, 1, dst + <usize>i * <usize>(Co * Ho * Wo) * 4,
      0, 0, 1,
    );
  }
}

/** Bytes of one thread's scratch block for `conv_adjoint` (gemmBytes: scratch_bytes(Kc, Pi, Ci)). */
export function conv_adjoint_scratch_bytes(Kc: i32, Pi: i32, gemmBytes: i32): i32 {
  return <i32>align64(<usize>Kc * <usize>Pi * 4) + gemmBytes;
}
