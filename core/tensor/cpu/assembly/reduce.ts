// Sums over any set of axes on the CPU backend (AssemblyScript, `deno task wasm`), in float64 as
// the TypeScript loop of `reduce.ts` one folder up does, which plans the work: the input's
// dimensions merged into runs that are all reduced or all kept, walked row by row (the innermost
// run) in memory order. A reduced inner run folds into one accumulator (`rowSum`, four lanes), a
// kept one adds into a row of them. Each thread takes a contiguous range of rows and sums into its
// own block of float64 accumulators; the caller adds the blocks up.

import { promoteHigh, rowShare, rowSum } from "./rowstats";

/**
 * This thread's rows of x (`rows` rows of `inner` floats). Output offset of a row: its index
 * decomposed over the `outer` dims (i32 at `dims`, outermost first) times their output strides
 * (i32 at `strides`, 0 for reduced dims). Accumulates into `nOut` float64 at acc + tid * nOut * 8
 * (zeroed by the caller); `digits` holds `outer` i32 per thread for the odometer.
 */
export function sum_rows(
  x: usize, rows: i32, inner: i32, innerReduced: i32,
  outer: i32, dims: usize, strides: usize, digits: usize, acc: usize, nOut: i32,
  tid: i32, nthreads: i32,
): void {
  const share = rowShare(rows, tid, nthreads);
  const lo = <i32>(share >> 32), hi = <i32>share;
  if (lo >= hi) return;
  const mine = acc + <usize>tid * <usize>nOut * 8;
  // The odometer's digits and the output offset of row lo.
  const count = digits + <usize>tid * <usize>outer * 4;
  let o = 0;
  let rest = lo;
  for (let d = outer - 1; d >= 0; d--) {
    const n = load<i32>(dims + (<usize>d << 2));
    const digit = rest % n;
    rest /= n;
    o += digit * load<i32>(strides + (<usize>d << 2));
    store<i32>(count + (<usize>d << 2), digit);
  }
  for (let r = lo; r < hi; r++) {
    const row = x + (<usize>r * <usize>inner << 2);
    if (innerReduced) {
      const a = mine + (<usize>o << 3);
      store<f64>(a, load<f64>(a) + rowSum(row, inner));
    } else {
      addRow(mine + (<usize>o << 3), row, inner);
    }
    // Next row: step the odometer over the outer dims.
    for (let d = outer - 1; d >= 0; d--) {
      const c = count + (<usize>d << 2);
      const stride = load<i32>(strides + (<usize>d << 2));
      const n = load<i32>(dims + (<usize>d << 2));
      o += stride;
      const next = load<i32>(c) + 1;
      if (next < n) {
        store<i32>(c, next);
        break;
      }
      store<i32>(c, 0);
      o -= stride * n;
    }
  }
}

/** acc[j] += x[j] (float32 promoted to float64) for n values. */
// @ts-ignore: decorator
@inline function addRow(acc: usize, x: usize, n: i32): void {
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const v = v128.load(x + (<usize>j << 2));
    const a = acc + (<usize>j << 3);
    v128.store(a, f64x2.add(v128.load(a), f64x2.promote_low_f32x4(v)));
    v128.store(a + 16, f64x2.add(v128.load(a + 16), promoteHigh(v)));
  }
  for (; j < n; j++) {
    const a = acc + (<usize>j << 3);
    store<f64>(a, load<f64>(a) + <f64>load<f32>(x + (<usize>j << 2)));
  }
}
