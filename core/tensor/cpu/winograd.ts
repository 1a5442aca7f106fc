/**
 * 3x3, stride-1, padding-1 convolutions on the CPU backend by Winograd's minimal filtering
 * F(2x2, 3x3) (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural Networks"): the
 * filters and the input's 4x4 patches are transformed (`assembly/winograd.ts`), sixteen GEMMs
 * [O, C] x [C, tiles] do the channel sums (one `gemm` call, batch 16), and each 2x2 output tile
 * is transformed back with the bias and activation. 16 multiplications per tile and channel
 * pair against im2col's 36: most of the U-Net's work is such convolutions.
 *
 * The same path serves the adjoint (the input gradient of such a convolution, and a stride-1
 * transposed convolution): it is the forward convolution with the filters transposed and turned
 * by 180 degrees, which the filter transform does as it reads them. The weight gradient runs the
 * transforms the other way round (`winogradWeightGrad`).
 */
import { readEnv } from "../env.ts";
import { emptyTensor, type Tensor } from "../tensor.ts";
import { gemm, GEMM_ACTIVATIONS, type GemmActivation } from "./gemm.ts";
import { cpuKernels } from "./runtime.ts";
import { runFloatsKernel } from "./view.ts";
import { addr } from "./views.ts";

/**
 * Fewest input and output channels each, and together, for the Winograd path: below them its
 * GEMMs are too thin to pay for the transforms. Measured on the 2-core Intel VM (2026-12-03,
 * forward, and forward + weight gradient): 16 -> 16 channels at 16x16 was 1.2-1.4x slower than
 * im2col, 16 -> 32 and 32 -> 16 at 32x32 level, 32 -> 32 and wider 1.2-4x faster. The U-Net's
 * first and last convolutions (3 channels) keep im2col.
 */
export const WINOGRAD_MIN_CHANNELS = 16;
/** See `WINOGRAD_MIN_CHANNELS`. */
export const WINOGRAD_MIN_CHANNEL_SUM = 48;

/** Whether the path is on: `useWinograd`'s setting, else `UNCLIP_CPU_WINOGRAD` (default on). */
let enabled: boolean | undefined;

function winogradEnabled(): boolean {
  if (enabled === undefined) {
    const v = readEnv("UNCLIP_CPU_WINOGRAD");
    if (v !== undefined && v !== "" && v !== "0" && v !== "1") {
      throw new Error(`UNCLIP_CPU_WINOGRAD: "${v}" is not 0 (im2col + GEMM) or 1 (Winograd).`);
    }
    enabled = v !== "0";
  }
  return enabled;
}

/**
 * Turns the Winograd path on (the default) or off, so that benchmarks and tests can compare it
 * with im2col + GEMM on the same convolution (`UNCLIP_CPU_WINOGRAD=0` turns it off for a whole
 * process). Returns the previous setting.
 *
 * @example
 * ```ts
 * const before = useWinograd(false); // im2col + GEMM for every convolution
 * useWinograd(before);
 * ```
 */
export function useWinograd(on: boolean): boolean {
  const before = winogradEnabled();
  enabled = on;
  return before;
}

/** The shape of a convolution as the Winograd path sees it. */
export interface WinogradShape {
  /** Images. */
  B: number;
  /** Input channels (of the forward convolution the path computes). */
  C: number;
  /** Output channels. */
  O: number;
  /** Height and width, the same for input and output. */
  H: number;
  W: number;
}

/**
 * Whether a convolution of kernel kh x kw, strides sy, sx and padding py, px from H x W to
 * Ho x Wo, with C and O channels, takes the Winograd path.
 */
export function winogradApplies(
  g: { sy: number; sx: number; py: number; px: number; kh: number; kw: number },
  C: number,
  O: number,
  H: number,
  W: number,
  Ho: number,
  Wo: number,
): boolean {
  return winogradEnabled() && cpuKernels() !== null && g.kh === 3 && g.kw === 3 && g.sy === 1 &&
    g.sx === 1 && g.py === 1 && g.px === 1 && Ho === H && Wo === W &&
    C >= WINOGRAD_MIN_CHANNELS && O >= WINOGRAD_MIN_CHANNELS && C + O >= WINOGRAD_MIN_CHANNEL_SUM;
}

/** Scratch floats per image: V [16, C, tiles] and M [16, O, tiles]. */
export function winogradFloatsPerImage(s: WinogradShape): number {
  return 16 * (s.C + s.O) * tileCount(s);
}

/** 2x2 output tiles per image (half tiles at an odd right or bottom edge). */
function tileCount(s: WinogradShape): number {
  return Math.ceil(s.H / 2) * Math.ceil(s.W / 2);
}

/**
 * y [B, O, H, W] = conv(x [B, C, H, W], w) (+ bias[o], -> activation) into `out`, for `w`
 * [O, C, 3, 3], or with `adjoint` for `w` [C, O, 3, 3] the transposed convolution (conv2d's
 * input gradient). Images go `chunk` at a time (the scratch of `winogradFloatsPerImage` each).
 */
export function winogradConv(
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  activation: GemmActivation,
  adjoint: boolean,
  s: WinogradShape,
  chunk: number,
  out: Tensor,
): void {
  const { B, C, O, H, W } = s;
  const tiles = tileCount(s);
  const uBlock = blockFloats(O, C);
  const u = emptyTensor([16 * uBlock]);
  layout("winograd_filter", [addr(w), O, C, adjoint ? 1 : 0, addr(u)], 16 * O * C);
  const nb = Math.min(B, chunk);
  const v = emptyTensor([16 * blockFloats(C, nb * tiles)]);
  // + 4: the output transform reads M four tiles at a time, past the last tile of a row.
  const m = emptyTensor([16 * blockFloats(O, nb * tiles) + 4]);
  const act = GEMM_ACTIVATIONS[activation];
  const rows = inputScratch(W);
  for (let n0 = 0; n0 < B; n0 += nb) {
    const cnt = Math.min(nb, B - n0), T = cnt * tiles;
    const src = addr(x) + n0 * C * H * W * 4;
    layout("winograd_input", [src, C, H, W, cnt, addr(v), addr(rows)], 16 * C * T);
    // M[k] [O, T] = U[k] [O, C] V[k] [C, T], k = 0..15.
    gemm({
      M: O,
      N: T,
      K: C,
      a: addr(u),
      lda: C,
      b: addr(v),
      ldb: T,
      c: addr(m),
      ldc: T,
      batch: 16,
      strideA: uBlock,
      strideB: blockFloats(C, T),
      strideC: blockFloats(O, T),
    });
    const dst = addr(out) + n0 * O * H * W * 4;
    const args = [addr(m), O, H, W, cnt, bias ? addr(bias) : 0, act, dst];
    layout("winograd_output", args, 16 * O * T);
  }
  for (const t of [u, v, m, rows]) t.dispose();
}

/**
 * dW [O, C, 3, 3] into `out` for the convolution y = conv(x [B, C, H, W], w) with output gradient
 * gout [B, O, H, W]: dW = G^T [sum over tiles of (A e A^T) ⊙ (B^T d B)] G per filter (see
 * `assembly/winograd.ts`), the tile sums as sixteen GEMMs accumulated over chunks of images.
 */
export function winogradWeightGrad(
  gout: Tensor,
  x: Tensor,
  s: WinogradShape,
  chunk: number,
  out: Tensor,
): void {
  const { B, C, O, H, W } = s;
  const tiles = tileCount(s);
  const nb = Math.min(B, chunk);
  const v = emptyTensor([16 * blockFloats(C, nb * tiles)]);
  const e = emptyTensor([16 * blockFloats(O, nb * tiles)]);
  const dBlock = blockFloats(O, C);
  const d = emptyTensor([16 * dBlock]);
  const rows = inputScratch(W);
  for (let n0 = 0; n0 < B; n0 += nb) {
    const cnt = Math.min(nb, B - n0), T = cnt * tiles;
    const xs = addr(x) + n0 * C * H * W * 4, gs = addr(gout) + n0 * O * H * W * 4;
    layout("winograd_input", [xs, C, H, W, cnt, addr(v), addr(rows)], 16 * C * T);
    layout("winograd_grad_output", [gs, O, H, W, cnt, addr(e)], 16 * O * T);
    // D[k] [O, C] (+)= E[k] [O, T] V[k]^T, V[k] stored [C, T].
    gemm({
      M: O,
      N: C,
      K: T,
      a: addr(e),
      lda: T,
      b: addr(v),
      ldb: T,
      transB: true,
      c: addr(d),
      ldc: C,
      batch: 16,
      strideA: blockFloats(O, T),
      strideB: blockFloats(C, T),
      strideC: dBlock,
      accumulate: n0 > 0,
    });
  }
  layout("winograd_filter_grad", [addr(d), O, C, addr(out)], 16 * O * C);
  for (const t of [v, e, d, rows]) t.dispose();
}

/** The kernels' exports that size buffers (they return numbers and run on this thread). */
function sizing(): Record<string, (...a: number[]) => number> {
  return cpuKernels()!.exports as unknown as Record<string, (...a: number[]) => number>;
}

/** The input transform's per-thread rows (see `winograd_input`). */
function inputScratch(W: number): Tensor {
  return emptyTensor([cpuKernels()!.pool.size * sizing().winograd_input_scratch(W)]);
}

/**
 * Floats from block k to block k + 1 of a [16, rows, cols] transform: a cache line more than
 * rows x cols, so that the sixteen blocks do not share cache sets (`winograd_block_floats`).
 */
function blockFloats(rows: number, cols: number): number {
  return sizing().winograd_block_floats(rows, cols);
}

function layout(name: string, args: number[], floats: number): void {
  if (!runFloatsKernel(name, args, floats)) {
    throw new Error(`winograd: the CPU kernels are missing (${name})`);
  }
}
