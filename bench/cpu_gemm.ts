/**
 * GFLOP/s of the CPU backend's GEMM on 1 thread and on all threads, for square products and the
 * shapes the models use: convolutions as GEMMs (M = output channels, N = B H W, K = C 9), linear
 * layers and batched attention.
 *
 * Usage: deno run -A bench/cpu_gemm.ts [--quick]
 */
import { cpu, initBackend } from "../core/tensor/backend.ts";
import { gemm, type GemmArgs } from "../core/tensor/cpu/gemm.ts";
import { cpuKernels } from "../core/tensor/cpu/runtime.ts";

await initBackend({ backend: "cpu" });
const quick = Deno.args.includes("--quick");

interface Shape {
  label: string;
  M: number;
  N: number;
  K: number;
  batch?: number;
  transA?: boolean;
  transB?: boolean;
}

const SHAPES: Shape[] = [
  { label: "square", M: 256, N: 256, K: 256 },
  { label: "square", M: 512, N: 512, K: 512 },
  { label: "square", M: 1024, N: 1024, K: 1024 },
  { label: "conv", M: 64, N: 8192, K: 576 },
  { label: "conv", M: 128, N: 2048, K: 1152 },
  { label: "conv", M: 256, N: 2048, K: 2304 },
  { label: "conv dW (A^T)", M: 64, N: 576, K: 8192, transB: true },
  // Winograd F(2x2, 3x3): sixteen [O, C] x [C, tiles] products per convolution (B 32, the
  // decoder's 32 channels at 32x32 and 64 at 16x16), and the weight gradient's [O, T] x [T, C].
  { label: "winograd", M: 32, N: 8192, K: 32, batch: 16 },
  { label: "winograd", M: 64, N: 2048, K: 64, batch: 16 },
  { label: "winograd dW", M: 32, N: 32, K: 8192, batch: 16, transB: true },
  { label: "linear", M: 64, N: 512, K: 64 },
  { label: "linear", M: 256, N: 256, K: 256, transB: true },
  { label: "linear", M: 512, N: 16, K: 512 },
  { label: "linear", M: 16, N: 512, K: 512, transB: true },
  { label: "attention", M: 64, N: 64, K: 32, batch: 32, transB: true },
  { label: "attention", M: 64, N: 32, K: 64, batch: 32 },
];

function setup(s: Shape): GemmArgs {
  const batch = s.batch ?? 1;
  const alloc = (n: number) => {
    const b = cpu().allocate(n * 4);
    cpu().mem.f32.fill(0.5, b.offset / 4, b.offset / 4 + n);
    return b.offset;
  };
  const lda = s.transA ? s.M : s.K, ldb = s.transB ? s.K : s.N;
  return {
    M: s.M,
    N: s.N,
    K: s.K,
    a: alloc(s.M * s.K * batch),
    lda,
    transA: s.transA,
    b: alloc(s.K * s.N * batch),
    ldb,
    transB: s.transB,
    c: alloc(s.M * s.N * batch),
    ldc: s.N,
    batch,
    strideA: s.M * s.K,
    strideB: s.K * s.N,
    strideC: s.M * s.N,
  };
}

/**
 * GFLOP/s: the best of `trials` timed runs of about `ms` milliseconds each (the best, not the
 * mean: on a shared machine other processes take the cores now and then).
 */
function measure(g: GemmArgs, threads: number, ms: number, trials: number): number {
  const flops = 2 * g.M * g.N * g.K * (g.batch ?? 1);
  const all = cpu().threads;
  cpu().threads = threads;
  try {
    gemm(g);
    let t = performance.now();
    gemm(g);
    const once = Math.max(performance.now() - t, 1e-3);
    const reps = Math.max(1, Math.min(1000, Math.round(ms / once)));
    let best = Infinity;
    for (let trial = 0; trial < trials; trial++) {
      t = performance.now();
      for (let i = 0; i < reps; i++) gemm(g);
      best = Math.min(best, (performance.now() - t) / reps);
    }
    return flops / (best * 1e6);
  } finally {
    cpu().threads = all;
  }
}

const threads = cpu().threads;
console.log(
  `CPU GEMM, kernels: ${cpuKernels()?.level ?? "ts"}, threads: ${threads} ` +
    `(GFLOP/s, best of ${quick ? 3 : 12} runs)`,
);
console.log(
  `${"shape".padEnd(16)}${"M x N x K".padEnd(20)}${"1 thread".padStart(10)}` +
    `${`${threads} threads`.padStart(12)}`,
);
for (const s of SHAPES) {
  const g = setup(s);
  const trials = quick ? 3 : 12;
  const one = measure(g, 1, 40, trials);
  const all = threads > 1 ? measure(g, threads, 40, trials) : one;
  const dims = `${s.batch ? `${s.batch}x ` : ""}${s.M}x${s.N}x${s.K}`;
  console.log(
    `${s.label.padEnd(16)}${dims.padEnd(20)}${one.toFixed(1).padStart(10)}` +
      `${all.toFixed(1).padStart(12)}`,
  );
}
