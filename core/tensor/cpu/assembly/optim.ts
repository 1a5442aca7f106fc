// The optimizers' in-place updates on the CPU backend (AssemblyScript, `deno task wasm`): Adam /
// AdamW, the EMA of the weights and the gradient-clipping scale, four lanes at a time and split
// across the threads in contiguous ranges. Each computes exactly the float32 formula of its
// TypeScript twin in `ops/optim.ts`, in the same order (plain mul and add, never a fused
// multiply-add, whose single rounding would give different bits), so both paths agree bit for
// bit. The per-step hyperparameters arrive as f32 arguments (JavaScript rounds them as
// Math.fround does).

import { share } from "./share";

/** Adam's flags: L2 weight decay added to the gradient, or AdamW's decoupled decay. */
const ADAM_L2: i32 = 1;
const ADAM_DECOUPLED: i32 = 2;

/**
 * One Adam / AdamW step over this thread's share of n floats (ops/optim.ts, `adamUpdate`):
 * g = g gScale (the gradient-clipping factor; 1, an exact product, when not clipping);
 * g' = g + wd p (L2); m = b1 m + ob1 g'; v = b2 v + (ob2 g') g'; p = p keep (AdamW);
 * p -= (rate m) / (sqrt(v) vScale + eps).
 */
export function adam_update(
  p: usize, g: usize, m: usize, v: usize, n: i32,
  b1: f32, b2: f32, ob1: f32, ob2: f32, eps: f32, wd: f32,
  rate: f32, keep: f32, vScale: f32, gScale: f32, flags: i32,
  tid: i32, nthreads: i32,
): void {
  const s = share(n, tid, nthreads);
  const lo = <i32>(s >> 32), hi = <i32>s;
  const l2 = (flags & ADAM_L2) != 0, decoupled = (flags & ADAM_DECOUPLED) != 0;
  const B1 = f32x4.splat(b1), B2 = f32x4.splat(b2), OB1 = f32x4.splat(ob1), OB2 = f32x4.splat(ob2);
  const EPS = f32x4.splat(eps), WD = f32x4.splat(wd), RATE = f32x4.splat(rate);
  const KEEP = f32x4.splat(keep), VS = f32x4.splat(vScale), GS = f32x4.splat(gScale);
  let i = lo;
  for (; i + 4 <= hi; i += 4) {
    const o = <usize>i << 2;
    const pi = v128.load(p + o);
    let gi = f32x4.mul(v128.load(g + o), GS);
    if (l2) gi = f32x4.add(gi, f32x4.mul(WD, pi));
    const mi = f32x4.add(f32x4.mul(B1, v128.load(m + o)), f32x4.mul(OB1, gi));
    const vi = f32x4.add(f32x4.mul(B2, v128.load(v + o)), f32x4.mul(f32x4.mul(OB2, gi), gi));
    v128.store(m + o, mi);
    v128.store(v + o, vi);
    const q = decoupled ? f32x4.mul(pi, KEEP) : pi;
    const step = f32x4.div(f32x4.mul(RATE, mi), f32x4.add(f32x4.mul(f32x4.sqrt(vi), VS), EPS));
    v128.store(p + o, f32x4.sub(q, step));
  }
  for (; i < hi; i++) {
    const o = <usize>i << 2;
    const pi = load<f32>(p + o);
    let gi = load<f32>(g + o) * gScale;
    if (l2) gi = gi + wd * pi;
    const mi = b1 * load<f32>(m + o) + ob1 * gi;
    const vi = b2 * load<f32>(v + o) + (ob2 * gi) * gi;
    store<f32>(m + o, mi);
    store<f32>(v + o, vi);
    const q = decoupled ? pi * keep : pi;
    store<f32>(p + o, q - (rate * mi) / (sqrt<f32>(vi) * vScale + eps));
  }
}

/** shadow = d shadow + od p over this thread's share of n floats (ops/optim.ts, `emaUpdate`). */
export function ema_update(
  shadow: usize, p: usize, n: i32, d: f32, od: f32, tid: i32, nthreads: i32,
): void {
  const s = share(n, tid, nthreads);
  const lo = <i32>(s >> 32), hi = <i32>s;
  const D = f32x4.splat(d), OD = f32x4.splat(od);
  let i = lo;
  for (; i + 4 <= hi; i += 4) {
    const o = <usize>i << 2;
    v128.store(shadow + o, f32x4.add(f32x4.mul(D, v128.load(shadow + o)), f32x4.mul(OD, v128.load(p + o))));
  }
  for (; i < hi; i++) {
    const o = <usize>i << 2;
    store<f32>(shadow + o, d * load<f32>(shadow + o) + od * load<f32>(p + o));
  }
}

/** x *= scale over this thread's share of n floats (the gradient clipping of `clipScale`). */
export function scale_in_place(x: usize, n: i32, scale: f32, tid: i32, nthreads: i32): void {
  const s = share(n, tid, nthreads);
  const lo = <i32>(s >> 32), hi = <i32>s;
  const S = f32x4.splat(scale);
  let i = lo;
  for (; i + 4 <= hi; i += 4) {
    const o = <usize>i << 2;
    v128.store(x + o, f32x4.mul(v128.load(x + o), S));
  }
  for (; i < hi; i++) {
    const o = <usize>i << 2;
    store<f32>(x + o, load<f32>(x + o) * scale);
  }
}
