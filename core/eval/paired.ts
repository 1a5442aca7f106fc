/**
 * Paired comparison of two models scored right/wrong on the same items (e.g. the probe's "exact"
 * verdict on the image each model drew for the same caption): the rates, their difference with a
 * 95% interval, and McNemar's exact test (McNemar 1947; the exact, binomial form as in Fagerland,
 * Lydersen & Laake 2013, "The McNemar test for binary matched-pairs data"). Pairing by item
 * removes the variance of which captions are easy, so a difference of a few points on 200
 * captions can be told from noise where two unpaired rates cannot.
 *
 * @module
 */

/** Two models' right/wrong verdicts on the same items, compared. */
export interface PairedComparison {
  /** Items compared. */
  items: number;
  /** The share of items model A got right. */
  rateA: number;
  /** The share of items model B got right. */
  rateB: number;
  /** Items only A got right (discordant pairs one way). */
  onlyA: number;
  /** Items only B got right (discordant pairs the other way). */
  onlyB: number;
  /** rateB - rateA. */
  difference: number;
  /**
   * A 95% interval of the difference: Wald's for paired proportions (Agresti, Categorical Data
   * Analysis, 3rd ed., 10.1.1), clipped to [-1, 1]; a guide only when few pairs disagree.
   */
  interval95: [number, number];
  /**
   * Two-sided p-value of McNemar's exact test: under "A and B are equally good", each discordant
   * pair is A's or B's with probability 1/2, so min(onlyA, onlyB) is a Binomial(onlyA + onlyB,
   * 1/2) tail; doubled and capped at 1.
   */
  pValue: number;
}

/** The z of a two-sided 95% normal interval. */
const Z95 = 1.959963984540054;

/**
 * Compares verdicts `a[i]`, `b[i]` (true = right) item by item; both must have the same, nonzero
 * length.
 *
 * @example
 * ```ts
 * const c = comparePaired([true, false, false, true], [true, true, true, true]);
 * // c.onlyB === 2, c.difference === 0.5, c.pValue === 0.5
 * ```
 */
export function comparePaired(
  a: ArrayLike<boolean>,
  b: ArrayLike<boolean>,
): PairedComparison {
  if (a.length !== b.length) {
    throw new RangeError(`comparePaired: ${a.length} verdicts against ${b.length}`);
  }
  const n = a.length;
  if (n === 0) throw new RangeError("comparePaired: no items");
  let rightA = 0, rightB = 0, onlyA = 0, onlyB = 0;
  for (let i = 0; i < n; i++) {
    if (a[i]) rightA++;
    if (b[i]) rightB++;
    if (a[i] && !b[i]) onlyA++;
    if (b[i] && !a[i]) onlyB++;
  }
  const difference = (onlyB - onlyA) / n;
  // Var(p_B - p_A) = (p_01 + p_10 - (p_01 - p_10)^2) / n for discordant shares p_01, p_10.
  const se = Math.sqrt(Math.max(0, (onlyA + onlyB) / n - difference * difference) / n);
  return {
    items: n,
    rateA: rightA / n,
    rateB: rightB / n,
    onlyA,
    onlyB,
    difference,
    interval95: [Math.max(-1, difference - Z95 * se), Math.min(1, difference + Z95 * se)],
    pValue: mcnemarExactP(onlyA, onlyB),
  };
}

/**
 * McNemar's exact two-sided p-value for `onlyA` and `onlyB` discordant pairs:
 * min(1, 2 P(X <= min(onlyA, onlyB))), X ~ Binomial(onlyA + onlyB, 1/2). 1 when none disagree.
 * Summed in log space, so thousands of pairs neither underflow nor overflow.
 *
 * @example
 * ```ts
 * mcnemarExactP(2, 10); // 2 * (1 + 12 + 66) / 4096 = 0.0386
 * ```
 */
export function mcnemarExactP(onlyA: number, onlyB: number): number {
  for (const x of [onlyA, onlyB]) {
    if (!Number.isInteger(x) || x < 0) {
      throw new RangeError(`mcnemarExactP: counts must be whole numbers >= 0, got ${x}`);
    }
  }
  const n = onlyA + onlyB, k = Math.min(onlyA, onlyB);
  if (n === 0) return 1;
  // log C(n, i) built up term by term: C(n, i) = C(n, i - 1) (n - i + 1) / i.
  const logHalfN = -n * Math.LN2;
  const logTerms: number[] = [logHalfN];
  let logC = 0;
  for (let i = 1; i <= k; i++) {
    logC += Math.log(n - i + 1) - Math.log(i);
    logTerms.push(logC + logHalfN);
  }
  const top = Math.max(...logTerms);
  const tail = Math.exp(top) * logTerms.reduce((s, t) => s + Math.exp(t - top), 0);
  return Math.min(1, 2 * tail);
}
