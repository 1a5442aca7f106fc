// Work sharing. The elementwise kernels (`unary.ts`, `binary.ts`) give each thread one contiguous
// range of the array (`share`). The layout kernels (`conv.ts`, `view.ts`) cut their units of work
// (rows, planes) into chunks that the threads claim from an atomic counter, as the GEMM's
// rectangles are, so a thread that the OS keeps off the CPU holds up at most one chunk and never
// the whole static share it would otherwise own. Not re-exported from index.ts.

/** Chunks per thread: small enough to balance, large enough that claiming costs nothing. */
const CHUNKS_PER_THREAD: i32 = 8;

/** Units per chunk when `units` are shared by `nthreads` threads (all of them for one thread). */
// @ts-ignore: decorator
@inline export function chunkSize(units: i32, nthreads: i32): i32 {
  if (nthreads <= 1) return max(units, 1);
  return max(1, (units + CHUNKS_PER_THREAD * nthreads - 1) / (CHUNKS_PER_THREAD * nthreads));
}

/**
 * The next chunk for this thread: chunk 0 then 1, 2, .. on one thread (`counter` unused), else
 * the value of the counter at `counter` (zeroed by the caller), incremented atomically.
 * `previous` is the chunk this thread did last (-1 before its first).
 */
// @ts-ignore: decorator
@inline export function nextChunk(counter: usize, nthreads: i32, previous: i32): i32 {
  if (nthreads <= 1) return previous + 1;
  if (ASC_FEATURE_THREADS) return atomic.add<i32>(counter, 1);
  const v = load<i32>(counter);
  store<i32>(counter, v + 1);
  return v;
}

/** The range [lo, hi) of n elements that thread tid of nthreads does (multiples of 16). */
// @ts-ignore: decorator
@inline export function share(n: i32, tid: i32, nthreads: i32): i64 {
  const per = ((n + nthreads - 1) / nthreads + 15) & ~15;
  const lo = min(n, tid * per);
  const hi = min(n, lo + per);
  return (<i64>lo << 32) | <i64>hi;
}
