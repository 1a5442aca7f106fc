/**
 * Layer and group norm on the CPU backend (the twins of `rowNorm` in ops/norm.ts): each
 * normalised row is `perRow` consecutive channel segments of `S` elements (layer norm: D
 * channels of 1; group norm: C/G channels of H*W), and row r's first channel is
 * (r % groups) * perRow. Mean and variance take two float64 passes; the epsilon goes inside the
 * square root, 1 / sqrt(var + eps), as in the WGSL.
 */

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

/** d loss / d z of the fused SiLU y = z sigmoid(z) at z, given d loss / d y = g. */
function siluGrad(z: number, g: number): number {
  const sg = 1 / (1 + Math.exp(-z));
  return g * sg * (1 + z * (1 - sg));
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
  const { perRow, S } = lay;
  const L = perRow * S;
  for (let r = 0; r < lay.rows; r++) {
    const o = r * L;
    const mu = rowMean(x, o, L);
    const rs = rowRstd(x, o, L, mu, eps);
    mean[r] = mu;
    rstd[r] = rs;
    const c0 = (r % lay.groups) * perRow;
    for (let c = 0; c < perRow; c++) {
      const a = rs * (p.w ? p.w[c0 + c] : 1), b = p.b ? p.b[c0 + c] : 0;
      const s0 = o + c * S;
      if (p.silu) {
        for (let j = s0; j < s0 + S; j++) {
          const z = (x[j] - mu) * a + b;
          y[j] = z / (1 + Math.exp(-z));
        }
      } else {
        for (let j = s0; j < s0 + S; j++) y[j] = (x[j] - mu) * a + b;
      }
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
  const { perRow, S } = lay;
  const { dx, dw, db } = out;
  const L = perRow * S;
  for (let r = 0; r < lay.rows; r++) {
    const o = r * L, mu = mean[r], rs = rstd[r];
    const c0 = (r % lay.groups) * perRow;
    let a1 = 0, a2 = 0;
    // Pass 1: gz into dx, the row sums of gy and gy * xhat, and the channel sums.
    for (let c = 0; c < perRow; c++) {
      const w = p.w ? p.w[c0 + c] : 1, b = p.b ? p.b[c0 + c] : 0;
      const s0 = o + c * S;
      let sz = 0, szx = 0;
      for (let j = s0; j < s0 + S; j++) {
        const xh = (x[j] - mu) * rs;
        const gz = p.silu ? siluGrad(xh * w + b, g[j]) : g[j];
        dx[j] = gz;
        sz += gz;
        szx += gz * xh;
      }
      a1 += sz * w;
      a2 += szx * w;
      if (dw) dw[c0 + c] += szx;
      if (db) db[c0 + c] += sz;
    }
    const m1 = a1 / L, m2 = a2 / L;
    // Pass 2: dx from gz.
    for (let c = 0; c < perRow; c++) {
      const w = p.w ? p.w[c0 + c] : 1;
      const s0 = o + c * S;
      for (let j = s0; j < s0 + S; j++) {
        dx[j] = rs * (dx[j] * w - m1 - (x[j] - mu) * rs * m2);
      }
    }
  }
}
