/**
 * The Tensor: a shape, a dtype and a device buffer (GPU or CPU), plus the autograd node that produced it.
 * Storage is always contiguous row-major; views that share storage (reshape) hold a reference
 * count, and the buffer returns to the pool when the last view is disposed.
 */
import { backend, type DeviceBuffer } from "./backend.ts";

/** Element types. All are four bytes wide. */
export type DType = "f32" | "i32" | "u32";

/** A typed array matching a dtype. */
export type TypedArrayFor<D extends DType> = D extends "f32" ? Float32Array
  : D extends "i32" ? Int32Array
  : Uint32Array;

/** A reverse-mode tape entry: the inputs of the op and its vector-Jacobian product. */
export interface GradNode {
  /** Op name, for error messages and debugging. */
  op: string;
  inputs: Tensor[];
  /** Given d(loss)/d(output), returns d(loss)/d(input) per input (null where none flows). */
  backward: (gradOut: Tensor) => (Tensor | null)[];
}

/** Reads a storage's device buffer (set by `Storage`'s static block). */
let deviceBufferOf: (s: Storage) => DeviceBuffer;

/** A refcounted device buffer shared by a tensor and its reshaped views. */
export class Storage {
  refs = 1;
  /** Private: kernels reach it through `bufferOf`, which `mod.ts` does not export. */
  readonly #buffer: DeviceBuffer;
  static {
    deviceBufferOf = (s) => s.#buffer;
  }
  constructor(buffer: DeviceBuffer, readonly bytes: number) {
    this.#buffer = buffer;
  }
}

let nextId = 0;

/** Tensors created inside the innermost open scope, per scope. */
const scopeStack: Set<Tensor>[] = [];

/** An n-dimensional array on the backend's device. Create tensors with the functions in `creation.ts`. */
export class Tensor {
  readonly id: number = nextId++;
  /** Whether gradients flow to this tensor (set on parameters; propagated by ops). */
  requiresGrad = false;
  /** Accumulated gradient of a leaf after `backward()`. */
  grad: Tensor | null = null;
  /** The op that produced this tensor, when it needs a gradient. */
  node: GradNode | null = null;
  #disposed = false;
  #kept = false;

  constructor(
    readonly shape: readonly number[],
    readonly dtype: DType,
    readonly storage: Storage,
  ) {
    scopeStack.at(-1)?.add(this);
  }

  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }

  /** Number of dimensions. */
  get rank(): number {
    return this.shape.length;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  get kept(): boolean {
    return this.#kept;
  }

  /** Excludes this tensor from automatic disposal by enclosing scopes (parameters, state). */
  keep(): this {
    this.#kept = true;
    for (const s of scopeStack) s.delete(this);
    return this;
  }

  /** Releases the GPU memory (shared storage is released with its last view). Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.node = null;
    for (let i = scopeStack.length - 1; i >= 0; i--) scopeStack[i].delete(this);
    if (--this.storage.refs === 0) backend().free(deviceBufferOf(this.storage));
  }

  /**
   * Overwrites elements with host data, starting at element `offset` (ordered after every op
   * recorded so far). The element type must match the dtype.
   */
  write(data: Float32Array | Int32Array | Uint32Array, offset = 0): void {
    const want = this.dtype === "f32"
      ? Float32Array
      : this.dtype === "i32"
      ? Int32Array
      : Uint32Array;
    if (!(data instanceof want) || offset < 0 || offset + data.length > this.size) {
      throw new Error(
        `Tensor.write: ${data.length} ${data.constructor.name} values at offset ${offset} do not ` +
          `fit ${this.dtype} tensor [${this.shape}].`,
      );
    }
    if (data.length > 0) backend().write(bufferOf(this), data, offset * 4);
  }

  /**
   * Overwrites every element in place with `src`'s values (a tensor of the same size and dtype,
   * or a host array of the same length and element type), ordered after every op recorded so
   * far. Shapes may differ; the values are taken in row-major order. Records no gradient: this
   * is how optimizers, the EMA and weight loading change parameters.
   *
   * @example
   * ```ts
   * function restore(param: Tensor, shadow: Tensor): void {
   *   param.assign(shadow); // copy another tensor's values
   *   param.assign(new Float32Array(param.size)); // upload host values
   * }
   * ```
   */
  assign(src: Tensor | Float32Array | Int32Array | Uint32Array): this {
    const n = src instanceof Tensor ? src.size : src.length;
    if (n !== this.size) {
      throw new Error(
        `Tensor.assign: ${n} values do not fit ${this.dtype} tensor [${this.shape}] ` +
          `(${this.size} elements).`,
      );
    }
    if (src instanceof Tensor) {
      if (src !== this) this.copyFrom(src);
    } else this.write(src);
    return this;
  }

  /** Copies all of `src`'s elements into this tensor at element `offset` (same dtype). */
  copyFrom(src: Tensor, offset = 0): void {
    if (src.dtype !== this.dtype || offset < 0 || offset + src.size > this.size) {
      throw new Error(
        `Tensor.copyFrom: ${src.dtype} [${src.shape}] at offset ${offset} does not fit ` +
          `${this.dtype} [${this.shape}].`,
      );
    }
    if (src.size > 0) backend().copy(bufferOf(src), 0, bufferOf(this), offset * 4, src.size * 4);
  }

  /** Copies the data back to the CPU. */
  async read(): Promise<TypedArrayFor<this["dtype"]>> {
    const bytes = await backend().read(bufferOf(this), this.size * 4);
    return (this.dtype === "f32"
      ? new Float32Array(bytes)
      : this.dtype === "i32"
      ? new Int32Array(bytes)
      : new Uint32Array(bytes)) as TypedArrayFor<this["dtype"]>;
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new Error(`item() needs a one-element tensor, got shape [${this.shape}].`);
    }
    return (await this.read())[0];
  }

  /** Reverse-mode differentiation from this tensor (see `autograd.ts`). */
  backward(gradOut?: Tensor): void {
    if (!backwardHook) {
      throw new Error(
        "backward(): autograd is not loaded; import the engine from core/tensor/mod.ts.",
      );
    }
    backwardHook(this, gradOut);
  }

  toString(): string {
    return `Tensor(#${this.id}, [${this.shape}], ${this.dtype})`;
  }
}

/**
 * The device buffer under a tensor: a GPUBuffer on WebGPU, a block of WebAssembly memory on the
 * CPU (throws after dispose). For kernels inside the engine only: `mod.ts` does not export it,
 * so code outside the engine reads and writes tensors through their methods.
 */
export function bufferOf(t: Tensor): DeviceBuffer {
  if (t.disposed) throw new Error(`Tensor #${t.id} [${t.shape}] was used after dispose().`);
  return deviceBufferOf(t.storage);
}

/**
 * Copies many tensors back to the host with few round trips: tensors are packed into staging
 * blocks of at most 64 MiB on the device and each block is read at once (reading each tensor
 * alone costs a round trip, ~10 ms of polling on Deno's WebGPU, which adds up over hundreds of
 * parameters). Returns each tensor's bytes, in order.
 */
export async function readMany(tensors: readonly Tensor[]): Promise<ArrayBuffer[]> {
  const out: ArrayBuffer[] = new Array(tensors.length);
  const limit = 64 * 1024 * 1024;
  let i = 0;
  while (i < tensors.length) {
    let j = i, bytes = 0;
    while (j < tensors.length && (j === i || bytes + tensors[j].size * 4 <= limit)) {
      bytes += tensors[j].size * 4;
      j++;
    }
    const b = backend();
    const staging = b.allocate(Math.max(bytes, 4));
    try {
      let offset = 0;
      for (let k = i; k < j; k++) {
        b.copy(bufferOf(tensors[k]), 0, staging, offset, tensors[k].size * 4);
        offset += tensors[k].size * 4;
      }
      const all = await b.read(staging, bytes);
      offset = 0;
      for (let k = i; k < j; k++) {
        out[k] = all.slice(offset, offset + tensors[k].size * 4);
        offset += tensors[k].size * 4;
      }
    } finally {
      b.free(staging);
    }
    i = j;
  }
  return out;
}

let backwardHook: ((t: Tensor, g?: Tensor) => void) | null = null;

/**
 * Installed by `autograd.ts`, which every op file that records gradients and `creation.ts`
 * import (`autograd.ts` needs this file, so this file cannot import it back).
 */
export function setBackwardHook(fn: (t: Tensor, g?: Tensor) => void): void {
  backwardHook = fn;
}

/** Product of a shape's dimensions. */
export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A tensor on a freshly allocated (uninitialised) buffer. */
export function emptyTensor(shape: readonly number[], dtype: DType = "f32"): Tensor {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new Error(`Invalid shape [${shape}]: dimensions must be non-negative integers.`);
    }
  }
  const bytes = Math.max(4, sizeOf(shape) * 4);
  return new Tensor([...shape], dtype, new Storage(backend().allocate(bytes), bytes));
}

/** A new tensor object over the same storage (a reshape view). */
export function viewOf(t: Tensor, shape: readonly number[]): Tensor {
  t.storage.refs++;
  return new Tensor([...shape], t.dtype, t.storage);
}

/** Values a scope callback may return: tensors nested in arrays and plain objects are kept. */
function collect(value: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 6 || value === null || typeof value !== "object") return;
  if (value instanceof Tensor) {
    out.add(value);
    if (value.grad) out.add(value.grad);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, depth + 1);
    return;
  }
  if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, depth + 1);
  }
}

/**
 * Runs `fn` and disposes every tensor created inside it, except tensors it returns (also inside
 * arrays or plain objects) and tensors marked with `keep()`. Returned tensors move to the
 * enclosing scope. Use one scope per training step to reach a steady state of GPU memory.
 *
 * @example
 * ```ts
 * import { mse } from "./ops/loss.ts";
 * function lossOf(model: { forward(x: Tensor): Tensor }, x: Tensor, y: Tensor): Tensor {
 *   // The forward pass's intermediates are freed when the scope ends; the loss is returned.
 *   return scope(() => mse(model.forward(x), y));
 * }
 * ```
 */
export function scope<T>(fn: () => T): T {
  const created = new Set<Tensor>();
  scopeStack.push(created);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopeStack.pop();
    for (const t of created) t.dispose();
    throw e;
  }
  scopeStack.pop();
  if (result instanceof Promise) {
    throw new Error(
      "scope() callbacks must be synchronous: read values back after the scope ends.",
    );
  }
  const survivors = new Set<Tensor>();
  collect(result, survivors);
  const parent = scopeStack.at(-1);
  for (const t of created) {
    if (survivors.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}
