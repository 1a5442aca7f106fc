/**
 * The optimizers' in-place updates on the CPU backend (`ops/optim.ts` dispatches here): Adam /
 * AdamW, the EMA of the weights and the gradient-clipping scale over float32 arrays. Each runs
 * the WebAssembly kernel of `assembly/optim.ts` (four lanes, every thread) where the kernels are
 * loaded and the arrays lie in the CPU memory, else the TypeScript loop below; both compute the
 * WGSL kernels' float32 formula in the same order (Math.fround after every operation here), so
 * all three agree bit for bit.
 */
import { kernelsFor, runKernel } from "./parallel.ts";

const fr = Math.fround;

/** The constant hyperparameters of an Adam update (the per-step ones live in `scalars`). */
export interface AdamHyper {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** AdamW: p *= 1 - lr * wd before the step, instead of adding wd * p to the gradient. */
  decoupled: boolean;
}

/**
 * One Adam / AdamW step on P in place, with gradient G and moments M, V (in place); `scalars` is
 * [lr, 1 / (1 - b1^t), 1 / sqrt(1 - b2^t), lr * wd] (see `adamUpdate` in ops/optim.ts). The
 * gradient is read as G * gradScale (the gradient-clipping factor) and left unchanged; a scale of
 * 1 is an exact product, so the unclipped update keeps its bits.
 */
export function adamArrays(
  P: Float32Array,
  G: Float32Array,
  M: Float32Array,
  V: Float32Array,
  scalars: ArrayLike<number>,
  h: AdamHyper,
  gradScale = 1,
): void {
  const b1 = fr(h.beta1), b2 = fr(h.beta2), ob1 = fr(1 - h.beta1), ob2 = fr(1 - h.beta2);
  const eps = fr(h.eps), wd = fr(h.weightDecay);
  const l2 = h.weightDecay !== 0 && !h.decoupled, decoupled = h.weightDecay !== 0 && h.decoupled;
  const rate = fr(scalars[0] * scalars[1]), keep = fr(1 - scalars[3]), vScale = fr(scalars[2]);
  const gs = fr(gradScale);
  const k = kernelsFor(P, G, M, V);
  if (k) {
    const at = [P, G, M, V].map((t) => t.byteOffset);
    const flags = (l2 ? 1 : 0) | (decoupled ? 2 : 0);
    const hyper = [b1, b2, ob1, ob2, eps, wd, rate, keep, vScale, gs, flags];
    return runKernel(k, "adam_update", [...at, P.length, ...hyper], P.length);
  }
  for (let i = 0; i < P.length; i++) {
    const pi = P[i];
    const g = fr(G[i] * gs);
    const gi = l2 ? fr(g + fr(wd * pi)) : g;
    const mi = fr(fr(b1 * M[i]) + fr(ob1 * gi));
    const vi = fr(fr(b2 * V[i]) + fr(fr(ob2 * gi) * gi));
    M[i] = mi;
    V[i] = vi;
    const q = decoupled ? fr(pi * keep) : pi;
    P[i] = q - fr(fr(rate * mi) / fr(fr(fr(Math.sqrt(vi)) * vScale) + eps));
  }
}

/** S = d S + (1 - d) P in place (the EMA of the weights), d a float32 value. */
export function emaArrays(S: Float32Array, P: Float32Array, decay: number): void {
  const d = fr(decay), od = fr(1 - d);
  const k = kernelsFor(S, P);
  if (k) return runKernel(k, "ema_update", [S.byteOffset, P.byteOffset, S.length, d, od], S.length);
  for (let i = 0; i < S.length; i++) S[i] = fr(d * S[i]) + fr(od * P[i]);
}

/** G *= scale in place, scale a float32 value (the gradient clipping of `clipScale`). */
export function scaleArray(G: Float32Array, scale: number): void {
  const s = fr(scale);
  const k = kernelsFor(G);
  if (k) return runKernel(k, "scale_in_place", [G.byteOffset, G.length, s], G.length);
  for (let i = 0; i < G.length; i++) G[i] *= s;
}
