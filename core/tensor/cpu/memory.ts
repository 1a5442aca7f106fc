/**
 * The CPU backend's memory: one WebAssembly memory that holds every tensor, shared with the
 * worker threads (so kernels on any thread read and write tensors in place, with no copies), and
 * a size-class allocator over it that mirrors the WebGPU buffer pool: freed blocks go to a free
 * list per size class, so a training loop of fixed shapes stops growing after its first step.
 */
import { type PoolStats, sizeClass, SizeClassPool } from "../pool.ts";

/** WebAssembly pages are 64 KiB. */
const PAGE = 65536;
/** The first bytes belong to the WebAssembly kernels' static data; tensors start here. */
export const HEAP_BASE = 1 << 20;
/** Tensors are aligned for 16-byte SIMD loads and to keep threads off each other's cache lines. */
const ALIGN = 64;
/** 4 GiB, the most a 32-bit WebAssembly memory can address. */
const MAX_PAGES = 65536;

/** A block of the CPU memory: what a tensor's storage points at on the CPU backend. */
export class CpuBuffer {
  constructor(readonly offset: number, readonly size: number) {}
}

/** Whether this runtime can share WebAssembly memory between threads. */
export function sharedMemorySupported(): boolean {
  try {
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return typeof SharedArrayBuffer !== "undefined";
  } catch {
    return false;
  }
}

/** The tensor heap inside one WebAssembly memory. */
export class CpuMemory {
  readonly memory: WebAssembly.Memory;
  readonly shared: boolean;
  #top = HEAP_BASE;
  #pool = new SizeClassPool((size) => this.#reserve(size));
  #f32!: Float32Array;
  #u8!: Uint8Array;

  constructor(shared = sharedMemorySupported()) {
    const initial = (HEAP_BASE + (16 << 20)) / PAGE;
    this.shared = shared;
    this.memory = new WebAssembly.Memory({ initial, maximum: MAX_PAGES, shared });
    this.#refresh();
  }

  /** The whole memory as float32 (re-created after the memory grows). */
  get f32(): Float32Array {
    return this.#f32;
  }

  /** The whole memory as bytes. */
  get u8(): Uint8Array {
    return this.#u8;
  }

  /** The memory's current backing buffer. */
  get buffer(): ArrayBufferLike {
    return this.#f32.buffer;
  }

  /** A block of at least `bytes` bytes (contents undefined: it may be a reused block). */
  allocate(bytes: number): CpuBuffer {
    return this.#pool.take(Math.ceil(sizeClass(bytes) / ALIGN) * ALIGN).item;
  }

  /** Returns a block for reuse. */
  free(block: CpuBuffer): void {
    this.#pool.put(block, block.size);
  }

  stats(): PoolStats {
    return this.#pool.stats();
  }

  /** A new block of `size` bytes at the top of the heap, growing the memory if it must. */
  #reserve(size: number): CpuBuffer {
    const offset = this.#top;
    const end = offset + size;
    if (end > this.memory.buffer.byteLength) this.#grow(end);
    this.#top = end;
    return new CpuBuffer(offset, size);
  }

  #grow(end: number): void {
    const have = this.memory.buffer.byteLength;
    // Grow by at least a quarter of what is there, so a growing model does not grow page by page.
    const want = Math.max(end, have + Math.floor(have / 4));
    const pages = Math.min(MAX_PAGES, Math.ceil(want / PAGE)) - have / PAGE;
    if (have + pages * PAGE < end) {
      throw new Error(
        `CPU backend: out of memory (${(end / 2 ** 30).toFixed(2)} GiB needed; a WebAssembly ` +
          "memory holds at most 4 GiB). Use a smaller batch or model.",
      );
    }
    this.memory.grow(pages);
    this.#refresh();
  }

  #refresh(): void {
    this.#f32 = new Float32Array(this.memory.buffer);
    this.#u8 = new Uint8Array(this.memory.buffer);
  }
}
