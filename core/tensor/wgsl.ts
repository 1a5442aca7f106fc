/**
 * Small helpers for generating WGSL. Shapes are baked into the source as constants (the
 * pipeline cache is keyed by source), and loops are unrolled here in TypeScript where it
 * matters, since WGSL compilers do not unroll for us.
 */
import { gpu } from "./backend.ts";
import type { Access } from "./webgpu_backend.ts";
import type { DType, Tensor } from "./tensor.ts";

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

/** A float literal WGSL accepts (always with a decimal point or exponent). */
export function f32Literal(x: number): string {
  if (Number.isNaN(x)) return "bitcast<f32>(0x7fc00000u)";
  if (x === Infinity) return "bitcast<f32>(0x7f800000u)";
  if (x === -Infinity) return "bitcast<f32>(0xff800000u)";
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

/**
 * Runs a one-thread-per-element kernel over `n` elements. `body` sees `i: u32` (guarded by
 * `i < n`) and the bindings by name; `prelude` is extra module-scope WGSL (helper functions).
 */
export function runElementwise(opts: {
  label: string;
  n: number;
  bindings: { binding: Binding; tensor: Tensor }[];
  body: string;
  prelude?: string;
}): void {
  if (opts.n === 0) return;
  const grid = gridFor(opts.n);
  const code = `${declareBindings(opts.bindings.map((b) => b.binding))}
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
    bindings: opts.bindings.map((b) => ({ buffer: b.tensor.buffer, access: b.binding.access })),
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
