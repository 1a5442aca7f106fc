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

/**
 * Free lists by size class with their counters: the bookkeeping of both backends' pools (the
 * WebGPU buffer pool below, the CPU backend's heap in `cpu/memory.ts`). `make` creates a new item
 * of a class's size when no free one is left.
 *
 * A request gets the free item created first (each free list is kept sorted by creation order),
 * not the one freed last: then a step that allocates and frees the same sequence as the step
 * before, from the same free items, gets the same item for each tensor every time, so the WebGPU
 * backend's bind groups (one per kernel and set of buffers) can be reused from step to step.
 */
export class SizeClassPool<T extends object> {
  /** Free items by size class, sorted by creation serial, highest first (the lowest is popped). */
  #free = new Map<number, { item: T; serial: number }[]>();
  #serials = new WeakMap<T, number>();
  #stats: PoolStats = { created: 0, reused: 0, inUse: 0, bytesReserved: 0 };

  constructor(private make: (size: number) => T) {}

  /** An item of size class `size`, and whether it was reused (a free one, which may hold old data). */
  take(size: number): { item: T; reused: boolean } {
    const list = this.#free.get(size);
    this.#stats.inUse++;
    if (list && list.length > 0) {
      this.#stats.reused++;
      return { item: list.pop()!.item, reused: true };
    }
    const item = this.make(size);
    this.#serials.set(item, this.#stats.created);
    this.#stats.created++;
    this.#stats.bytesReserved += size;
    return { item, reused: false };
  }

  /** Hands an item of size class `size` back to its free list. */
  put(item: T, size: number): void {
    this.#stats.inUse--;
    const entry = { item, serial: this.#serials.get(item) ?? -1 };
    let list = this.#free.get(size);
    if (!list) this.#free.set(size, list = []);
    // Binary search for the place that keeps the list sorted by serial, descending.
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].serial > entry.serial) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, entry);
  }

  /** Empties the free lists, no longer counting their bytes as reserved; returns their items. */
  drain(): T[] {
    const items: T[] = [];
    for (const [size, list] of this.#free) {
      this.#stats.bytesReserved -= size * list.length;
      for (const { item } of list) items.push(item);
    }
    this.#free.clear();
    return items;
  }

  /** A snapshot of the counters. */
  stats(): PoolStats {
    return { ...this.#stats };
  }
}

/** Buffer pool over one device. */
export class BufferPool {
  #pool: SizeClassPool<GPUBuffer>;

  constructor(device: GPUDevice) {
    this.#pool = new SizeClassPool((size) =>
      device.createBuffer({
        size,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      })
    );
  }

  /** A buffer of at least `bytes` bytes, and whether it was reused (it may hold old data). */
  acquire(bytes: number): { buffer: GPUBuffer; reused: boolean } {
    const { item, reused } = this.#pool.take(sizeClass(bytes));
    return { buffer: item, reused };
  }

  /** Returns a buffer for reuse. */
  release(buffer: GPUBuffer): void {
    this.#pool.put(buffer, buffer.size);
  }

  /** Destroys every free buffer (memory handed out stays valid). */
  trim(): void {
    for (const b of this.#pool.drain()) b.destroy();
  }

  /** A snapshot of the counters. */
  stats(): PoolStats {
    return this.#pool.stats();
  }
}
