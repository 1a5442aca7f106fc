// Vectorised float32 math for the CPU backend's kernels (AssemblyScript, `deno task wasm`):
// exp, and from it sigmoid, SiLU and the tanh form of GELU, four lanes at a time.
//
// exp4 follows Cephes' expf (S. Moshier): x = n ln2 + r with n = round(x / ln2) and |r| <= ln2 / 2
// (ln2 split in two constants so n ln2 is exact to float32), e^r by a degree-7 minimax polynomial
// (1 + r + r^2 P(r)), then 2^n put in by adding n to the exponent bits. 2^n is applied as two
// halves so that n from -150 (subnormal results) to 128 stays representable; only the last
// multiplication rounds into the subnormals. Measured against float64 Math.exp rounded to
// float32: at most 2 ulp (normal results). Edges: x > 88.73 gives +inf, x < -104 gives 0 (both
// also where the arithmetic gets there first), NaN stays NaN.

/** a * b + c: fused where the runtime has relaxed SIMD, else mul + add. */
// @ts-ignore: decorator
@inline export function madd4(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

const LOG2E: f32 = 1.44269504088896341;
/** ln 2 = LN2_HI + LN2_LO, LN2_HI with few mantissa bits so that n * LN2_HI is exact. */
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.12194440e-4;
/** Above this e^x overflows float32; below EXP_LO it rounds to 0. */
const EXP_HI: f32 = 88.73;
const EXP_LO: f32 = -104.0;

/** e^x for each lane (see the header). */
// @ts-ignore: decorator
@inline export function exp4(x: v128): v128 {
  const n = f32x4.nearest(f32x4.mul(x, f32x4.splat(LOG2E)));
  let r = f32x4.sub(x, f32x4.mul(n, f32x4.splat(LN2_HI)));
  r = f32x4.sub(r, f32x4.mul(n, f32x4.splat(LN2_LO)));
  let p = f32x4.splat(1.9875691500e-4);
  p = madd4(p, r, f32x4.splat(1.3981999507e-3));
  p = madd4(p, r, f32x4.splat(8.3334519073e-3));
  p = madd4(p, r, f32x4.splat(4.1665795894e-2));
  p = madd4(p, r, f32x4.splat(1.6666665459e-1));
  p = madd4(p, r, f32x4.splat(5.0000001201e-1));
  p = madd4(p, f32x4.mul(r, r), f32x4.add(r, f32x4.splat(1)));
  // 2^n = 2^n1 * 2^n2 with n1 = floor(n / 2): each half is a normal float for n in [-150, 128].
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const n1 = i32x4.shr_s(ni, 1);
  const n2 = i32x4.sub(ni, n1);
  const bias = i32x4.splat(127);
  const s1 = i32x4.shl(i32x4.add(n1, bias), 23);
  const s2 = i32x4.shl(i32x4.add(n2, bias), 23);
  let y = f32x4.mul(f32x4.mul(p, s1), s2);
  y = v128.bitselect(f32x4.splat(Infinity), y, f32x4.gt(x, f32x4.splat(EXP_HI)));
  return v128.andnot(y, f32x4.lt(x, f32x4.splat(EXP_LO)));
}

/** e^x of one value by the vector code (for row tails: the same rounding as the vector body). */
// @ts-ignore: decorator
@inline export function exp1(x: f32): f32 {
  return f32x4.extract_lane(exp4(f32x4.splat(x)), 0);
}

/** 1 / (1 + e^-x) for each lane (0 for x below -88.7, where e^-x overflows, as in the TS). */
// @ts-ignore: decorator
@inline export function sigmoid4(x: v128): v128 {
  const one = f32x4.splat(1);
  return f32x4.div(one, f32x4.add(one, exp4(f32x4.neg(x))));
}

/** x sigmoid(x) = x / (1 + e^-x) for each lane. */
// @ts-ignore: decorator
@inline export function silu4(x: v128): v128 {
  return f32x4.div(x, f32x4.add(f32x4.splat(1), exp4(f32x4.neg(x))));
}

/** tanh(x) = sign(x) (1 - e) / (1 + e) with e = e^(-2|x|): no overflow (safeTanh in the TS). */
// @ts-ignore: decorator
@inline export function tanh4(x: v128): v128 {
  const one = f32x4.splat(1);
  const e = exp4(f32x4.mul(f32x4.abs(x), f32x4.splat(-2)));
  const t = f32x4.div(f32x4.sub(one, e), f32x4.add(one, e));
  // Copy x's sign bit onto t (t >= 0).
  const sign = v128.and(x, i32x4.splat(<i32>0x80000000));
  return v128.or(t, sign);
}

/** sqrt(2 / pi), for the tanh form of GELU (Hendrycks & Gimpel 2016), as in ops/elementwise.ts. */
const GELU_K: f32 = 0.7978845608028654;

/** tanh(k (x + 0.044715 x^3)), the tanh inside GELU, for each lane. */
// @ts-ignore: decorator
@inline export function geluTanh4(x: v128): v128 {
  const x3 = f32x4.mul(f32x4.mul(x, x), x);
  return tanh4(f32x4.mul(f32x4.splat(GELU_K), madd4(f32x4.splat(0.044715), x3, x)));
}

/** 0.5 x (1 + tanh(k (x + 0.044715 x^3))) for each lane. */
// @ts-ignore: decorator
@inline export function gelu4(x: v128): v128 {
  const h = f32x4.mul(f32x4.splat(0.5), x);
  return madd4(h, geluTanh4(x), h);
}

/** Exported for the tests: e^x of n floats at byte address x into y (n a multiple of 4 or not). */
export function exp_f32(x: usize, y: usize, n: i32): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(y + o, exp4(v128.load(x + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(y + o, exp1(load<f32>(x + o)));
  }
}
