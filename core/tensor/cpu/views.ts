/**
 * Typed-array views of tensors on the CPU backend, for the TypeScript kernels. Views are cheap
 * (no copy) and must not be held across an allocation: the memory may grow and move.
 */
import { cpu } from "../backend.ts";
import { bufferOf, type Tensor } from "../tensor.ts";
import type { CpuBuffer } from "./memory.ts";

/** The tensor's elements as float32 (writable: kernels write outputs through it). */
export function f32(t: Tensor): Float32Array {
  const b = bufferOf(t) as CpuBuffer;
  return new Float32Array(cpu().mem.buffer, b.offset, t.size);
}

/** The tensor's elements as int32. */
export function i32(t: Tensor): Int32Array {
  const b = bufferOf(t) as CpuBuffer;
  return new Int32Array(cpu().mem.buffer, b.offset, t.size);
}

/** The tensor's elements as uint32. */
export function u32(t: Tensor): Uint32Array {
  const b = bufferOf(t) as CpuBuffer;
  return new Uint32Array(cpu().mem.buffer, b.offset, t.size);
}

/** The tensor's byte address in the WebAssembly memory (for the WebAssembly kernels). */
export function addr(t: Tensor): number {
  return (bufferOf(t) as CpuBuffer).offset;
}
