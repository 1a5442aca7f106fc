/**
 * Normalisation layers: layer norm (Ba, Kiros & Hinton 2016), group norm (Wu & He 2018, with an
 * optional fused SiLU as used by every U-Net residual block) and batch norm (Ioffe & Szegedy
 * 2015). Layer and group norm share one hand-fused kernel generator: one workgroup per
 * normalised row (a group is a contiguous row of C/G * spatial elements), mean and variance by
 * workgroup tree reductions (two passes, so the variance is not a difference of large numbers),
 * and one fused backward kernel for the input gradient.
 */
import { noGrad, record } from "../autograd.ts";
import { cpu, onCpu } from "../backend.ts";
import { normBackward, normForward, type NormLayout } from "../cpu/norm.ts";
import { f32 } from "../cpu/views.ts";
import { expectDType, sameShape } from "../shape.ts";
import { emptyTensor, sizeOf, type Tensor } from "../tensor.ts";
import { f32Literal } from "../kernels/wgsl.ts";
import { ACTIVATION_WGSL } from "../kernels/activation.ts";
import { dispatchRows, reduceWorkgroup, type RowBinding, RW } from "../kernels/rows.ts";
import { add, affine, div, maximum, mul, rsqrt, square, sub } from "./elementwise.ts";
import { mean, sum, sumTo, variance } from "./reduce.ts";
import { permute, reshape } from "./view.ts";

/** A row norm as the CPU kernels take it (`layout` maps each element to its channel). */
interface CpuRowNormSpec {
  op: string;
  x: Tensor;
  rows: number;
  /** Elements per normalised row. */
  L: number;
  weight?: Tensor | null;
  bias?: Tensor | null;
  eps: number;
  silu: boolean;
  /** Row, group and channel of each element, for the CPU kernels. */
  layout: NormLayout;
}

/** A row norm on either backend: WebGPU's kernel also needs the channel mapping in WGSL, and its
 * backward sums the weight and bias gradients by ops. */
interface RowNormSpec extends CpuRowNormSpec {
  /** WGSL channel index (into weight/bias) of element `j` of row `row`. */
  channel: string;
  /** Sums a per-element tensor shaped like x down to the weight's shape. */
  toChannels: (t: Tensor) => Tensor;
}

/** A row norm's output with the statistics it normalised by, one per row. */
interface RowNormOutput {
  y: Tensor;
  mean: Tensor;
  /** 1 / sqrt(biased variance + eps). */
  rstd: Tensor;
}

/** The CPU twin of `rowNorm`: the same kernels as loops, weight and bias gradients summed inline. */
function rowNormCpu(s: CpuRowNormSpec): RowNormOutput {
  const { x, rows, weight, bias, eps, silu, layout } = s;
  const y = emptyTensor(x.shape);
  const meanT = emptyTensor([rows]);
  const rstdT = emptyTensor([rows]);
  const params = () => ({ w: weight ? f32(weight) : null, b: bias ? f32(bias) : null, silu });
  cpu().countOp();
  normForward(f32(x), f32(y), f32(meanT), f32(rstdT), layout, params(), eps);
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  record(y, s.op, inputs, (g) => {
    const dx = emptyTensor(x.shape);
    const dwT = weight?.requiresGrad ? emptyTensor(weight.shape) : null;
    const dbT = bias?.requiresGrad ? emptyTensor(bias.shape) : null;
    const dw = dwT ? new Float64Array(dwT.size) : null;
    const db = dbT ? new Float64Array(dbT.size) : null;
    cpu().countOp();
    normBackward(f32(x), f32(g), f32(meanT), f32(rstdT), layout, params(), { dx: f32(dx), dw, db });
    if (dwT) f32(dwT).set(dw!);
    if (dbT) f32(dbT).set(db!);
    return [dx, ...(weight ? [dwT] : []), ...(bias ? [dbT] : [])];
  });
  return { y, mean: meanT, rstd: rstdT };
}

/** Forward and backward of a normalisation over contiguous rows with a per-channel affine. */
function rowNorm(s: RowNormSpec): Tensor {
  if (onCpu()) return rowNormCpu(s).y;
  const { x, rows, L, weight, bias, eps, silu, channel } = s;
  const y = emptyTensor(x.shape);
  const meanT = emptyTensor([rows]);
  const rstdT = emptyTensor([rows]);
  const w = weight ? `W[${channel}]` : "1.0";
  const b = bias ? `BI[${channel}]` : "0.0";
  const params: RowBinding[] = [
    ...(weight ? [{ name: "W", tensor: weight, access: "read" as const }] : []),
    ...(bias ? [{ name: "BI", tensor: bias, access: "read" as const }] : []),
  ];
  dispatchRows({
    label: s.op,
    rows,
    prelude: silu ? ACTIVATION_WGSL : undefined,
    scratch: ["red", "red2"],
    bindings: [
      { name: "X", tensor: x, access: "read" },
      ...params,
      { name: "Y", tensor: y, access: "read_write" },
      { name: "MEAN", tensor: meanT, access: "read_write" },
      { name: "RSTD", tensor: rstdT, access: "read_write" },
    ],
    body: `  let base = row * ${L}u;
  var a1 = 0.0;
  for (var j = lid; j < ${L}u; j += ${RW}u) { a1 += X[base + j]; }
${reduceWorkgroup("sum", { red: "a1" })}  let mu = red[0] / ${f32Literal(L)};
  workgroupBarrier();
  var a2 = 0.0;
  for (var j = lid; j < ${L}u; j += ${RW}u) { let d = X[base + j] - mu; a2 += d * d; }
${reduceWorkgroup("sum", { red: "a2" })}  let rstd = inverseSqrt(red[0] / ${f32Literal(L)} + ${
      f32Literal(eps)
    });
  for (var j = lid; j < ${L}u; j += ${RW}u) {
    var z = (X[base + j] - mu) * rstd * ${w} + ${b};
    ${silu ? "z = act_silu(z);" : ""}
    Y[base + j] = z;
  }
  if (lid == 0u) { MEAN[row] = mu; RSTD[row] = rstd; }`,
  });
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return record(y, s.op, inputs, (g) => {
    const wantW = !!weight?.requiresGrad, wantB = !!bias?.requiresGrad;
    const dx = emptyTensor(x.shape);
    // gz: gradient at the pre-activation z (g itself without SiLU); gzx = gz * xhat.
    const gz = silu && (wantW || wantB) ? emptyTensor(x.shape) : null;
    const gzx = wantW ? emptyTensor(x.shape) : null;
    dispatchRows({
      label: `${s.op}_grad`,
      rows,
      prelude: silu ? ACTIVATION_WGSL : undefined,
      scratch: ["red", "red2"],
      bindings: [
        { name: "X", tensor: x, access: "read" },
        ...params,
        { name: "MEAN", tensor: meanT, access: "read" },
        { name: "RSTD", tensor: rstdT, access: "read" },
        { name: "G", tensor: g, access: "read" },
        { name: "DX", tensor: dx, access: "read_write" },
        ...(gz ? [{ name: "GZ", tensor: gz, access: "read_write" as const }] : []),
        ...(gzx ? [{ name: "GZX", tensor: gzx, access: "read_write" as const }] : []),
      ],
      body: `  let base = row * ${L}u;
  let mu = MEAN[row];
  let rstd = RSTD[row];
  var a1 = 0.0;
  var a2 = 0.0;
  for (var j = lid; j < ${L}u; j += ${RW}u) {
    let xh = (X[base + j] - mu) * rstd;
    ${
        silu
          ? `let z = xh * ${w} + ${b};
    let gzj = act_silu_grad(z, 0.0, G[base + j]);`
          : "let gzj = G[base + j];"
      }
    ${gz ? "GZ[base + j] = gzj;" : ""}
    ${gzx ? "GZX[base + j] = gzj * xh;" : ""}
    let gy = gzj * ${w};
    a1 += gy;
    a2 += gy * xh;
  }
${reduceWorkgroup("sum", { red: "a1", red2: "a2" })}  let m1 = red[0] / ${f32Literal(L)};
  let m2 = red2[0] / ${f32Literal(L)};
  for (var j = lid; j < ${L}u; j += ${RW}u) {
    let xh = (X[base + j] - mu) * rstd;
    ${
        silu
          ? `let z = xh * ${w} + ${b};
    let gzj = act_silu_grad(z, 0.0, G[base + j]);`
          : "let gzj = G[base + j];"
      }
    DX[base + j] = rstd * (gzj * ${w} - m1 - xh * m2);
  }`,
    });
    const gzFull = gz ?? g;
    return [
      dx,
      ...(weight ? [wantW ? s.toChannels(gzx!) : null] : []),
      ...(bias ? [wantB ? s.toChannels(gzFull) : null] : []),
    ];
  });
}

function checkParam(
  op: string,
  name: string,
  p: Tensor | null | undefined,
  n: number,
  x: Tensor,
): void {
  if (!p) return;
  expectDType(op, name, p, "f32");
  if (p.rank !== 1 || p.shape[0] !== n) {
    throw new Error(
      `${op}: ${name} has shape [${p.shape}], expected [${n}] for input [${x.shape}].`,
    );
  }
}

/**
 * Layer normalisation over the last dimension (Ba et al. 2016):
 * y = (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function normalise(x: Tensor, gamma: Tensor, beta: Tensor): Tensor {
 *   return layerNorm(x, gamma, beta); // x [B, T, D], gamma and beta [D]
 * }
 * ```
 */
export function layerNorm(
  x: Tensor,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  expectDType("layerNorm", "x", x, "f32");
  if (x.rank < 1) {
    throw new Error(`layerNorm: x must have at least one dimension, got shape [${x.shape}].`);
  }
  const D = x.shape[x.rank - 1];
  checkParam("layerNorm", "weight", weight, D, x);
  checkParam("layerNorm", "bias", bias, D, x);
  return rowNorm({
    op: "layerNorm",
    x,
    rows: D === 0 ? 0 : x.size / D,
    L: D,
    weight,
    bias,
    eps,
    silu: false,
    channel: "j",
    layout: { rows: D === 0 ? 0 : x.size / D, perRow: D, S: 1, groups: 1 },
    toChannels: (t) => sumTo(t, [D]),
  });
}

/** Options of `groupNorm`. */
export interface GroupNormOptions {
  /** Apply SiLU after the affine transform, in the same kernel. */
  silu?: boolean;
}

/**
 * Group normalisation (Wu & He 2018): channels of x [N, C, ...] are split into `groups` groups
 * and each (sample, group) is normalised over its channels and spatial positions, then a
 * per-channel affine transform (and optionally SiLU) is applied.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function normSilu(x: Tensor, gamma: Tensor, beta: Tensor): Tensor {
 *   return groupNorm(x, 32, gamma, beta, 1e-5, { silu: true }); // x [B, C, H, W], C % 32 = 0
 * }
 * ```
 */
export function groupNorm(
  x: Tensor,
  groups: number,
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
  opts: GroupNormOptions = {},
): Tensor {
  expectDType("groupNorm", "x", x, "f32");
  if (x.rank < 2) throw new Error(`groupNorm: x must be [N, C, ...], got shape [${x.shape}].`);
  const [N, C] = x.shape;
  if (!Number.isInteger(groups) || groups < 1 || C % groups !== 0) {
    throw new Error(
      `groupNorm: ${groups} groups do not divide the ${C} channels of input [${x.shape}].`,
    );
  }
  checkParam("groupNorm", "weight", weight, C, x);
  checkParam("groupNorm", "bias", bias, C, x);
  const S = sizeOf(x.shape.slice(2));
  const Cg = C / groups;
  return rowNorm({
    op: "groupNorm",
    x,
    rows: N * groups,
    L: Cg * S,
    weight,
    bias,
    eps,
    silu: !!opts.silu,
    channel: `((row % ${groups}u) * ${Cg}u + j / ${S}u)`,
    layout: { rows: N * groups, perRow: Cg, S, groups },
    toChannels: (t) => sum(reshape(t, [N, C, S]), [0, 2]),
  });
}

/** Options of `batchNorm2d`. */
export interface BatchNormOptions {
  /** Use batch statistics and update the running estimates (else use the running estimates). */
  training: boolean;
  /** Weight of the new batch statistic in the running estimate. */
  momentum?: number;
  eps?: number;
}

/** Result of `batchNorm2d`: the output and the (new) running estimates. */
export interface BatchNormResult {
  y: Tensor;
  /** Updated running mean in training mode; the input running mean in eval mode. */
  runningMean: Tensor;
  /** Updated running variance (unbiased batch variance, as PyTorch) in training mode. */
  runningVar: Tensor;
}

/**
 * Batch normalisation (Ioffe & Szegedy 2015) over every axis but the channel axis 1 of
 * x [N, C, ...] (functional: new running statistics are returned, never written in place).
 * Training on the CPU backend runs the row-norm kernels of layer and group norm with one channel
 * per row (x copied channel-major); eval mode, and training on WebGPU, are composed from
 * reductions and elementwise ops, which provide the gradients.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function trainingBatchNorm(x: Tensor, rm: Tensor, rv: Tensor, gamma: Tensor, beta: Tensor) {
 *   const { y, runningMean, runningVar } = batchNorm2d(x, rm, rv, gamma, beta, { training: true });
 *   return { y, runningMean, runningVar }; // the caller keeps the new statistics
 * }
 * ```
 */
export function batchNorm2d(
  x: Tensor,
  runningMean: Tensor,
  runningVar: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  opts: BatchNormOptions,
): BatchNormResult {
  const { training, momentum = 0.1, eps = 1e-5 } = opts;
  expectDType("batchNorm2d", "x", x, "f32");
  if (x.rank < 2) throw new Error(`batchNorm2d: x must be [N, C, ...], got shape [${x.shape}].`);
  const C = x.shape[1];
  checkParam("batchNorm2d", "runningMean", runningMean, C, x);
  checkParam("batchNorm2d", "runningVar", runningVar, C, x);
  checkParam("batchNorm2d", "weight", weight, C, x);
  checkParam("batchNorm2d", "bias", bias, C, x);
  const bshape = x.shape.map((d, i) => (i === 1 ? d : 1));
  const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
  let m: Tensor, v: Tensor;
  let newMean = runningMean, newVar = runningVar;
  const count = x.size / C;
  if (training && count < 2) {
    throw new Error(
      `batchNorm2d: training needs more than one value per channel, got input [${x.shape}].`,
    );
  }
  const update = (batchMean: Tensor, batchVar: Tensor) =>
    noGrad(() => [
      add(affine(runningMean, 1 - momentum, 0), affine(reshape(batchMean, [C]), momentum, 0)),
      add(
        affine(runningVar, 1 - momentum, 0),
        affine(reshape(batchVar, [C]), momentum * count / (count - 1), 0),
      ),
    ]);
  if (training && onCpu()) {
    // One channel per row of the row-norm kernels (float64 statistics, one pass for y, one
    // fused backward): x as [C, N * S], channel-major, and y back as [N, C, ...]. Composed
    // from reductions and elementwise ops, as on WebGPU, the CPU took ten times as long.
    const N = x.shape[0], S = count / N;
    const rows = reshape(permute(reshape(x, [N, C, S]), [1, 0, 2]), [C, N * S]);
    const out = rowNormCpu({
      op: "batchNorm2d",
      x: rows,
      rows: C,
      L: N * S,
      weight,
      bias,
      eps,
      silu: false,
      layout: { rows: C, perRow: 1, S: N * S, groups: C },
    });
    // The biased batch variance from the kernel's float32 1 / sqrt(var + eps); kept at or above 0
    // where the variance is below the rounding of var + eps (a near-constant channel).
    const batchVar = noGrad(() => maximum(affine(div(1, square(out.rstd)), 1, -eps), 0));
    [newMean, newVar] = update(out.mean, batchVar);
    const y = reshape(permute(reshape(out.y, [C, N, S]), [1, 0, 2]), x.shape);
    return { y, runningMean: newMean, runningVar: newVar };
  }
  if (training) {
    m = mean(x, axes, true);
    v = variance(x, axes, true);
    [newMean, newVar] = update(m, v);
  } else {
    m = reshape(runningMean, bshape);
    v = reshape(runningVar, bshape);
  }
  let y = mul(sub(x, m), rsqrt(affine(v, 1, eps)));
  if (weight) y = mul(y, reshape(weight, bshape));
  if (bias) y = add(y, reshape(bias, bshape));
  if (!sameShape(y.shape, x.shape)) {
    throw new Error(`batchNorm2d: internal shape error [${y.shape}].`);
  }
  return { y, runningMean: newMean, runningVar: newVar };
}
