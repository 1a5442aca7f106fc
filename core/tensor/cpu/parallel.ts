/**
 * Dispatch of the WebAssembly row and elementwise kernels (`assembly/rows.ts`, `norm.ts`,
 * `unary.ts`) from their TypeScript callers, which hold typed-array views: the views' byte
 * addresses, and whether a job is big enough to split across the thread pool.
 */
import { cpu } from "../backend.ts";
import { type CpuKernels, cpuKernels } from "./runtime.ts";

/**
 * Below this many elements a row or elementwise kernel runs on the calling thread alone: the
 * pool round trip (about 8 us) costs more than the split saves. Measured on a 2-core EPYC with
 * another process busy (load about 2; re-measure when idle, the crossover may be lower)
 * (SiLU, best of 30 x 20 calls, 1 thread vs 2): 16 K elements 21.8 vs 34.3 us, 32 K 44.1 vs
 * 48.6 us, 64 K 90.6 vs 68.8 us, 128 K 317 vs 164 us; softmax rows of 256: 32 K 87 vs 71 us.
 */
export const PARALLEL_MIN_ELEMENTS = 32768;

/**
 * The kernels, when they are loaded and every one of `views` lies in the CPU memory (their byte
 * offsets are then addresses there); else null and the TypeScript loops run.
 */
export function kernelsFor(...views: (Float32Array | null)[]): CpuKernels | null {
  const k = cpuKernels();
  if (!k) return null;
  const buffer = cpu().mem.buffer;
  for (const v of views) if (v && v.buffer !== buffer) return null;
  return k;
}

/** Runs kernel `name` on one thread, or on the whole pool when `elements` is large. */
export function runKernel(k: CpuKernels, name: string, args: number[], elements: number): void {
  k.pool.run(name, args, threadsFor(k, elements));
}

/** The threads a job of `elements` elements runs on. */
export function threadsFor(k: CpuKernels, elements: number): number {
  return elements < PARALLEL_MIN_ELEMENTS ? 1 : Math.min(cpu().threads, k.pool.size);
}
