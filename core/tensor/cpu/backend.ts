/**
 * The CPU backend: tensors live in one WebAssembly memory (`memory.ts`), and ops run as
 * TypeScript loops for light work and WebAssembly SIMD kernels (`assembly/`, loaded by
 * `runtime.ts`), split across worker threads (`threads.ts`), for the heavy work: GEMM,
 * convolutions' im2col/col2im, strided copies, softmax rows, norms and exp-based activations.
 * Every op runs synchronously, so `read()` and `sync()` never wait.
 */
import type { PoolStats } from "../pool.ts";
import { CpuBuffer, CpuMemory } from "./memory.ts";

/** Any backend's buffer; on this backend always a CpuBuffer. */
type AnyBuffer = CpuBuffer | GPUBuffer;

/** The CPU backend. Obtain it with `await initBackend({ backend: "cpu" })`. */
export class CpuBackend {
  readonly kind = "cpu" as const;
  readonly mem: CpuMemory;
  /** Worker threads used by the parallel kernels, the calling thread included. */
  threads = 1;
  /** Whether the WebAssembly kernels use 128-bit SIMD. */
  simd = false;
  #ops = 0;

  constructor(mem = new CpuMemory()) {
    this.mem = mem;
  }

  /** A block of at least `bytes` bytes (contents undefined). */
  allocate(bytes: number): CpuBuffer {
    return this.mem.allocate(bytes);
  }

  free(buffer: AnyBuffer): void {
    this.mem.free(buffer as CpuBuffer);
  }

  write(buf: AnyBuffer, data: ArrayBufferView, byteOffset = 0): void {
    const buffer = buf as CpuBuffer;
    if (byteOffset + data.byteLength > buffer.size) {
      throw new Error(
        `CPU backend: write of ${data.byteLength} bytes past a ${buffer.size}-byte block.`,
      );
    }
    const src = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.mem.u8.set(src, buffer.offset + byteOffset);
  }

  read(buffer: AnyBuffer, bytes: number, byteOffset = 0): Promise<ArrayBuffer> {
    const start = (buffer as CpuBuffer).offset + byteOffset;
    return Promise.resolve(this.mem.u8.slice(start, start + bytes).buffer);
  }

  copy(src: AnyBuffer, srcOffset: number, dst: AnyBuffer, dstOffset: number, bytes: number): void {
    const from = (src as CpuBuffer).offset + srcOffset;
    this.mem.u8.copyWithin((dst as CpuBuffer).offset + dstOffset, from, from + bytes);
  }

  /** Counts one kernel launch (for `stats().dispatches`). */
  countOp(): void {
    this.#ops++;
  }

  /** Nothing is queued on the CPU. */
  flush(): void {}

  /** Ops run as they are called: everything has finished already. */
  sync(): Promise<void> {
    return Promise.resolve();
  }

  /** As `sync()`. */
  settled(): Promise<void> {
    return Promise.resolve();
  }

  stats(): PoolStats & { pipelines: number; dispatches: number; submits: number } {
    return { ...this.mem.stats(), pipelines: 0, dispatches: this.#ops, submits: 0 };
  }
}

export { CpuBuffer };
