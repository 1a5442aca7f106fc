/**
 * Attention on the CPU backend, the twin of the FlashAttention kernels in
 * ops/flash_attention.ts. On the CPU the [Tq, Tk] scores of a group of heads fit in memory, so
 * the kernels compute them directly: per (batch, head) S = scale * Q K^T (+ mask) by `gemm`, a
 * row softmax with the causal limit, then O = P V by `gemm`. The backward recomputes P the same
 * way (so nothing but O is kept from the forward) and applies the standard formulas
 * (Vaswani et al. 2017; Dao et al. 2022, appendix B.2):
 *   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)),  dQ = scale * dS K,
 *   dK = scale * dS^T Q.
 * Heads are processed in groups whose score matrices fit a fixed scratch budget, each group as
 * one batched `gemm`.
 */
import { cpu } from "../backend.ts";
import type { FlashSpec as AttentionSpec } from "../ops/flash_attention.ts";
import type { Tensor } from "../tensor.ts";
import { gemm } from "./gemm.ts";
import type { CpuBuffer } from "./memory.ts";
import { softmaxGradRows, softmaxRows } from "./rows.ts";
import { addr, f32 } from "./views.ts";

/** Score elements per scratch matrix (64 MiB of f32); at least one head is processed at once. */
const SCRATCH_ELEMS = 1 << 24;

/** The additive mask read in place through broadcast strides. */
interface MaskIndex {
  /** Element offset of each head's [Tq, Tk] mask block. */
  head: Int32Array;
  /** Element strides of the query and key axes (0 where broadcast). */
  sI: number;
  sJ: number;
}

function maskIndex(spec: AttentionSpec, mask: Tensor): MaskIndex {
  const { batch, Tq, Tk } = spec;
  const full = [...batch, Tq, Tk];
  const padded = [...Array(full.length - mask.rank).fill(1), ...mask.shape];
  const mq = padded[padded.length - 2], mk = padded[padded.length - 1];
  const head = new Int32Array(spec.BH);
  for (let bh = 0; bh < spec.BH; bh++) {
    // Row-major coordinates of bh in `batch`, mapped onto the mask's (broadcast) batch dims.
    let rest = bh, off = 0, stride = mq * mk;
    for (let d = batch.length - 1; d >= 0; d--) {
      const c = rest % batch[d];
      rest = Math.floor(rest / batch[d]);
      if (padded[d] !== 1) off += c * stride;
      stride *= padded[d];
    }
    head[bh] = off;
  }
  return { head, sI: mq === 1 ? 0 : mk, sJ: mk === 1 ? 0 : 1 };
}

/** Element offsets of head `h` in q/k/v-shaped tensors and in the scores. */
interface Layout {
  spec: AttentionSpec;
  mask: MaskIndex | null;
  /** Heads per group. */
  group: number;
}

function layout(spec: AttentionSpec): Layout {
  const perHead = spec.Tq * spec.Tk;
  const group = Math.max(1, Math.min(spec.BH, Math.floor(SCRATCH_ELEMS / perHead)));
  return { spec, mask: spec.mask ? maskIndex(spec, spec.mask) : null, group };
}

/** One batched product over the heads h0 .. h0 + n: C = op(A) op(B), strides per head. */
function headsGemm(
  n: number,
  dims: [M: number, N: number, K: number],
  a: { at: number; ld: number; stride: number; trans?: boolean },
  b: { at: number; ld: number; stride: number; trans?: boolean },
  c: { at: number; ld: number; stride: number },
): void {
  const [M, N, K] = dims;
  gemm({
    M,
    N,
    K,
    a: a.at,
    lda: a.ld,
    transA: a.trans,
    strideA: a.stride,
    b: b.at,
    ldb: b.ld,
    transB: b.trans,
    strideB: b.stride,
    c: c.at,
    ldc: c.ld,
    strideC: c.stride,
    batch: n,
  });
}

/**
 * P = softmax(scale * Q K^T + mask) with the causal limit, for heads h0 .. h0 + n, into the
 * scratch block at byte address `p`.
 */
function probabilities(L: Layout, h0: number, n: number, q: Tensor, k: Tensor, p: number): void {
  const { Tq, Tk, D, scale } = L.spec;
  headsGemm(
    n,
    [Tq, Tk, D],
    { at: addr(q) + h0 * Tq * D * 4, ld: D, stride: Tq * D },
    { at: addr(k) + h0 * Tk * D * 4, ld: D, stride: Tk * D, trans: true },
    { at: p, ld: Tk, stride: Tq * Tk },
  );
  const P = scores(p, n, L);
  const m = L.mask, M = L.spec.mask ? f32(L.spec.mask) : null;
  if (M && m) {
    // Scale first, then add the mask (so -inf stays -inf), as the WGSL does.
    for (let h = 0; h < n; h++) {
      for (let i = 0; i < Tq; i++) {
        const o = (h * Tq + i) * Tk, mo = m.head[h0 + h] + i * m.sI;
        for (let j = 0; j < Tk; j++) P[o + j] = scale * P[o + j] + M[mo + j * m.sJ];
      }
    }
  }
  // All rows of the group in one call, so the kernel can split them across the threads.
  softmaxRows(P, P, {
    rows: n * Tq,
    L: Tk,
    scale: M && m ? 1 : scale,
    log: false,
    causalTq: L.spec.causal ? Tq : 0,
  });
}

/** The scores of `heads` heads at byte address `at` (a view: take it after every allocation). */
function scores(at: number, heads: number, L: Layout): Float32Array {
  return new Float32Array(cpu().mem.buffer, at, heads * L.spec.Tq * L.spec.Tk);
}

/** Calls `fn(h0, n)` for each group of heads. */
function forGroups(L: Layout, fn: (h0: number, n: number) => void): void {
  for (let h0 = 0; h0 < L.spec.BH; h0 += L.group) fn(h0, Math.min(L.group, L.spec.BH - h0));
}

/** Scratch blocks of one group's scores, freed after `fn`. */
function withScratch(L: Layout, count: number, fn: (at: number[]) => void): void {
  const bytes = L.group * L.spec.Tq * L.spec.Tk * 4;
  const blocks: CpuBuffer[] = [];
  try {
    for (let i = 0; i < count; i++) blocks.push(cpu().allocate(bytes));
    fn(blocks.map((b) => b.offset));
  } finally {
    for (const b of blocks) cpu().free(b);
  }
}

/** O = softmax(scale * Q K^T + mask) V for contiguous q [BH, Tq, D], k, v; o [BH, Tq, Dv]. */
export function attentionForward(
  spec: AttentionSpec,
  t: { q: Tensor; k: Tensor; v: Tensor; o: Tensor },
): void {
  const L = layout(spec);
  const { Tq, Tk, Dv } = spec;
  withScratch(L, 1, ([p]) =>
    forGroups(L, (h0, n) => {
      probabilities(L, h0, n, t.q, t.k, p);
      headsGemm(
        n,
        [Tq, Dv, Tk],
        { at: p, ld: Tk, stride: Tq * Tk },
        { at: addr(t.v) + h0 * Tk * Dv * 4, ld: Dv, stride: Tk * Dv },
        { at: addr(t.o) + h0 * Tq * Dv * 4, ld: Dv, stride: Tq * Dv },
      );
    }));
}

/** dQ, dK, dV of `attentionForward` from the output gradient g [BH, Tq, Dv]. */
export function attentionBackward(
  spec: AttentionSpec,
  t: { q: Tensor; k: Tensor; v: Tensor; g: Tensor; dq: Tensor; dk: Tensor; dv: Tensor },
): void {
  const L = layout(spec);
  const { Tq, Tk, D, Dv, scale } = spec;
  const qAt = (x: Tensor, h0: number) => ({ at: addr(x) + h0 * Tq * D * 4, ld: D, stride: Tq * D });
  const kAt = (x: Tensor, h0: number) => ({ at: addr(x) + h0 * Tk * D * 4, ld: D, stride: Tk * D });
  const gAt = (h0: number) => ({ at: addr(t.g) + h0 * Tq * Dv * 4, ld: Dv, stride: Tq * Dv });
  withScratch(L, 2, ([p, ds]) =>
    forGroups(L, (h0, n) => {
      const S = { at: p, ld: Tk, stride: Tq * Tk }, dS = { at: ds, ld: Tk, stride: Tq * Tk };
      probabilities(L, h0, n, t.q, t.k, p);
      // dV = P^T dO
      headsGemm(n, [Tk, Dv, Tq], { ...S, trans: true }, gAt(h0), {
        at: addr(t.dv) + h0 * Tk * Dv * 4,
        ld: Dv,
        stride: Tk * Dv,
      });
      // dP = dO V^T
      headsGemm(n, [Tq, Tk, Dv], gAt(h0), {
        at: addr(t.v) + h0 * Tk * Dv * 4,
        ld: Dv,
        stride: Tk * Dv,
        trans: true,
      }, dS);
      // dS = scale * P * (dP - rowsum(dP * P)): the softmax gradient, in place.
      const P = scores(p, n, L), dP = scores(ds, n, L);
      softmaxGradRows(P, dP, dP, {
        rows: n * Tq,
        L: Tk,
        scale,
        log: false,
        causalTq: spec.causal ? Tq : 0,
      });
      // dQ = dS K; dK = dS^T Q
      headsGemm(n, [Tq, D, Tk], dS, kAt(t.k, h0), qAt(t.dq, h0));
      headsGemm(n, [Tk, D, Tq], { ...dS, trans: true }, qAt(t.q, h0), kAt(t.dk, h0));
    }));
}
