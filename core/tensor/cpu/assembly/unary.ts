// Elementwise activations of the CPU backend (AssemblyScript, `deno task wasm`): exp, sigmoid,
// SiLU, GELU (tanh form) and ReLU and their gradients over a flat float32 array, four lanes at a time
// with the vector exp of math.ts. The formulas are those of the TypeScript twins in
// ops/elementwise.ts. Threads split the array into contiguous ranges.

import { exp4, gelu4, geluTanh4, madd4, sigmoid4, silu4 } from "./math";
import { share } from "./share";

export const UNARY_EXP: i32 = 0;
export const UNARY_SIGMOID: i32 = 1;
export const UNARY_SILU: i32 = 2;
export const UNARY_GELU: i32 = 3;
export const UNARY_RELU: i32 = 4;

/** The forward of `op` on four lanes (op is a constant at every inlined call site). */
// @ts-ignore: decorator
@inline function forward4(op: i32, x: v128): v128 {
  if (op == UNARY_EXP) return exp4(x);
  if (op == UNARY_SIGMOID) return sigmoid4(x);
  if (op == UNARY_SILU) return silu4(x);
  // max(x, 0): NaN stays NaN, as Math.max in the TypeScript twin.
  if (op == UNARY_RELU) return f32x4.max(x, f32x4.splat(0));
  return gelu4(x);
}

const GELU_K: f32 = 0.7978845608028654;

/** d loss / dx of `op` from x, its output y and the output gradient g, on four lanes. */
// @ts-ignore: decorator
@inline function backward4(op: i32, x: v128, y: v128, g: v128): v128 {
  const one = f32x4.splat(1);
  if (op == UNARY_EXP) return f32x4.mul(g, y);
  // g where x > 0, else +0.
  if (op == UNARY_RELU) return v128.and(g, f32x4.gt(x, f32x4.splat(0)));
  if (op == UNARY_SIGMOID) return f32x4.mul(f32x4.mul(g, y), f32x4.sub(one, y));
  if (op == UNARY_SILU) {
    // g s (1 + x (1 - s)), s = sigmoid(x)
    const s = sigmoid4(x);
    return f32x4.mul(f32x4.mul(g, s), madd4(x, f32x4.sub(one, s), one));
  }
  // g (0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 0.134145 x^2)), t = tanh(k (x + 0.044715 x^3))
  const half = f32x4.splat(0.5);
  const t = geluTanh4(x);
  const d = f32x4.mul(
    f32x4.mul(f32x4.mul(half, x), f32x4.sub(one, f32x4.mul(t, t))),
    f32x4.mul(f32x4.splat(GELU_K), madd4(f32x4.splat(0.134145), f32x4.mul(x, x), one)),
  );
  return f32x4.mul(g, f32x4.add(madd4(half, t, half), d));
}

// @ts-ignore: decorator
@inline function forwardRange(op: i32, x: usize, y: usize, lo: i32, hi: i32): void {
  let i = lo;
  for (; i + 4 <= hi; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, forward4(op, v128.load(x + o)));
  }
  for (; i < hi; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, f32x4.extract_lane(forward4(op, f32x4.splat(load<f32>(x + o))), 0));
  }
}

// @ts-ignore: decorator
@inline function backwardRange(
  op: i32, x: usize, y: usize, g: usize, gx: usize, lo: i32, hi: i32,
): void {
  let i = lo;
  for (; i + 4 <= hi; i += 4) {
    const o = <usize>i << 2;
    v128.store(gx + o, backward4(op, v128.load(x + o), v128.load(y + o), v128.load(g + o)));
  }
  for (; i < hi; i++) {
    const o = <usize>i << 2;
    const v = backward4(
      op, f32x4.splat(load<f32>(x + o)), f32x4.splat(load<f32>(y + o)), f32x4.splat(load<f32>(g + o)),
    );
    store<f32>(gx + o, f32x4.extract_lane(v, 0));
  }
}

/** y = op(x) over n floats (byte addresses), this thread's share. */
export function unary_forward(op: i32, x: usize, y: usize, n: i32, tid: i32, nthreads: i32): void {
  const s = share(n, tid, nthreads);
  const lo = <i32>(s >> 32), hi = <i32>s;
  if (op == UNARY_EXP) forwardRange(UNARY_EXP, x, y, lo, hi);
  else if (op == UNARY_SIGMOID) forwardRange(UNARY_SIGMOID, x, y, lo, hi);
  else if (op == UNARY_SILU) forwardRange(UNARY_SILU, x, y, lo, hi);
  else if (op == UNARY_RELU) forwardRange(UNARY_RELU, x, y, lo, hi);
  else forwardRange(UNARY_GELU, x, y, lo, hi);
}

/** gx = d op / dx * g over n floats, from x, the forward output y and g; this thread's share. */
export function unary_backward(
  op: i32, x: usize, y: usize, g: usize, gx: usize, n: i32, tid: i32, nthreads: i32,
): void {
  const s = share(n, tid, nthreads);
  const lo = <i32>(s >> 32), hi = <i32>s;
  if (op == UNARY_EXP) backwardRange(UNARY_EXP, x, y, g, gx, lo, hi);
  else if (op == UNARY_SIGMOID) backwardRange(UNARY_SIGMOID, x, y, g, gx, lo, hi);
  else if (op == UNARY_SILU) backwardRange(UNARY_SILU, x, y, g, gx, lo, hi);
  else if (op == UNARY_RELU) backwardRange(UNARY_RELU, x, y, g, gx, lo, hi);
  else backwardRange(UNARY_GELU, x, y, g, gx, lo, hi);
}
