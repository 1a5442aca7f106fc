/**
 * 3x3, stride-1, padding-1 convolutions on the CPU backend by Winograd's minimal filtering
 * F(2x2, 3x3) or F(4x4, 3x3) (Lavin & Gray 2016, "Fast Algorithms for Convolutional Neural
 * Networks", section 4): the filters and the input's 4x4 (6x6) patches are transformed
 * (`assembly/winograd.ts`, `assembly/winograd4.ts`), sixteen (thirty-six) GEMMs
 * [O, C] x [C, tiles] do the channel sums (one `gemm` call, batch 16 or 36), and each 2x2 (4x4)
 * output tile is transformed back with the bias and activation. F(2x2) makes 4 multiplications
 * per output pixel and channel pair, F(4x4) 2.25, im2col 9: most of the U-Net's work is such
 * convolutions. F(4x4) also moves 2.25 transform values per pixel through memory against
 * F(2x2)'s 4, but its transforms do more arithmetic per value, its tiles waste more at edges that
 * are not a multiple of 4, and its rounding error is several times larger; `winogradTile` picks
 * one of the two by shape (measured, see there).
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

/**
 * Which convolutions take the Winograd path: "off" none (im2col + GEMM), "auto" (the default)
 * F(2x2) or F(4x4) by `winogradTile`'s rule, "2x2" and "4x4" that one wherever the path applies.
 */
export type WinogradMode = "off" | "auto" | "2x2" | "4x4";

/** `useWinograd`'s setting, else `UNCLIP_CPU_WINOGRAD`'s (read once). */
let mode: WinogradMode | undefined;

const ENV_MODES: Record<string, WinogradMode> = {
  "": "auto",
  0: "off",
  1: "auto",
  2: "2x2",
  4: "4x4",
};

function winogradMode(): WinogradMode {
  if (mode === undefined) {
    const v = readEnv("UNCLIP_CPU_WINOGRAD") ?? "";
    if (!Object.hasOwn(ENV_MODES, v)) {
      throw new Error(
        `UNCLIP_CPU_WINOGRAD: "${v}" is not 0 (im2col + GEMM), 1 (Winograd, F(2x2) or F(4x4) by ` +
          `shape), 2 (F(2x2, 3x3) only) or 4 (F(4x4, 3x3) only).`,
      );
    }
    mode = ENV_MODES[v];
  }
  return mode;
}

/**
 * Sets which convolutions take the Winograd path (`true`: "auto", the default; `false`: "off",
 * im2col + GEMM for every convolution; "2x2" or "4x4" forces that tile size), so that benchmarks
 * and tests can compare the paths on the same convolution (`UNCLIP_CPU_WINOGRAD=0`, `1`, `2` or
 * `4` sets it for a whole process). Returns the previous setting.
 *
 * @example
 * ```ts
 * const before = useWinograd(false); // im2col + GEMM for every convolution
 * useWinograd(before);
 * ```
 */
export function useWinograd(on: boolean | WinogradMode): WinogradMode {
  const before = winogradMode();
  mode = on === true ? "auto" : on === false ? "off" : on;
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
  /** Output tile side: F(2x2, 3x3) or F(4x4, 3x3) (`winogradTile`). */
  tile: 2 | 4;
}

/**
 * The Winograd tile for a convolution of kernel kh x kw, strides sy, sx and padding py, px from
 * H x W to Ho x Wo, with C and O channels (of the forward convolution the path computes): 0 when
 * it keeps im2col + GEMM, else 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)). The default rule takes F(4x4)
 * unless its part tiles at the right and bottom edges cost it more than `WINOGRAD4_MAX_RATIO`
 * of F(2x2)'s transform values (and GEMM columns) per image: sides that are multiples of 4 give
 * 36 / 64 = 0.5625, 5 x 7 0.75, 10 x 10 0.81, 6 x 6 1, 1 x 5 1.5.
 */
export function winogradTile(
  g: { sy: number; sx: number; py: number; px: number; kh: number; kw: number },
  C: number,
  O: number,
  H: number,
  W: number,
  Ho: number,
  Wo: number,
): 0 | 2 | 4 {
  const m = winogradMode();
  const applies = m !== "off" && cpuKernels() !== null && g.kh === 3 && g.kw === 3 &&
    g.sy === 1 && g.sx === 1 && g.py === 1 && g.px === 1 && Ho === H && Wo === W &&
    C >= WINOGRAD_MIN_CHANNELS && O >= WINOGRAD_MIN_CHANNELS && C + O >= WINOGRAD_MIN_CHANNEL_SUM;
  if (!applies) return 0;
  if (m === "2x2") return 2;
  if (m === "4x4") return 4;
  const f4 = 36 * Math.ceil(H / 4) * Math.ceil(W / 4),
    f2 = 16 * Math.ceil(H / 2) * Math.ceil(W / 2);
  return f4 <= WINOGRAD4_MAX_RATIO * f2 ? 4 : 2;
}

/**
 * Most transform values F(4x4, 3x3) may need, as a fraction of F(2x2, 3x3)'s, for the default
 * rule to take it (`winogradTile`). Measured on the 2-core AMD VM beside a training run
 * (2026-12-05, batch 32, forward, input gradient and weight gradient each, medians of 5-9):
 * F(4x4) was 25-40% faster at 16x16, 32x32 and 64x64 for 16 to 128 channels, 10-25% at 8x8 and
 * 12x12 (ratio 0.5625), level to 10% faster at 10x10 (0.81), level at 4x4 (0.5625: one tile an
 * image), and 10-30% slower at 6x6 (1.0).
 */
export const WINOGRAD4_MAX_RATIO = 0.85;

/** Scratch floats per image: V [n, C, tiles] and M [n, O, tiles], n = (tile + 2)^2. */
export function winogradFloatsPerImage(s: WinogradShape): number {
  return blocks(s) * (s.C + s.O) * tileCount(s);
}

/** Output tiles per image (part tiles at a right or bottom edge not a multiple of the tile). */
function tileCount(s: WinogradShape): number {
  return Math.ceil(s.H / s.tile) * Math.ceil(s.W / s.tile);
}

/** Transform values per tile: 16 for F(2x2, 3x3), 36 for F(4x4, 3x3). */
function blocks(s: WinogradShape): number {
  return (s.tile + 2) * (s.tile + 2);
}

/** The name of a kernel of the shape's tile ("winograd_input", "winograd4_input"). */
function kernel(s: WinogradShape, name: string): string {
  return (s.tile === 4 ? "winograd4_" : "winograd_") + name;
}

/**
 * y [B, O, H, W] = conv(x [B, C, H, W], w) (+ bias[o], -> activation) into `out`, for `w`
 * [O, C, 3, 3], or with `adjoint` for `w` [C, O, 3, 3] the transposed convolution (conv2d's
 * input gradient). Images go `chunk` at a time (the scratch of `winogradFloatsPerImage` each).
 * With `keepInput`, when one chunk holds every image, x's transform V is not freed but returned
 * (the caller owns it) for `winogradWeightGrad`, which would compute the same V again; else null.
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
  keepInput = false,
): Tensor | null {
  const { B, C, O, H, W } = s;
  const tiles = tileCount(s), n = blocks(s);
  const uBlock = blockFloats(O, C);
  const u = emptyTensor([n * uBlock]);
  layout(kernel(s, "filter"), [addr(w), O, C, adjoint ? 1 : 0, addr(u)], n * O * C);
  const nb = Math.min(B, chunk);
  const v = emptyTensor([n * blockFloats(C, nb * tiles)]);
  // + 4: the output transform reads M four tiles at a time, past the last tile of a row.
  const m = emptyTensor([n * blockFloats(O, nb * tiles) + 4]);
  const act = GEMM_ACTIVATIONS[activation];
  const rows = inputScratch(s);
  for (let n0 = 0; n0 < B; n0 += nb) {
    const cnt = Math.min(nb, B - n0), T = cnt * tiles;
    const src = addr(x) + n0 * C * H * W * 4;
    layout(kernel(s, "input"), [src, C, H, W, cnt, addr(v), addr(rows)], n * C * T);
    // M[k] [O, T] = U[k] [O, C] V[k] [C, T], k = 0..n-1.
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
      batch: n,
      strideA: uBlock,
      strideB: blockFloats(C, T),
      strideC: blockFloats(O, T),
    });
    const dst = addr(out) + n0 * O * H * W * 4;
    const args = [addr(m), O, H, W, cnt, bias ? addr(bias) : 0, act, dst];
    layout(kernel(s, "output"), args, n * O * T);
  }
  const kept = keepInput && nb === B ? v : null;
  for (const t of [u, m, rows]) t.dispose();
  if (!kept) v.dispose();
  return kept;
}

/**
 * dW [O, C, 3, 3] into `out` for the convolution y = conv(x [B, C, H, W], w) with output gradient
 * gout [B, O, H, W]: dW = G^T [sum over tiles of (A e A^T) ⊙ (B^T d B)] G per filter (see
 * `assembly/winograd.ts`), the tile sums as 16 or 36 GEMMs accumulated over chunks of images.
 * `transformed`: x's transform as `winogradConv` kept it (every image in one chunk), used instead
 * of transforming x again.
 */
export function winogradWeightGrad(
  gout: Tensor,
  x: Tensor,
  s: WinogradShape,
  chunk: number,
  out: Tensor,
  transformed: Tensor | null = null,
): void {
  const { B, C, O, H, W } = s;
  const tiles = tileCount(s), n = blocks(s);
  const nb = Math.min(B, chunk);
  const floats = n * blockFloats(C, nb * tiles);
  // Only a transform of this very shape (the Winograd mode may have changed since the forward).
  const reuse = transformed !== null && nb === B && transformed.size === floats;
  const v = reuse ? transformed : emptyTensor([floats]);
  const e = emptyTensor([n * blockFloats(O, nb * tiles)]);
  const dBlock = blockFloats(O, C);
  const d = emptyTensor([n * dBlock]);
  const rows = inputScratch(s);
  for (let n0 = 0; n0 < B; n0 += nb) {
    const cnt = Math.min(nb, B - n0), T = cnt * tiles;
    const xs = addr(x) + n0 * C * H * W * 4, gs = addr(gout) + n0 * O * H * W * 4;
    if (!reuse) layout(kernel(s, "input"), [xs, C, H, W, cnt, addr(v), addr(rows)], n * C * T);
    layout(kernel(s, "grad_output"), [gs, O, H, W, cnt, addr(e)], n * O * T);
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
      batch: n,
      strideA: blockFloats(O, T),
      strideB: blockFloats(C, T),
      strideC: dBlock,
      accumulate: n0 > 0,
    });
  }
  layout(kernel(s, "filter_grad"), [addr(d), O, C, addr(out)], n * O * C);
  for (const t of [e, d, rows]) t.dispose();
  if (!reuse) v.dispose();
}

/** The kernels' exports that size buffers (they return numbers and run on this thread). */
function sizing(): Record<string, (...a: number[]) => number> {
  return cpuKernels()!.exports as unknown as Record<string, (...a: number[]) => number>;
}

/** The input transform's per-thread rows (see `winograd_input`, `winograd4_input`). */
function inputScratch(s: WinogradShape): Tensor {
  const perThread = sizing()[kernel(s, "input_scratch")](s.W);
  return emptyTensor([cpuKernels()!.pool.size * perThread]);
}

/**
 * Floats from block k to block k + 1 of a [16 or 36, rows, cols] transform: a cache line more than
 * rows x cols, so that the blocks do not share cache sets (`winograd_block_floats`).
 */
function blockFloats(rows: number, cols: number): number {
  return sizing().winograd_block_floats(rows, cols);
}

function layout(name: string, args: number[], floats: number): void {
  if (!runFloatsKernel(name, args, floats)) {
    throw new Error(`winograd: the CPU kernels are missing (${name})`);
  }
}
