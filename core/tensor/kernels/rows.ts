/**
 * Shared WGSL generation for the hand-fused row kernels (softmax, cross-entropy, layer and
 * group norm): one workgroup of `RW` threads per row, each thread striding over the row, and
 * workgroup tree reductions of the threads' partial results.
 */
import { gpu } from "../backend.ts";
import { bufferOf, type Tensor } from "../tensor.ts";
import { declareBindings, f32Literal, gridFor, linearIndex } from "./wgsl.ts";

/** Threads per row workgroup. */
export const RW = 64;

/** A storage binding of a row kernel (f32 unless `type` says otherwise). */
export interface RowBinding {
  name: string;
  tensor: Tensor;
  access: "read" | "read_write";
  type?: "f32" | "i32";
}

/**
 * WGSL: stores each thread's partial value(s) in the workgroup array(s) named by the keys of
 * `partials`, then tree-reduces them (sum or max); the totals land in element 0.
 */
export function reduceWorkgroup(op: "sum" | "max", partials: Record<string, string>): string {
  const arrays = Object.keys(partials);
  let s = arrays.map((a) => `  ${a}[lid] = ${partials[a]};\n`).join("") +
    "  workgroupBarrier();\n";
  for (let k = RW / 2; k >= 1; k /= 2) {
    const step = arrays.map((a) =>
      `${a}[lid] = ${
        op === "sum" ? `${a}[lid] + ${a}[lid + ${k}u]` : `max(${a}[lid], ${a}[lid + ${k}u])`
      };`
    ).join(" ");
    s += `  if (lid < ${k}u) { ${step} }\n  workgroupBarrier();\n`;
  }
  return s;
}

/**
 * WGSL: the row maximum `mx` of `value` (an expression of `j`, the index within the row) and the
 * sum of exp(value - mx), left in `red[0]`; with `guard`, only where that expression holds.
 */
export function rowMaxSumExp(L: number, value: string, guard?: string): string {
  const each = (stmt: string): string =>
    `  for (var j = lid; j < ${L}u; j += ${RW}u) { ${
      guard ? `if (${guard}) { ${stmt} }` : stmt
    } }\n`;
  return `  var m = ${f32Literal(-Infinity)};
${each(`m = max(m, ${value});`)}${reduceWorkgroup("max", { red: "m" })}  let mx = red[0];
  workgroupBarrier();
  var s = 0.0;
${each(`s += exp(${value} - mx);`)}${reduceWorkgroup("sum", { red: "s" })}`;
}

/**
 * Dispatches one workgroup of `RW` threads per row. `body` sees `row`, `lid`, the bindings by
 * name and the f32 workgroup arrays named in `scratch`; `prelude` is extra module-scope WGSL.
 */
export function dispatchRows(opts: {
  label: string;
  rows: number;
  bindings: RowBinding[];
  body: string;
  scratch?: string[];
  prelude?: string;
}): void {
  const { label, rows, bindings, body, scratch = ["red"], prelude } = opts;
  if (rows === 0) return;
  const grid = gridFor(rows, 1);
  const code = `${
    declareBindings(
      bindings.map((b) => ({ name: b.name, type: b.type ?? "f32", access: b.access })),
    )
  }
${scratch.map((a) => `var<workgroup> ${a}: array<f32, ${RW}>;\n`).join("")}${
    prelude ? `${prelude}\n` : ""
  }@compute @workgroup_size(${RW})
fn main(@builtin(workgroup_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = ${linearIndex(grid, 1)};
  if (row >= ${rows}u) { return; }
${body}
}`;
  gpu().dispatch({
    label,
    code,
    bindings: bindings.map((b) => ({ buffer: bufferOf(b.tensor), access: b.access })),
    workgroups: grid,
  });
}
