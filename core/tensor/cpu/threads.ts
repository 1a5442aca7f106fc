/**
 * The CPU backend's thread pool: worker threads that run exports of the WebAssembly kernels on
 * the shared memory. A job is dispatched without messages: the calling thread writes the export
 * and its arguments into a shared control block, bumps a generation counter and wakes the workers
 * (`Atomics.notify`). A round trip costs about 8 us where a `postMessage` per job would cost a
 * hundred times that.
 *
 * Every export run through the pool takes its arguments followed by `(tid, nthreads)` and does
 * the share of thread `tid`. The shares are claimed, not assigned: the calling thread and every
 * worker that wakes take the next unclaimed `tid` until none is left, and the caller waits only
 * for shares that a worker has claimed. So when the OS keeps a worker off the CPU (another
 * program is busy) the caller does that share itself instead of waiting for it.
 */

/** Int32 slots of the control block. */
export const CTL = {
  /** Incremented once per job; workers wait on it. */
  generation: 0,
  /** Shares finished by workers; the caller waits on it. */
  done: 1,
  /** Index of the export to run (into the names sent at start). */
  fn: 2,
  /** Number of arguments in the job. */
  argc: 3,
  /** Shares in the job (its `nthreads`). */
  threads: 4,
  /** Set by a worker whose share threw. */
  failed: 5,
  /** The job's generation (low 16 bits) << 16 | shares claimed so far. */
  claim: 6,
  /** Workers asleep (or about to sleep) in `Atomics.wait` on `generation`. */
  sleepers: 7,
  /** 1 while the caller sleeps in `Atomics.wait` on `done`. */
  callerAsleep: 8,
} as const;

/**
 * Polls of the generation word a worker makes after a job before it sleeps in `Atomics.wait`
 * (on the order of 100 us): the forward pass of a model issues its jobs microseconds apart, and
 * a futex wake-up costs more than the job hand-off itself.
 */
export const WORKER_SPINS = 20000;
/** Polls of the done count the caller makes before it sleeps in `Atomics.wait`. */
export const CALLER_SPINS = 20000;

/**
 * Claims the next share of the job of `generation`: its tid, or -1 when all are claimed or the
 * job is over (a worker that wakes late must not take a share of a newer job it has not read).
 */
export function claimShare(ctl: Int32Array, generation: number): number {
  for (;;) {
    const v = Atomics.load(ctl, CTL.claim);
    if (v >>> 16 !== (generation & 0xffff)) return -1;
    const tid = v & 0xffff;
    // While a share is unclaimed the job cannot end, so `threads` is still this job's.
    if (tid >= Atomics.load(ctl, CTL.threads)) return -1;
    if (Atomics.compareExchange(ctl, CTL.claim, v, v + 1) === v) return tid;
  }
}

/** Byte offset of the job's arguments (float64) in the control block. */
export const ARGS_OFFSET = 64;
/** Most arguments one job can carry. */
export const MAX_ARGS = 48;
export const CONTROL_BYTES = ARGS_OFFSET + MAX_ARGS * 8;

/** What a worker receives at start. */
export interface WorkerInit {
  memory: WebAssembly.Memory;
  /** The compiled kernels (shared, so code V8 optimises on one thread serves them all). */
  module: WebAssembly.Module;
  control: SharedArrayBuffer;
  names: string[];
  tid: number;
}

/** A worker as far as the pool cares (node:worker_threads' Worker). */
interface PoolWorker {
  postMessage(message: unknown): void;
  once(event: "message" | "error", listener: (value: unknown) => void): unknown;
  unref(): void;
  terminate(): unknown;
}

type Export = (...args: number[]) => void;

/**
 * The module a worker starts from. node:worker_threads loads only file: and data: URLs, so when
 * this library was imported over http(s) the worker starts from a one-line data: module that
 * imports the real worker module by its URL (with the importer's --allow-import).
 */
function workerEntry(url: URL): URL {
  if (url.protocol === "file:" || url.protocol === "data:") return url;
  return new URL(
    `data:text/javascript,${encodeURIComponent(`import ${JSON.stringify(url.href)};`)}`,
  );
}

/** Runs kernel exports on this thread and `size - 1` worker threads. */
export class ThreadPool {
  /** Threads, the calling one included. */
  readonly size: number;
  readonly #ctl: Int32Array;
  readonly #args: Float64Array;
  readonly #names: string[];
  readonly #exports: Record<string, Export>;
  readonly #workers: PoolWorker[];

  private constructor(
    exports: Record<string, Export>,
    names: string[],
    control: SharedArrayBuffer,
    workers: PoolWorker[],
  ) {
    this.#exports = exports;
    this.#names = names;
    this.#ctl = new Int32Array(control, 0, ARGS_OFFSET / 4);
    this.#args = new Float64Array(control, ARGS_OFFSET, MAX_ARGS);
    this.#workers = workers;
    this.size = workers.length + 1;
  }

  /** A pool of the calling thread alone (no workers). */
  static single(exports: Record<string, Export>): ThreadPool {
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    return new ThreadPool(exports, Object.keys(exports), control, []);
  }

  /**
   * Starts `workers` worker threads, each instantiating `module` on `memory`; resolves once all
   * are waiting for jobs. The workers are unref'd: they never keep the process alive.
   */
  static async start(
    module: WebAssembly.Module,
    instance: WebAssembly.Instance,
    memory: WebAssembly.Memory,
    workers: number,
  ): Promise<ThreadPool> {
    const exports = instance.exports as Record<string, Export>;
    const names = Object.keys(exports).filter((n) => typeof exports[n] === "function");
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    // Only the CPU backend pays for node:worker_threads (a dynamic import).
    const { Worker } = await import("node:worker_threads");
    const url = workerEntry(new URL("./worker.ts", import.meta.url));
    const started: PoolWorker[] = [];
    try {
      await Promise.all(
        Array.from({ length: workers }, (_, i) => {
          const w = new Worker(url) as unknown as PoolWorker;
          started.push(w);
          const ready = new Promise<void>((resolve, reject) => {
            w.once("message", () => resolve());
            w.once("error", (e) => reject(e));
          });
          const init: WorkerInit = { memory, module, control, names, tid: i + 1 };
          w.postMessage(init);
          // Unref only once it answered: a worker unref'd earlier leaves the event loop with
          // nothing to wait for, and the await above would never resume.
          return ready.then(() => w.unref());
        }),
      );
    } catch (e) {
      for (const w of started) w.terminate();
      throw e;
    }
    return new ThreadPool(exports, names, control, started);
  }

  /**
   * Runs export `name` as `name(...args, tid, n)` for tid = 0..n-1: tid 0 here, the others on
   * the workers; returns when all are done. `n` defaults to the whole pool.
   */
  run(name: string, args: number[], n = this.size): void {
    const fn = this.#exports[name];
    if (!fn) throw new Error(`CPU kernels: no export "${name}".`);
    n = Math.max(1, Math.min(n, this.size));
    if (n === 1) {
      fn(...args, 0, 1);
      return;
    }
    if (args.length > MAX_ARGS) {
      throw new Error(`CPU kernels: ${args.length} arguments (max ${MAX_ARGS}).`);
    }
    const ctl = this.#ctl;
    // Close the previous job's claim word before touching any other job field: a worker that
    // woke late for it could otherwise pass `claimShare`'s check against the new `threads` with
    // the old (still open) claim word and run a share of this job before it is set up.
    const generation = (Atomics.load(ctl, CTL.generation) + 1) | 0;
    Atomics.store(ctl, CTL.claim, ((generation & 0xffff) << 16) | 0xffff);
    this.#args.set(args);
    Atomics.store(ctl, CTL.fn, this.#names.indexOf(name));
    Atomics.store(ctl, CTL.argc, args.length);
    Atomics.store(ctl, CTL.threads, n);
    Atomics.store(ctl, CTL.failed, 0);
    Atomics.store(ctl, CTL.done, 0);
    // Then open the claim word for this job (low 16 bits of its generation), then announce it.
    Atomics.store(ctl, CTL.claim, (generation & 0xffff) << 16);
    Atomics.store(ctl, CTL.generation, generation);
    // Spinning workers see the new generation by themselves; wake only those asleep.
    if (Atomics.load(ctl, CTL.sleepers) > 0) Atomics.notify(ctl, CTL.generation);
    let error: unknown = null;
    let mine = 0;
    for (let tid = claimShare(ctl, generation); tid >= 0; tid = claimShare(ctl, generation)) {
      mine++;
      if (error) continue; // claim the rest all the same, or the job would never end
      try {
        fn(...args, tid, n);
      } catch (e) {
        error = e;
      }
    }
    // Wait for the shares the workers claimed.
    const want = n - mine;
    for (let spin = 0; Atomics.load(ctl, CTL.done) < want; spin++) {
      if (spin < CALLER_SPINS) continue;
      Atomics.store(ctl, CTL.callerAsleep, 1);
      const done = Atomics.load(ctl, CTL.done);
      if (done < want) Atomics.wait(ctl, CTL.done, done, 1000);
      Atomics.store(ctl, CTL.callerAsleep, 0);
    }
    if (error) throw error;
    if (Atomics.load(ctl, CTL.failed)) {
      throw new Error(`CPU kernels: "${name}" failed on a worker.`);
    }
  }
}
