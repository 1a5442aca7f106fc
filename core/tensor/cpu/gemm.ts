/**
 * GEMM on the CPU backend: C = A B (+ C) (+ bias) (-> activation) over tensors in the CPU
 * memory, addressed by byte offset. Every matrix product and convolution of the CPU backend runs
 * through `gemm`.
 *
 * The work is done by the packed WebAssembly SIMD kernel (`assembly/gemm.ts`) on all threads of
 * the pool; `gemmReference`, a plain TypeScript loop, runs where WebAssembly SIMD is missing.
 */
import { cpu } from "../backend.ts";
import { activate, type FusedActivation } from "../kernels/activation.ts";
import { cpuKernels } from "./runtime.ts";

/** Activations the epilogue can apply after the bias. */
export type GemmActivation = FusedActivation;

/** The epilogue's activation on one value (the TypeScript twin of the activation table). */
export { activate };

/**
 * One (batched) GEMM. Addresses are byte offsets into the CPU memory; leading dimensions and
 * batch strides count elements. A(m, k) is `a[m * lda + k]`, or `a[k * lda + m]` with `transA`;
 * B(k, n) is `b[k * ldb + n]`, or `b[n * ldb + k]` with `transB`; C(m, n) is `c[m * ldc + n]`.
 */
export interface GemmArgs {
  M: number;
  N: number;
  K: number;
  a: number;
  lda: number;
  transA?: boolean;
  b: number;
  ldb: number;
  transB?: boolean;
  c: number;
  ldc: number;
  /** Number of independent products (default 1). */
  batch?: number;
  /** Elements between consecutive batches of A, B and C (0 repeats the same matrix). */
  strideA?: number;
  strideB?: number;
  strideC?: number;
  /** Add to C instead of overwriting it. */
  accumulate?: boolean;
  /** Byte address of a bias added to every row (length N), or every column with `biasPerRow`. */
  bias?: number;
  biasPerRow?: boolean;
  activation?: GemmActivation;
  /**
   * With `transA` and N <= 64: the WebAssembly kernel reads A in place rather than packing it
   * (a hint; only where lda is not a large power of two, whose rows would alias in the cache).
   */
  directA?: boolean;
}

/**
 * Below this many flops (2 M N K over the batch) a GEMM runs on the calling thread alone: waking
 * a worker (about 8 us for the round trip, though the caller does not wait for a worker that has
 * not woken) and packing B again per rectangle cost more than the split saves. Measured on an
 * idle 2-core EPYC (best of many runs, 1 thread vs 2): 64x64x32 (0.26 M flops) 6.1 vs 7.2 us,
 * 64x128x64 (1.05 M) 20.8 vs 20.4 us, 128x128x64 (2.1 M) 39.7 vs 35.0 us, 128x128x128 (4.2 M)
 * 78.6 vs 58.0 us, 256x256x256 (34 M) 634 vs 339 us.
 */
export const GEMM_PARALLEL_MIN_FLOPS = 1e6;

/** The kernels' activation codes. */
export const GEMM_ACTIVATIONS: Record<GemmActivation, number> = {
  none: 0,
  relu: 1,
  gelu: 2,
  silu: 3,
};

/** C = op(A) op(B) for each batch; see `GemmArgs`. */
export function gemm(g: GemmArgs): void {
  const k = cpuKernels();
  if (!k) return gemmReference(g);
  const { M, N, K } = g;
  const batch = g.batch ?? 1;
  if (M <= 0 || N <= 0 || batch <= 0) return;
  const flops = 2 * M * N * K * batch;
  const threads = flops < GEMM_PARALLEL_MIN_FLOPS ? 1 : Math.min(cpu().threads, k.pool.size);
  const split = threads > 1 && batch < threads;
  // Scratch: the shared block (work counter, and A packed whole when products are split), then
  // one packing block per thread.
  const sharedBytes = split ? align64(k.exports.shared_bytes(M, K)) : 64;
  const stride = align64(k.exports.scratch_bytes(M, N, K));
  const shared = k.scratch(sharedBytes + threads * stride);
  const scratch = shared + sharedBytes;
  const flags = (g.transA ? 1 : 0) | (g.transB ? 2 : 0) | (g.accumulate ? 4 : 0) |
    (g.bias !== undefined ? 8 : 0) | (g.biasPerRow ? 16 : 0) | (g.directA ? 32 : 0);
  const bias = g.bias ?? 0, act = GEMM_ACTIVATIONS[g.activation ?? "none"];
  const sA = g.strideA ?? 0, sB = g.strideB ?? 0, sC = g.strideC ?? M * g.ldc;
  // Zero the work counters.
  new Int32Array(cpu().mem.buffer, shared, 2).fill(0);
  if (!split) {
    // Whole products: on this thread, or claimed one by one by the threads.
    const args = [M, N, K, g.a, g.lda, g.b, g.ldb, g.c, g.ldc, batch, sA, sB, sC, flags, bias, act];
    k.pool.run("gemm_batches", [...args, shared, scratch, stride], threads);
    return;
  }
  // Each product split across the threads: A packed once, then rectangles of C claimed.
  for (let bi = 0; bi < batch; bi++) {
    if (bi > 0) new Int32Array(cpu().mem.buffer, shared, 2).fill(0);
    const a = g.a + 4 * bi * sA, b = g.b + 4 * bi * sB, c = g.c + 4 * bi * sC;
    const args = [M, N, K, a, g.lda, b, g.ldb, c, g.ldc, flags, bias, act, shared, scratch, stride];
    k.pool.run("gemm_tiles", args, threads);
  }
}

function align64(bytes: number): number {
  return Math.ceil(bytes / 64) * 64;
}

/** The TypeScript reference GEMM (float64 sums), for runtimes without WebAssembly SIMD. */
export function gemmReference(g: GemmArgs): void {
  const mem = cpu().mem.f32;
  const batch = g.batch ?? 1;
  const act = g.activation ?? "none";
  const sA = g.strideA ?? 0, sB = g.strideB ?? 0, sC = g.strideC ?? g.M * g.ldc;
  const row = new Float64Array(g.N);
  for (let bi = 0; bi < batch; bi++) {
    const a0 = g.a / 4 + bi * sA, b0 = g.b / 4 + bi * sB, c0 = g.c / 4 + bi * sC;
    for (let m = 0; m < g.M; m++) {
      row.fill(0);
      for (let k = 0; k < g.K; k++) {
        const av = mem[a0 + (g.transA ? k * g.lda + m : m * g.lda + k)];
        if (g.transB) { for (let n = 0; n < g.N; n++) row[n] += av * mem[b0 + n * g.ldb + k]; }
        else {
          const bk = b0 + k * g.ldb;
          for (let n = 0; n < g.N; n++) row[n] += av * mem[bk + n];
        }
      }
      const cm = c0 + m * g.ldc;
      for (let n = 0; n < g.N; n++) {
        let v = row[n] + (g.accumulate ? mem[cm + n] : 0);
        if (g.bias !== undefined) v += mem[g.bias / 4 + (g.biasPerRow ? m : n)];
        mem[cm + n] = activate(v, act);
      }
    }
  }
}
