/**
 * 2-D convolutions (NCHW, f32) as implicit GEMMs on the one GEMM template (`kernels/gemm.ts`): im2col
 * happens inside the `readA`/`readB` hooks (0 for padding and out-of-range taps), the scatter to
 * NCHW, bias and activation inside `writeC`. Three GEMM shapes serve everything:
 *
 * - `convGemm`: a direct convolution, y[n,o,oy,ox] = sum_{c,ky,kx} x[n,c,oy*s-p+ky,ox*s-p+kx]
 *   w[o,c,ky,kx]. M = O (output channels), N = batch*Ho*Wo (consecutive n are consecutive
 *   output pixels of one plane, so writes to NCHW are contiguous), K = C*kh*kw.
 * - `transposedGemm`: the adjoint of `convGemm` with respect to x (a transposed convolution,
 *   Dumoulin & Visin 2016, "A guide to convolution arithmetic", sec. 4): out[n,co,y,x] =
 *   sum_{ci,ky,kx} in[n,ci,(y+p-ky)/s,(x+p-kx)/s] w[ci,co,ky,kx], taking only taps where the
 *   division is exact. Serves conv2d's input gradient and convTranspose2d's forward.
 * - `weightGradGemm`: out[co,ci,ky,kx] = sum_{n,gy,gx} g[n,co,gy,gx] x[n,ci,gy*s-p+ky,gx*s-p+kx],
 *   reducing over K = batch*Hg*Wg. Serves both weight gradients.
 *
 * On the CPU backend the same three functions run as explicit im2col / col2im plus `gemm`, or
 * Winograd (`cpu/conv.ts`); there the U-Net's upsampling geometry of `convTranspose2d` runs as a
 * 3x3 convolution and a pixel shuffle instead (`conv_subpixel.ts`).
 *
 * Output sizes follow the PyTorch docs for `torch.nn.Conv2d` (Ho = floor((H + 2p - kh)/s) + 1)
 * and `torch.nn.ConvTranspose2d` (Ho = (H - 1)s - 2p + kh + outputPadding).
 */
import { isGradEnabled, record } from "../autograd.ts";
import { onCpu } from "../backend.ts";
import {
  convAdjointCpu,
  convForwardCpu,
  type ConvGeometry,
  convWeightGradCpu,
  type KeptTransform,
} from "../cpu/conv.ts";
import { runGemm } from "../kernels/gemm.ts";
import { ACTIVATION_WGSL, activationWgsl } from "../kernels/activation.ts";
import { expectDType, expectRank } from "../shape.ts";
import { emptyTensor, type Tensor } from "../tensor.ts";
import { relu, silu } from "./elementwise.ts";
import { sum } from "./reduce.ts";
import { pixelShuffle, subpixelApplies, subpixelBias, subpixelWeights } from "./conv_subpixel.ts";

/** Activations conv2d can fuse into its epilogue (formulas: `kernels/activation.ts`). */
export type ConvActivation = "none" | "relu" | "silu";
const CONV_ACTIVATIONS: readonly string[] = ["none", "relu", "silu"] satisfies ConvActivation[];

/** Options for `conv2d`. */
export interface Conv2dOptions {
  /** Step between taps, one number or [sy, sx] (default 1). */
  stride?: number | readonly [number, number];
  /** Zero padding on each side, one number or [py, px] (default 0). */
  padding?: number | readonly [number, number];
  /** Activation applied after the bias (fused when no gradient is recorded). */
  activation?: ConvActivation;
}

/** Options for `convTranspose2d`. */
export interface ConvTranspose2dOptions {
  /** Stride of the equivalent forward convolution (default 1). */
  stride?: number | readonly [number, number];
  /** Padding of the equivalent forward convolution (default 0). */
  padding?: number | readonly [number, number];
  /** Extra rows/columns added on the bottom/right of the output; must be < stride (default 0). */
  outputPadding?: number | readonly [number, number];
}

/** Resolves `v` (number or pair) to an integer pair >= min; throws naming the op and argument. */
export function conv2dPair(
  op: string,
  name: string,
  v: number | readonly [number, number],
  min: number,
): [number, number] {
  const p: [number, number] = typeof v === "number" ? [v, v] : [v[0], v[1]];
  if (
    (typeof v !== "number" && (!Array.isArray(v) || v.length !== 2)) ||
    !p.every((d) => Number.isInteger(d) && d >= min)
  ) {
    const what = min === 1 ? "positive integers" : "non-negative integers";
    throw new Error(
      `${op}: ${name} must be ${what} (a number or a pair), got ${JSON.stringify(v)}.`,
    );
  }
  return p;
}

/** Batch size, stride, padding and kernel size of a convolution. */
type Geometry = ConvGeometry;

/** WGSL lines splitting `n` (an index over batch x plane) into nb, pixel row/col. */
function splitPixel(n: string, h: number, w: number, ys: string, xs: string): string {
  return `  let nb = ${n} / ${h * w}u;\n  let q = ${n} % ${h * w}u;\n` +
    `  let ${ys} = i32(q / ${w}u);\n  let ${xs} = i32(q % ${w}u);`;
}

/** WGSL lines splitting `k` (an index over channel x kernel) into channel, ky, kx. */
function splitTap(k: string, kh: number, kw: number, c: string): string {
  return `  let ${c} = ${k} / ${kh * kw}u;\n  let r = ${k} % ${kh * kw}u;\n` +
    `  let ky = i32(r / ${kw}u);\n  let kx = i32(r % ${kw}u);`;
}

/**
 * WGSL body of a vec4 im2col read: 4 consecutive output pixels (ox0..ox0+3 of one row, input
 * columns ix0 + j*step) of input row `iy` (already range-checked), 0 outside the padded input.
 * `ok(j)` adds a per-column condition (stride divisibility in transposed convolutions).
 */
function rowOf4(src: string, base: string, ix0: string, step: number, w: number, div = 1): string {
  let body = `  var v = vec4<f32>(0.0);\n`;
  for (let j = 0; j < 4; j++) {
    const t = `${ix0} + ${j * step}`;
    body += div === 1
      ? `  if (${t} >= 0 && ${t} < ${w}) { v[${j}] = ${src}[${base} + u32(${t})]; }\n`
      : `  if (${t} >= 0 && (${t}) % ${div} == 0 && (${t}) / ${div} < ${w}) { v[${j}] = ${src}[${base} + u32((${t}) / ${div})]; }\n`;
  }
  return body + "  return v;";
}

/**
 * The im2col reads of a direct-convolution GEMM operand: element (tap, output pixel) of the
 * unfolded input X [n,C,H,W] at padded, strided positions, 0 outside it. `tap` names the GEMM
 * index (k or n) over channel x kernel, the other one runs over batch x output pixel (Ho x Wo).
 * Gives the scalar `readB` body and, when output rows are a multiple of 4 wide, the `readB4`
 * hook reading 4 consecutive output pixels.
 */
function im2colReads(
  g: Geometry,
  [C, H, W]: readonly number[],
  Ho: number,
  Wo: number,
  K: number,
  NN: number,
  tap: "k" | "n",
): { readB: string; readB4?: { axis: "k" | "n"; body: string } } {
  const pixel = tap === "k" ? "n" : "k";
  const split = `${splitTap(tap, g.kh, g.kw, "c")}
${splitPixel(pixel, Ho, Wo, "oy", "ox")}
  let iy = oy * ${g.sy} - ${g.py} + ky;`;
  const row = `((nb * ${C}u + c) * ${H}u + u32(iy)) * ${W}u`;
  return {
    readB: `  if (k >= ${K}u || n >= ${NN}u) { return 0.0; }
${split}
  let ix = ox * ${g.sx} - ${g.px} + kx;
  if (iy < 0 || iy >= ${H} || ix < 0 || ix >= ${W}) { return 0.0; }
  return X[${row} + u32(ix)];`,
    readB4: Wo % 4 === 0
      ? {
        axis: pixel,
        body: `  if (k >= ${K}u || n >= ${NN}u) { return vec4<f32>(0.0); }
${split}
  if (iy < 0 || iy >= ${H}) { return vec4<f32>(0.0); }
  let base = ${row};
  let ix0 = ox * ${g.sx} - ${g.px} + kx;
${rowOf4("X", "base", "ix0", g.sx, W)}`,
      }
      : undefined,
  };
}

/**
 * Direct convolution x [n,C,H,W] * w [O,C,kh,kw] -> [n,O,Ho,Wo], plus bias[o] and `act` in the
 * epilogue.
 */
function convGemm(
  label: string,
  x: Tensor,
  w: Tensor,
  bias: Tensor | null,
  g: Geometry,
  Ho: number,
  Wo: number,
  act: ConvActivation,
  keep?: KeptTransform,
): Tensor {
  if (onCpu()) return convForwardCpu(x, w, bias, g, Ho, Wo, act, keep);
  const C = x.shape[1];
  const O = w.shape[0];
  const K = C * g.kh * g.kw;
  const out = emptyTensor([g.n, O, Ho, Wo]);
  const NN = g.n * Ho * Wo;
  const vecW = K % 4 === 0;
  runGemm({
    label,
    M: O,
    N: NN,
    K,
    batch: 1,
    prelude: act === "none" ? undefined : ACTIVATION_WGSL,
    bindings: [
      { name: "X", tensor: x, access: "read" },
      { name: "WT", tensor: w, access: "read", type: vecW ? "vec4<f32>" : "f32" },
      ...(bias ? [{ name: "BIAS", tensor: bias, access: "read" as const }] : []),
      { name: "Y", tensor: out, access: "read_write" },
    ],
    readA: `  if (m >= ${O}u || k >= ${K}u) { return 0.0; }\n  return ${
      vecW ? `WT[(m * ${K}u + k) / 4u][k % 4u]` : `WT[m * ${K}u + k]`
    };`,
    readA4: vecW
      ? {
        axis: "k",
        body: `  if (m >= ${O}u || k >= ${K}u) { return vec4<f32>(0.0); }
  return WT[(m * ${K}u + k) / 4u];`,
      }
      : undefined,
    ...im2colReads(g, x.shape.slice(1), Ho, Wo, K, NN, "k"),
    writeC: `  let nb = n / ${Ho * Wo}u;
  let q = n % ${Ho * Wo}u;
  let y = v${bias ? " + BIAS[m]" : ""};
  Y[(nb * ${O}u + m) * ${Ho * Wo}u + q] = ${activationWgsl(act, "y")};`,
  });
  return out;
}

/**
 * Transposed convolution: inp [n,Ci,Hi,Wi] with w [Ci,Co,kh,kw] -> [n,Co,Ho,Wo], where input
 * pixel iy feeds output rows iy*s - p + ky (Dumoulin & Visin 2016, sec. 4). Strides are handled
 * in the read hook by keeping only taps where (y + p - ky) is divisible by s.
 */
function transposedGemm(
  label: string,
  inp: Tensor,
  w: Tensor,
  bias: Tensor | null,
  g: Geometry,
  Ho: number,
  Wo: number,
): Tensor {
  if (onCpu()) return convAdjointCpu(inp, w, bias, g, Ho, Wo);
  const [, Ci, Hi, Wi] = inp.shape;
  const Co = w.shape[1];
  const K = Ci * g.kh * g.kw;
  const out = emptyTensor([g.n, Co, Ho, Wo]);
  const NN = g.n * Ho * Wo;
  const khw = g.kh * g.kw;
  runGemm({
    label,
    M: Co,
    N: NN,
    K,
    batch: 1,
    bindings: [
      { name: "G", tensor: inp, access: "read" },
      { name: "WT", tensor: w, access: "read" },
      ...(bias ? [{ name: "BIAS", tensor: bias, access: "read" as const }] : []),
      { name: "Y", tensor: out, access: "read_write" },
    ],
    readA: `  if (m >= ${Co}u || k >= ${K}u) { return 0.0; }
  return WT[((k / ${khw}u) * ${Co}u + m) * ${khw}u + k % ${khw}u];`,
    readB: `  if (k >= ${K}u || n >= ${NN}u) { return 0.0; }
${splitTap("k", g.kh, g.kw, "ci")}
${splitPixel("n", Ho, Wo, "oy", "ox")}
  let ty = oy + ${g.py} - ky;
  let tx = ox + ${g.px} - kx;
  if (ty < 0 || tx < 0 || ty % ${g.sy} != 0 || tx % ${g.sx} != 0) { return 0.0; }
  let iy = ty / ${g.sy};
  let ix = tx / ${g.sx};
  if (iy >= ${Hi} || ix >= ${Wi}) { return 0.0; }
  return G[((nb * ${Ci}u + ci) * ${Hi}u + u32(iy)) * ${Wi}u + u32(ix)];`,
    readB4: Wo % 4 === 0
      ? {
        axis: "n",
        body: `  if (k >= ${K}u || n >= ${NN}u) { return vec4<f32>(0.0); }
${splitTap("k", g.kh, g.kw, "ci")}
${splitPixel("n", Ho, Wo, "oy", "ox")}
  let ty = oy + ${g.py} - ky;
  if (ty < 0 || ty % ${g.sy} != 0 || ty / ${g.sy} >= ${Hi}) { return vec4<f32>(0.0); }
  let base = ((nb * ${Ci}u + ci) * ${Hi}u + u32(ty / ${g.sy})) * ${Wi}u;
  let tx0 = ox + ${g.px} - kx;
${rowOf4("G", "base", "tx0", 1, Wi, g.sx)}`,
      }
      : undefined,
    writeC: `  let nb = n / ${Ho * Wo}u;
  let q = n % ${Ho * Wo}u;
  Y[(nb * ${Co}u + m) * ${Ho * Wo}u + q] = v${bias ? " + BIAS[m]" : ""};`,
  });
  return out;
}

/**
 * Weight gradient: gout [n,Co,Hg,Wg] (indexed at output positions) and x [n,Ci,Hx,Wx] (indexed at
 * strided, padded positions) -> [Co,Ci,kh,kw], reducing over K = n*Hg*Wg.
 */
function weightGradGemm(
  label: string,
  gout: Tensor,
  x: Tensor,
  g: Geometry,
  transformed: Tensor | null = null,
): Tensor {
  if (onCpu()) return convWeightGradCpu(gout, x, g, transformed);
  const [, Co, Hg, Wg] = gout.shape;
  const Ci = x.shape[1];
  const khw = g.kh * g.kw;
  const NN = Ci * khw;
  const K = g.n * Hg * Wg;
  const P = Hg * Wg;
  const vecG = P % 4 === 0;
  const out = emptyTensor([Co, Ci, g.kh, g.kw]);
  runGemm({
    label,
    M: Co,
    N: NN,
    K,
    batch: 1,
    bindings: [
      { name: "G", tensor: gout, access: "read", type: vecG ? "vec4<f32>" : "f32" },
      { name: "X", tensor: x, access: "read" },
      { name: "GW", tensor: out, access: "read_write" },
    ],
    readA: `  if (m >= ${Co}u || k >= ${K}u) { return 0.0; }
  let i = ((k / ${P}u) * ${Co}u + m) * ${P}u + k % ${P}u;
  return ${vecG ? "G[i / 4u][i % 4u]" : "G[i]"};`,
    readA4: vecG
      ? {
        axis: "k",
        body: `  if (m >= ${Co}u || k >= ${K}u) { return vec4<f32>(0.0); }
  return G[(((k / ${P}u) * ${Co}u + m) * ${P}u + k % ${P}u) / 4u];`,
      }
      : undefined,
    ...im2colReads(g, x.shape.slice(1), Hg, Wg, K, NN, "n"),
    writeC: `  GW[m * ${NN}u + n] = v;`,
  });
  return out;
}

function checkBias(op: string, bias: Tensor | null | undefined, channels: number, w: Tensor): void {
  if (!bias) return;
  expectDType(op, "bias", bias, "f32");
  if (bias.rank !== 1 || bias.shape[0] !== channels) {
    throw new Error(
      `${op}: bias [${bias.shape}] does not match weight [${w.shape}] (expected [${channels}]).`,
    );
  }
}

function checkInputs(op: string, x: Tensor, w: Tensor): void {
  expectDType(op, "x", x, "f32");
  expectDType(op, "weight", w, "f32");
  expectRank(op, "x", x, 4);
  expectRank(op, "weight", w, 4);
}

/**
 * 2-D convolution (cross-correlation, as in PyTorch) of x [N,C,H,W] with w [O,C,kh,kw], plus an
 * optional bias [O] and activation -> [N,O,Ho,Wo], Ho = floor((H + 2p - kh)/s) + 1.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function convSilu(x: Tensor, w: Tensor, b: Tensor): Tensor {
 *   return conv2d(x, w, b, { padding: 1, activation: "silu" }); // 3x3 w: same H and W
 * }
 * ```
 */
export function conv2d(
  x: Tensor,
  w: Tensor,
  bias?: Tensor | null,
  opts: Conv2dOptions = {},
): Tensor {
  const op = "conv2d";
  checkInputs(op, x, w);
  const [sy, sx] = conv2dPair(op, "stride", opts.stride ?? 1, 1);
  const [py, px] = conv2dPair(op, "padding", opts.padding ?? 0, 0);
  const activation = opts.activation ?? "none";
  if (!CONV_ACTIVATIONS.includes(activation)) {
    throw new Error(`${op}: unknown activation "${activation}".`);
  }
  const [N, C, H, W] = x.shape;
  const [O, Cw, kh, kw] = w.shape;
  if (C !== Cw) {
    throw new Error(
      `${op}: channel mismatch: x [${x.shape}] has ${C} channels but weight [${w.shape}] expects ${Cw}.`,
    );
  }
  if (kh > H + 2 * py || kw > W + 2 * px) {
    throw new Error(
      `${op}: kernel ${kh}x${kw} (weight [${w.shape}]) is larger than the padded input ` +
        `${H + 2 * py}x${W + 2 * px} (x [${x.shape}], padding [${py}, ${px}]).`,
    );
  }
  checkBias(op, bias, O, w);
  const Ho = Math.floor((H + 2 * py - kh) / sy) + 1;
  const Wo = Math.floor((W + 2 * px - kw) / sx) + 1;
  const g: Geometry = { n: N, sy, sx, py, px, kh, kw };
  const b = bias ?? null;
  const fuse = activation !== "none" &&
    !(isGradEnabled() && (x.requiresGrad || w.requiresGrad || !!b?.requiresGrad));
  // On the CPU a Winograd forward keeps x's transform for the weight gradient (which would
  // compute it again); the gradient frees it, or the enclosing scope does if none is taken.
  const keep: KeptTransform | undefined = onCpu() && isGradEnabled() && w.requiresGrad
    ? { transformed: null }
    : undefined;
  const out = convGemm(op, x, w, b, g, Ho, Wo, fuse ? activation : "none", keep);
  record(out, op, b ? [x, w, b] : [x, w], (gy) => {
    // Gone if the scope that ran the forward has ended; a second backward transforms x afresh.
    const kept = keep?.transformed ?? null, transformed = kept?.disposed ? null : kept;
    if (keep) keep.transformed = null;
    const gw = w.requiresGrad ? weightGradGemm("conv2d_grad_w", gy, x, g, transformed) : null;
    transformed?.dispose();
    return [
      x.requiresGrad ? transposedGemm("conv2d_grad_x", gy, w, null, g, H, W) : null,
      gw,
      ...(b ? [b.requiresGrad ? sum(gy, [0, 2, 3]) : null] : []),
    ];
  });
  if (fuse || activation === "none") return out;
  return activation === "relu" ? relu(out) : silu(out);
}

/**
 * Transposed 2-D convolution (PyTorch's `ConvTranspose2d`) of x [N,C,H,W] with w [C,O,kh,kw]
 * -> [N,O,Ho,Wo], Ho = (H - 1)s - 2p + kh + outputPadding: the gradient of `conv2d` with respect
 * to its input (Dumoulin & Visin 2016, sec. 4). On the CPU backend the U-Net's upsampling geometry
 * (kernel 2s, stride s, padding s/2) runs as a 3x3 convolution and a pixel shuffle
 * (`conv_subpixel.ts`).
 */
export function convTranspose2d(
  x: Tensor,
  w: Tensor,
  bias?: Tensor | null,
  opts: ConvTranspose2dOptions = {},
): Tensor {
  const op = "convTranspose2d";
  checkInputs(op, x, w);
  const [sy, sx] = conv2dPair(op, "stride", opts.stride ?? 1, 1);
  const [py, px] = conv2dPair(op, "padding", opts.padding ?? 0, 0);
  const [oy, ox] = conv2dPair(op, "outputPadding", opts.outputPadding ?? 0, 0);
  if (oy >= sy || ox >= sx) {
    throw new Error(
      `${op}: outputPadding [${oy}, ${ox}] must be smaller than stride [${sy}, ${sx}].`,
    );
  }
  const [N, C, H, W] = x.shape;
  const [Cw, O, kh, kw] = w.shape;
  if (C !== Cw) {
    throw new Error(
      `${op}: channel mismatch: x [${x.shape}] has ${C} channels but weight [${w.shape}] ` +
        `(layout [in, out, kh, kw]) expects ${Cw}.`,
    );
  }
  const Ho = (H - 1) * sy - 2 * py + kh + oy;
  const Wo = (W - 1) * sx - 2 * px + kw + ox;
  if (Ho <= 0 || Wo <= 0) {
    throw new Error(
      `${op}: padding [${py}, ${px}] leaves an empty output ${Ho}x${Wo} for x [${x.shape}] ` +
        `and weight [${w.shape}].`,
    );
  }
  checkBias(op, bias, O, w);
  const g: Geometry = { n: N, sy, sx, py, px, kh, kw };
  const b = bias ?? null;
  const tg = { ...g, oy, ox };
  if (subpixelApplies(tg, C, O, H, W)) {
    const bz = b ? subpixelBias(b, tg) : null;
    return pixelShuffle(conv2d(x, subpixelWeights(w, tg), bz, { padding: 1 }), sy, sx);
  }
  const out = transposedGemm(op, x, w, b, g, Ho, Wo);
  return record(out, op, b ? [x, w, b] : [x, w], (gy) => [
    // d/dx of a transposed convolution is the direct convolution with the same weight, read
    // as [C (out), O (in), kh, kw].
    x.requiresGrad ? convGemm("convTranspose2d_grad_x", gy, w, null, g, H, W, "none") : null,
    w.requiresGrad ? weightGradGemm("convTranspose2d_grad_w", x, gy, g) : null,
    ...(b ? [b.requiresGrad ? sum(gy, [0, 2, 3]) : null] : []),
  ]);
}
