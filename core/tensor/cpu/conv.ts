/**
 * 2-D convolutions (NCHW, f32) on the CPU backend as explicit GEMMs: im2col packs input patches
 * into a scratch matrix, `gemm` does all the arithmetic (with the bias and activation in its
 * epilogue), and cheap copies move between NCHW and the GEMMs' channel-major layout. Three
 * functions serve conv2d, convTranspose2d and all their gradients (see `ops/conv.ts`):
 *
 * - `convForwardCpu`: y = W cols(x), W [O, C*kh*kw], cols [C*kh*kw, images*Ho*Wo].
 * - `convAdjointCpu`: the transposed convolution (Dumoulin & Visin 2016, "A guide to convolution
 *   arithmetic", sec. 4): cols = W^T x then col2im scatter-adds every column into the output.
 *   The GEMM runs over input pixels only, so a strided transposed convolution never multiplies
 *   by the zeros a "dilate the input, then convolve" formulation would insert. At stride 1 from
 *   fewer channels than it writes, it runs as the forward convolution with the taps flipped.
 * - `convWeightGradCpu`: dW = g cols(x)^T, summed over images by accumulating GEMMs.
 *
 * 3x3 stride-1 "same" convolutions with enough channels take Winograd's F(2x2, 3x3) or F(4x4, 3x3)
 * instead, in all three functions (`winograd.ts`): 2.25x or 4x fewer multiplications. In training
 * the forward can hand its transform of x to the weight gradient (`KeptTransform`).
 *
 * The batch is folded into the GEMMs' N (or K) dimension, images*Ho*Wo, so the products stay
 * large even for small deep feature maps; images are processed in chunks whose im2col scratch
 * stays under `COLS_BUDGET`. A 1x1 stride-1 unpadded convolution needs no im2col: each image
 * [C, H*W] already is its column matrix.
 */
import { cpu } from "../backend.ts";
import { emptyTensor, type Tensor } from "../tensor.ts";
import { gemm, GEMM_ACTIVATIONS, GEMM_PARALLEL_MIN_FLOPS, type GemmActivation } from "./gemm.ts";
import { cpuKernels } from "./runtime.ts";
import { runFloatsKernel } from "./view.ts";
import { addr } from "./views.ts";
import {
  winogradConv,
  winogradFloatsPerImage,
  type WinogradShape,
  winogradTile,
  winogradWeightGrad,
} from "./winograd.ts";

/** Stride, padding and kernel size of a convolution, per axis (y rows, x columns). */
export interface ConvGeometry {
  /** Images in the batch. */
  n: number;
  /** Row stride. */
  sy: number;
  /** Column stride. */
  sx: number;
  /** Zero rows padded above and below. */
  py: number;
  /** Zero columns padded left and right. */
  px: number;
  /** Kernel rows. */
  kh: number;
  /** Kernel columns. */
  kw: number;
}

/** Most float32 elements of im2col scratch per chunk of images (32 MiB). */
const COLS_BUDGET = 1 << 23;

/** Images per chunk when each image needs `perImage` scratch elements (at least one). */
function chunkImages(n: number, perImage: number): number {
  return Math.max(1, Math.min(n, Math.floor(COLS_BUDGET / Math.max(1, perImage))));
}

/** Images per chunk of the Winograd path (its scratch within `COLS_BUDGET`). */
function chunkWinograd(s: WinogradShape): number {
  return chunkImages(s.B, winogradFloatsPerImage(s));
}

/** Whether the convolution is a per-pixel matrix product (1x1 kernel, stride 1, no padding). */
function pointwise(g: ConvGeometry): boolean {
  return g.kh === 1 && g.kw === 1 && g.sy === 1 && g.sx === 1 && g.py === 0 && g.px === 0;
}

/** Element index (not byte address) of a tensor in the CPU memory. */
function at(t: Tensor): number {
  return addr(t) / 4; // not >> 2: addresses reach 4 GiB, past int32
}

/**
 * The output columns ox in [lo, hi) whose tap kx lands inside an input row of width w
 * (0 <= ox*s - p + kx < w); the others read padding.
 */
function validRange(s: number, p: number, k: number, w: number, wo: number): [number, number] {
  const lo = Math.min(wo, Math.max(0, Math.ceil((p - k) / s)));
  const hi = Math.max(lo, Math.min(wo, Math.floor((w - 1 + p - k) / s) + 1));
  return [lo, hi];
}

/**
 * The TypeScript im2col and its adjoint, one loop nest for both. im2col (`add` false): images
 * n0..n0+cnt of x [n, C, H, W] (at element `img`) -> cols [C*kh*kw, cnt*Ho*Wo] (at element
 * `cols`), cols[(c,ky,kx), (i,oy,ox)] = x[n0+i, c, oy*sy-py+ky, ox*sx-px+kx], 0 outside.
 * col2im (`add` true): adds every element of cols to the pixel of the images (then y) that
 * im2col would have read it from; taps that fall into the padding are dropped.
 */
function im2colTs(
  m: Float32Array,
  img: number,
  [C, H, W]: readonly number[],
  g: ConvGeometry,
  Ho: number,
  Wo: number,
  n0: number,
  cnt: number,
  cols: number,
  add: boolean,
): void {
  const P = Ho * Wo, ld = cnt * P, { sy, sx, py, px, kh, kw } = g;
  for (let c = 0; c < C; c++) {
    for (let ky = 0; ky < kh; ky++) {
      for (let kx = 0; kx < kw; kx++) {
        const row = cols + ((c * kh + ky) * kw + kx) * ld;
        const [lo, hi] = validRange(sx, px, kx, W, Wo);
        for (let i = 0; i < cnt; i++) {
          const plane = img + ((n0 + i) * C + c) * H * W;
          for (let oy = 0; oy < Ho; oy++) {
            const o = row + i * P + oy * Wo;
            const iy = oy * sy - py + ky;
            if (iy < 0 || iy >= H) {
              if (!add) m.fill(0, o, o + Wo);
              continue;
            }
            const base = plane + iy * W - px + kx;
            if (add) {
              for (let ox = lo; ox < hi; ox++) m[base + ox * sx] += m[o + ox];
              continue;
            }
            for (let ox = 0; ox < lo; ox++) m[o + ox] = 0;
            for (let ox = lo; ox < hi; ox++) m[o + ox] = m[base + ox * sx];
            for (let ox = hi; ox < Wo; ox++) m[o + ox] = 0;
          }
        }
      }
    }
  }
}

/**
 * Images n0..n0+cnt of t [n, Ch, P] (at element `images`) -> channel-major [Ch, cnt*P] (at
 * element `major`), or back with `toMajor` false.
 */
function foldBatchTs(
  m: Float32Array,
  images: number,
  Ch: number,
  P: number,
  n0: number,
  cnt: number,
  major: number,
  toMajor: boolean,
): void {
  for (let i = 0; i < cnt; i++) {
    for (let c = 0; c < Ch; c++) {
      const im = images + ((n0 + i) * Ch + c) * P, mj = major + (c * cnt + i) * P;
      if (toMajor) m.copyWithin(mj, im, im + P);
      else m.copyWithin(im, mj, mj + P);
    }
  }
}

/** im2col of images n0..n0+cnt of x into cols (see `im2colTs`). */
function im2col(
  x: Tensor,
  g: ConvGeometry,
  Ho: number,
  Wo: number,
  n0: number,
  cnt: number,
  cols: Tensor,
): void {
  const [, C, H, W] = x.shape, { sy, sx, py, px, kh, kw } = g;
  const src = addr(x) + n0 * C * H * W * 4, floats = C * kh * kw * cnt * Ho * Wo;
  const args = [src, C, H, W, sy, sx, py, px, kh, kw, Ho, Wo, cnt, addr(cols)];
  if (runFloatsKernel("im2col", args, floats)) return;
  im2colTs(cpu().mem.f32, at(x), x.shape.slice(1), g, Ho, Wo, n0, cnt, at(cols), false);
}

/** col2im of cols (over an Hi x Wi grid) added into images n0..n0+cnt of y (see `im2colTs`). */
function col2imAdd(
  cols: Tensor,
  y: Tensor,
  g: ConvGeometry,
  Hi: number,
  Wi: number,
  n0: number,
  cnt: number,
): void {
  const [, C, H, W] = y.shape, { sy, sx, py, px, kh, kw } = g;
  const dst = addr(y) + n0 * C * H * W * 4, floats = C * kh * kw * cnt * Hi * Wi;
  const args = [addr(cols), C, H, W, sy, sx, py, px, kh, kw, Hi, Wi, cnt, dst];
  if (runFloatsKernel("col2im_add", args, floats)) return;
  im2colTs(cpu().mem.f32, at(y), y.shape.slice(1), g, Hi, Wi, n0, cnt, at(cols), true);
}

/** Images n0..n0+cnt of t [n, Ch, P] -> channel-major [Ch, cnt*P] in `major`. */
function foldBatch(t: Tensor, Ch: number, P: number, n0: number, cnt: number, major: Tensor) {
  const args = [addr(t) + n0 * Ch * P * 4, Ch, P, cnt, addr(major), 1];
  if (runFloatsKernel("fold_batch", args, Ch * P * cnt)) return;
  foldBatchTs(cpu().mem.f32, at(t), Ch, P, n0, cnt, at(major), true);
}

/** Channel-major [Ch, cnt*P] in `major` -> images n0..n0+cnt of t [n, Ch, P]. */
function unfoldBatch(major: Tensor, Ch: number, P: number, n0: number, cnt: number, t: Tensor) {
  const args = [addr(t) + n0 * Ch * P * 4, Ch, P, cnt, addr(major), 0];
  if (runFloatsKernel("fold_batch", args, Ch * P * cnt)) return;
  foldBatchTs(cpu().mem.f32, at(t), Ch, P, n0, cnt, at(major), false);
}

/**
 * Where `convForwardCpu` leaves x's Winograd transform for `convWeightGradCpu` (training: the
 * weight gradient would transform the same x again): set when the Winograd path ran with every
 * image in one chunk, else null. The caller owns (and disposes) the tensor.
 */
export interface KeptTransform {
  transformed: Tensor | null;
}

/**
 * Direct convolution x [n, C, H, W] with w [O, C, kh, kw] -> [n, O, Ho, Wo]:
 * y[n,o,oy,ox] = sum_{c,ky,kx} x[n,c,oy*sy-py+ky,ox*sx-px+kx] w[o,c,ky,kx] (+ bias[o], -> act).
 */
export function convForwardCpu(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  g: ConvGeometry,
  Ho: number,
  Wo: number,
  activation: GemmActivation,
  keep?: KeptTransform,
): Tensor {
  const out = emptyTensor([x.shape[0], w.shape[0], Ho, Wo]);
  if (out.size === 0) return out;
  cpu().countOp();
  convForwardInto(x, w, bias, g, activation, out, keep);
  return out;
}

/** `convForwardCpu` into `out` [n, O, Ho, Wo]. */
function convForwardInto(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  g: ConvGeometry,
  activation: GemmActivation,
  out: Tensor,
  keep?: KeptTransform,
): void {
  const [B, C] = x.shape, [, , Ho, Wo] = out.shape;
  const O = w.shape[0], K = C * g.kh * g.kw, P = Ho * Wo;
  const epilogue = { bias: bias ? addr(bias) : undefined, biasPerRow: true, activation };
  if (pointwise(g)) {
    // Each image is already its column matrix: out_b [O, P] = W [O, C] x_b [C, P].
    gemm({
      M: O,
      N: P,
      K,
      a: addr(w),
      lda: K,
      b: addr(x),
      ldb: P,
      c: addr(out),
      ldc: P,
      batch: B,
      strideA: 0,
      strideB: C * P,
      strideC: O * P,
      ...epilogue,
    });
    return;
  }
  const [, , H, W] = x.shape;
  const tile = winogradTile(g, C, O, H, W, Ho, Wo);
  if (tile) {
    const shape = { B, C, O, H, W, tile };
    const v = winogradConv(x, w, bias, activation, false, shape, chunkWinograd(shape), out, !!keep);
    if (keep) keep.transformed = v;
    return;
  }
  if (O <= PIXEL_MAJOR_MAX_O && fusedForward(x, w, g, Ho, Wo, out, bias, activation)) return;
  const nb = chunkImages(B, K * P);
  const cols = emptyTensor([K * nb * P]);
  if (cpuKernels() && O <= PIXEL_MAJOR_MAX_O) {
    pixelMajorForward(x, w, g, Ho, Wo, nb, cols, out, bias, activation);
    cols.dispose();
    return;
  }
  const tmp = nb > 1 ? emptyTensor([O * nb * P]) : null;
  for (let n0 = 0; n0 < B; n0 += nb) {
    const cnt = Math.min(nb, B - n0);
    im2col(x, g, Ho, Wo, n0, cnt, cols);
    // One image writes its NCHW plane block directly; several go through [O, cnt*P].
    const c = cnt === 1 ? addr(out) + n0 * O * P * 4 : addr(tmp!);
    gemm({
      M: O,
      N: cnt * P,
      K,
      a: addr(w),
      lda: K,
      b: addr(cols),
      ldb: cnt * P,
      c,
      ldc: cnt * P,
      ...epilogue,
    });
    if (cnt > 1) unfoldBatch(tmp!, O, P, n0, cnt, out);
  }
  cols.dispose();
  tmp?.dispose();
}

/**
 * Up to this many output channels the forward GEMM runs with the pixels as its rows (see
 * `pixelMajorForward`).
 */
const PIXEL_MAJOR_MAX_O = 64;

/** Most scratch bytes per thread of the fused forward (`conv_forward`): about L2-sized. */
const FUSED_MAX_BYTES = 1 << 21;

/**
 * The forward for few output channels as one job of the pool (`conv_forward` in
 * `assembly/conv.ts`): each thread takes whole images, im2col of one image into its own scratch
 * (still in the cache for the GEMM), the GEMM with the pixels as M, the transpose into NCHW.
 * False (nothing done) without the kernels, or when images are too big or too few to share.
 */
function fusedForward(
  x: Tensor,
  w: Tensor,
  g: ConvGeometry,
  Ho: number,
  Wo: number,
  out: Tensor,
  bias: Tensor | null,
  activation: GemmActivation,
): boolean {
  const k = cpuKernels();
  if (!k) return false;
  const [B, C, H, W] = x.shape, O = w.shape[0], K = w.size / O, P = Ho * Wo;
  const pool = Math.min(cpu().threads, k.pool.size);
  const threads = 2 * B * P * O * K < GEMM_PARALLEL_MIN_FLOPS ? 1 : pool;
  if (threads > 1 && B < 2 * threads) return false;
  const e = k.exports as unknown as Record<string, (...a: number[]) => number>;
  const stride = Math.ceil(e.conv_scratch_bytes(P, O, K, e.scratch_bytes(P, O, K)) / 64) * 64;
  if (stride > FUSED_MAX_BYTES) return false;
  const counter = k.scratch(64 + threads * stride);
  new Int32Array(cpu().mem.buffer, counter, 1)[0] = 0;
  const { sy, sx, py, px, kh, kw } = g;
  const flags = 1 | 2 | 32 | (bias ? 8 : 0); // transA, transB, A in place (+ bias per column)
  const act = GEMM_ACTIVATIONS[activation];
  const args = [addr(x), C, H, W, sy, sx, py, px, kh, kw, Ho, Wo, B, addr(w), O, flags];
  args.push(bias ? addr(bias) : 0, act, addr(out), counter + 64, stride, counter);
  k.pool.run("conv_forward", args, threads);
  return true;
}

/**
 * The forward GEMM for few output channels: C^T [cnt*P, O] = cols^T W^T, the pixels as M. The
 * kernel reads cols^T in place (MR consecutive pixels per tap) and packs only the small W, where
 * W cols with M = O would repack the whole of cols for a handful of rows of W. Then one SIMD
 * transpose per image writes NCHW.
 */
function pixelMajorForward(
  x: Tensor,
  w: Tensor,
  g: ConvGeometry,
  Ho: number,
  Wo: number,
  nb: number,
  cols: Tensor,
  out: Tensor,
  bias: Tensor | null,
  activation: GemmActivation,
): void {
  const B = x.shape[0], O = w.shape[0], K = w.size / O, P = Ho * Wo;
  const tmp = emptyTensor([nb * P * O]);
  for (let n0 = 0; n0 < B; n0 += nb) {
    const cnt = Math.min(nb, B - n0);
    im2col(x, g, Ho, Wo, n0, cnt, cols);
    gemm({
      M: cnt * P,
      N: O,
      K,
      a: addr(cols),
      lda: cnt * P,
      transA: true,
      directA: true,
      b: addr(w),
      ldb: K,
      transB: true,
      c: addr(tmp),
      ldc: O,
      bias: bias ? addr(bias) : undefined,
      activation,
    });
    const args = [addr(tmp), P, O, cnt, addr(out) + n0 * O * P * 4];
    runFloatsKernel("unfold_pixels", args, cnt * P * O);
  }
  tmp.dispose();
}

/**
 * Transposed convolution inp [n, Ci, Hi, Wi] with w [Ci, Co, kh, kw] -> [n, Co, Ho, Wo]: input
 * pixel (iy, ix) feeds output (iy*sy - py + ky, ix*sx - px + kx) with weight w[ci, co, ky, kx]
 * (Dumoulin & Visin 2016, sec. 4), plus bias[co]. The adjoint of `convForwardCpu` with respect
 * to x: conv2d's input gradient and convTranspose2d's forward.
 */
export function convAdjointCpu(
  inp: Tensor,
  w: Tensor,
  bias: Tensor | null,
  g: ConvGeometry,
  Ho: number,
  Wo: number,
): Tensor {
  const [B, Ci, Hi, Wi] = inp.shape;
  const Co = w.shape[1], Kc = Co * g.kh * g.kw, Pi = Hi * Wi;
  const out = emptyTensor([B, Co, Ho, Wo]);
  if (out.size === 0) return out;
  cpu().countOp();
  if (pointwise(g)) {
    // out_b [Co, P] = W^T [Co, Ci] inp_b [Ci, P]; W [Ci, Co] read transposed.
    gemm({
      M: Co,
      N: Pi,
      K: Ci,
      a: addr(w),
      lda: Co,
      transA: true,
      b: addr(inp),
      ldb: Pi,
      c: addr(out),
      ldc: Pi,
      batch: B,
      strideA: 0,
      strideB: Ci * Pi,
      strideC: Co * Pi,
      bias: bias ? addr(bias) : undefined,
      biasPerRow: true,
    });
    return out;
  }
  const tile = winogradTile(g, Ci, Co, Hi, Wi, Ho, Wo);
  if (tile) {
    const shape = { B, C: Ci, O: Co, H: Hi, W: Wi, tile };
    winogradConv(inp, w, bias, "none", true, shape, chunkWinograd(shape), out);
    return out;
  }
  if (g.sy === 1 && g.sx === 1 && Ci < Co && g.py < g.kh && g.px < g.kw) {
    // Few input channels (the U-Net's last convolution, 32 -> 3, read backwards): the forward
    // convolution with w's taps flipped and channel axes swapped, padding k-1-p, does the same
    // arithmetic from an im2col of Ci*kh*kw rows, where the GEMM below would write Co*kh*kw rows
    // from a K of Ci and scatter them back (about 10 -> 4 ms at [32, 3, 32, 32] -> 32; the tap
    // flip is the one Winograd's filter transform does for its adjoint; docs/benchmarks.md).
    const flipped = flipTransposed(w);
    convForwardInto(
      inp,
      flipped,
      bias,
      { ...g, py: g.kh - 1 - g.py, px: g.kw - 1 - g.px },
      "none",
      out,
    );
    flipped.dispose();
    return out;
  }
  fillChannels(out, bias);
  if (fusedAdjoint(inp, w, g, Ho, Wo, out)) return out;
  const nb = chunkImages(B, (Kc + Ci) * Pi);
  const cols = emptyTensor([Kc * nb * Pi]);
  const folded = nb > 1 ? emptyTensor([Ci * nb * Pi]) : null;
  for (let n0 = 0; n0 < B; n0 += nb) {
    const cnt = Math.min(nb, B - n0);
    let src = addr(inp) + n0 * Ci * Pi * 4;
    if (cnt > 1) {
      foldBatch(inp, Ci, Pi, n0, cnt, folded!);
      src = addr(folded!);
    }
    // cols [Co*kh*kw, cnt*Pi] = W^T inp: every (output channel, tap) row for every input pixel.
    gemm({
      M: Kc,
      N: cnt * Pi,
      K: Ci,
      a: addr(w),
      lda: Kc,
      transA: true,
      b: src,
      ldb: cnt * Pi,
      c: addr(cols),
      ldc: cnt * Pi,
    });
    col2imAdd(cols, out, g, Hi, Wi, n0, cnt);
  }
  cols.dispose();
  folded?.dispose();
  return out;
}

/**
 * The transposed convolution as one job of the pool (`conv_adjoint` in `assembly/conv.ts`):
 * each thread takes whole images, their GEMM into its own scratch and the col2im scatter from
 * there while it is in the cache. False (nothing done) without the kernels, or when images are
 * too big or too few to share. `out` holds the bias already.
 */
function fusedAdjoint(
  inp: Tensor,
  w: Tensor,
  g: ConvGeometry,
  Ho: number,
  Wo: number,
  out: Tensor,
): boolean {
  const k = cpuKernels();
  if (!k) return false;
  const [B, Ci, Hi, Wi] = inp.shape, Co = w.shape[1], Kc = Co * g.kh * g.kw, Pi = Hi * Wi;
  const pool = Math.min(cpu().threads, k.pool.size);
  const threads = 2 * B * Pi * Kc * Ci < GEMM_PARALLEL_MIN_FLOPS ? 1 : pool;
  if (threads > 1 && B < 2 * threads) return false;
  const e = k.exports as unknown as Record<string, (...a: number[]) => number>;
  const bytes = e.conv_adjoint_scratch_bytes(Kc, Pi, e.scratch_bytes(Kc, Pi, Ci));
  const stride = Math.ceil(bytes / 64) * 64;
  if (stride > FUSED_MAX_BYTES) return false;
  const counter = k.scratch(64 + threads * stride);
  new Int32Array(cpu().mem.buffer, counter, 1)[0] = 0;
  const { sy, sx, py, px, kh, kw } = g;
  const args = [addr(inp), Ci, Hi, Wi, addr(w), Co, addr(out), Ho, Wo, sy, sx, py, px, kh, kw, B];
  args.push(counter + 64, stride, counter);
  k.pool.run("conv_adjoint", args, threads);
  return true;
}

/** w [Ci, Co, kh, kw] -> [Co, Ci, kh, kw] with the taps reversed: w[ci, co, kh-1-ky, kw-1-kx]. */
function flipTransposed(w: Tensor): Tensor {
  const [Ci, Co, kh, kw] = w.shape, taps = kh * kw;
  const out = emptyTensor([Co, Ci, kh, kw]), m = cpu().mem.f32, src = at(w), dst = at(out);
  for (let ci = 0; ci < Ci; ci++) {
    for (let co = 0; co < Co; co++) {
      const from = src + (ci * Co + co) * taps, to = dst + (co * Ci + ci) * taps;
      for (let k = 0; k < taps; k++) m[to + k] = m[from + taps - 1 - k];
    }
  }
  return out;
}

/** Sets every plane of t [n, C, H, W] to bias[c] (0 without a bias). */
function fillChannels(t: Tensor, bias: Tensor | null): void {
  const [B, C, H, W] = t.shape, P = H * W, m = cpu().mem.f32, o = at(t);
  if (!bias) {
    m.fill(0, o, o + t.size);
    return;
  }
  const b = at(bias);
  for (let i = 0; i < B; i++) {
    for (let c = 0; c < C; c++) m.fill(m[b + c], o + (i * C + c) * P, o + (i * C + c + 1) * P);
  }
}

/**
 * Weight gradient: gout [n, Co, Hg, Wg] and x [n, Ci, Hx, Wx] (read at strided, padded positions)
 * -> [Co, Ci, kh, kw] = sum_{n,gy,gx} gout[n,co,gy,gx] x[n,ci,gy*sy-py+ky,gx*sx-px+kx].
 * `transformed`: x's Winograd transform that `convForwardCpu` kept (`KeptTransform`), if any.
 */
export function convWeightGradCpu(
  gout: Tensor,
  x: Tensor,
  g: ConvGeometry,
  transformed: Tensor | null = null,
): Tensor {
  const [B, Co, Hg, Wg] = gout.shape;
  const Ci = x.shape[1], K = Ci * g.kh * g.kw, P = Hg * Wg;
  const out = emptyTensor([Co, Ci, g.kh, g.kw]);
  if (out.size === 0) return out;
  cpu().countOp();
  if (B * P === 0) {
    cpu().mem.f32.fill(0, at(out), at(out) + out.size);
    return out;
  }
  const tile = winogradTile(g, Ci, Co, x.shape[2], x.shape[3], Hg, Wg);
  if (tile) {
    const shape = { B, C: Ci, O: Co, H: Hg, W: Wg, tile };
    winogradWeightGrad(gout, x, shape, chunkWinograd(shape), out, transformed);
    return out;
  }
  const direct = pointwise(g);
  const nb = chunkImages(B, (K + Co) * P);
  const cols = direct && nb === 1 ? null : emptyTensor([K * nb * P]);
  const folded = nb > 1 ? emptyTensor([Co * nb * P]) : null;
  for (let n0 = 0; n0 < B; n0 += nb) {
    const cnt = Math.min(nb, B - n0);
    let a = addr(gout) + n0 * Co * P * 4, b = addr(x) + n0 * Ci * P * 4;
    if (cols) {
      im2col(x, g, Hg, Wg, n0, cnt, cols);
      b = addr(cols);
    }
    if (cnt > 1) {
      foldBatch(gout, Co, P, n0, cnt, folded!);
      a = addr(folded!);
    }
    // dW [Co, Ci*kh*kw] (+)= gout [Co, cnt*P] cols^T, cols stored [Ci*kh*kw, cnt*P].
    gemm({
      M: Co,
      N: K,
      K: cnt * P,
      a,
      lda: cnt * P,
      b,
      ldb: cnt * P,
      transB: true,
      c: addr(out),
      ldc: K,
      accumulate: n0 > 0,
    });
  }
  cols?.dispose();
  folded?.dispose();
  return out;
}
