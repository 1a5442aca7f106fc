/**
 * Starts the CPU backend: the tensor memory, the WebAssembly kernels and the worker threads.
 */
import { CpuBackend } from "./backend.ts";

/** Creates the CPU backend (single-threaded TypeScript kernels until the WebAssembly ones load). */
export function startCpuBackend(): Promise<CpuBackend> {
  return Promise.resolve(new CpuBackend());
}
