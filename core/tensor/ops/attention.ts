/**
 * Scaled dot-product attention (Vaswani et al. 2017): softmax(q k^T * scale + mask) v, by two
 * paths with one contract: the fused FlashAttention kernels (flash_attention.ts; O(T) memory)
 * and the composed reference (`attentionReference`: the GEMM with a transpose flag, the fused
 * softmax kernel, the GEMM; gradients from the composition). `scaledDotProductAttention`
 * chooses by applicability and size (see `useFused`). Plus `splitHeads`/`mergeHeads`.
 */
import { isGradEnabled } from "../autograd.ts";
import { broadcastShapes, expectDType } from "../shape.ts";
import { sizeOf, type Tensor } from "../tensor.ts";
import { add, affine } from "./elementwise.ts";
import { matmul } from "./matmul.ts";
import { FLASH_MAX_DIM, flashAttention } from "./flash_attention.ts";
import { softmax } from "./softmax.ts";
import { expand, permute, reshape } from "./view.ts";

/** Options of `scaledDotProductAttention`. */
export interface AttentionOptions {
  /** Query i attends to keys j <= i + (Tk - Tq) (ends aligned; see softmax.ts). */
  causal?: boolean;
  /**
   * Additive f32 mask broadcastable to [..., Tq, Tk] (use -Infinity to drop keys, e.g. dropped
   * condition tokens). A row whose keys are all -Infinity yields NaN, as in PyTorch.
   */
  mask?: Tensor | null;
  /** Multiplier of q k^T; default 1 / sqrt(D). */
  scale?: number;
}

/**
 * softmax(q k^T * scale + mask) v for q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv]
 * (typically [B, H, T, D]); returns [..., Tq, Dv].
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function causalAttention(q: Tensor, k: Tensor, v: Tensor): Tensor {
 *   return scaledDotProductAttention(q, k, v, { causal: true }); // [B, H, T, Dv]
 * }
 * ```
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): Tensor {
  const a = checkAttention(q, k, v, opts);
  return useFused(a, q, k, v) ? fused(q, k, v, a) : composed(q, k, v, a);
}

/**
 * The composed reference path (GEMM + fused softmax + GEMM), same contract as
 * `scaledDotProductAttention`. Kept for tests and as the fallback of the fused kernel.
 */
export function attentionReference(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): Tensor {
  return composed(q, k, v, checkAttention(q, k, v, opts));
}

/**
 * The fused (FlashAttention) path, same contract as `scaledDotProductAttention`; throws where it
 * does not apply (head dimension over 128, a mask that needs a gradient, causal with Tk < Tq).
 */
export function attentionFused(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  opts: AttentionOptions = {},
): Tensor {
  const a = checkAttention(q, k, v, opts);
  if (!fusedApplies(a)) {
    throw new Error(
      `attentionFused: the fused kernel does not apply to q [${q.shape}], k [${k.shape}], ` +
        `v [${v.shape}] (needs D, Dv <= ${FLASH_MAX_DIM}, batch*heads <= 65535, Tk >= 1, ` +
        `Tk >= Tq when causal, and a mask without gradient).`,
    );
  }
  return fused(q, k, v, a);
}

interface Checked {
  batch: number[];
  Tq: number;
  Tk: number;
  D: number;
  Dv: number;
  causal: boolean;
  mask: Tensor | null;
  scale: number;
}

function checkAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Checked {
  const op = "scaledDotProductAttention";
  for (const [name, t] of [["q", q], ["k", k], ["v", v]] as const) {
    expectDType(op, name, t, "f32");
    if (t.rank < 2) {
      throw new Error(`${op}: ${name} must have at least 2 dimensions, got shape [${t.shape}].`);
    }
  }
  const D = q.shape[q.rank - 1], Tq = q.shape[q.rank - 2];
  const Tk = k.shape[k.rank - 2];
  if (k.shape[k.rank - 1] !== D || v.shape[v.rank - 2] !== Tk) {
    throw new Error(
      `${op}: shapes do not match: q [${q.shape}], k [${k.shape}], v [${v.shape}] ` +
        `(need q [..., Tq, D], k [..., Tk, D], v [..., Tk, Dv]).`,
    );
  }
  const batch = broadcastShapes(
    op,
    broadcastShapes(op, q.shape.slice(0, -2), k.shape.slice(0, -2)),
    v.shape.slice(0, -2),
  );
  const { causal = false, mask = null, scale = 1 / Math.sqrt(D) } = opts;
  if (mask) {
    expectDType(op, "mask", mask, "f32");
    try {
      broadcastShapes(op, mask.shape, [...batch, Tq, Tk]);
    } catch {
      throw new Error(
        `${op}: mask [${mask.shape}] does not broadcast to scores [${[...batch, Tq, Tk]}].`,
      );
    }
  }
  return { batch: [...batch], Tq, Tk, D, Dv: v.shape[v.rank - 1], causal, mask, scale };
}

function fusedApplies(a: Checked): boolean {
  const BH = sizeOf(a.batch);
  return a.D >= 1 && a.D <= FLASH_MAX_DIM && a.Dv <= FLASH_MAX_DIM && BH <= 65535 &&
    a.Tk >= 1 && (!a.causal || a.Tk >= a.Tq) && !(a.mask?.requiresGrad ?? false);
}

/** Score-matrix size (BH * Tq * Tk elements, 64 MiB of f32) from which training uses the fused path. */
export const FUSED_TRAINING_MIN_SCORES = 1 << 24;

/**
 * Whether `scaledDotProductAttention` takes the fused path (where it applies). Without a tape
 * (sampling, evaluation) always: it is as fast as the composed path and never materialises the
 * [Tq, Tk] scores. With a tape only from FUSED_TRAINING_MIN_SCORES: on llvmpipe the composed
 * backward (three GEMMs and a softmax gradient) is about 1.25x faster at 1024 tokens x 64
 * channels, so the fused kernels are chosen for the O(T) memory where the composed path would
 * keep two score-sized tensors per head alive until the backward pass.
 */
function useFused(a: Checked, q: Tensor, k: Tensor, v: Tensor): boolean {
  if (!fusedApplies(a)) return false;
  const taped = isGradEnabled() && (q.requiresGrad || k.requiresGrad || v.requiresGrad);
  return !taped || sizeOf(a.batch) * a.Tq * a.Tk >= FUSED_TRAINING_MIN_SCORES;
}

function fused(q: Tensor, k: Tensor, v: Tensor, a: Checked): Tensor {
  const { batch, Tq, Tk, D, Dv } = a;
  return flashAttention(
    expand(q, [...batch, Tq, D]),
    expand(k, [...batch, Tk, D]),
    expand(v, [...batch, Tk, Dv]),
    { BH: sizeOf(batch), Tq, Tk, D, Dv, scale: a.scale, causal: a.causal, batch, mask: a.mask },
  );
}

function composed(q: Tensor, k: Tensor, v: Tensor, a: Checked): Tensor {
  const { causal, mask, scale } = a;
  let scores = matmul(q, k, { transB: true });
  let p: Tensor;
  if (mask) {
    // Scale first, then add the mask (so -inf stays -inf and finite masks are not rescaled).
    scores = add(softmaxScale(scores, scale), mask);
    p = softmax(scores, -1, { causal });
  } else {
    p = softmax(scores, -1, { causal, scale });
  }
  return matmul(p, v);
}

function softmaxScale(x: Tensor, scale: number): Tensor {
  return scale === 1 ? x : affine(x, scale, 0);
}

/** [B, T, H * D] -> [B, H, T, D]. */
export function splitHeads(x: Tensor, heads: number): Tensor {
  if (x.rank !== 3 || !Number.isInteger(heads) || heads < 1 || x.shape[2] % heads !== 0) {
    throw new Error(
      `splitHeads: cannot split input [${x.shape}] into ${heads} heads (need [B, T, H * D]).`,
    );
  }
  const [B, T, E] = x.shape;
  return permute(reshape(x, [B, T, heads, E / heads]), [0, 2, 1, 3]);
}

/** [B, H, T, D] -> [B, T, H * D] (inverse of `splitHeads`). */
export function mergeHeads(x: Tensor): Tensor {
  if (x.rank !== 4) {
    throw new Error(`mergeHeads: input must be [B, H, T, D], got shape [${x.shape}].`);
  }
  const [B, H, T, D] = x.shape;
  return reshape(permute(x, [0, 2, 1, 3]), [B, T, H * D]);
}
