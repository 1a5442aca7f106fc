/**
 * Fused in-place updates for the optimizers (`core/optim`): one kernel per parameter for Adam /
 * AdamW, the EMA of the weights, swapping two tensors' values, and scaling a gradient by a
 * clipping factor. Each has a WGSL kernel and a CPU loop computing the same float32 formula in
 * the same order (`cpu/optim.ts`: WebAssembly kernels or Math.fround after every operation). These
 * write their first argument in place and record no gradient.
 */
import { cpu, onCpu } from "../backend.ts";
import { adamArrays, type AdamHyper, emaArrays, scaleArray } from "../cpu/optim.ts";
import { f32 } from "../cpu/views.ts";
import type { Tensor } from "../tensor.ts";
import { f32Literal, runElementwise } from "../kernels/wgsl.ts";

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
): void {
  for (const t of [g, m, v]) expectSameSize("adamUpdate", p, t);
  if (onCpu()) adamCpu(p, g, m, v, scalars, h);
  else adamGpu(p, g, m, v, scalars, h);
}

function adamGpu(p: Tensor, g: Tensor, m: Tensor, v: Tensor, s: Tensor, h: AdamHyper): void {
  const b1 = f32Literal(h.beta1), b2 = f32Literal(h.beta2);
  const ob1 = f32Literal(1 - h.beta1), ob2 = f32Literal(1 - h.beta2);
  const wd = h.weightDecay;
  const grad = wd !== 0 && !h.decoupled ? `G[i] + ${f32Literal(wd)} * P[i]` : "G[i]";
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

/** The CPU twin of `adamGpu` (cpu/optim.ts). */
function adamCpu(p: Tensor, g: Tensor, m: Tensor, v: Tensor, s: Tensor, h: AdamHyper): void {
  cpu().countOp();
  adamArrays(f32(p), f32(g), f32(m), f32(v), f32(s), h);
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

/**
 * g *= min(1, maxNorm / (norm[0] + 1e-6)) in place, norm a one-element tensor: the scaling of
 * PyTorch's `clip_grad_norm_`, with the norm left on the device.
 */
export function clipScale(g: Tensor, norm: Tensor, maxNorm: number): void {
  if (onCpu()) {
    cpu().countOp();
    scaleArray(f32(g), Math.min(1, fr(fr(maxNorm) / fr(f32(norm)[0] + fr(1e-6)))));
    return;
  }
  runElementwise({
    label: "clip_grad_scale",
    n: g.size,
    bindings: [
      { binding: { name: "G", type: "f32", access: "read_write" }, tensor: g },
      { binding: { name: "N", type: "f32", access: "read" }, tensor: norm },
    ],
    body: `  G[i] = G[i] * min(1.0, ${f32Literal(maxNorm)} / (N[0] + 1e-6));`,
  });
}
