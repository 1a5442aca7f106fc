/**
 * matmul and linear on the CPU backend: each maps onto `gemm` calls. Transposes become
 * transA/transB with the stored row length as the leading dimension; broadcast batch dimensions
 * become batch stride 0. Batch dimensions are coalesced so a product such as [b, h, t, d] x
 * [b, h, d, t] is ONE batched `gemm`; only broadcasts that no single stride can express (like
 * [2, 1] x [3]) loop over the outer batch coordinates.
 */
import { cpu } from "../backend.ts";
import type { Tensor } from "../tensor.ts";
import { gemm, type GemmActivation } from "./gemm.ts";
import { addr } from "./views.ts";

/** One batch axis after coalescing: its extent and the element stride of A, B and C along it. */
interface BatchAxis {
  size: number;
  a: number;
  b: number;
  c: number;
}

/**
 * The batch axes of out = A x B with per-operand strides (0 where an operand broadcasts),
 * size-1 axes dropped and neighbours merged wherever one stride walks both.
 */
function batchAxes(
  batchShape: readonly number[],
  batchA: readonly number[],
  batchB: readonly number[],
  matA: number,
  matB: number,
  matC: number,
): BatchAxis[] {
  const rank = batchShape.length;
  const axes: BatchAxis[] = [];
  let sa = matA, sb = matB, sc = matC;
  // Innermost first; dimensions of A and B are right-aligned with the output's.
  for (let d = rank - 1; d >= 0; d--) {
    const da = batchA[d - (rank - batchA.length)] ?? 1;
    const db = batchB[d - (rank - batchB.length)] ?? 1;
    const size = batchShape[d];
    if (size !== 1) {
      const axis = { size, a: da === 1 ? 0 : sa, b: db === 1 ? 0 : sb, c: sc };
      const inner = axes.at(-1);
      const merges = inner && axis.a === inner.a * inner.size &&
        axis.b === inner.b * inner.size && axis.c === inner.c * inner.size;
      if (merges) inner.size *= size;
      else axes.push(axis);
    }
    sa *= da;
    sb *= db;
    sc *= size;
  }
  return axes.reverse();
}

/**
 * out [...batch, M, N] = op(A) op(B) with A stored [..., M, K] ([..., K, M] with transA) and B
 * stored [..., K, N] ([..., N, K] with transB), batch dimensions broadcast.
 */
export function matmulCpu(
  a: Tensor,
  b: Tensor,
  out: Tensor,
  batchShape: readonly number[],
  M: number,
  N: number,
  K: number,
  transA: boolean,
  transB: boolean,
): void {
  if (out.size === 0) return;
  cpu().countOp();
  const axes = batchAxes(
    batchShape,
    a.shape.slice(0, -2),
    b.shape.slice(0, -2),
    M * K,
    K * N,
    M * N,
  );
  // The innermost coalesced axis is gemm's batch; outer axes (rare) loop here.
  const inner = axes.pop() ?? { size: 1, a: 0, b: 0, c: 0 };
  const outer = axes;
  const count = outer.reduce((n, ax) => n * ax.size, 1);
  const coord = new Array<number>(outer.length).fill(0);
  for (let it = 0; it < count; it++) {
    let oa = 0, ob = 0, oc = 0;
    outer.forEach((ax, i) => {
      oa += coord[i] * ax.a;
      ob += coord[i] * ax.b;
      oc += coord[i] * ax.c;
    });
    gemm({
      M,
      N,
      K,
      a: addr(a) + oa * 4,
      lda: transA ? M : K,
      transA,
      b: addr(b) + ob * 4,
      ldb: transB ? K : N,
      transB,
      c: addr(out) + oc * 4,
      ldc: N,
      batch: inner.size,
      strideA: inner.a,
      strideB: inner.b,
      strideC: inner.c,
    });
    // Advance the odometer over the outer axes, last fastest.
    for (let i = outer.length - 1; i >= 0 && ++coord[i] === outer[i].size; i--) coord[i] = 0;
  }
}

/** out [rows, outF] = act(x [rows, inF] W^T + bias): W [outF, inF] is read transposed. */
export function linearCpu(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null,
  out: Tensor,
  activation: GemmActivation,
): void {
  if (out.size === 0) return;
  cpu().countOp();
  const [outF, inF] = weight.shape;
  gemm({
    M: out.size / outF,
    N: outF,
    K: inF,
    a: addr(x),
    lda: inF,
    b: addr(weight),
    ldb: inF,
    transB: true,
    c: addr(out),
    ldc: outF,
    bias: bias ? addr(bias) : undefined,
    activation,
  });
}
