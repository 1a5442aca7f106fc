/**
 * Small dense linear algebra in float64 on the host, for the evaluation metrics (FID's matrix
 * square root, PCA): means and covariances of feature rows and the eigendecomposition of a
 * symmetric matrix by cyclic Jacobi rotations (Golub & Van Loan, Matrix Computations, 8.5).
 * Meant for feature sizes up to a few hundred; matrices are row-major `Float64Array`s.
 *
 * @module
 */

/** Feature vectors, one row per sample (all of one length). */
export type Rows = readonly ArrayLike<number>[];

/** The number of columns of `rows`, checked to be the same for every row. */
export function rowDim(rows: Rows, name = "features"): number {
  if (rows.length === 0) throw new RangeError(`${name}: need at least one row`);
  const d = rows[0].length;
  rows.forEach((r, i) => {
    if (r.length !== d) {
      throw new RangeError(`${name}: row ${i} has ${r.length} values, row 0 has ${d}`);
    }
  });
  return d;
}

/**
 * The mean vector and the unbiased (n - 1) covariance matrix [d, d] of `rows` (as numpy.cov
 * computes them in pytorch-fid).
 *
 * @example
 * ```ts
 * const { mean, cov } = meanCov([[0, 0], [2, 2]]); // mean [1, 1], cov [[2, 2], [2, 2]]
 * ```
 */
export function meanCov(rows: Rows): { mean: Float64Array; cov: Float64Array; d: number } {
  const d = rowDim(rows);
  const n = rows.length;
  if (n < 2) throw new RangeError(`A covariance needs at least 2 samples, got ${n}`);
  const mean = new Float64Array(d);
  for (const r of rows) for (let j = 0; j < d; j++) mean[j] += r[j];
  for (let j = 0; j < d; j++) mean[j] /= n;
  const cov = new Float64Array(d * d);
  const c = new Float64Array(d);
  for (const r of rows) {
    for (let j = 0; j < d; j++) c[j] = r[j] - mean[j];
    for (let a = 0; a < d; a++) {
      const ca = c[a];
      if (ca === 0) continue;
      for (let b = a; b < d; b++) cov[a * d + b] += ca * c[b];
    }
  }
  for (let a = 0; a < d; a++) {
    for (let b = a; b < d; b++) {
      const v = cov[a * d + b] / (n - 1);
      cov[a * d + b] = v;
      cov[b * d + a] = v;
    }
  }
  return { mean, cov, d };
}

/** Eigenvalues (descending) and eigenvectors (the columns of `vectors`, row-major [d, d]). */
export interface SymmetricEigen {
  values: Float64Array;
  vectors: Float64Array;
}

/**
 * Eigendecomposition A = V diag(w) V^T of a symmetric matrix by cyclic Jacobi rotations, until
 * the off-diagonal mass is below 1e-22 of the total (or 100 sweeps). Eigenvalues are sorted in
 * descending order with their eigenvectors.
 *
 * @example
 * ```ts
 * const { values } = symmetricEigen(new Float64Array([2, 1, 1, 2]), 2); // [3, 1]
 * ```
 */
export function symmetricEigen(matrix: ArrayLike<number>, d: number): SymmetricEigen {
  if (matrix.length !== d * d) {
    throw new RangeError(`Expected ${d}x${d} values, got ${matrix.length}`);
  }
  const a = Float64Array.from(matrix);
  for (let i = 0; i < d; i++) {
    for (let j = i + 1; j < d; j++) {
      const m = (a[i * d + j] + a[j * d + i]) / 2;
      a[i * d + j] = m;
      a[j * d + i] = m;
    }
  }
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  let total = 0;
  for (let i = 0; i < d * d; i++) total += a[i] * a[i];
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += a[p * d + q] ** 2;
    if (off <= 1e-22 * total || off === 0) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = a[p * d + q];
        if (Math.abs(apq) < 1e-300) continue;
        // The rotation that zeroes a[p][q] (the smaller angle; G&VL Algorithm 8.5.1).
        const theta = (a[q * d + q] - a[p * d + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < d; k++) {
          const akp = a[k * d + p], akq = a[k * d + q];
          a[k * d + p] = c * akp - s * akq;
          a[k * d + q] = s * akp + c * akq;
        }
        for (let k = 0; k < d; k++) {
          const apk = a[p * d + k], aqk = a[q * d + k];
          a[p * d + k] = c * apk - s * aqk;
          a[q * d + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p], vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: d }, (_, i) => i).sort((i, j) => a[j * d + j] - a[i * d + i]);
  const values = Float64Array.from(order, (i) => a[i * d + i]);
  const vectors = new Float64Array(d * d);
  order.forEach((src, dst) => {
    for (let k = 0; k < d; k++) vectors[k * d + dst] = v[k * d + src];
  });
  return { values, vectors };
}

/**
 * The symmetric positive semi-definite square root V diag(sqrt(max(w, 0))) V^T of a symmetric
 * matrix (negative eigenvalues from rounding are clamped to 0).
 *
 * @example
 * ```ts
 * sqrtmSymmetric(new Float64Array([4, 0, 0, 9]), 2); // [2, 0, 0, 3]
 * ```
 */
export function sqrtmSymmetric(matrix: ArrayLike<number>, d: number): Float64Array {
  const { values, vectors } = symmetricEigen(matrix, d);
  const out = new Float64Array(d * d);
  for (let k = 0; k < d; k++) {
    const s = Math.sqrt(Math.max(values[k], 0));
    if (s === 0) continue;
    for (let i = 0; i < d; i++) {
      const vik = vectors[i * d + k] * s;
      if (vik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += vik * vectors[j * d + k];
    }
  }
  return out;
}

/** The product of two row-major [d, d] matrices. */
export function matmulSquare(x: ArrayLike<number>, y: ArrayLike<number>, d: number): Float64Array {
  const out = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let k = 0; k < d; k++) {
      const xik = x[i * d + k];
      if (xik === 0) continue;
      for (let j = 0; j < d; j++) out[i * d + j] += xik * y[k * d + j];
    }
  }
  return out;
}

/** The Euclidean distance between two vectors (float64). */
export function distance(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let j = 0; j < x.length; j++) s += (x[j] - y[j]) ** 2;
  return Math.sqrt(s);
}
