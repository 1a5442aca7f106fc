/**
 * Layer, group and (training) batch norm on the CPU backend (the twins of `rowNorm` in
 * ops/norm.ts): each normalised row is `perRow` consecutive channel segments of `S` elements
 * (layer norm: D channels of 1; group norm: C/G channels of H*W; batch norm, on a channel-major
 * copy: one channel of N*H*W), and row r's first channel is
 * (r % groups) * perRow. Mean and variance take two float64 passes; the epsilon goes inside the
 * square root, 1 / sqrt(var + eps), as in the WGSL.
 *
 * Forward and backward run as the WebAssembly kernels of `assembly/norm.ts` (SIMD, vector exp for
 * the SiLU, rows split across the thread pool when large) where those are loaded; the loops here
 * are the fallback.
 */
import { cpu } from "../backend.ts";
import { ACTIVATIONS } from "../kernels/activation.ts";
import { kernelsFor, runKernel, threadsFor } from "./parallel.ts";

/** Flags of the WebAssembly norm kernels. */
const HAS_W = 1, HAS_B = 2, SILU = 4;

function normFlags(p: NormParams): number {
  return (p.w ? HAS_W : 0) | (p.b ? HAS_B : 0) | (p.silu ? SILU : 0);
}

/** How rows map to channels of the weight and bias. */
export interface NormLayout {
  rows: number;
  /** Channel segments per row. */
  perRow: number;
  /** Elements per channel segment. */
  S: number;
  /** Row r starts at channel (r % groups) * perRow. */
  groups: number;
}

/** Per-channel affine parameters (null: weight 1, bias 0). */
export interface NormParams {
  w: Float32Array | null;
  b: Float32Array | null;
  silu: boolean;
}

/** Mean of x[o .. o + L). */
function rowMean(x: Float32Array, o: number, L: number): number {
  let a = 0;
  for (let j = o; j < o + L; j++) a += x[j];
  return a / L;
}

/** 1 / sqrt(biased variance + eps) of x[o .. o + L) about `mu`. */
function rowRstd(x: Float32Array, o: number, L: number, mu: number, eps: number): number {
  let a = 0;
  for (let j = o; j < o + L; j++) {
    const d = x[j] - mu;
    a += d * d;
  }
  return 1 / Math.sqrt(a / L + eps);
}

/** The fused SiLU and its gradient (d loss / d z at z, given d loss / d y = g), from the one
 * activation table. */
const siluF = ACTIVATIONS.silu.f;
const siluGrad = (z: number, g: number): number => ACTIVATIONS.silu.df(z, 0, g);

/** Weight and bias as arrays over every channel (1 and 0 where absent: one shape for the JIT). */
function affineOf(lay: NormLayout, p: NormParams): { w: Float32Array; b: Float32Array } {
  const C = lay.groups * lay.perRow;
  return { w: p.w ?? new Float32Array(C).fill(1), b: p.b ?? new Float32Array(C) };
}

/**
 * y = (x - mean) * rstd * w + b (then SiLU), storing each row's mean and rstd for the backward.
 */
export function normForward(
  x: Float32Array,
  y: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  lay: NormLayout,
  p: NormParams,
  eps: number,
): void {
  const k = kernelsFor(x, y, mean, rstd, p.w, p.b);
  if (k) {
    const { rows, perRow, S, groups } = lay;
    const args = [
      ...[x, y, mean, rstd].map((v) => v.byteOffset),
      p.w?.byteOffset ?? 0,
      p.b?.byteOffset ?? 0,
      ...[rows, perRow, S, groups, normFlags(p), eps],
    ];
    return runKernel(k, "norm_forward", args, rows * perRow * S);
  }
  const { w, b } = affineOf(lay, p);
  const L = lay.perRow * lay.S;
  for (let r = 0; r < lay.rows; r++) {
    const o = r * L;
    const mu = rowMean(x, o, L);
    const rs = rowRstd(x, o, L, mu, eps);
    mean[r] = mu;
    rstd[r] = rs;
    normRow(x, y, o, (r % lay.groups) * lay.perRow, lay, w, b, mu, rs, p.silu);
  }
}

/** One row of `normForward` (a function of its own so the JIT optimises it per call, not by OSR). */
function normRow(
  x: Float32Array,
  y: Float32Array,
  o: number,
  c0: number,
  lay: NormLayout,
  w: Float32Array,
  b: Float32Array,
  mu: number,
  rs: number,
  silu: boolean,
): void {
  const { perRow, S } = lay;
  for (let c = 0, j = o; c < perRow; c++) {
    const a = rs * w[c0 + c], bc = b[c0 + c], end = j + S;
    if (silu) {
      for (; j < end; j++) {
        const z = (x[j] - mu) * a + bc;
        y[j] = siluF(z);
      }
    } else {
      for (; j < end; j++) y[j] = (x[j] - mu) * a + bc;
    }
  }
}

/** Where `normBackward` writes: the input gradient and optional per-channel sums. */
export interface NormGrads {
  dx: Float32Array;
  /** Accumulates sum(gz * xhat) per channel (the weight gradient). */
  dw: Float64Array | null;
  /** Accumulates sum(gz) per channel (the bias gradient). */
  db: Float64Array | null;
}

/**
 * Input gradient of `normForward` (Ba et al. 2016, eq. for d xhat):
 * dx = rstd * (gy - mean(gy) - xhat * mean(gy * xhat)) with gy = gz * w, gz the gradient at the
 * pre-activation z (g itself without SiLU); also the weight and bias gradients per channel.
 */
export function normBackward(
  x: Float32Array,
  g: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  lay: NormLayout,
  p: NormParams,
  out: NormGrads,
): void {
  if (normBackwardKernel(x, g, mean, rstd, lay, p, out)) return;
  const { w, b } = affineOf(lay, p);
  const C = lay.groups * lay.perRow;
  // Channel sums always accumulate (into scratch when not wanted): one code path.
  const dw = out.dw ?? new Float64Array(C), db = out.db ?? new Float64Array(C);
  for (let r = 0; r < lay.rows; r++) {
    const o = r * lay.perRow * lay.S, c0 = (r % lay.groups) * lay.perRow;
    const rs = rstd[r], mu = mean[r];
    const [m1, m2] = normRowGz(x, g, out.dx, o, c0, lay, w, b, mu, rs, p.silu, dw, db);
    normRowDx(x, out.dx, o, c0, lay, w, mu, rs, m1, m2);
  }
}

/**
 * `normBackward` by the WebAssembly kernel; false where it cannot run. Each thread sums the
 * channel gradients into a float64 block of its own in the kernels' scratch; the blocks are
 * added here.
 */
function normBackwardKernel(
  x: Float32Array,
  g: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
  lay: NormLayout,
  p: NormParams,
  out: NormGrads,
): boolean {
  const k = kernelsFor(x, g, mean, rstd, p.w, p.b, out.dx);
  if (!k) return false;
  const { rows, perRow, S, groups } = lay;
  const C = groups * perRow;
  const threads = threadsFor(k, rows * perRow * S);
  // Addresses first: the scratch allocation may grow the memory and detach the views.
  const at = [x, g, mean, rstd].map((v) => v.byteOffset);
  const w = p.w?.byteOffset ?? 0, b = p.b?.byteOffset ?? 0, dx = out.dx.byteOffset;
  const acc = k.scratch(threads * C * 16);
  const args = [...at, w, b, dx, acc, rows, perRow, S, groups, normFlags(p)];
  k.pool.run("norm_backward", args, threads);
  const sums = new Float64Array(cpu().mem.buffer, acc, threads * 2 * C);
  for (let t = 0; t < threads; t++) {
    const o = t * 2 * C;
    if (out.dw) { for (let c = 0; c < C; c++) out.dw[c] += sums[o + c]; }
    if (out.db) { for (let c = 0; c < C; c++) out.db[c] += sums[o + C + c]; }
  }
  return true;
}

/**
 * Backward pass 1 of a row: gz into dx, the channel sums into dw and db; returns mean(gy) and
 * mean(gy * xhat).
 */
function normRowGz(
  x: Float32Array,
  g: Float32Array,
  dx: Float32Array,
  o: number,
  c0: number,
  lay: NormLayout,
  w: Float32Array,
  b: Float32Array,
  mu: number,
  rs: number,
  silu: boolean,
  dw: Float64Array,
  db: Float64Array,
): [number, number] {
  const { perRow, S } = lay;
  let a1 = 0, a2 = 0;
  for (let c = 0, j = o; c < perRow; c++) {
    const wc = w[c0 + c], bc = b[c0 + c], end = j + S;
    let sz = 0, szx = 0;
    for (; j < end; j++) {
      const xh = (x[j] - mu) * rs;
      const gz = silu ? siluGrad(xh * wc + bc, g[j]) : g[j];
      dx[j] = gz;
      sz += gz;
      szx += gz * xh;
    }
    a1 += sz * wc;
    a2 += szx * wc;
    dw[c0 + c] += szx;
    db[c0 + c] += sz;
  }
  const L = perRow * S;
  return [a1 / L, a2 / L];
}

/** Backward pass 2 of a row: dx = rstd * (gz * w - m1 - xhat * m2), gz read from dx. */
function normRowDx(
  x: Float32Array,
  dx: Float32Array,
  o: number,
  c0: number,
  lay: NormLayout,
  w: Float32Array,
  mu: number,
  rs: number,
  m1: number,
  m2: number,
): void {
  for (let c = 0, j = o; c < lay.perRow; c++) {
    const wc = w[c0 + c], end = j + lay.S;
    for (; j < end; j++) dx[j] = rs * (dx[j] * wc - m1 - (x[j] - mu) * rs * m2);
  }
}
