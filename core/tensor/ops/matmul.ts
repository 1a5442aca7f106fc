/**
 * Matrix products on the GEMM template: `matmul` (batched, broadcasting batch dimensions, with
 * transpose flags so gradients never materialise a transpose) and `linear` (x W^T + b with the
 * bias and an optional activation fused into the epilogue). On the CPU backend both run on
 * `gemm` (`cpu/matmul.ts`).
 */
import { isGradEnabled, record } from "../autograd.ts";
import { onCpu } from "../backend.ts";
import { linearCpu, matmulCpu } from "../cpu/matmul.ts";
import { runGemm } from "../kernels/gemm.ts";
import { broadcastShapes, expectDType } from "../shape.ts";
import { emptyTensor, sizeOf, type Tensor } from "../tensor.ts";
import { broadcastIndexExpr } from "../kernels/wgsl.ts";
import { ACTIVATION_WGSL, activationWgsl, type FusedActivation } from "../kernels/activation.ts";
import { gelu, relu, silu } from "./elementwise.ts";
import { sum, sumTo } from "./reduce.ts";
import { reshape } from "./view.ts";

/** Options for `matmul`. */
export interface MatmulOptions {
  /** Use A^T (A stored as [..., K, M]). */
  transA?: boolean;
  /** Use B^T (B stored as [..., N, K]). */
  transB?: boolean;
}

/** WGSL reading element (row, col) of op(X) for batch b, with batch broadcasting. */
function readHook(
  name: string,
  batchExpr: string,
  rows: number,
  cols: number,
  trans: boolean,
  r: string,
  c: string,
): string {
  // X is stored as [batch, rows, cols] when not transposed, [batch, cols, rows] when transposed.
  const index = trans ? `${c} * ${rows}u + ${r}` : `${r} * ${cols}u + ${c}`;
  const at = `(${batchExpr}) * ${rows * cols}u + ${index}`;
  // A tensor bound as vec4 (see `vecRead`) is read element-wise through its vector.
  const elem = vec4Bound(rows, cols, trans)
    ? `${name}[(${at}) / 4u][(${at}) % 4u]`
    : `${name}[${at}]`;
  return `  if (${r} >= ${rows}u || ${c} >= ${cols}u) { return 0.0; }
  return ${elem};`;
}

/** Whether op(X) is stored with a contiguous, 4-aligned minor dimension (then bound as vec4). */
function vec4Bound(rows: number, cols: number, trans: boolean): boolean {
  return (trans ? rows : cols) % 4 === 0;
}

/**
 * The vectorised twin of `readHook`: 4 elements along the stored minor dimension (columns of X,
 * or rows when transposed) in one 16-byte load; null when that dimension is not a multiple of 4.
 */
function vecRead<Axis extends string>(
  name: string,
  batchExpr: string,
  rows: number,
  cols: number,
  trans: boolean,
  r: Axis,
  c: Axis,
): { axis: Axis; body: string } | null {
  if (!vec4Bound(rows, cols, trans)) return null;
  const index = trans ? `${c} * ${rows}u + ${r}` : `${r} * ${cols}u + ${c}`;
  return {
    axis: trans ? r : c,
    body: `  if (${r} >= ${rows}u || ${c} >= ${cols}u) { return vec4<f32>(0.0); }
  return ${name}[((${batchExpr}) * ${rows * cols}u + ${index}) / 4u];`,
  };
}

/** The binding's WGSL element type: vec4 when the tensor is read through `vecRead`. */
function elemType(rows: number, cols: number, trans: boolean): "f32" | "vec4<f32>" {
  return vec4Bound(rows, cols, trans) ? "vec4<f32>" : "f32";
}

/**
 * Matrix product of the last two dimensions; leading (batch) dimensions broadcast.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function scores(q: Tensor, k: Tensor): Tensor {
 *   return matmul(q, k, { transB: true }); // [b, h, t, d] x [b, h, t, d]^T -> [b, h, t, t]
 * }
 * ```
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const { transA = false, transB = false } = opts;
  expectDType("matmul", "a", a, "f32");
  expectDType("matmul", "b", b, "f32");
  if (a.rank < 2 || b.rank < 2) {
    throw new Error(
      `matmul: both arguments need at least 2 dimensions, got [${a.shape}] and [${b.shape}].`,
    );
  }
  const [M, Ka] = transA
    ? [a.shape[a.rank - 1], a.shape[a.rank - 2]]
    : [a.shape[a.rank - 2], a.shape[a.rank - 1]];
  const [Kb, N] = transB
    ? [b.shape[b.rank - 1], b.shape[b.rank - 2]]
    : [b.shape[b.rank - 2], b.shape[b.rank - 1]];
  if (Ka !== Kb) {
    throw new Error(
      `matmul: inner dimensions differ: a [${a.shape}]${transA ? "^T" : ""} has ${Ka} columns, ` +
        `b [${b.shape}]${transB ? "^T" : ""} has ${Kb} rows.`,
    );
  }
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  const batchShape = broadcastShapes("matmul", batchA, batchB);
  const out = emptyTensor([...batchShape, M, N]);
  if (onCpu()) matmulCpu(a, b, out, batchShape, M, N, Ka, transA, transB);
  else matmulGpu(a, b, out, batchShape, M, N, Ka, transA, transB);
  return record(out, "matmul", [a, b], (g) => {
    let ga: Tensor | null = null, gb: Tensor | null = null;
    // d op(A) = g op(B)^T and d op(B) = op(A)^T g, written with flags instead of transposes.
    if (a.requiresGrad) {
      ga = transA
        ? matmul(b, g, { transA: transB, transB: true })
        : matmul(g, b, { transB: !transB });
      ga = sumTo(ga, a.shape);
    }
    if (b.requiresGrad) {
      gb = transB
        ? matmul(g, a, { transA: true, transB: transA })
        : matmul(a, g, { transA: !transA });
      gb = sumTo(gb, b.shape);
    }
    return [ga, gb];
  });
}

/** The WGSL path of `matmul` (one GEMM template dispatch). */
function matmulGpu(
  a: Tensor,
  b: Tensor,
  out: Tensor,
  batchShape: readonly number[],
  M: number,
  N: number,
  Ka: number,
  transA: boolean,
  transB: boolean,
): void {
  const batch = sizeOf(batchShape);
  const batchA = a.shape.slice(0, -2), batchB = b.shape.slice(0, -2);
  const bA = sizeOf(batchA) === batch && batchA.length === batchShape.length
    ? "b"
    : broadcastIndexExpr(batchShape, batchA, "b");
  const bB = sizeOf(batchB) === batch && batchB.length === batchShape.length
    ? "b"
    : broadcastIndexExpr(batchShape, batchB, "b");
  runGemm({
    label: "matmul",
    M,
    N,
    K: Ka,
    batch,
    bindings: [
      { name: "A", tensor: a, access: "read", type: elemType(M, Ka, transA) },
      { name: "B", tensor: b, access: "read", type: elemType(Ka, N, transB) },
      { name: "C", tensor: out, access: "read_write" },
    ],
    readA: readHook("A", bA, M, Ka, transA, "m", "k"),
    readB: readHook("B", bB, Ka, N, transB, "k", "n"),
    readA4: vecRead("A", bA, M, Ka, transA, "m", "k") ?? undefined,
    readB4: vecRead("B", bB, Ka, N, transB, "k", "n") ?? undefined,
    writeC: `  C[b * ${M * N}u + m * ${N}u + n] = v;`,
  });
}

/** Activations the linear epilogue can fuse (formulas: `kernels/activation.ts`). */
export type Activation = FusedActivation;

/** The WGSL path of `linear`: one GEMM dispatch with the bias and `act` in the epilogue. */
function linearGpu(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  out: Tensor,
  rows: number,
  act: Activation,
): void {
  const inF = weight.shape[1], outF = weight.shape[0];
  const bindings = [
    { name: "X", tensor: x, access: "read" as const, type: elemType(rows, inF, false) },
    { name: "W", tensor: weight, access: "read" as const, type: elemType(inF, outF, true) },
    ...(bias ? [{ name: "BIAS", tensor: bias, access: "read" as const }] : []),
    { name: "Y", tensor: out, access: "read_write" as const },
  ];
  runGemm({
    label: "linear",
    M: rows,
    N: outF,
    K: inF,
    batch: 1,
    bindings,
    prelude: act === "none" ? undefined : ACTIVATION_WGSL,
    readA: readHook("X", "0u", rows, inF, false, "m", "k"),
    readB: readHook("W", "0u", inF, outF, true, "k", "n"),
    readA4: vecRead("X", "0u", rows, inF, false, "m", "k") ?? undefined,
    readB4: vecRead("W", "0u", inF, outF, true, "k", "n") ?? undefined,
    // The epilogue names its input `r` (WGSL forbids redeclaring the parameter `v`).
    writeC: `  let r = v${bias ? " + BIAS[n]" : ""};\n  Y[m * ${outF}u + n] = ${
      activationWgsl(act, "r")
    };`,
  });
}

/**
 * y = act(x W^T + b) over the last dimension of x (W is [out, in], as in PyTorch).
 * Bias and activation run in the GEMM epilogue; while recording gradients the activation runs
 * as its own op so its backward can see the pre-activation.
 */
export function linear(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  activation: Activation = "none",
): Tensor {
  const inF = weight.shape[1], outF = weight.shape[0];
  if (weight.rank !== 2 || x.shape[x.rank - 1] !== inF) {
    throw new Error(
      `linear: input [${x.shape}] does not match weight [${weight.shape}] (expected last dim ${inF}).`,
    );
  }
  if (bias && (bias.rank !== 1 || bias.shape[0] !== outF)) {
    throw new Error(
      `linear: bias [${bias.shape}] does not match weight [${weight.shape}] (expected [${outF}]).`,
    );
  }
  const rows = x.size / inF;
  const fuseAct = activation !== "none" &&
    !(isGradEnabled() && (x.requiresGrad || weight.requiresGrad || !!bias?.requiresGrad));
  const out = emptyTensor([...x.shape.slice(0, -1), outF]);
  const b = bias ?? null, act = fuseAct ? activation : "none";
  if (onCpu()) linearCpu(x, weight, b, out, act);
  else linearGpu(x, weight, b, out, rows, act);
  const inputs = bias ? [x, weight, bias] : [x, weight];
  record(out, "linear", inputs, (g) => {
    const g2 = reshape(g, [rows, outF]);
    const x2 = reshape(x, [rows, inF]);
    return [
      x.requiresGrad ? reshape(matmul(g2, weight), x.shape) : null,
      weight.requiresGrad ? matmul(g2, x2, { transA: true }) : null,
      ...(bias ? [bias.requiresGrad ? sum(g2, 0) : null] : []),
    ];
  });
  if (fuseAct || activation === "none") return out;
  return activation === "relu" ? relu(out) : activation === "gelu" ? gelu(out) : silu(out);
}
