/**
 * Sample-quality metrics between a set of real and a set of generated images, computed on
 * feature vectors (one row per image) on the host in float64:
 *
 * - FID, the Frechet distance between Gaussians fitted to the two feature sets (Heusel et al.
 *   2017, "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium").
 * - KID, the unbiased squared maximum mean discrepancy with the cubic polynomial kernel
 *   k(x, y) = (x.y / d + 1)^3 (Binkowski et al. 2018, "Demystifying MMD GANs").
 * - Improved precision and recall from k-nearest-neighbour manifolds, k = 3 (Kynkaanniemi et al.
 *   2019, "Improved Precision and Recall Metric for Assessing Generative Models"), and their F1.
 *
 * The papers use Inception-v3 features; this project has no downloadable weights, so callers
 * pass features of a network trained here and name the metric after it, e.g. `FID(clip-image)`.
 * Such values are comparable between runs with the same extractor, not with Inception numbers.
 *
 * @module
 */
import { mulberry32 } from "../host_random.ts";
import {
  distance,
  matmulSquare,
  meanCov,
  rowDim,
  type Rows,
  sqrtmSymmetric,
  symmetricEigen,
} from "./linalg.ts";

export type { Rows } from "./linalg.ts";

/**
 * FID from Gaussian statistics: ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^{1/2}).
 * tr((S1 S2)^{1/2}) is computed as the sum of the square roots of the eigenvalues of the
 * symmetric S1^{1/2} S2 S1^{1/2} (similar to S1 S2, so the same eigenvalues), which avoids the
 * complex values a general matrix square root can produce from rounding.
 *
 * @example
 * ```ts
 * frechetDistance([0], [1], [1], [1], 1); // 1
 * ```
 */
export function frechetDistance(
  mu1: ArrayLike<number>,
  cov1: ArrayLike<number>,
  mu2: ArrayLike<number>,
  cov2: ArrayLike<number>,
  d: number,
): number {
  let meanTerm = 0;
  for (let j = 0; j < d; j++) meanTerm += (mu1[j] - mu2[j]) ** 2;
  let tr = 0;
  for (let j = 0; j < d; j++) tr += cov1[j * d + j] + cov2[j * d + j];
  const s1 = sqrtmSymmetric(cov1, d);
  const m = matmulSquare(matmulSquare(s1, cov2, d), s1, d);
  const { values } = symmetricEigen(m, d);
  let trSqrt = 0;
  for (const w of values) trSqrt += Math.sqrt(Math.max(w, 0));
  return Math.max(meanTerm + tr - 2 * trSqrt, 0);
}

/**
 * FID (Heusel et al. 2017) between two feature sets: Gaussians with the sample means and the
 * unbiased sample covariances of each set. Needs at least 2 rows per set; with fewer rows than
 * feature dimensions the covariances are singular and the value is biased upwards (as in any
 * FID with few samples): compare values computed with the same numbers of images.
 *
 * @example
 * ```ts
 * fid([[0], [2]], [[1], [3]]); // 1 (means differ by 1, covariances equal)
 * ```
 */
export function fid(real: Rows, fake: Rows): number {
  const a = meanCov(real), b = meanCov(fake);
  if (a.d !== b.d) throw new RangeError(`FID: real features have ${a.d} values, fake ${b.d}`);
  return frechetDistance(a.mean, a.cov, b.mean, b.cov, a.d);
}

/** KID's cubic polynomial kernel (Binkowski et al. 2018, eq. 3): (x.y / d + 1)^3. */
export function polynomialKernel(x: ArrayLike<number>, y: ArrayLike<number>): number {
  let dot = 0;
  for (let j = 0; j < x.length; j++) dot += x[j] * y[j];
  return (dot / x.length + 1) ** 3;
}

/**
 * The unbiased estimator of MMD^2 (Gretton et al. 2012, Lemma 6; used by KID) with the cubic
 * polynomial kernel: mean k(x, x') over pairs of distinct real rows + the same over fake rows
 * - 2 mean k(x, y) over all (real, fake) pairs. Can be slightly negative.
 *
 * @example
 * ```ts
 * mmdUnbiased([[0], [1]], [[1], [2]]); // 1 + 27 - 2 * 37 / 4 = 9.5
 * ```
 */
export function mmdUnbiased(real: Rows, fake: Rows): number {
  const n = real.length, m = fake.length;
  if (n < 2 || m < 2) throw new RangeError(`KID needs at least 2 rows per set, got ${n} and ${m}`);
  let xx = 0, yy = 0, xy = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) xx += polynomialKernel(real[i], real[j]);
  }
  for (let i = 0; i < m; i++) {
    for (let j = i + 1; j < m; j++) yy += polynomialKernel(fake[i], fake[j]);
  }
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) xy += polynomialKernel(real[i], fake[j]);
  return (2 * xx) / (n * (n - 1)) + (2 * yy) / (m * (m - 1)) - (2 * xy) / (n * m);
}

/** Options of `kid`. */
export interface KidOptions {
  /** Rows per subset (default min(1000, real, fake), as in Binkowski et al.'s code). */
  subsetSize?: number;
  /** Subsets, each drawn without replacement (default 100; unused when size = both set sizes). */
  subsets?: number;
  /** Seed of the subset draws (default 0). */
  seed?: number;
}

/**
 * KID (Binkowski et al. 2018): the unbiased MMD^2 with the cubic polynomial kernel, averaged
 * over random subsets of equal size; `std` is the spread over the subsets (0 when the subsets
 * are the whole sets, which are then used once).
 *
 * @example
 * ```ts
 * const real = [[0], [1], [2], [3]], fake = [[1], [2], [3], [4]];
 * kid(real, fake).mean; // unbiased MMD^2 averaged over subsets
 * ```
 */
export function kid(
  real: Rows,
  fake: Rows,
  options: KidOptions = {},
): { mean: number; std: number } {
  const dr = rowDim(real, "KID real"), df = rowDim(fake, "KID fake");
  if (dr !== df) throw new RangeError(`KID: real features have ${dr} values, fake ${df}`);
  const size = options.subsetSize ?? Math.min(1000, real.length, fake.length);
  if (!Number.isInteger(size) || size < 2 || size > real.length || size > fake.length) {
    throw new RangeError(
      `KID subset size ${size} must be from 2 to ${Math.min(real.length, fake.length)}`,
    );
  }
  // Subsets that are the whole sets all give the same value: compute it once.
  if (size === real.length && size === fake.length) {
    return { mean: mmdUnbiased(real, fake), std: 0 };
  }
  const count = options.subsets ?? 100;
  if (!Number.isInteger(count) || count < 1) {
    throw new RangeError(`KID subsets ${count} must be >= 1`);
  }
  const rng = mulberry32(options.seed ?? 0);
  const pick = (rows: Rows): ArrayLike<number>[] => {
    const idx = Array.from({ length: rows.length }, (_, i) => i);
    for (let i = 0; i < size; i++) {
      const j = i + Math.floor(rng() * (idx.length - i));
      [idx[i], idx[j]] = [idx[j], idx[i]];
    }
    return idx.slice(0, size).map((i) => rows[i]);
  };
  const values: number[] = [];
  for (let s = 0; s < count; s++) values.push(mmdUnbiased(pick(real), pick(fake)));
  const mean = values.reduce((a, b) => a + b, 0) / count;
  const std = Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / count);
  return { mean, std };
}

/**
 * The radius of each row's k-NN ball: the distance to its k-th nearest other row.
 *
 * @example
 * ```ts
 * knnRadii([[0], [1], [3]], 1); // [1, 1, 2]
 * ```
 */
export function knnRadii(rows: Rows, k: number): Float64Array {
  if (!Number.isInteger(k) || k < 1 || k >= rows.length) {
    throw new RangeError(`k-NN radii need 1 <= k < rows (${rows.length}), got k = ${k}`);
  }
  const n = rows.length;
  const radii = new Float64Array(n);
  const dist = new Float64Array(n - 1);
  for (let i = 0; i < n; i++) {
    let t = 0;
    for (let j = 0; j < n; j++) if (j !== i) dist[t++] = distance(rows[i], rows[j]);
    radii[i] = dist.sort()[k - 1];
  }
  return radii;
}

/** The fraction of `query` rows inside at least one ball (center row, radius) of `manifold`. */
function coverage(manifold: Rows, radii: Float64Array, query: Rows): number {
  let inside = 0;
  for (const q of query) {
    for (let i = 0; i < manifold.length; i++) {
      if (distance(q, manifold[i]) <= radii[i]) {
        inside++;
        break;
      }
    }
  }
  return inside / query.length;
}

/** Improved precision, recall and their harmonic mean. */
export interface PrecisionRecall {
  /** Fraction of generated samples inside the real manifold (quality). */
  precision: number;
  /** Fraction of real samples inside the generated manifold (coverage, diversity). */
  recall: number;
  /** 2 P R / (P + R), 0 when both are 0. */
  f1: number;
}

/**
 * Improved precision and recall (Kynkaanniemi et al. 2019): each set's manifold is the union of
 * balls around its rows with the radius of the k-th nearest neighbour in the same set (k = 3 in
 * the paper). Precision is the fraction of fake rows inside the real manifold, recall the
 * fraction of real rows inside the fake manifold.
 *
 * @example
 * ```ts
 * const real = [[0], [1], [2], [3]], fake = [[0.5], [1.5], [9]];
 * const { precision, recall, f1 } = precisionRecall(real, fake, 1); // 2 of 3 fakes are near real
 * ```
 */
export function precisionRecall(real: Rows, fake: Rows, k = 3): PrecisionRecall {
  const dr = rowDim(real, "real"), df = rowDim(fake, "fake");
  if (dr !== df) {
    throw new RangeError(`Precision/recall: real features have ${dr} values, fake ${df}`);
  }
  const precision = coverage(real, knnRadii(real, k), fake);
  const recall = coverage(fake, knnRadii(fake, k), real);
  return { precision, recall, f1: f1Score(precision, recall) };
}

/**
 * The harmonic mean 2 P R / (P + R) (0 when P + R = 0).
 *
 * @example
 * ```ts
 * f1Score(0.5, 1); // 0.6667
 * ```
 */
export function f1Score(precision: number, recall: number): number {
  return precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
}

/** Every metric of one generated set against the real set. */
export interface SampleMetrics {
  /** Name of the feature extractor, part of each metric's name: `FID(<features>)`. */
  features: string;
  fid: number;
  kid: number;
  kidStd: number;
  precision: number;
  recall: number;
  f1: number;
  /** k of the k-NN manifolds. */
  k: number;
  real: number;
  fake: number;
}

/**
 * FID, KID, precision, recall and F1 of `fake` against `real` features.
 *
 * @example
 * ```ts
 * const realEmb = [[0, 1], [1, 0], [1, 1], [0, 0]], fakeEmb = [[0, 1], [1, 0], [1, 1], [0, 0.5]];
 * const m = sampleMetrics(realEmb, fakeEmb, "clip-image", { k: 1 }); // FID, KID, precision, recall
 * ```
 */
export function sampleMetrics(
  real: Rows,
  fake: Rows,
  features: string,
  options: { k?: number; kid?: KidOptions } = {},
): SampleMetrics {
  const k = options.k ?? 3;
  const pr = precisionRecall(real, fake, k);
  const kd = kid(real, fake, options.kid);
  return {
    features,
    fid: fid(real, fake),
    kid: kd.mean,
    kidStd: kd.std,
    ...pr,
    k,
    real: real.length,
    fake: fake.length,
  };
}
