/**
 * Fused in-place updates for the optimizers (`core/optim`): one kernel per parameter for Adam /
 * AdamW (optionally with the gradient-clipping factor folded in), the EMA of the weights, swapping
 * two tensors' values, scaling a gradient by a clipping factor, and adding a gradient's sum of
 * squares to a running total (the global norm in one launch per gradient). Each has a WGSL kernel
 * and a CPU loop computing the same float32 formula in the same order (`cpu/optim.ts`: WebAssembly
 * kernels or Math.fround after every operation), except the sum of squares (see
 * `accumulateSquares`). These write their first argument in place and record no gradient.
 */
import { cpu, gpu, onCpu } from "../backend.ts";
import { adamArrays, type AdamHyper, emaArrays, scaleArray } from "../cpu/optim.ts";
import { f32 } from "../cpu/views.ts";
import { bufferOf, type Tensor } from "../tensor.ts";
import { f32Literal, runElementwise, scalarBuffer } from "../kernels/wgsl.ts";

const fr = Math.fround;

export type { AdamHyper };

function expectSameSize(op: string, a: Tensor, b: Tensor): void {
  if (a.size !== b.size) {
    throw new Error(`${op}: [${a.shape}] and [${b.shape}] differ in size.`);
  }
}

/**
 * One Adam / AdamW step on parameter p (in place) with gradient g and moments m, v (in place)
 * (Kingma & Ba 2015, Algorithm 1, in PyTorch's formulation; AdamW: Loshchilov & Hutter 2019):
 * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t)
 * + eps). `scalars` holds [lr, 1 / (1 - b1^t), 1 / sqrt(1 - b2^t), lr * wd] for this step: a
 * tensor, so the WGSL kernel stays the same from step to step.
 */
export function adamUpdate(
  p: Tensor,
  g: Tensor,
  m: Tensor,
  v: Tensor,
  scalars: Tensor,
  h: AdamHyper,
  clip?: GradClip,
): void {
  for (const t of [g, m, v]) expectSameSize("adamUpdate", p, t);
  if (clip && !(clip.maxNorm > 0)) {
    throw new Error(`adamUpdate: clip.maxNorm must be positive, got ${clip.maxNorm}.`);
  }
  if (clip && clip.norm.size !== 1) {
    throw new Error(`adamUpdate: clip.norm must have one element, got [${clip.norm.shape}].`);
  }
  if (onCpu()) adamCpu(p, g, m, v, scalars, h, clip);
  else adamGpu(p, g, m, v, scalars, h, clip);
}

/**
 * Gradient clipping folded into `adamUpdate`: the gradient is read as g * min(1, maxNorm /
 * (norm[0] + 1e-6)), `clipScale`'s factor, and left unchanged in memory. One launch per parameter
 * fewer than `clipScale` and then the update.
 */
export interface GradClip {
  /** The global gradient norm, a one-element tensor (`gradNorm` in core/optim). */
  norm: Tensor;
  /** The largest norm let through. */
  maxNorm: number;
}

/** `adamUpdate`'s arguments, as its two backends take them. */
type AdamArgs = [
  p: Tensor,
  g: Tensor,
  m: Tensor,
  v: Tensor,
  s: Tensor,
  h: AdamHyper,
  clip?: GradClip,
];

function adamGpu(...[p, g, m, v, s, h, clip]: AdamArgs): void {
  const b1 = f32Literal(h.beta1), b2 = f32Literal(h.beta2);
  const ob1 = f32Literal(1 - h.beta1), ob2 = f32Literal(1 - h.beta2);
  const wd = h.weightDecay;
  const clipped = clip ? `G[i] * ${clipFactorWgsl(clip.maxNorm)}` : "G[i]";
  const grad = wd !== 0 && !h.decoupled ? `${clipped} + ${f32Literal(wd)} * P[i]` : clipped;
  const decay = wd !== 0 && h.decoupled ? "  p = p * (1.0 - S[3]);\n" : "";
  runElementwise({
    label: h.decoupled ? "adamw" : "adam",
    n: p.size,
    bindings: [
      { binding: { name: "P", type: "f32", access: "read_write" }, tensor: p },
      { binding: { name: "G", type: "f32", access: "read" }, tensor: g },
      { binding: { name: "M", type: "f32", access: "read_write" }, tensor: m },
      { binding: { name: "V", type: "f32", access: "read_write" }, tensor: v },
      { binding: { name: "S", type: "f32", access: "read" }, tensor: s },
      ...(clip
        ? [{
          binding: { name: "N", type: "f32" as const, access: "read" as const },
          tensor: clip.norm,
        }]
        : []),
    ],
    body: `  let g = ${grad};
  let m = ${b1} * M[i] + ${ob1} * g;
  let v = ${b2} * V[i] + ${ob2} * g * g;
  M[i] = m;
  V[i] = v;
  var p = P[i];
${decay}  P[i] = p - S[0] * S[1] * m / (sqrt(v) * S[2] + ${f32Literal(h.eps)});`,
  });
}

/** The CPU twin of `adamGpu` (cpu/optim.ts): the clipping factor scales the gradient as it is
 * read, so the gradient itself stays as it was, as on WebGPU. */
function adamCpu(...[p, g, m, v, s, h, clip]: AdamArgs): void {
  cpu().countOp();
  const factor = clip ? clipFactor(clip.norm, clip.maxNorm) : 1;
  adamArrays(f32(p), f32(g), f32(m), f32(v), f32(s), h, factor);
}

/** shadow = d * shadow + (1 - d) * p in place, d = decay[0] (a one-element tensor). */
export function emaUpdate(shadow: Tensor, p: Tensor, decay: Tensor): void {
  expectSameSize("emaUpdate", shadow, p);
  if (onCpu()) {
    cpu().countOp();
    emaArrays(f32(shadow), f32(p), f32(decay)[0]);
    return;
  }
  runElementwise({
    label: "ema_update",
    n: p.size,
    bindings: [
      { binding: { name: "S", type: "f32", access: "read_write" }, tensor: shadow },
      { binding: { name: "P", type: "f32", access: "read" }, tensor: p },
      { binding: { name: "D", type: "f32", access: "read" }, tensor: decay },
    ],
    body: "  let d = D[0];\n  S[i] = d * S[i] + (1.0 - d) * P[i];",
  });
}

/** Exchanges the values of two tensors of the same size in place. */
export function swapValues(a: Tensor, b: Tensor): void {
  expectSameSize("swapValues", a, b);
  if (onCpu()) {
    cpu().countOp();
    const A = f32(a), B = f32(b);
    for (let i = 0; i < A.length; i++) {
      const t = A[i];
      A[i] = B[i];
      B[i] = t;
    }
    return;
  }
  runElementwise({
    label: "ema_swap",
    n: a.size,
    bindings: [
      { binding: { name: "S", type: "f32", access: "read_write" }, tensor: a },
      { binding: { name: "P", type: "f32", access: "read_write" }, tensor: b },
    ],
    body: "  let t = S[i];\n  S[i] = P[i];\n  P[i] = t;",
  });
}

/** The clipping factor min(1, maxNorm / (norm + 1e-6)) of PyTorch's `clip_grad_norm_`, in WGSL
 * (the norm bound as `N`), for `clipScale` and the clipped Adam update. */
function clipFactorWgsl(maxNorm: number): string {
  return `min(1.0, ${f32Literal(maxNorm)} / (N[0] + 1e-6))`;
}

/** The same factor on the CPU, in float32 as the WGSL computes it. */
function clipFactor(norm: Tensor, maxNorm: number): number {
  return Math.min(1, fr(fr(maxNorm) / fr(f32(norm)[0] + fr(1e-6))));
}

/**
 * g *= min(1, maxNorm / (norm[0] + 1e-6)) in place, norm a one-element tensor: the scaling of
 * PyTorch's `clip_grad_norm_`, with the norm left on the device.
 */
export function clipScale(g: Tensor, norm: Tensor, maxNorm: number): void {
  if (onCpu()) {
    cpu().countOp();
    scaleArray(f32(g), clipFactor(norm, maxNorm));
    return;
  }
  runElementwise({
    label: "clip_grad_scale",
    n: g.size,
    bindings: [
      { binding: { name: "G", type: "f32", access: "read_write" }, tensor: g },
      { binding: { name: "N", type: "f32", access: "read" }, tensor: norm },
    ],
    body: `  G[i] = G[i] * ${clipFactorWgsl(maxNorm)};`,
  });
}

/**
 * total[0] += sum of g[i]^2, in place (`total` a one-element tensor): a gradient's share of the
 * global L2 norm in one launch (one workgroup strides over g and reduces in workgroup memory; the
 * length travels as a scalar, so every gradient shares one pipeline). Launches run in order, so
 * a loop over the gradients accumulates their total. One workgroup reads at one compute unit's
 * bandwidth: right for the launch-bound sizes here (tensors up to a few million elements); a
 * two-stage reduction would suit far larger ones. The CPU twin sums in float64 (an exception to
 * this module's same-order rule: the WGSL tree order is not reproduced).
 */
export function accumulateSquares(total: Tensor, g: Tensor): void {
  if (total.size !== 1) {
    throw new Error(`accumulateSquares: total must have one element, got [${total.shape}].`);
  }
  if (onCpu()) {
    cpu().countOp();
    const G = f32(g);
    let acc = 0;
    for (let i = 0; i < G.length; i++) acc += G[i] * G[i];
    const T = f32(total);
    T[0] = fr(T[0] + fr(acc));
    return;
  }
  if (g.size === 0) return;
  gpu().dispatch({
    label: "accumulate_squares",
    code: `@group(0) @binding(0) var<storage, read_write> T: array<f32>;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<u32>;
var<workgroup> part: array<f32, 256>;
@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) l: u32) {
  let n = S[0];
  var acc = 0.0;
  for (var i = l; i < n; i += 256u) {
    let x = G[i];
    acc += x * x;
  }
  part[l] = acc;
  workgroupBarrier();
  for (var half = 128u; half > 0u; half >>= 1u) {
    if (l < half) { part[l] += part[l + half]; }
    workgroupBarrier();
  }
  if (l == 0u) { T[0] = T[0] + part[0]; }
}`,
    bindings: [
      { buffer: bufferOf(total), access: "read_write" },
      { buffer: bufferOf(g), access: "read" },
      { buffer: scalarBuffer(new Uint32Array([g.size])), access: "read" },
    ],
    workgroups: [1],
  });
}
