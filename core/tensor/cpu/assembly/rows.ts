// Softmax and log-softmax rows of the CPU backend (AssemblyScript, `deno task wasm`), the twins
// of cpu/rows.ts: the row max in float32, the exponentials by the vector exp of math.ts, their
// sum in float64. Only the first `valid` elements of a row take part (a causal mask is a prefix
// of the keys); the rest get probability 0 (log-probability -inf) and zero gradient. A row of
// -inf gives NaN (exp(-inf - -inf)), as the WGSL does. Threads split the rows.

import { exp1, exp4 } from "./math";
import { hsum2, promoteHigh, rowShare } from "./rowstats";

/** Keys row r of a causal [..., Tq, L] tensor may see (all L when Tq is 0); see cpu/rows.ts. */
// @ts-ignore: decorator
@inline function validOf(r: i32, Tq: i32, L: i32): i32 {
  return Tq == 0 ? L : min(L, (r % Tq) + L - Tq + 1);
}

/** max_j s x[j] over j < n (-inf for an empty row). */
// @ts-ignore: decorator
@inline function rowMax(x: usize, n: i32, s: f32): f32 {
  const s4 = f32x4.splat(s);
  let m4 = f32x4.splat(-Infinity);
  let j = 0;
  for (; j + 4 <= n; j += 4) m4 = f32x4.max(m4, f32x4.mul(s4, v128.load(x + (<usize>j << 2))));
  let m = max(max(f32x4.extract_lane(m4, 0), f32x4.extract_lane(m4, 1)),
    max(f32x4.extract_lane(m4, 2), f32x4.extract_lane(m4, 3)));
  for (; j < n; j++) m = max(m, s * load<f32>(x + (<usize>j << 2)));
  return m;
}

/** Fills n floats at p with v. */
// @ts-ignore: decorator
@inline function fill(p: usize, n: i32, v: f32): void {
  for (let j = 0; j < n; j++) store<f32>(p + (<usize>j << 2), v);
}

/**
 * Softmax (or log-softmax with `log`) of s x over one row of L floats at x into y (x and y may
 * be the same), over the first `valid` elements.
 */
export function softmax_row(x: usize, y: usize, L: i32, valid: i32, s: f32, log: i32): void {
  const m = rowMax(x, valid, s);
  const s4 = f32x4.splat(s), m4 = f32x4.splat(m);
  // Exponentials (stored unless log-softmax) and their float64 sum.
  let a = f64x2.splat(0), b = f64x2.splat(0);
  let j = 0;
  for (; j + 4 <= valid; j += 4) {
    const q = <usize>j << 2;
    const e = exp4(f32x4.sub(f32x4.mul(s4, v128.load(x + q)), m4));
    if (!log) v128.store(y + q, e);
    a = f64x2.add(a, f64x2.promote_low_f32x4(e));
    b = f64x2.add(b, promoteHigh(e));
  }
  let sum = hsum2(f64x2.add(a, b));
  for (; j < valid; j++) {
    const q = <usize>j << 2;
    const e = exp1(s * load<f32>(x + q) - m);
    if (!log) store<f32>(y + q, e);
    sum += <f64>e;
  }
  if (log) {
    const lse = <f32>(<f64>m + Math.log(sum)), l4 = f32x4.splat(lse);
    j = 0;
    for (; j + 4 <= valid; j += 4) {
      const q = <usize>j << 2;
      v128.store(y + q, f32x4.sub(f32x4.mul(s4, v128.load(x + q)), l4));
    }
    for (; j < valid; j++) store<f32>(y + (<usize>j << 2), s * load<f32>(x + (<usize>j << 2)) - lse);
  } else {
    const inv = <f32>(1 / sum), i4 = f32x4.splat(inv);
    j = 0;
    for (; j + 4 <= valid; j += 4) {
      const q = <usize>j << 2;
      v128.store(y + q, f32x4.mul(v128.load(y + q), i4));
    }
    for (; j < valid; j++) store<f32>(y + (<usize>j << 2), load<f32>(y + (<usize>j << 2)) * inv);
  }
  fill(y + (<usize>valid << 2), L - valid, log ? -Infinity : 0);
}

/** `softmax_row` over this thread's share of `rows` rows of L (causal over Tq queries if Tq > 0). */
export function softmax_rows(
  x: usize, y: usize, rows: i32, L: i32, s: f32, log: i32, Tq: i32, tid: i32, nthreads: i32,
): void {
  const share = rowShare(rows, tid, nthreads);
  for (let r = <i32>(share >> 32); r < <i32>share; r++) {
    const o = <usize>r * <usize>L * 4;
    softmax_row(x + o, y + o, L, validOf(r, Tq, L), s, log);
  }
}

/**
 * Gradient of `softmax_row` from its output y and the output gradient g into dx (may be g), over
 * one row of L floats of which the first `valid` take part: softmax dx = s y (g - sum(g y));
 * log-softmax dx = s (g - exp(y) sum(g)).
 */
export function softmax_grad_row(
  y: usize, g: usize, dx: usize, L: i32, valid: i32, s: f32, log: i32,
): void {
  const s4 = f32x4.splat(s);
  let a = f64x2.splat(0), b = f64x2.splat(0);
  let j = 0;
  for (; j + 4 <= valid; j += 4) {
    const q = <usize>j << 2;
    const v = log ? v128.load(g + q) : f32x4.mul(v128.load(g + q), v128.load(y + q));
    a = f64x2.add(a, f64x2.promote_low_f32x4(v));
    b = f64x2.add(b, promoteHigh(v));
  }
  let t = hsum2(f64x2.add(a, b));
  for (; j < valid; j++) {
    const q = <usize>j << 2;
    t += log ? <f64>load<f32>(g + q) : <f64>load<f32>(g + q) * <f64>load<f32>(y + q);
  }
  const tf = <f32>t, t4 = f32x4.splat(tf);
  j = 0;
  for (; j + 4 <= valid; j += 4) {
    const q = <usize>j << 2;
    const yv = v128.load(y + q), gv = v128.load(g + q);
    const v = log
      ? f32x4.mul(s4, f32x4.sub(gv, f32x4.mul(exp4(yv), t4)))
      : f32x4.mul(f32x4.mul(s4, yv), f32x4.sub(gv, t4));
    v128.store(dx + q, v);
  }
  for (; j < valid; j++) {
    const q = <usize>j << 2;
    const yv = load<f32>(y + q), gv = load<f32>(g + q);
    store<f32>(dx + q, log ? s * (gv - exp1(yv) * tf) : s * yv * (gv - tf));
  }
  fill(dx + (<usize>valid << 2), L - valid, 0);
}

/** `softmax_grad_row` over this thread's share of `rows` rows (causal as `softmax_rows`). */
export function softmax_grad_rows(
  y: usize, g: usize, dx: usize, rows: i32, L: i32, s: f32, log: i32, Tq: i32,
  tid: i32, nthreads: i32,
): void {
  const share = rowShare(rows, tid, nthreads);
  for (let r = <i32>(share >> 32); r < <i32>share; r++) {
    const o = <usize>r * <usize>L * 4;
    softmax_grad_row(y + o, g + o, dx + o, L, validOf(r, Tq, L), s, log);
  }
}
