/**
 * FID, KID and improved precision/recall (core/eval/metrics.ts) against closed forms, hand
 * computations and a reference computed with numpy/scipy (pytorch-fid's formula), and the
 * Jacobi eigendecomposition they rest on; the paired comparison of two models' verdicts
 * (core/eval/paired.ts) against exact binomial tails.
 *
 * @module
 */
import assert from "node:assert/strict";
import { mulberry32 } from "../core/host_random.ts";
import { meanCov, sqrtmSymmetric, symmetricEigen } from "../core/eval/linalg.ts";
import {
  f1Score,
  fid,
  frechetDistance,
  kid,
  knnRadii,
  mmdUnbiased,
  precisionRecall,
  sampleMetrics,
} from "../core/eval/metrics.ts";
import { comparePaired, mcnemarExactP } from "../core/eval/paired.ts";

function close(a: number, b: number, tol: number, what = ""): void {
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tol ${tol})`);
}

/** Standard normal draws (Box-Muller) from a seeded generator. */
function normals(rng: () => number, n: number): number[] {
  const out: number[] = [];
  while (out.length < n) {
    const u = Math.max(rng(), 1e-300), v = rng();
    const r = Math.sqrt(-2 * Math.log(u));
    out.push(r * Math.cos(2 * Math.PI * v), r * Math.sin(2 * Math.PI * v));
  }
  return out.slice(0, n);
}

/** n draws of mu + L z for a lower-triangular L (so covariance L L^T). */
function gaussian(n: number, mu: number[], L: number[][], seed: number): number[][] {
  const rng = mulberry32(seed), d = mu.length;
  return Array.from({ length: n }, () => {
    const z = normals(rng, d);
    return mu.map((m, i) => m + L[i].reduce((s, l, j) => s + l * z[j], 0));
  });
}

Deno.test("symmetricEigen: A = V diag(w) V^T with orthonormal V, descending w; sqrtm^2 = A", () => {
  const d = 12, rng = mulberry32(3);
  const b = Array.from({ length: d * d }, () => rng() - 0.5);
  const a = new Float64Array(d * d); // B B^T: symmetric positive semi-definite
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      for (let k = 0; k < d; k++) a[i * d + j] += b[i * d + k] * b[j * d + k];
    }
  }
  const { values, vectors } = symmetricEigen(a, d);
  for (let k = 1; k < d; k++) assert.ok(values[k - 1] >= values[k]);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let rec = 0, orth = 0;
      for (let k = 0; k < d; k++) {
        rec += vectors[i * d + k] * values[k] * vectors[j * d + k];
        orth += vectors[k * d + i] * vectors[k * d + j];
      }
      close(rec, a[i * d + j], 1e-12, `reconstruction ${i},${j}`);
      close(orth, i === j ? 1 : 0, 1e-12, `orthonormality ${i},${j}`);
    }
  }
  const s = sqrtmSymmetric(a, d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let sq = 0;
      for (let k = 0; k < d; k++) sq += s[i * d + k] * s[k * d + j];
      close(sq, a[i * d + j], 1e-11, `sqrtm^2 ${i},${j}`);
    }
  }
  assert.deepEqual([...symmetricEigen([2, 1, 1, 2], 2).values].map((v) => +v.toFixed(12)), [3, 1]);
});

Deno.test("FID: closed form for diagonal and for commuting covariances", () => {
  // Diagonal: ||mu1 - mu2||^2 + sum (sqrt(a_i) - sqrt(b_i))^2.
  const a = [4, 1, 0.25], b = [1, 9, 0.25];
  const diag = (v: number[]) => v.flatMap((x, i) => v.map((_, j) => (i === j ? x : 0)));
  const expected = (1 + 4 + 0) +
    a.reduce((s, x, i) => s + (Math.sqrt(x) - Math.sqrt(b[i])) ** 2, 0);
  close(frechetDistance([1, 2, 3], diag(a), [2, 0, 3], diag(b), 3), expected, 1e-12, "diagonal");
  // Rotated by the same orthogonal Q (commuting, non-diagonal): the same value.
  const c = Math.cos(0.7), s = Math.sin(0.7);
  const q = [c, -s, 0, s, c, 0, 0, 0, 1];
  const rot = (v: number[]) => {
    const out = new Array(9).fill(0);
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        for (let k = 0; k < 3; k++) out[i * 3 + j] += q[i * 3 + k] * v[k] * q[j * 3 + k];
      }
    }
    return out;
  };
  close(frechetDistance([1, 2, 3], rot(a), [2, 0, 3], rot(b), 3), expected, 1e-10, "rotated");
  // Identical Gaussians: 0.
  close(frechetDistance([1, 1, 1], rot(a), [1, 1, 1], rot(a), 3), 0, 1e-10, "identical");
});

Deno.test("FID of samples from two 2-D Gaussians equals the closed form on their sample statistics", () => {
  // Non-commuting covariances S1 = L1 L1^T, S2 = L2 L2^T. For 2x2 M = S1 S2 with positive
  // eigenvalues, tr(M^{1/2}) = sqrt(tr M + 2 sqrt(det M)): independent of the Jacobi code.
  const x = gaussian(400, [0.5, -1], [[1, 0], [0.8, 0.6]], 1);
  const y = gaussian(300, [1.5, 0], [[2, 0], [-0.5, 0.4]], 2);
  const stats = (rows: number[][]) => {
    const n = rows.length;
    const m = [0, 1].map((j) => rows.reduce((s, r) => s + r[j], 0) / n);
    const c = (i: number, j: number) =>
      rows.reduce((s, r) => s + (r[i] - m[i]) * (r[j] - m[j]), 0) / (n - 1);
    return { m, s: [c(0, 0), c(0, 1), c(1, 0), c(1, 1)] };
  };
  const p = stats(x), q = stats(y);
  const M = [
    p.s[0] * q.s[0] + p.s[1] * q.s[2],
    p.s[0] * q.s[1] + p.s[1] * q.s[3],
    p.s[2] * q.s[0] + p.s[3] * q.s[2],
    p.s[2] * q.s[1] + p.s[3] * q.s[3],
  ];
  const trSqrt = Math.sqrt(M[0] + M[3] + 2 * Math.sqrt(M[0] * M[3] - M[1] * M[2]));
  const expected = (p.m[0] - q.m[0]) ** 2 + (p.m[1] - q.m[1]) ** 2 + p.s[0] + p.s[3] + q.s[0] +
    q.s[3] - 2 * trSqrt;
  close(fid(x, y), expected, 1e-9, "2-D closed form");
  // And the sample FID approaches the population FID with many samples (d = 4, diagonal).
  const big1 = gaussian(20000, [0, 0, 0, 0], [[1, 0, 0, 0], [0, 2, 0, 0], [0, 0, 1, 0], [
    0,
    0,
    0,
    0.5,
  ]], 5);
  const big2 = gaussian(20000, [1, 0, 0, 0], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 3, 0], [
    0,
    0,
    0,
    0.5,
  ]], 6);
  const population = 1 + (2 - 1) ** 2 + (1 - 3) ** 2; // 1 + (sqrt 4 - sqrt 1)^2 + (1 - 3)^2
  close(fid(big1, big2), population, 0.15, "population FID");
});

Deno.test("FID and KID match numpy/scipy (pytorch-fid's formula) on a fixed 6-D set", () => {
  const real = Array.from(
    { length: 40 },
    (_, i) => Array.from({ length: 6 }, (_, j) => Math.sin(0.37 * i * (j + 1) + j) + 0.1 * j),
  );
  const fake = Array.from(
    { length: 30 },
    (_, i) =>
      Array.from({ length: 6 }, (_, j) => Math.cos(0.23 * i * (j + 1) + 0.5 * j * j) * (1 + j / 3)),
  );
  close(fid(real, fake), 3.7924775710840795, 1e-9, "FID vs scipy.linalg.sqrtm");
  close(mmdUnbiased(real, fake), 0.9215999917181463, 1e-12, "MMD^2 vs numpy");
  const { mean, cov } = meanCov(real);
  assert.equal(mean.length, 6);
  assert.equal(cov.length, 36);
});

Deno.test("KID: unbiased MMD^2 with the cubic kernel by hand; subsets average it", () => {
  // d = 1: k(x, y) = (xy + 1)^3. XX: k(0,1) = 1; YY: k(1,2) = 27;
  // XY: k(0,1) + k(0,2) + k(1,1) + k(1,2) = 1 + 1 + 8 + 27 = 37 -> 1 + 27 - 2 * 37 / 4 = 9.5.
  assert.equal(mmdUnbiased([[0], [1]], [[1], [2]]), 9.5);
  // d = 2: k = (x.y / 2 + 1)^3: XX 1, YY 1, XY (3.375 + 1 + 3.375 + 1) / 4 -> 2 - 4.375 < 0.
  assert.equal(mmdUnbiased([[1, 0], [0, 1]], [[1, 1], [0, 0]]), -2.375);
  assert.deepEqual(kid([[0], [1]], [[1], [2]]), { mean: 9.5, std: 0 });
  // Subsets of size 2 of {0, 1} and {1, 2, 2}: each subset is a hand case above or
  // ({0, 1}, {2, 2}): 1 + 125 - 2 * (1 + 1 + 27 + 27) / 4 = 98.
  const r = kid([[0], [1]], [[1], [2], [2]], { subsetSize: 2, subsets: 50, seed: 1 });
  assert.ok(r.mean > 9.5 && r.mean < 98 && r.std > 0, JSON.stringify(r));
  assert.throws(() => kid([[0], [1]], [[1], [2]], { subsetSize: 3 }), /subset size 3/);
});

Deno.test("precision/recall (Kynkaanniemi et al. 2019) on a constructed case; F1", () => {
  assert.deepEqual([...knnRadii([[0], [1], [3]], 1)], [1, 1, 2]);
  // Real 0..9 on a line: k = 3 radii 3, 2, ..., 2, 3, so the real manifold is [-3, 12].
  // Fake {0, 1, 2, 3} (inside) and {100, ..., 103} (outside): precision 4 / 8.
  // Fake radii 3, 2, 2, 3 (twice): the fake manifold near 0 is [-3, 6], holding real 0..6:
  // recall 7 / 10.
  const real = Array.from({ length: 10 }, (_, i) => [i]);
  const fake = [0, 1, 2, 3, 100, 101, 102, 103].map((v) => [v]);
  const pr = precisionRecall(real, fake, 3);
  assert.equal(pr.precision, 0.5);
  assert.equal(pr.recall, 0.7);
  close(pr.f1, (2 * 0.5 * 0.7) / 1.2, 1e-15, "F1");
  // The same set: everything is covered.
  assert.deepEqual(precisionRecall(real, real), { precision: 1, recall: 1, f1: 1 });
  assert.equal(f1Score(0, 0), 0);
  assert.throws(() => precisionRecall(real.slice(0, 3), fake, 3), /1 <= k < rows/);
});

Deno.test("sampleMetrics: all five numbers, near zero FID/KID for two draws of one Gaussian", () => {
  const L = [[1, 0, 0], [0.3, 1, 0], [0, 0.2, 0.5]];
  const a = gaussian(500, [0, 0, 0], L, 11), b = gaussian(500, [0, 0, 0], L, 12);
  const c = gaussian(500, [2, 0, 0], L, 13);
  const same = sampleMetrics(a, b, "test");
  const shifted = sampleMetrics(a, c, "test");
  assert.equal(same.features, "test");
  assert.ok(same.fid < 0.05, `${same.fid}`);
  close(same.kid, 0, 0.02, "KID same");
  assert.ok(shifted.fid > 3.5 && shifted.fid < 4.5, `${shifted.fid}`);
  assert.ok(shifted.kid > same.kid + 0.1);
  assert.ok(same.precision > 0.9 && same.recall > 0.9, JSON.stringify(same));
  assert.ok(shifted.precision < same.precision && shifted.recall < same.recall);
});

Deno.test("mcnemarExactP() matches exact binomial tails (Python fractions), capped at 1", () => {
  // 2 * sum_{i<=min} C(n, i) / 2^n computed with exact fractions.
  const cases: [number, number, number][] = [
    [2, 10, 0.03857421875],
    [12, 17, 0.45825831964612007],
    [0, 5, 0.0625],
    [30, 60, 0.002060265680963076],
    [1500, 1600, 0.07537169707532781],
    [7, 7, 1],
    [8, 7, 1],
    [0, 0, 1],
  ];
  for (const [a, b, p] of cases) {
    close(mcnemarExactP(a, b), p, 1e-12 * Math.max(1, p), `p(${a}, ${b})`);
    assert.equal(mcnemarExactP(b, a), mcnemarExactP(a, b), "symmetric");
  }
  assert.equal(mcnemarExactP(0, 1100), 0, "2^-1099 underflows to 0, not NaN");
  assert.throws(() => mcnemarExactP(-1, 3), RangeError);
  assert.throws(() => mcnemarExactP(1.5, 3), RangeError);
});

Deno.test("comparePaired() counts discordant pairs; its interval is Wald's for paired rates", () => {
  // 10 items: both right on 3, only A on 1, only B on 4, neither on 2.
  const a = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0].map(Boolean);
  const b = [1, 1, 1, 0, 1, 1, 1, 1, 0, 0].map(Boolean);
  const c = comparePaired(a, b);
  assert.equal(c.items, 10);
  assert.equal(c.rateA, 0.4);
  assert.equal(c.rateB, 0.7);
  assert.equal(c.onlyA, 1);
  assert.equal(c.onlyB, 4);
  close(c.difference, 0.3, 1e-15, "difference");
  // se = sqrt((0.1 + 0.4 - 0.3^2) / 10) = sqrt(0.041)
  const se = Math.sqrt(0.041);
  close(c.interval95[0], 0.3 - 1.959963984540054 * se, 1e-12, "low");
  close(c.interval95[1], 0.3 + 1.959963984540054 * se, 1e-12, "high");
  close(c.pValue, 2 * (1 + 5) / 32, 1e-15, "p");
  // Identical verdicts: no difference, a zero-width interval, p = 1.
  const same = comparePaired(a, a);
  assert.deepEqual([same.difference, ...same.interval95, same.pValue], [0, 0, 0, 1]);
  // All of B's wins: the interval stays within [-1, 1].
  const all = comparePaired([false, false], [true, true]);
  assert.deepEqual(all.interval95, [1, 1]);
  assert.throws(() => comparePaired([true], [true, false]), RangeError);
  assert.throws(() => comparePaired([], []), RangeError);
});
