/**
 * Softmax and log-softmax as hand-fused row kernels: one workgroup per row, the row maximum and
 * the sum of exponentials by workgroup tree reductions (max-subtracted, so large logits cannot
 * overflow), with an optional causal mask and a fused backward.
 *
 * Causal masking works on the last two dimensions [..., Tq, Tk] (query i, key j) and requires
 * Tk >= Tq. The ends are aligned ("bottom-right"): query i may see keys j <= i + (Tk - Tq), so
 * the last query sees every key. With Tq == Tk this is exactly PyTorch's `is_causal`
 * (lower-triangular); with Tk > Tq it is the convention of cached decoding, where the queries
 * are the newest Tq positions. Masked positions get probability 0 (softmax) and -inf
 * (logSoftmax), and receive zero gradient.
 */
import { record } from "../autograd.ts";
import { backend } from "../backend.ts";
import { expectDType, normalizeAxis } from "../shape.ts";
import { emptyTensor, type Tensor } from "../tensor.ts";
import { declareBindings, f32Literal, gridFor, linearIndex } from "../wgsl.ts";
import { permute } from "./view.ts";

const RW = 64;

function tree(op: "sum" | "max"): string {
  let s = "";
  for (let k = RW / 2; k >= 1; k /= 2) {
    const v = op === "sum" ? `red[lid] + red[lid + ${k}u]` : `max(red[lid], red[lid + ${k}u])`;
    s += `  if (lid < ${k}u) { red[lid] = ${v}; }\n  workgroupBarrier();\n`;
  }
  return s;
}

/** Dispatches one workgroup of RW threads per row; `body` sees `row`, `lid` and `ok(j)`. */
function dispatchRows(
  label: string,
  rows: number,
  bindings: { name: string; tensor: Tensor; access: "read" | "read_write" }[],
  okFn: string,
  body: string,
): void {
  if (rows === 0) return;
  const grid = gridFor(rows, 1);
  const code = `${
    declareBindings(bindings.map((b) => ({ name: b.name, type: "f32", access: b.access })))
  }
var<workgroup> red: array<f32, ${RW}>;
fn ok(row: u32, j: u32) -> bool { ${okFn} }
@compute @workgroup_size(${RW})
fn main(@builtin(workgroup_id) gid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = ${linearIndex(grid, 1)};
  if (row >= ${rows}u) { return; }
${body}
}`;
  backend().dispatch({
    label,
    code,
    bindings: bindings.map((b) => ({ buffer: b.tensor.buffer, access: b.access })),
    workgroups: grid,
  });
}

/** Options of `softmax` and `logSoftmax`. */
export interface SoftmaxOptions {
  /** Mask keys after the query (last two dims are [Tq, Tk]; see the module comment). */
  causal?: boolean;
  /** Multiplies the input before the softmax (fused; attention uses 1/sqrt(d)). Default 1. */
  scale?: number;
}

const NEG_INF = f32Literal(-Infinity);

function softmaxImpl(
  kind: "softmax" | "logSoftmax",
  x: Tensor,
  axis: number,
  opts: SoftmaxOptions,
): Tensor {
  expectDType(kind, "x", x, "f32");
  const ax = normalizeAxis(kind, axis, x.rank);
  const { causal = false, scale = 1 } = opts;
  if (ax !== x.rank - 1) {
    if (causal) {
      throw new Error(
        `${kind}: a causal mask needs axis -1 (the key axis), got axis ${axis} for shape [${x.shape}].`,
      );
    }
    const perm = [...Array(x.rank).keys()];
    [perm[ax], perm[x.rank - 1]] = [perm[x.rank - 1], perm[ax]];
    return permute(softmaxImpl(kind, permute(x, perm), -1, opts), perm);
  }
  const L = x.shape[x.rank - 1];
  const rows = L === 0 ? 0 : x.size / L;
  let okFn = "return true;";
  if (causal) {
    if (x.rank < 2) {
      throw new Error(`${kind}: a causal mask needs [..., Tq, Tk], got shape [${x.shape}].`);
    }
    const Tq = x.shape[x.rank - 2];
    if (L < Tq) {
      throw new Error(
        `${kind}: a causal mask needs key length >= query length, got shape [${x.shape}] (Tq ${Tq}, Tk ${L}).`,
      );
    }
    okFn = `return j <= (row % ${Tq}u) + ${L - Tq}u;`;
  }
  const S = f32Literal(scale);
  const y = emptyTensor(x.shape);
  const isLog = kind === "logSoftmax";
  dispatchRows(
    kind,
    rows,
    [
      { name: "X", tensor: x, access: "read" },
      { name: "Y", tensor: y, access: "read_write" },
    ],
    okFn,
    `  let base = row * ${L}u;
  var m = ${NEG_INF};
  for (var j = lid; j < ${L}u; j += ${RW}u) { if (ok(row, j)) { m = max(m, ${S} * X[base + j]); } }
  red[lid] = m;
  workgroupBarrier();
${tree("max")}  let mx = red[0];
  workgroupBarrier();
  var s = 0.0;
  for (var j = lid; j < ${L}u; j += ${RW}u) { if (ok(row, j)) { s += exp(${S} * X[base + j] - mx); } }
  red[lid] = s;
  workgroupBarrier();
${tree("sum")}  let total = red[0];
  let lse = log(total);
  for (var j = lid; j < ${L}u; j += ${RW}u) {
    let v = ${S} * X[base + j] - mx;
    Y[base + j] = select(${isLog ? NEG_INF : "0.0"}, ${
      isLog ? "v - lse" : "exp(v) / total"
    }, ok(row, j));
  }`,
  );
  return record(y, kind, [x], (g) => {
    const dx = emptyTensor(x.shape);
    // softmax: dx = s * y * (g - sum(g y)); logSoftmax: dx = s * (g - exp(y) * sum(g)).
    dispatchRows(
      `${kind}_grad`,
      rows,
      [
        { name: "Y", tensor: y, access: "read" },
        { name: "G", tensor: g, access: "read" },
        { name: "DX", tensor: dx, access: "read_write" },
      ],
      okFn,
      `  let base = row * ${L}u;
  var s = 0.0;
  for (var j = lid; j < ${L}u; j += ${RW}u) {
    if (ok(row, j)) { s += ${isLog ? "G[base + j]" : "G[base + j] * Y[base + j]"}; }
  }
  red[lid] = s;
  workgroupBarrier();
${tree("sum")}  let total = red[0];
  for (var j = lid; j < ${L}u; j += ${RW}u) {
    let d = ${
        isLog ? "G[base + j] - exp(Y[base + j]) * total" : "Y[base + j] * (G[base + j] - total)"
      };
    DX[base + j] = select(0.0, ${S} * d, ok(row, j));
  }`,
    );
    return [dx];
  });
}

/**
 * Softmax along `axis` (default: last), max-subtracted. `causal` masks keys after each query.
 *
 * @example
 * ```ts
 * const p = softmax(scores, -1, { causal: true }); // scores [B, H, T, T]
 * ```
 */
export function softmax(x: Tensor, axis = -1, opts: SoftmaxOptions = {}): Tensor {
  return softmaxImpl("softmax", x, axis, opts);
}

/** log(softmax(x)) along `axis`, computed as x - max - log(sum(exp(x - max))). */
export function logSoftmax(x: Tensor, axis = -1, opts: SoftmaxOptions = {}): Tensor {
  return softmaxImpl("logSoftmax", x, axis, opts);
}
