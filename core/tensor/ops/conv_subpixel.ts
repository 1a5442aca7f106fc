/**
 * The U-Net's upsampling layer (a transposed convolution with kernel 2s, stride s, padding s/2,
 * s even: kernel 4, stride 2, padding 1 in the decoder) as one stride-1 3x3 convolution with
 * s*s times the output channels, then a pixel shuffle (Shi et al. 2016, "Is the deconvolution
 * layer the same as a convolutional layer?", arXiv:1609.07009): output pixel (s*i + a, s*j + b)
 * reads only the input pixels next to (i, j), through the kernel taps of its phase (a, b).
 *
 * `convTranspose2d` (ops/conv.ts) runs `conv2d(x, subpixelWeights(w), subpixelBias(bias),
 * padding 1)` and then `pixelShuffle` when `subpixelApplies`. Exact in real arithmetic, and on the
 * CPU backend faster: the 3x3 convolution takes the Winograd path (`cpu/winograd.ts`), whereas the
 * transposed convolution runs an im2col GEMM and a col2im scatter (docs/benchmarks.md,
 * 2026-12-07). The gradients follow from the composed ops, w's through the gather.
 *
 * Per axis, output row s*i + a gets input row i + dy from tap ky of w when ky = (a+p) mod s + s*t
 * and dy = floor((a+p)/s) - t, t in {0, 1} (from oy = s*iy - p + ky); with p = s/2 every dy is
 * -1, 0 or 1, so a 3x3 window with padding 1 covers all phases. The other taps of the window are 0.
 */
import { onCpu } from "../backend.ts";
import type { ConvGeometry } from "../cpu/conv.ts";
import { winogradTile } from "../cpu/winograd.ts";
import { tensor, zeros } from "../creation.ts";
import type { Tensor } from "../tensor.ts";
import { embedding } from "./embedding.ts";
import { concat, expand, permute, reshape } from "./view.ts";

/**
 * Geometry of a transposed convolution as `convTranspose2d` resolves it: strides, padding and
 * kernel size of the equivalent forward convolution, plus the output padding rows and columns.
 */
export interface TransposedGeometry extends Omit<ConvGeometry, "n"> {
  /** Output padding rows. */
  oy: number;
  /** Output padding columns. */
  ox: number;
}

let enabled = true;

/**
 * Turns the sub-pixel route on or off (on by default) and returns the previous setting: for tests
 * and benchmarks that compare it with the direct transposed convolution.
 */
export function useSubpixelUpsampling(on: boolean): boolean {
  const before = enabled;
  enabled = on;
  return before;
}

/** Whether one axis is an even-stride upsampling: kernel 2s, padding s/2, no output padding. */
function upsamplingAxis(s: number, p: number, k: number, extra: number): boolean {
  return s % 2 === 0 && k === 2 * s && 2 * p === s && extra === 0;
}

/**
 * Whether `convTranspose2d` of x [N, C, H, W] into O channels runs as a sub-pixel convolution:
 * on the CPU backend, for an upsampling geometry, when Winograd takes the 3x3 convolution.
 */
export function subpixelApplies(
  g: TransposedGeometry,
  C: number,
  O: number,
  H: number,
  W: number,
): boolean {
  if (!enabled || !onCpu()) return false;
  if (!upsamplingAxis(g.sy, g.py, g.kh, g.oy) || !upsamplingAxis(g.sx, g.px, g.kw, g.ox)) {
    return false;
  }
  const same = { sy: 1, sx: 1, py: 1, px: 1, kh: 3, kw: 3 };
  return winogradTile(same, C, g.sy * g.sx * O, H, W, H, W) !== 0;
}

/** Per phase a in [0, s) and window row r in [0, 3): the tap of w it reads, or -1 (a zero). */
function phaseTaps(s: number, p: number): number[][] {
  return Array.from({ length: s }, (_, a) =>
    [0, 1, 2].map((r) => {
      const t = Math.floor((a + p) / s) - (r - 1);
      return t === 0 || t === 1 ? ((a + p) % s) + s * t : -1;
    }));
}

/**
 * The 3x3 weight [sy*sx*O, C, 3, 3] of every phase, gathered from w [C, O, kh, kw] (rows of the
 * table are w's taps, one extra row of zeros for the window's empty taps), so w's gradient
 * flows back through the gather.
 */
export function subpixelWeights(w: Tensor, g: TransposedGeometry): Tensor {
  const [C, O, kh, kw] = w.shape;
  const taps = kh * kw;
  const rows = phaseTaps(g.sy, g.py), cols = phaseTaps(g.sx, g.px);
  const ids: number[] = [];
  for (const ry of rows) {
    for (const rx of cols) {
      for (const ky of ry) for (const kx of rx) ids.push(ky < 0 || kx < 0 ? taps : ky * kw + kx);
    }
  }
  const table = concat([reshape(permute(w, [2, 3, 0, 1]), [taps, C * O]), zeros([1, C * O])], 0);
  const picked = embedding(tensor(new Int32Array(ids), [g.sy, g.sx, 3, 3]), table);
  const perPhase = permute(reshape(picked, [g.sy, g.sx, 3, 3, C, O]), [0, 1, 5, 4, 2, 3]);
  return reshape(perPhase, [g.sy * g.sx * O, C, 3, 3]);
}

/** bias [O] repeated for each of the sy*sx phases: [sy*sx*O], the 3x3 convolution's bias. */
export function subpixelBias(bias: Tensor, g: TransposedGeometry): Tensor {
  const O = bias.size, phases = g.sy * g.sx;
  return reshape(expand(reshape(bias, [1, O]), [phases, O]), [phases * O]);
}

/**
 * The pixel shuffle: z [N, (a, b, o), H, W] of the 3x3 convolution, phases (a, b) in
 * [0, sy) x [0, sx) -> [N, O, sy*H, sx*W] with y[n, o, sy*i + a, sx*j + b] = z[n, (a, b, o), i, j].
 * The channels are phase-major, where torch.nn.PixelShuffle reads them as (o, a, b).
 */
export function pixelShuffle(z: Tensor, sy: number, sx: number): Tensor {
  const [N, C, H, W] = z.shape, O = C / (sy * sx);
  const shuffled = permute(reshape(z, [N, sy, sx, O, H, W]), [0, 3, 4, 1, 5, 2]);
  return reshape(shuffled, [N, O, sy * H, sx * W]);
}
