/**
 * Small helpers for generating WGSL. Shapes are baked into the source as constants (the
 * pipeline cache is keyed by source), and loops are unrolled here in TypeScript where it
 * matters, since WGSL compilers do not unroll for us.
 */
import { gpu } from "../backend.ts";
import type { Access } from "../webgpu_backend.ts";
import { bufferOf, type DType, type Tensor } from "../tensor.ts";
import { nonFiniteF32 } from "./wgsl_nonfinite.ts";

/** Threads per workgroup for one-thread-per-element kernels. */
export const WG = 256;

/** A storage binding declaration. */
export interface Binding {
  name: string;
  type: DType | "vec4<f32>";
  access: Access;
}

/** WGSL declarations for bindings 0..n-1 in order. */
export function declareBindings(bindings: Binding[]): string {
  return bindings.map((b, i) =>
    `@group(0) @binding(${i}) var<storage, ${b.access}> ${b.name}: array<${b.type}>;`
  ).join("\n");
}

/**
 * A float literal WGSL accepts (always with a decimal point or exponent). NaN and infinities
 * become runtime expressions (see `wgsl_nonfinite.ts`): not usable in a WGSL `const`.
 */
export function f32Literal(x: number): string {
  const nonFinite = nonFiniteF32(x);
  if (nonFinite) return nonFinite;
  const s = Math.fround(x).toString();
  return /[.e]/.test(s) ? s : `${s}.0`;
}

/**
 * A grid of workgroups covering `threads` threads, 2-D when it exceeds the per-dimension limit.
 * Kernels compute their linear index with `linearIndex(grid)`.
 */
export function gridFor(threads: number, wg = WG): [number, number] {
  const groups = Math.max(1, Math.ceil(threads / wg));
  const x = Math.min(groups, 65535);
  return [x, Math.ceil(groups / x)];
}

/** WGSL expression for the linear thread index under `gridFor`. */
export function linearIndex(grid: [number, number], wg = WG): string {
  return grid[1] === 1 ? "gid.x" : `(gid.x + gid.y * ${grid[0] * wg}u)`;
}

/** The 32-bit patterns of float32 values, for `runElementwise`'s `scalars`. */
export function f32Bits(...values: number[]): Uint32Array {
  return new Uint32Array(Float32Array.from(values).buffer);
}

/** At most this many scalar buffers stay cached (a few KiB of GPU memory). */
const SCALAR_CACHE_LIMIT = 1024;
/** Scalar buffers by their contents, least recently used first. */
const scalarBuffers = new Map<string, GPUBuffer>();

/**
 * A read-only storage buffer holding `bits`. Per-call scalars (affine coefficients, fill values,
 * random keys) travel in such buffers instead of the WGSL source, so new values compile no new
 * pipeline (a sampler's step coefficients change every step). Buffers are cached by contents,
 * so repeated constants cost nothing; a new one is written while mapped at creation, which
 * needs no queue write, hence no flush of the recorded dispatches.
 */
export function scalarBuffer(bits: Uint32Array): GPUBuffer {
  const key = bits.join(",");
  const hit = scalarBuffers.get(key);
  if (hit) {
    scalarBuffers.delete(key);
    scalarBuffers.set(key, hit); // most recently used last
    return hit;
  }
  if (scalarBuffers.size >= SCALAR_CACHE_LIMIT) evictScalarBuffers();
  const buffer = gpu().device.createBuffer({
    label: "scalars",
    size: Math.max(16, bits.byteLength),
    usage: GPUBufferUsage.STORAGE,
    mappedAtCreation: true,
  });
  new Uint32Array(buffer.getMappedRange()).set(bits);
  buffer.unmap();
  scalarBuffers.set(key, buffer);
  return buffer;
}

/** Destroys the older half of the cache. Recorded dispatches may still bind those buffers, so
 * they are submitted first (destroying a buffer that submitted work uses is allowed). */
function evictScalarBuffers(): void {
  gpu().flush();
  let n = scalarBuffers.size >> 1;
  for (const [key, buffer] of scalarBuffers) {
    if (n-- <= 0) break;
    buffer.destroy();
    scalarBuffers.delete(key);
  }
}

/**
 * Runs a one-thread-per-element kernel over `n` elements. `body` sees `i: u32` (guarded by
 * `i < n`) and the bindings by name; `prelude` is extra module-scope WGSL (helper functions).
 * `scalars` (32-bit patterns, see `f32Bits`) are bound last as `S: array<u32>`, so the source
 * does not depend on their values.
 */
export function runElementwise(opts: {
  label: string;
  n: number;
  bindings: { binding: Binding; tensor: Tensor }[];
  body: string;
  prelude?: string;
  scalars?: Uint32Array;
}): void {
  if (opts.n === 0) return;
  const grid = gridFor(opts.n);
  const declared = opts.bindings.map((b) => b.binding);
  const buffers = opts.bindings.map((b) => ({
    buffer: bufferOf(b.tensor),
    access: b.binding.access,
  }));
  if (opts.scalars) {
    declared.push({ name: "S", type: "u32", access: "read" });
    buffers.push({ buffer: scalarBuffer(opts.scalars), access: "read" });
  }
  const code = `${declareBindings(declared)}
${opts.prelude ?? ""}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex(grid)};
  if (i >= ${opts.n}u) { return; }
${opts.body}
}`;
  gpu().dispatch({
    label: opts.label,
    code,
    bindings: buffers,
    workgroups: grid,
  });
}

/**
 * WGSL that maps an output linear index `i` (of `outShape`) to the linear index of an input of
 * shape `inShape` broadcast against it (size-1 and missing dimensions repeat).
 */
export function broadcastIndexExpr(
  outShape: readonly number[],
  inShape: readonly number[],
  i = "i",
): string {
  const rank = outShape.length;
  const offset = rank - inShape.length;
  let inStride = 1;
  const terms: string[] = [];
  let outStride = 1;
  const outStrides: number[] = [];
  for (let d = rank - 1; d >= 0; d--) {
    outStrides[d] = outStride;
    outStride *= outShape[d];
  }
  for (let d = rank - 1; d >= offset; d--) {
    const dim = inShape[d - offset];
    if (dim !== 1) {
      const coord = outStrides[d] === 1
        ? `(${i} % ${outShape[d]}u)`
        : `((${i} / ${outStrides[d]}u) % ${outShape[d]}u)`;
      terms.push(inStride === 1 ? coord : `${coord} * ${inStride}u`);
    }
    inStride *= dim;
  }
  return terms.length === 0 ? "0u" : terms.join(" + ");
}
