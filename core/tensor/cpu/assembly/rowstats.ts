// Row statistics shared by the row kernels (AssemblyScript): sums of float32 rows accumulated
// in float64 (two f64x2 accumulators per four elements), as the TypeScript kernels do.

/** The float64 sum of the two lanes of an f64x2. */
// @ts-ignore: decorator
@inline export function hsum2(v: v128): f64 {
  return f64x2.extract_lane(v, 0) + f64x2.extract_lane(v, 1);
}

/** The lanes 2, 3 of an f32x4 as an f64x2. */
// @ts-ignore: decorator
@inline export function promoteHigh(v: v128): v128 {
  return f64x2.promote_low_f32x4(v128.shuffle<f32>(v, v, 2, 3, 0, 1));
}

/** sum of n floats at p, in float64. */
export function rowSum(p: usize, n: i32): f64 {
  let a = f64x2.splat(0), b = f64x2.splat(0);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const v = v128.load(p + (<usize>j << 2));
    a = f64x2.add(a, f64x2.promote_low_f32x4(v));
    b = f64x2.add(b, promoteHigh(v));
  }
  let s = hsum2(f64x2.add(a, b));
  for (; j < n; j++) s += <f64>load<f32>(p + (<usize>j << 2));
  return s;
}

/** sum of (x - mu)^2 over n floats at p, in float64. */
export function rowSqDev(p: usize, n: i32, mu: f64): f64 {
  let a = f64x2.splat(0), b = f64x2.splat(0);
  const m = f64x2.splat(mu);
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const v = v128.load(p + (<usize>j << 2));
    const d0 = f64x2.sub(f64x2.promote_low_f32x4(v), m);
    const d1 = f64x2.sub(promoteHigh(v), m);
    a = f64x2.add(a, f64x2.mul(d0, d0));
    b = f64x2.add(b, f64x2.mul(d1, d1));
  }
  let s = hsum2(f64x2.add(a, b));
  for (; j < n; j++) {
    const d = <f64>load<f32>(p + (<usize>j << 2)) - mu;
    s += d * d;
  }
  return s;
}

/** The rows [lo, hi) of `rows` that thread tid of nthreads does, as lo << 32 | hi. */
// @ts-ignore: decorator
@inline export function rowShare(rows: i32, tid: i32, nthreads: i32): i64 {
  const lo = <i32>(<i64>rows * tid / nthreads), hi = <i32>(<i64>rows * (tid + 1) / nthreads);
  return (<i64>lo << 32) | <i64>hi;
}
