/**
 * Reduction kernels over any set of axes (sum, max) without autograd: workgroup tree reductions
 * on the GPU and one pass in memory order on the CPU (`cpu/reduce.ts`). The differentiable
 * reductions (`ops/reduce.ts`) and the gradients of broadcasting ops (`sumTo`) build on them.
 */
import { cpu, gpu, onCpu } from "../backend.ts";
import { reduceInto } from "../cpu/reduce.ts";
import { f32 } from "../cpu/views.ts";
import { sameShape, stridesOf } from "../shape.ts";
import { bufferOf, emptyTensor, type Tensor, viewOf } from "../tensor.ts";
import { declareBindings, f32Literal, gridFor, linearIndex } from "./wgsl.ts";

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

export type ReduceKind = "sum" | "max";

/** The raw reduction kernel: reduces `x` over `axes`, output has the kept dims (keepdim shape). */
export function reduceKernel(kind: ReduceKind, x: Tensor, axes: number[]): Tensor {
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

/**
 * Sums a (broadcast) gradient back to `shape`: leading extra axes and size-1 axes are summed.
 * Records no gradient (it runs inside backward passes); returns `g` itself when the shapes match.
 */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const offset = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < offset || (shape[i - offset] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const reduced = axes.length ? reduceKernel("sum", g, axes) : g;
  return viewOf(reduced, shape);
}
