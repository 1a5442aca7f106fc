/**
 * Reductions over any set of axes (sum, mean, max, var) as workgroup tree reductions on the GPU
 * and one pass in memory order on the CPU (`cpu/reduce.ts`), and `sumTo`, which folds a
 * broadcast gradient back to an input's shape.
 */
import { record } from "../autograd.ts";
import { expectDType, normalizeAxes, sameShape, stridesOf } from "../shape.ts";
import { bufferOf, emptyTensor, type Tensor } from "../tensor.ts";
import { cpu, gpu, onCpu } from "../backend.ts";
import { reduceInto } from "../cpu/reduce.ts";
import { f32 } from "../cpu/views.ts";
import { declareBindings, f32Literal, gridFor, linearIndex } from "../wgsl.ts";
import { expand, reshape } from "./view.ts";
import { affine, equal, mul, square, sub } from "./elementwise.ts";

const REDUCE_WG = 64;

/** WGSL for the input offset contributed by coordinate `v` decomposed over `dims` (strides). */
function offsetExpr(v: string, dims: number[], strides: number[]): string {
  const terms: string[] = [];
  let inner = 1;
  for (let k = dims.length - 1; k >= 0; k--) {
    const coord = inner === 1 ? `(${v} % ${dims[k]}u)` : `((${v} / ${inner}u) % ${dims[k]}u)`;
    terms.push(strides[k] === 1 ? coord : `${coord} * ${strides[k]}u`);
    inner *= dims[k];
  }
  return terms.length ? terms.join(" + ") : "0u";
}

type ReduceKind = "sum" | "max";

/** The raw reduction kernel: reduces `x` over `axes`, output has the kept dims (keepdim shape). */
function reduceKernel(kind: ReduceKind, x: Tensor, axes: number[]): Tensor {
  const out = emptyTensor(x.shape.map((d, i) => (axes.includes(i) ? 1 : d)));
  if (onCpu()) {
    reduceInto(kind, f32(x), x.shape, axes, f32(out));
    cpu().countOp();
  } else reduceGpu(kind, x, axes, out);
  return out;
}

/** The WGSL reduction: a loop per output for short reductions, else a workgroup tree. */
function reduceGpu(kind: ReduceKind, x: Tensor, axes: number[], out: Tensor): void {
  const strides = stridesOf(x.shape);
  const keptDims: number[] = [],
    keptStrides: number[] = [],
    redDims: number[] = [],
    redStrides: number[] = [];
  x.shape.forEach((d, i) => {
    if (axes.includes(i)) {
      redDims.push(d);
      redStrides.push(strides[i]);
    } else {
      keptDims.push(d);
      keptStrides.push(strides[i]);
    }
  });
  const nOut = out.size;
  const R = redDims.reduce((a, b) => a * b, 1);
  const init = kind === "sum" ? "0.0" : f32Literal(-Infinity);
  const combine = kind === "sum"
    ? (a: string, b: string) => `${a} + ${b}`
    : (a: string, b: string) => `max(${a}, ${b})`;
  const base = offsetExpr("o", keptDims, keptStrides);
  const off = offsetExpr("r", redDims, redStrides);
  const decl = declareBindings([
    { name: "X", type: "f32", access: "read" },
    { name: "O", type: "f32", access: "read_write" },
  ]);
  let code: string;
  let grid: [number, number];
  if (R <= 32) {
    // Few elements per output: one thread per output, a plain loop.
    grid = gridFor(nOut);
    code = `${decl}
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let o = ${linearIndex(grid)};
  if (o >= ${nOut}u) { return; }
  let base = ${base};
  var acc = ${init};
  for (var r = 0u; r < ${R}u; r++) { acc = ${combine("acc", `X[base + ${off}]`)}; }
  O[o] = acc;
}`;
  } else {
    // One workgroup per output: strided partial sums, then a tree in workgroup memory.
    grid = gridFor(nOut, 1);
    let tree = "";
    for (let s = REDUCE_WG / 2; s >= 1; s /= 2) {
      tree += `  if (lid < ${s}u) { partial[lid] = ${
        combine("partial[lid]", `partial[lid + ${s}u]`)
      }; }\n  workgroupBarrier();\n`;
    }
    code = `${decl}
var<workgroup> partial: array<f32, ${REDUCE_WG}>;
@compute @workgroup_size(${REDUCE_WG})
fn main(@builtin(workgroup_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let o = ${linearIndex(grid, 1)};
  let base = ${base};
  var acc = ${init};
  for (var r = lid; r < ${R}u; r += ${REDUCE_WG}u) { acc = ${combine("acc", `X[base + ${off}]`)}; }
  partial[lid] = acc;
  workgroupBarrier();
${tree}  if (lid == 0u) { O[o] = partial[0]; }
}`;
  }
  if (nOut > 0) {
    gpu().dispatch({
      label: `reduce_${kind}`,
      code,
      bindings: [{ buffer: bufferOf(x), access: "read" }, {
        buffer: bufferOf(out),
        access: "read_write",
      }],
      workgroups: grid,
    });
  }
}

function finish(t: Tensor, x: Tensor, axes: number[], keepdim: boolean): Tensor {
  if (keepdim) return t;
  return reshape(t, x.shape.filter((_, i) => !axes.includes(i)));
}

/**
 * Sum over `axes` (default: all).
 *
 * @example
 * ```ts
 * const total = sum(x);            // shape []
 * const rows = sum(x, -1, true);   // shape [n, 1]
 * ```
 */
export function sum(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  expectDType("sum", "x", x, "f32");
  const ax = normalizeAxes("sum", axes, x.rank);
  const kept = reduceKernel("sum", x, ax);
  record(kept, "sum", [x], (g) => [expandTo(g, x.shape)]);
  return finish(kept, x, ax, keepdim);
}

/** Mean over `axes` (default: all). */
export function mean(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  const ax = normalizeAxes("mean", axes, x.rank);
  const count = ax.reduce((n, a) => n * x.shape[a], 1);
  return affine(sum(x, ax, keepdim), 1 / Math.max(count, 1), 0);
}

/** Maximum over `axes`; the gradient goes to every position equal to the maximum. */
export function max(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  expectDType("max", "x", x, "f32");
  const ax = normalizeAxes("max", axes, x.rank);
  const kept = reduceKernel("max", x, ax);
  record(kept, "max", [x], (g) => [mul(expandTo(g, x.shape), equal(x, kept))]);
  return finish(kept, x, ax, keepdim);
}

/** Variance over `axes` (biased by default, as LayerNorm/BatchNorm use; `unbiased` divides by n-1). */
export function variance(
  x: Tensor,
  axes?: number | number[],
  keepdim = false,
  unbiased = false,
): Tensor {
  const ax = normalizeAxes("var", axes, x.rank);
  const count = ax.reduce((n, a) => n * x.shape[a], 1);
  const centered = sub(x, mean(x, ax, true));
  const s = sum(square(centered), ax, keepdim);
  return affine(s, 1 / Math.max(unbiased ? count - 1 : count, 1), 0);
}

/** Sums a (broadcast) gradient back to `shape`: leading extra axes and size-1 axes are summed. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const offset = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < offset || (shape[i - offset] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const reduced = axes.length ? reduceKernel("sum", g, axes) : g;
  return reshape(reduced, shape);
}

function expandTo(g: Tensor, shape: readonly number[]): Tensor {
  return expand(g, shape);
}
