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
import { cpu, onCpu } from "../backend.ts";
import { softmaxGradRows, softmaxRows } from "../cpu/rows.ts";
import { f32 } from "../cpu/views.ts";
import { expectDType, normalizeAxis } from "../shape.ts";
import { emptyTensor, type Tensor } from "../tensor.ts";
import { f32Literal } from "../kernels/wgsl.ts";
import { dispatchRows, reduceWorkgroup, rowMaxSumExp, RW } from "../kernels/rows.ts";
import { permute } from "./view.ts";

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
  let causalTq = 0;
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
    causalTq = Tq;
  }
  const y = emptyTensor(x.shape);
  const isLog = kind === "logSoftmax";
  if (onCpu()) {
    const r = { rows, L, scale, log: isLog, causalTq };
    cpu().countOp();
    softmaxRows(f32(x), f32(y), r);
    return record(y, kind, [x], (g) => {
      const dx = emptyTensor(x.shape);
      cpu().countOp();
      softmaxGradRows(f32(y), f32(g), f32(dx), r);
      return [dx];
    });
  }
  const S = f32Literal(scale);
  const prelude = `fn ok(row: u32, j: u32) -> bool { ${okFn} }`;
  dispatchRows({
    label: kind,
    rows,
    bindings: [
      { name: "X", tensor: x, access: "read" },
      { name: "Y", tensor: y, access: "read_write" },
    ],
    prelude,
    body: `  let base = row * ${L}u;
${rowMaxSumExp(L, `${S} * X[base + j]`, "ok(row, j)")}  let total = red[0];
  let lse = log(total);
  for (var j = lid; j < ${L}u; j += ${RW}u) {
    let v = ${S} * X[base + j] - mx;
    Y[base + j] = select(${isLog ? NEG_INF : "0.0"}, ${
      isLog ? "v - lse" : "exp(v) / total"
    }, ok(row, j));
  }`,
  });
  return record(y, kind, [x], (g) => {
    const dx = emptyTensor(x.shape);
    // softmax: dx = s * y * (g - sum(g y)); logSoftmax: dx = s * (g - exp(y) * sum(g)).
    dispatchRows({
      label: `${kind}_grad`,
      rows,
      bindings: [
        { name: "Y", tensor: y, access: "read" },
        { name: "G", tensor: g, access: "read" },
        { name: "DX", tensor: dx, access: "read_write" },
      ],
      prelude,
      body: `  let base = row * ${L}u;
  var s = 0.0;
  for (var j = lid; j < ${L}u; j += ${RW}u) {
    if (ok(row, j)) { s += ${isLog ? "G[base + j]" : "G[base + j] * Y[base + j]"}; }
  }
${reduceWorkgroup("sum", { red: "s" })}  let total = red[0];
  for (var j = lid; j < ${L}u; j += ${RW}u) {
    let d = ${
        isLog ? "G[base + j] - exp(Y[base + j]) * total" : "Y[base + j] * (G[base + j] - total)"
      };
    DX[base + j] = select(0.0, ${S} * d, ok(row, j));
  }`,
    });
    return [dx];
  });
}

/**
 * Softmax along `axis` (default: last), max-subtracted. `causal` masks keys after each query.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function causalWeights(scores: Tensor): Tensor {
 *   return softmax(scores, -1, { causal: true }); // scores [B, H, T, T]
 * }
 * ```
 */
export function softmax(x: Tensor, axis = -1, opts: SoftmaxOptions = {}): Tensor {
  return softmaxImpl("softmax", x, axis, opts);
}

/** log(softmax(x)) along `axis`, computed as x - max - log(sum(exp(x - max))). */
export function logSoftmax(x: Tensor, axis = -1, opts: SoftmaxOptions = {}): Tensor {
  return softmaxImpl("logSoftmax", x, axis, opts);
}
