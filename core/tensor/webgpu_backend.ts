/**
 * The WebGPU backend: allocate, free, write, read, copy, plus `dispatch` for generated WGSL
 * kernels. Chosen by `initBackend()` (see `backend.ts`) on a hardware adapter.
 *
 * Dispatches are recorded into one open compute pass and submitted in batches; nothing waits on
 * the GPU until somebody reads a value back.
 */
import { BufferPool, type PoolStats } from "./pool.ts";
import { declareNonFinite } from "./kernels/wgsl_nonfinite.ts";
import { readEnv } from "./env.ts";

/**
 * `UNCLIP_WGSL_DUMP=DIR` writes every shader module compiled to DIR (one file per module), so a
 * sweep can compile the same sources in another WebGPU implementation (tools/wgsl_sweep.ts runs
 * them through Chromium's Tint). Off unless set; never in a browser (no Deno there).
 */
const WGSL_DUMP = readEnv("UNCLIP_WGSL_DUMP");

function dumpShader(label: string, code: string): void {
  if (!WGSL_DUMP) return;
  let h = 2166136261; // FNV-1a: a stable file name per source, duplicates overwrite
  for (let i = 0; i < code.length; i++) h = Math.imul(h ^ code.charCodeAt(i), 16777619);
  const safe = label.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 40);
  Deno.mkdirSync(WGSL_DUMP, { recursive: true });
  Deno.writeTextFileSync(`${WGSL_DUMP}/${safe}-${(h >>> 0).toString(16)}.wgsl`, code);
}

/** What `backend.ts` calls a device buffer; on this backend always a GPUBuffer. */
type AnyBuffer = GPUBuffer | { readonly offset: number };

/** How a kernel binds one buffer. */
export type Access = "read" | "read_write";

/** One kernel launch: generated WGSL, its buffers in binding order, and the grid. */
export interface Dispatch {
  /** WGSL source; also the pipeline cache key. Entry point `main`. */
  code: string;
  /** Buffers bound at group 0, binding i, with their access mode. */
  bindings: { buffer: AnyBuffer; access: Access }[];
  /** Workgroup counts in x, y, z. */
  workgroups: [number, number?, number?];
  /** For error messages. */
  label: string;
}

const MAX_DISPATCHES_PER_SUBMIT = 512;

/**
 * Bind groups kept for reuse, least recently used dropped first. Creating one is the dearest host
 * call of a launch (13-22 us on an H200's host, tools/gpu/host_costs.ts, of 14-25 us for all the
 * WebGPU calls of an uncached launch), and a training step launches the same kernels on the same
 * pooled buffers step after step (the pool hands them out in a fixed order, see pool.ts).
 * `UNCLIP_BIND_GROUP_CACHE=0` turns it off.
 */
const BIND_GROUP_CACHE_SIZE = readEnv("UNCLIP_BIND_GROUP_CACHE") === "0" ? 0 : 8192;

/** The WebGPU backend. Obtain it with `await initBackend()`, then `gpu()` in WGSL code paths. */
export class WebGpuBackend {
  readonly kind = "webgpu" as const;
  readonly pool: BufferPool;
  #pipelines = new Map<string, { pipeline: GPUComputePipeline; layoutKey: string }>();
  #layouts = new Map<string, GPUBindGroupLayout>();
  /** Bind groups by layout and buffer ids, least recently used first. */
  #bindGroups = new Map<string, GPUBindGroup>();
  #bufferIds = new WeakMap<GPUBuffer, number>();
  #nextBufferId = 1;
  #bindGroupHits = 0;
  #encoder: GPUCommandEncoder | null = null;
  #pass: GPUComputePassEncoder | null = null;
  #pending = 0;
  #dispatchCount = 0;
  #submitCount = 0;

  /** The first GPU validation error seen; thrown at the next readback or sync. */
  #error: Error | null = null;

  constructor(readonly device: GPUDevice) {
    this.pool = new BufferPool(device);
    // An invalid kernel invalidates its whole command buffer, so results would silently be
    // zeros. Remember the error and raise it at the next point where the caller waits.
    device.addEventListener("uncapturederror", (event) => {
      const message = (event as GPUUncapturedErrorEvent).error.message;
      this.#error ??= new Error(`WebGPU error: ${message.split("\n")[0]}`);
    });
  }

  #raise(): void {
    if (this.#error) {
      const e = this.#error;
      this.#error = null;
      throw e;
    }
  }

  /** A storage buffer of at least `bytes` bytes (contents undefined). */
  allocate(bytes: number): GPUBuffer {
    return this.pool.acquire(bytes).buffer;
  }

  /** Hands a buffer back to the pool. Safe while queued commands still use it: later commands
   * that receive it are ordered after them. */
  free(buffer: AnyBuffer): void {
    this.pool.release(buffer as GPUBuffer);
  }

  /** Uploads data. Pending dispatches are submitted first: `queue.writeBuffer` runs before any
   * command buffer submitted after it, and the buffer may be a pooled one that they still read. */
  write(buffer: AnyBuffer, data: ArrayBufferView, byteOffset = 0): void {
    if (this.#pending > 0) this.flush();
    this.device.queue.writeBuffer(
      buffer as GPUBuffer,
      byteOffset,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
  }

  /** Copies `bytes` bytes out of a buffer, waiting for every queued command first. */
  async read(buffer: AnyBuffer, bytes: number, byteOffset = 0): Promise<ArrayBuffer> {
    const size = Math.max(4, Math.ceil(bytes / 4) * 4);
    const staging = this.device.createBuffer({
      size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    this.#endPass();
    this.#encoder ??= this.device.createCommandEncoder();
    this.#encoder.copyBufferToBuffer(buffer as GPUBuffer, byteOffset, staging, 0, size);
    this.flush();
    await staging.mapAsync(GPUMapMode.READ);
    const out = staging.getMappedRange().slice(0, bytes);
    staging.unmap();
    staging.destroy();
    this.#raise();
    return out;
  }

  /** Copies between buffers inside the current batch (ordered with the dispatches). */
  copy(src: AnyBuffer, srcOffset: number, dst: AnyBuffer, dstOffset: number, bytes: number): void {
    if (bytes === 0) return;
    this.#endPass();
    this.#encoder ??= this.device.createCommandEncoder();
    this.#encoder.copyBufferToBuffer(
      src as GPUBuffer,
      srcOffset,
      dst as GPUBuffer,
      dstOffset,
      bytes,
    );
    this.#pending++;
  }

  /** Records one kernel launch; submits when the batch is full. */
  dispatch(d: Dispatch): void {
    const { pipeline, layoutKey } = this.#pipeline(d);
    const bindGroup = this.#bindGroup(layoutKey, d.bindings);
    if (!this.#pass) {
      this.#encoder ??= this.device.createCommandEncoder();
      this.#pass = this.#encoder.beginComputePass();
    }
    this.#pass.setPipeline(pipeline);
    this.#pass.setBindGroup(0, bindGroup);
    const [x, y = 1, z = 1] = d.workgroups;
    this.#pass.dispatchWorkgroups(x, y, z);
    this.#pending++;
    this.#dispatchCount++;
    if (this.#pending >= MAX_DISPATCHES_PER_SUBMIT) this.flush();
  }

  /** Submits everything recorded so far. */
  flush(): void {
    this.#endPass();
    if (!this.#encoder) return;
    this.device.queue.submit([this.#encoder.finish()]);
    this.#encoder = null;
    this.#pending = 0;
    this.#submitCount++;
  }

  /** Waits until the GPU has finished all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.#raise();
  }

  /** Resolves when the work submitted so far has finished (no flush, no error report). */
  settled(): Promise<void> {
    return this.device.queue.onSubmittedWorkDone();
  }

  /** Pool, pipeline, dispatch and bind-group counters. */
  stats(): PoolStats & {
    pipelines: number;
    dispatches: number;
    submits: number;
    bindGroupHits: number;
  } {
    return {
      ...this.pool.stats(),
      pipelines: this.#pipelines.size,
      dispatches: this.#dispatchCount,
      submits: this.#submitCount,
      bindGroupHits: this.#bindGroupHits,
    };
  }

  /**
   * The bind group of these buffers under the layout `layoutKey` names: cached, or made. Layouts
   * are explicit and shared by access pattern, so one group serves every kernel of that pattern.
   * A cached group may name a buffer the pool has since destroyed (`trim`); such a buffer is
   * never bound again, so its group is never asked for, and ages out.
   */
  #bindGroup(layoutKey: string, bindings: Dispatch["bindings"]): GPUBindGroup {
    let key = layoutKey;
    for (const b of bindings) {
      const buffer = b.buffer as GPUBuffer;
      let id = this.#bufferIds.get(buffer);
      if (id === undefined) {
        id = this.#nextBufferId++;
        this.#bufferIds.set(buffer, id);
      }
      key += ":" + id;
    }
    const cached = this.#bindGroups.get(key);
    if (cached) {
      this.#bindGroupHits++;
      this.#bindGroups.delete(key); // re-inserted: most recently used last
      this.#bindGroups.set(key, cached);
      return cached;
    }
    const group = this.device.createBindGroup({
      layout: this.#layouts.get(layoutKey)!,
      entries: bindings.map((b, i) => ({
        binding: i,
        resource: { buffer: b.buffer as GPUBuffer },
      })),
    });
    if (BIND_GROUP_CACHE_SIZE > 0) {
      this.#bindGroups.set(key, group);
      if (this.#bindGroups.size > BIND_GROUP_CACHE_SIZE) {
        this.#bindGroups.delete(this.#bindGroups.keys().next().value!);
      }
    }
    return group;
  }

  #endPass(): void {
    if (this.#pass) {
      this.#pass.end();
      this.#pass = null;
    }
  }

  #pipeline(d: Dispatch): { pipeline: GPUComputePipeline; layoutKey: string } {
    const cached = this.#pipelines.get(d.code);
    if (cached) return cached;
    const layoutKey = d.bindings.map((b) => (b.access === "read" ? "r" : "w")).join("");
    let layout = this.#layouts.get(layoutKey);
    if (!layout) {
      layout = this.device.createBindGroupLayout({
        entries: d.bindings.map((b, i) => ({
          binding: i,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: b.access === "read" ? "read-only-storage" : "storage" },
        })),
      });
      this.#layouts.set(layoutKey, layout);
    }
    this.device.pushErrorScope("validation");
    // NaN/infinity reads need their variables declared (kernels/wgsl_nonfinite.ts); the key stays d.code.
    const code = declareNonFinite(d.code);
    dumpShader(d.label, code);
    const module = this.device.createShaderModule({ code, label: d.label });
    const pipeline = this.device.createComputePipeline({
      label: d.label,
      layout: this.device.createPipelineLayout({ bindGroupLayouts: [layout] }),
      compute: { module, entryPoint: "main" },
    });
    this.device.popErrorScope().then((error) => {
      if (error) {
        const first = error.message.split("\n").find((l) => /error/i.test(l)) ?? error.message;
        this.#error ??= new Error(
          `Internal error: the "${d.label}" kernel failed to compile: ${first.trim()}`,
        );
      }
    });
    const entry = { pipeline, layoutKey };
    this.#pipelines.set(d.code, entry);
    return entry;
  }
}
