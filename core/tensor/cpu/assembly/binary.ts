// Binary arithmetic of the CPU backend (AssemblyScript, `deno task wasm`): out = a op b for op in
// add, sub, mul, div, four lanes at a time, in the two layouts that carry almost all of a model's
// elementwise traffic: operands of the same shape (residual sums, gradient accumulation) and one
// full operand with a periodically broadcast one (a per-channel bias or scale: [B, C, H, W] with
// [1, C, 1, 1] or [B, C, 1, 1]; a row vector: [N, D] with [D]). Other broadcasts stay with the
// TypeScript loops of elementwise.ts, whose formulas these are. Threads split the output into
// contiguous ranges.

import { share } from "./share";

export const BINARY_ADD: i32 = 0;
export const BINARY_SUB: i32 = 1;
export const BINARY_MUL: i32 = 2;
export const BINARY_DIV: i32 = 3;

/** x op y on four lanes (op is a constant at every inlined call site). */
// @ts-ignore: decorator
@inline function apply4(op: i32, x: v128, y: v128): v128 {
  if (op == BINARY_ADD) return f32x4.add(x, y);
  if (op == BINARY_SUB) return f32x4.sub(x, y);
  if (op == BINARY_MUL) return f32x4.mul(x, y);
  return f32x4.div(x, y);
}

/** x op y on one float. */
// @ts-ignore: decorator
@inline function apply1(op: i32, x: f32, y: f32): f32 {
  if (op == BINARY_ADD) return x + y;
  if (op == BINARY_SUB) return x - y;
  if (op == BINARY_MUL) return x * y;
  return x / y;
}

/** out[i] = a[i] op b[i] for i in [lo, hi). */
// @ts-ignore: decorator
@inline function sameRange(op: i32, a: usize, b: usize, out: usize, lo: i32, hi: i32): void {
  let i = lo;
  for (; i + 4 <= hi; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, apply4(op, v128.load(a + o), v128.load(b + o)));
  }
  for (; i < hi; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, apply1(op, load<f32>(a + o), load<f32>(b + o)));
  }
}

/** out = a op b over n floats of two same-shape operands (byte addresses); this thread's share. */
export function binary_same(
  op: i32, a: usize, b: usize, out: usize, n: i32, tid: i32, nthreads: i32,
): void {
  const s = share(n, tid, nthreads);
  const lo = <i32>(s >> 32), hi = <i32>s;
  if (op == BINARY_ADD) sameRange(BINARY_ADD, a, b, out, lo, hi);
  else if (op == BINARY_SUB) sameRange(BINARY_SUB, a, b, out, lo, hi);
  else if (op == BINARY_MUL) sameRange(BINARY_MUL, a, b, out, lo, hi);
  else sameRange(BINARY_DIV, a, b, out, lo, hi);
}

/**
 * out[i] = full[i] op v (or v op full[i] when `swapped`) for i in [lo, hi), v = bc[(i / inner) %
 * period]: with inner > 1, one value per run of `inner` outputs (a per-channel bias); with
 * inner = 1, the `period` values of bc repeat along the output (a row vector).
 */
// @ts-ignore: decorator
@inline function broadcastRange(
  op: i32, swapped: bool, full: usize, bc: usize, out: usize,
  inner: i32, period: i32, lo: i32, hi: i32,
): void {
  let i = lo;
  if (inner > 1) {
    while (i < hi) {
      const row = i / inner;
      const end = min(hi, (row + 1) * inner);
      const s = load<f32>(bc + (<usize>(row % period) << 2));
      const v = f32x4.splat(s);
      for (; i + 4 <= end; i += 4) {
        const o = <usize>i << 2;
        const x = v128.load(full + o);
        v128.store(out + o, swapped ? apply4(op, v, x) : apply4(op, x, v));
      }
      for (; i < end; i++) {
        const o = <usize>i << 2;
        const x = load<f32>(full + o);
        store<f32>(out + o, swapped ? apply1(op, s, x) : apply1(op, x, s));
      }
    }
    return;
  }
  let j = i % period;
  while (i < hi) {
    const end = min(hi, i + (period - j));
    const base = bc - (<usize>(i - j) << 2); // bc[j] lines up with output i
    for (; i + 4 <= end; i += 4) {
      const o = <usize>i << 2;
      const x = v128.load(full + o), v = v128.load(base + o);
      v128.store(out + o, swapped ? apply4(op, v, x) : apply4(op, x, v));
    }
    for (; i < end; i++) {
      const o = <usize>i << 2;
      const x = load<f32>(full + o), v = load<f32>(base + o);
      store<f32>(out + o, swapped ? apply1(op, v, x) : apply1(op, x, v));
    }
    j = 0;
  }
}

/** `broadcastRange` with op and `swapped` as constants (one specialised loop per pair). */
// @ts-ignore: decorator
@inline function broadcastOps(
  swapped: bool, op: i32, full: usize, bc: usize, out: usize,
  inner: i32, period: i32, lo: i32, hi: i32,
): void {
  if (op == BINARY_ADD) broadcastRange(BINARY_ADD, swapped, full, bc, out, inner, period, lo, hi);
  else if (op == BINARY_SUB) broadcastRange(BINARY_SUB, swapped, full, bc, out, inner, period, lo, hi);
  else if (op == BINARY_MUL) broadcastRange(BINARY_MUL, swapped, full, bc, out, inner, period, lo, hi);
  else broadcastRange(BINARY_DIV, swapped, full, bc, out, inner, period, lo, hi);
}

/**
 * out = full op bc (or bc op full when `swapped` is 1) over n outputs, where output i reads
 * full[i] and bc[(i / inner) % period] (byte addresses); this thread's share.
 */
export function binary_broadcast(
  op: i32, swapped: i32, full: usize, bc: usize, out: usize, n: i32, inner: i32, period: i32,
  tid: i32, nthreads: i32,
): void {
  const s = share(n, tid, nthreads);
  const lo = <i32>(s >> 32), hi = <i32>s;
  if (swapped != 0) broadcastOps(true, op, full, bc, out, inner, period, lo, hi);
  else broadcastOps(false, op, full, bc, out, inner, period, lo, hi);
}
