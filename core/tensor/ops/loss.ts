/**
 * Losses: cross-entropy over class logits (a fused row kernel: log-sum-exp by workgroup tree
 * reductions, then the target's log-probability) and mean squared error (composed).
 */
import { record } from "../autograd.ts";
import { cpu, onCpu } from "../backend.ts";
import { crossEntropyGrad, crossEntropyRows } from "../cpu/rows.ts";
import { f32, i32 } from "../cpu/views.ts";
import { expectDType, expectRank, sameShape } from "../shape.ts";
import { emptyTensor, type Tensor } from "../tensor.ts";
import { tensor } from "../creation.ts";
import { f32Literal, runElementwise } from "../kernels/wgsl.ts";
import { dispatchRows, rowMaxSumExp } from "../kernels/rows.ts";
import { square, sub } from "./elementwise.ts";
import { mean, sum } from "./reduce.ts";

/** How per-element losses are combined. */
export type Reduction = "mean" | "sum" | "none";

function reduceLoss(op: string, perElement: Tensor, reduction: Reduction): Tensor {
  if (reduction === "none") return perElement;
  if (reduction === "sum") return sum(perElement);
  if (reduction === "mean") return mean(perElement);
  throw new Error(`${op}: unknown reduction "${reduction}" (use "mean", "sum" or "none").`);
}

/** Options of `crossEntropy`. */
export interface CrossEntropyOptions {
  reduction?: Reduction;
}

/**
 * Cross-entropy between logits [B, C] and integer class targets [B] (an i32 tensor or a
 * number[]): -log softmax(logits)[b, target_b], averaged by default. A target outside [0, C)
 * in an i32 tensor gives NaN (it cannot be checked without reading the GPU back).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function classLoss(logits: Tensor): Tensor {
 *   return crossEntropy(logits, [3, 0, 7]); // logits [3, C], C > 7: a scalar
 * }
 * ```
 */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor | number[],
  opts: CrossEntropyOptions = {},
): Tensor {
  const op = "crossEntropy";
  expectDType(op, "logits", logits, "f32");
  expectRank(op, "logits", logits, 2);
  const [B, C] = logits.shape;
  let t: Tensor;
  if (Array.isArray(targets)) {
    if (targets.length !== B) {
      throw new Error(`${op}: ${targets.length} targets for logits [${logits.shape}] (need ${B}).`);
    }
    const bad = targets.findIndex((v) => !Number.isInteger(v) || v < 0 || v >= C);
    if (bad >= 0) {
      throw new Error(`${op}: target ${targets[bad]} at index ${bad} is not a class in [0, ${C}).`);
    }
    t = tensor(Int32Array.from(targets), [B], "i32");
  } else {
    expectDType(op, "targets", targets, "i32");
    if (targets.rank !== 1 || targets.shape[0] !== B) {
      throw new Error(
        `${op}: targets [${targets.shape}] do not match logits [${logits.shape}] (need [${B}]).`,
      );
    }
    t = targets;
  }
  const losses = emptyTensor([B]);
  const lse = emptyTensor([B]);
  if (onCpu()) {
    cpu().countOp();
    crossEntropyRows(f32(logits), i32(t), f32(losses), f32(lse), C);
  } else {
    dispatchRows({
      label: op,
      rows: B,
      bindings: [
        { name: "X", tensor: logits, access: "read" },
        { name: "T", tensor: t, access: "read", type: "i32" },
        { name: "LOSS", tensor: losses, access: "read_write" },
        { name: "LSE", tensor: lse, access: "read_write" },
      ],
      body: `  let base = row * ${C}u;
${rowMaxSumExp(C, "X[base + j]")}  if (lid == 0u) {
    let l = mx + log(red[0]);
    LSE[row] = l;
    let c = T[row];
    LOSS[row] = select(${f32Literal(NaN)}, l - X[base + u32(max(c, 0i))], c >= 0i && c < ${C}i);
  }`,
    });
  }
  record(losses, op, [logits], (g) => {
    // d loss_b / d x_bj = softmax_j - [j == target_b].
    const dx = emptyTensor(logits.shape);
    if (onCpu()) {
      cpu().countOp();
      crossEntropyGrad(f32(logits), i32(t), f32(lse), f32(g), f32(dx), C);
      return [dx];
    }
    runElementwise({
      label: `${op}_grad`,
      n: B * C,
      bindings: [
        { binding: { name: "X", type: "f32", access: "read" }, tensor: logits },
        { binding: { name: "T", type: "i32", access: "read" }, tensor: t },
        { binding: { name: "LSE", type: "f32", access: "read" }, tensor: lse },
        { binding: { name: "G", type: "f32", access: "read" }, tensor: g },
        { binding: { name: "DX", type: "f32", access: "read_write" }, tensor: dx },
      ],
      body: `  let b = i / ${C}u;
  let j = i % ${C}u;
  let onehot = select(0.0, 1.0, T[b] == i32(j));
  DX[i] = G[b] * (exp(X[i] - LSE[b]) - onehot);`,
    });
    return [dx];
  });
  return reduceLoss(op, losses, opts.reduction ?? "mean");
}

/**
 * Mean squared error between tensors of the same shape.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function noiseLoss(predictedNoise: Tensor, noise: Tensor): Tensor {
 *   return mse(predictedNoise, noise); // a scalar
 * }
 * ```
 */
export function mse(a: Tensor, b: Tensor, reduction: Reduction = "mean"): Tensor {
  if (!sameShape(a.shape, b.shape)) {
    throw new Error(`mse: shapes differ: [${a.shape}] and [${b.shape}].`);
  }
  return reduceLoss("mse", square(sub(a, b)), reduction);
}
