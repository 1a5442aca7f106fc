/**
 * Row kernels of the CPU backend, the twins of the WGSL row kernels in `kernels/rows.ts`: softmax
 * and log-softmax of one row with its gradient, and a row's log-sum-exp (shared by softmax,
 * cross-entropy and attention). Each works on one row of a Float32Array at an element offset;
 * row statistics (max, sum of exponentials) accumulate in float64.
 *
 * Masking: only the first `valid` elements of a row take part (a causal mask is a prefix of the
 * keys); the rest get probability 0 (log-probability -inf) and zero gradient. A row whose values
 * are all -inf gives NaN, as the WGSL does (exp(-inf - -inf) is NaN there too).
 *
 * Softmax and its gradient run as the WebAssembly kernels of `assembly/rows.ts` (vector exp, on
 * the thread pool when large) where those are loaded; the loops here are the fallback.
 */
import { kernelsFor, runKernel } from "./parallel.ts";

/**
 * Keys that row `r` of a causal [..., Tq, L] score tensor may see: j < causalLimit (ends aligned:
 * query i sees keys j <= i + L - Tq; see ops/softmax.ts).
 */
export function causalLimit(r: number, Tq: number, L: number): number {
  return Math.min(L, (r % Tq) + L - Tq + 1);
}

/** max_j s * x[o + j] over j < n (-inf for an empty row). */
function rowMax(x: Float32Array, o: number, n: number, s: number): number {
  let m = -Infinity;
  for (let j = o; j < o + n; j++) {
    const v = s * x[j];
    if (v > m) m = v;
  }
  return m;
}

/** sum_j exp(s * x[o + j] - m) over j < n, storing each term in y[o + j] when y is given. */
function sumExp(
  x: Float32Array,
  y: Float32Array | null,
  o: number,
  n: number,
  s: number,
  m: number,
): number {
  let sum = 0;
  if (y) {
    for (let j = o; j < o + n; j++) {
      const e = Math.exp(s * x[j] - m);
      y[j] = e;
      sum += e;
    }
  } else {
    for (let j = o; j < o + n; j++) sum += Math.exp(s * x[j] - m);
  }
  return sum;
}

/** log(sum_j exp(s * x[o + j])) over j < n, max-subtracted so large values cannot overflow. */
export function logSumExp(x: Float32Array, o: number, n: number, s: number): number {
  const m = rowMax(x, o, n, s);
  return m + Math.log(sumExp(x, null, o, n, s, m));
}

/**
 * Softmax (or log-softmax with `log`) of s * x[o .. o + L) into y (x and y may be the same
 * array), over the first `valid` elements. One exponential per element: the terms are stored,
 * then divided by their sum.
 */
export function softmaxRow(
  x: Float32Array,
  y: Float32Array,
  o: number,
  L: number,
  valid: number,
  s: number,
  log: boolean,
): void {
  const k = kernelsFor(x, y);
  if (k) {
    k.exports.softmax_row(x.byteOffset + 4 * o, y.byteOffset + 4 * o, L, valid, s, log ? 1 : 0);
    return;
  }
  const end = o + valid;
  const m = rowMax(x, o, valid, s);
  if (log) {
    const lse = m + Math.log(sumExp(x, null, o, valid, s, m));
    for (let j = o; j < end; j++) y[j] = s * x[j] - lse;
  } else {
    const inv = 1 / sumExp(x, y, o, valid, s, m);
    for (let j = o; j < end; j++) y[j] *= inv;
  }
  if (valid < L) y.fill(log ? -Infinity : 0, end, o + L);
}

/**
 * Gradient of `softmaxRow` from its output y and the output gradient g, into dx (which may be g):
 * softmax dx = s * y * (g - sum(g y)); log-softmax dx = s * (g - exp(y) * sum(g)).
 */
export function softmaxGradRow(
  y: Float32Array,
  g: Float32Array,
  dx: Float32Array,
  o: number,
  L: number,
  valid: number,
  s: number,
  log: boolean,
): void {
  const k = kernelsFor(y, g, dx);
  if (k) {
    const b = 4 * o;
    k.exports.softmax_grad_row(
      y.byteOffset + b,
      g.byteOffset + b,
      dx.byteOffset + b,
      L,
      valid,
      s,
      log ? 1 : 0,
    );
    return;
  }
  const end = o + valid;
  let t = 0;
  if (log) { for (let j = o; j < end; j++) t += g[j]; }
  else for (let j = o; j < end; j++) t += g[j] * y[j];
  if (log) { for (let j = o; j < end; j++) dx[j] = s * (g[j] - Math.exp(y[j]) * t); }
  else for (let j = o; j < end; j++) dx[j] = s * y[j] * (g[j] - t);
  if (valid < L) dx.fill(0, end, o + L);
}

/** Softmax options of a whole [rows, L] tensor: scale, log, and the causal query count (0: none). */
export interface SoftmaxRows {
  rows: number;
  L: number;
  scale: number;
  log: boolean;
  causalTq: number;
}

/** `softmaxRow` over every row of x into y. */
export function softmaxRows(x: Float32Array, y: Float32Array, r: SoftmaxRows): void {
  const k = kernelsFor(x, y);
  if (k) {
    const args = [x.byteOffset, y.byteOffset, r.rows, r.L, r.scale, r.log ? 1 : 0, r.causalTq];
    return runKernel(k, "softmax_rows", args, r.rows * r.L);
  }
  for (let row = 0, o = 0; row < r.rows; row++, o += r.L) {
    const valid = r.causalTq ? causalLimit(row, r.causalTq, r.L) : r.L;
    softmaxRow(x, y, o, r.L, valid, r.scale, r.log);
  }
}

/** `softmaxGradRow` over every row. */
export function softmaxGradRows(
  y: Float32Array,
  g: Float32Array,
  dx: Float32Array,
  r: SoftmaxRows,
): void {
  const k = kernelsFor(y, g, dx);
  if (k) {
    const { rows, L, scale, causalTq } = r;
    const args = [
      y.byteOffset,
      g.byteOffset,
      dx.byteOffset,
      rows,
      L,
      scale,
      r.log ? 1 : 0,
      causalTq,
    ];
    return runKernel(k, "softmax_grad_rows", args, rows * L);
  }
  for (let row = 0, o = 0; row < r.rows; row++, o += r.L) {
    const valid = r.causalTq ? causalLimit(row, r.causalTq, r.L) : r.L;
    softmaxGradRow(y, g, dx, o, r.L, valid, r.scale, r.log);
  }
}

/**
 * Cross-entropy of logits x [B, C] against class ids t: loss_b = lse_b - x[b, t_b], with each
 * row's log-sum-exp kept for the gradient. A class outside [0, C) gives NaN, as in the WGSL.
 */
export function crossEntropyRows(
  x: Float32Array,
  t: Int32Array,
  loss: Float32Array,
  lse: Float32Array,
  C: number,
): void {
  for (let b = 0; b < t.length; b++) {
    const l = logSumExp(x, b * C, C, 1);
    const c = t[b];
    lse[b] = l;
    loss[b] = c >= 0 && c < C ? l - x[b * C + c] : NaN;
  }
}

/** d loss_b / d x_bj = g_b * (softmax_bj - [j == t_b]). */
export function crossEntropyGrad(
  x: Float32Array,
  t: Int32Array,
  lse: Float32Array,
  g: Float32Array,
  dx: Float32Array,
  C: number,
): void {
  for (let b = 0; b < t.length; b++) {
    const o = b * C, l = lse[b], gb = g[b], c = t[b];
    for (let j = 0; j < C; j++) dx[o + j] = gb * (Math.exp(x[o + j] - l) - (j === c ? 1 : 0));
  }
}
