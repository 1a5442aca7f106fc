/**
 * A pool of GPU storage buffers keyed by size class. JavaScript's garbage collector frees GPU
 * memory late or never, so tensors hand their buffers back here explicitly (see `scope`), and a
 * training loop of fixed shapes reaches a steady state with no new allocations after step one.
 */

/** Counters exposed for tests and benchmarks. */
export interface PoolStats {
  /** Buffers ever created with `device.createBuffer`. */
  created: number;
  /** Requests served from the free lists. */
  reused: number;
  /** Buffers currently handed out. */
  inUse: number;
  /** Bytes in all buffers the pool owns (handed out or free). */
  bytesReserved: number;
}

/**
 * Rounds a request up to its size class: powers of two up to 4 KiB, then four classes per
 * octave, so at most 25% is wasted while differently sized requests still share buffers.
 */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes / 4) * 4);
  if (b <= 4096) return 2 ** Math.ceil(Math.log2(b));
  const step = 2 ** (Math.floor(Math.log2(b)) - 2);
  return Math.ceil(b / step) * step;
}

/** Buffer pool over one device. */
export class BufferPool {
  #free = new Map<number, GPUBuffer[]>();
  #stats: PoolStats = { created: 0, reused: 0, inUse: 0, bytesReserved: 0 };

  constructor(private device: GPUDevice) {}

  /** A buffer of at least `bytes` bytes, and whether it was reused (it may hold old data). */
  acquire(bytes: number): { buffer: GPUBuffer; reused: boolean } {
    const size = sizeClass(bytes);
    const list = this.#free.get(size);
    this.#stats.inUse++;
    if (list && list.length > 0) {
      this.#stats.reused++;
      return { buffer: list.pop()!, reused: true };
    }
    this.#stats.created++;
    this.#stats.bytesReserved += size;
    return {
      buffer: this.device.createBuffer({
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      }),
      reused: false,
    };
  }

  /** Returns a buffer for reuse. */
  release(buffer: GPUBuffer): void {
    this.#stats.inUse--;
    const list = this.#free.get(buffer.size);
    if (list) list.push(buffer);
    else this.#free.set(buffer.size, [buffer]);
  }

  /** Destroys every free buffer (memory handed out stays valid). */
  trim(): void {
    for (const list of this.#free.values()) {
      for (const b of list) {
        this.#stats.bytesReserved -= b.size;
        b.destroy();
      }
    }
    this.#free.clear();
  }

  /** A snapshot of the counters. */
  stats(): PoolStats {
    return { ...this.#stats };
  }
}
