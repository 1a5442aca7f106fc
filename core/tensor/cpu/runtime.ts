/**
 * Starts the CPU backend: the tensor memory, the WebAssembly kernels (`assembly/`, embedded in
 * `kernels_wasm.ts` by `deno task wasm`) and the worker threads that share the memory.
 *
 * The best kernels the runtime can run are chosen: relaxed SIMD (fused multiply-add), else plain
 * SIMD, else none (the TypeScript reference GEMM); threads when the memory can be shared and
 * workers start, else the calling thread alone. Each step down prints one warning line.
 *
 * Two environment variables force a step down, for tests and comparisons:
 * `UNCLIP_CPU_KERNELS=relaxed|simd|ts` caps the kernels and `UNCLIP_CPU_THREADS=n` the threads.
 */
import { CpuBackend } from "./backend.ts";
import { CpuMemory, sharedMemorySupported } from "./memory.ts";
import { ThreadPool } from "./threads.ts";
import { WASM } from "./kernels_wasm.ts";
import { readEnv } from "../env.ts";

/** Kernel builds, best first. */
const KERNEL_LEVELS = ["relaxed", "simd", "ts"] as const;
export type KernelLevel = typeof KERNEL_LEVELS[number];

type Export = (...args: number[]) => number;

/** The loaded kernels: this thread's instance and the pool that runs them on all threads. */
export interface CpuKernels {
  level: Exclude<KernelLevel, "ts">;
  exports: Record<string, Export>;
  pool: ThreadPool;
  /**
   * Byte address of a 64-byte aligned scratch block of at least `bytes` bytes for the kernels'
   * packing buffers, kept and reused across calls and grown when a call needs more. Valid until
   * the next call.
   */
  scratch(bytes: number): number;
}

let kernels: CpuKernels | null = null;

/** The WebAssembly kernels, or null where they could not load (TypeScript fallbacks run). */
export function cpuKernels(): CpuKernels | null {
  return kernels;
}

function decode(base64: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** The best kernel build this runtime validates, at most `cap`, warning once on a step down. */
function chooseKernels(
  shared: boolean,
  cap: KernelLevel,
): [KernelLevel, Uint8Array<ArrayBuffer> | null] {
  const bins = {
    relaxed: decode(shared ? WASM.relaxed : WASM.relaxedPrivate),
    simd: decode(shared ? WASM.simd : WASM.simdPrivate),
  };
  const from = KERNEL_LEVELS.indexOf(cap);
  const relaxedOk = from === 0 && WebAssembly.validate(bins.relaxed);
  if (relaxedOk) return ["relaxed", bins.relaxed];
  if (from <= 1 && WebAssembly.validate(bins.simd)) {
    console.warn(
      "CPU backend: no relaxed SIMD here; the GEMM uses plain WebAssembly SIMD (no fused " +
        "multiply-add, slower).",
    );
    return ["simd", bins.simd];
  }
  console.warn(
    "CPU backend: no WebAssembly SIMD here; matrix products run in TypeScript (much slower).",
  );
  return ["ts", null];
}

function parseLevel(v: string | undefined): KernelLevel {
  if (v === undefined || v === "") return "relaxed";
  if ((KERNEL_LEVELS as readonly string[]).includes(v)) return v as KernelLevel;
  throw new Error(`UNCLIP_CPU_KERNELS: unknown "${v}"; valid: ${KERNEL_LEVELS.join(", ")}.`);
}

function wantedThreads(): number {
  const v = readEnv("UNCLIP_CPU_THREADS");
  if (v !== undefined && v !== "") {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`UNCLIP_CPU_THREADS: "${v}" is not >= 1.`);
    return n;
  }
  return Math.max(1, navigator.hardwareConcurrency ?? 1);
}

/** Starts the worker threads, or explains in one warning line why the calling thread works alone. */
async function startPool(
  module: WebAssembly.Module,
  instance: WebAssembly.Instance,
  mem: CpuMemory,
  threads: number,
): Promise<ThreadPool> {
  const exports = instance.exports as Record<string, Export>;
  if (threads <= 1) return ThreadPool.single(exports);
  if (!mem.shared) {
    console.warn("CPU backend: no shared WebAssembly memory here; running on one thread.");
    return ThreadPool.single(exports);
  }
  try {
    return await ThreadPool.start(module, instance, mem.memory, threads - 1);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    console.warn(`CPU backend: worker threads did not start (${why}); running on one thread.`);
    return ThreadPool.single(exports);
  }
}

/** Creates the CPU backend: memory, kernels, threads. */
export async function startCpuBackend(): Promise<CpuBackend> {
  const mem = new CpuMemory(sharedMemorySupported());
  const backend = new CpuBackend(mem);
  const [level, wasm] = chooseKernels(mem.shared, parseLevel(readEnv("UNCLIP_CPU_KERNELS")));
  if (level === "ts" || !wasm) return backend;
  const module = new WebAssembly.Module(wasm);
  const instance = new WebAssembly.Instance(module, {
    env: { memory: mem.memory, abort: () => {} },
  });
  const pool = await startPool(module, instance, mem, wantedThreads());
  let block: { offset: number; size: number } | null = null;
  kernels = {
    level,
    exports: instance.exports as Record<string, Export>,
    pool,
    scratch(bytes) {
      if (!block || block.size < bytes) {
        if (block) backend.free(block);
        block = backend.allocate(bytes);
      }
      return block.offset;
    },
  };
  backend.simd = true;
  backend.threads = pool.size;
  return backend;
}
