/**
 * Choosing and reaching the backend. Two backends implement the same narrow interface
 * (`Backend`: allocate, free, write, read, copy, flush, sync, settled, stats): WebGPU
 * (`webgpu_backend.ts`, kernels generated as WGSL and launched with `dispatch`) and the CPU
 * (`cpu/backend.ts`, TypeScript loops and WebAssembly SIMD kernels on worker threads, run as
 * they are called). Ops ask `onCpu()` and run the matching kernel. Nothing outside
 * `core/tensor/` sees the backend object: `mod.ts` exports the engine-level functions below
 * (`flush`, `sync`, `settled`, `engineStats`, `backendKind`) instead. docs/engine.md describes
 * the surface.
 */
import { adapterLine, getAdapter, getDevice } from "./device.ts";
import { WebGpuBackend } from "./webgpu_backend.ts";
import { readEnv } from "./env.ts";
import { CpuBackend } from "./cpu/backend.ts";
import type { CpuBuffer } from "./cpu/memory.ts";
import type { PoolStats } from "./pool.ts";

/** Backend names accepted by `initBackend` and the tasks' `--backend` flag. */
export const BACKEND_CHOICES = ["auto", "webgpu", "cpu"] as const;
export type BackendChoice = typeof BACKEND_CHOICES[number];

/** Where a tensor's data lives: a GPU buffer or a block of the CPU backend's memory. */
export type DeviceBuffer = GPUBuffer | CpuBuffer;

/** What every backend offers to tensors and to code that moves raw data. */
export interface Backend {
  readonly kind: "webgpu" | "cpu";
  allocate(bytes: number): DeviceBuffer;
  free(buffer: DeviceBuffer): void;
  /** Uploads `data` at `byteOffset` (ordered after every op recorded so far). */
  write(buffer: DeviceBuffer, data: ArrayBufferView, byteOffset?: number): void;
  /** Copies `bytes` bytes out, after every op recorded so far. */
  read(buffer: DeviceBuffer, bytes: number, byteOffset?: number): Promise<ArrayBuffer>;
  /** Copies between buffers, ordered with the ops. */
  copy(
    src: DeviceBuffer,
    srcOffset: number,
    dst: DeviceBuffer,
    dstOffset: number,
    bytes: number,
  ): void;
  /** Submits the ops recorded so far without waiting (WebGPU batches them; the CPU has none). */
  flush(): void;
  /** Flushes, waits until every op has finished, and throws the first device error seen. */
  sync(): Promise<void>;
  /** Resolves when the work submitted so far has finished; no flush, no error report. */
  settled(): Promise<void>;
  /** Pool and kernel counters. */
  stats(): PoolStats & { pipelines: number; dispatches: number; submits: number };
}

let instance: (WebGpuBackend | CpuBackend) | null = null;
let reason = "";
let pending: Promise<WebGpuBackend | CpuBackend> | null = null;

/** Adapters that are CPUs pretending to be GPUs: the CPU backend beats them by a wide margin. */
const SOFTWARE_ADAPTER = /llvmpipe|lavapipe|swiftshader|software/i;

function choiceFromEnv(): BackendChoice | undefined {
  const v = readEnv("UNCLIP_BACKEND");
  return v ? parseBackendChoice(v, "UNCLIP_BACKEND") : undefined;
}

/** Validates a backend name (from a flag or the environment). */
export function parseBackendChoice(value: string, source = "--backend"): BackendChoice {
  if ((BACKEND_CHOICES as readonly string[]).includes(value)) return value as BackendChoice;
  throw new Error(
    `${source}: unknown backend "${value}"; valid: ${BACKEND_CHOICES.join(", ")}.`,
  );
}

async function createCpu(why: string): Promise<CpuBackend> {
  const { startCpuBackend } = await import("./cpu/runtime.ts");
  reason = why;
  return await startCpuBackend();
}

async function create(choice: BackendChoice): Promise<WebGpuBackend | CpuBackend> {
  if (choice === "cpu") return await createCpu("chosen");
  if (choice === "webgpu") {
    const device = await getDevice();
    reason = "chosen";
    return new WebGpuBackend(device);
  }
  // auto: a hardware GPU if there is one, else the CPU.
  const adapter = await getAdapter();
  if (!adapter) return await createCpu("no WebGPU adapter");
  const info = adapter.info;
  const name = `${info.description} ${info.device} ${info.vendor} ${info.architecture}`;
  if (info.isFallbackAdapter || SOFTWARE_ADAPTER.test(name)) {
    const what = info.description || info.device || "the WebGPU adapter";
    return await createCpu(`the only WebGPU adapter, ${what}, runs in software`);
  }
  const device = await getDevice();
  reason = "hardware adapter";
  return new WebGpuBackend(device);
}

/**
 * Creates the backend on first call. Every program awaits this once before using tensors.
 * `backend` defaults to the `UNCLIP_BACKEND` environment variable, else `"auto"`: WebGPU on a
 * hardware adapter, the CPU backend when the only adapter runs in software or there is none.
 *
 * @example
 * ```ts
 * import { ones } from "./creation.ts";
 * async function start() {
 *   await initBackend(); // or initBackend({ backend: "cpu" })
 *   return ones([2, 2]);
 * }
 * ```
 */
export async function initBackend(opts: { backend?: BackendChoice } = {}): Promise<void> {
  if (instance) {
    const want = opts.backend;
    if (want && want !== "auto" && want !== instance.kind) {
      throw new Error(
        `initBackend: the ${instance.kind} backend is already running; one backend per process.`,
      );
    }
    return;
  }
  const choice = opts.backend ?? choiceFromEnv() ?? "auto";
  pending ??= create(choice);
  try {
    instance = await pending;
  } finally {
    pending = null;
  }
}

/**
 * Waits (at most `timeoutMs`) for the work the backend has queued, then releases it: a GPU device
 * is destroyed. For a process about to exit, e.g. after an error: exiting with GPU work still in
 * flight can crash inside the driver (exit code 139 instead of the error's 1). Does nothing when
 * no backend was started; a later `initBackend()` starts a new one.
 *
 * @example
 * ```ts
 * async function fail(): Promise<never> {
 *   await closeBackend();
 *   Deno.exit(1);
 * }
 * ```
 */
export async function closeBackend(timeoutMs = 10_000): Promise<void> {
  const b = instance;
  if (!b) return;
  instance = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((done) => timer = setTimeout(done, timeoutMs));
  // A failed sync (a device already lost, an error being reported) must not hide the exit.
  await Promise.race([b.sync().catch(() => {}), timeout]);
  clearTimeout(timer);
  if (b.kind === "webgpu") b.device.destroy();
}

/** The backend, after `initBackend()` has resolved. */
export function backend(): Backend {
  if (!instance) {
    throw new Error(
      "The tensor engine is not initialised: await initBackend() before using tensors.",
    );
  }
  return instance;
}

/** Which backend runs: `"webgpu"` or `"cpu"` (after `initBackend()`). */
export function backendKind(): "webgpu" | "cpu" {
  return backend().kind;
}

/**
 * Submits the work recorded so far without waiting for it (WebGPU batches dispatches into one
 * submission; the CPU backend runs ops as they are called, so there it does nothing). For code
 * that reports progress as the device finishes steps.
 */
export function flush(): void {
  backend().flush();
}

/** Resolves when every op recorded so far has finished on the device (flushes first). */
export function sync(): Promise<void> {
  return backend().sync();
}

/**
 * Resolves when the work already submitted has finished on the device, without flushing and
 * without reporting device errors (those stay for the next read or `sync()`). With `flush()`,
 * for progress reports that follow the device.
 */
export function settled(): Promise<void> {
  return backend().settled();
}

/** Memory-pool and kernel counters of the running backend (buffers, pipelines, dispatches). */
export function engineStats(): EngineStats {
  return backend().stats();
}

/** What `engineStats()` returns (`bindGroupHits`, WebGPU only: launches that reused a cached
 * bind group). */
export type EngineStats = PoolStats & {
  pipelines: number;
  dispatches: number;
  submits: number;
  bindGroupHits?: number;
};

/** Whether ops run on the CPU backend. */
export function onCpu(): boolean {
  return backend().kind === "cpu";
}

/** The CPU backend (throws on WebGPU: for CPU kernel code paths). */
export function cpu(): CpuBackend {
  const b = instance;
  if (b?.kind !== "cpu") throw new Error("Internal error: a CPU kernel ran on the WebGPU backend.");
  return b;
}

/** The WebGPU backend (throws on the CPU: for WGSL code paths). */
export function gpu(): WebGpuBackend {
  const b = instance;
  if (b?.kind !== "webgpu") {
    throw new Error("Internal error: a WGSL kernel ran on the CPU backend.");
  }
  return b;
}

/** One line for a task's output: which backend runs, on what, and why it was chosen. */
export function deviceLine(): string {
  backend();
  const b = instance!;
  if (b.kind === "webgpu") return `WebGPU on ${adapterLine()} (${reason})`;
  const simd = b.simd ? "SIMD" : "scalar";
  return `CPU (WebAssembly ${simd}, ${b.threads} thread${b.threads === 1 ? "" : "s"}) (${reason})`;
}

export { adapterLine, CpuBackend, WebGpuBackend };
