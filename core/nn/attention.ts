/** Multi-head attention (Vaswani et al. 2017) with optional GLIDE-style context tokens. */
import {
  concat,
  mergeHeads,
  scaledDotProductAttention,
  splitHeads,
  type Tensor,
} from "../tensor/mod.ts";
import { Linear } from "./linear.ts";
import { Module } from "./module.ts";

/** Options for `MultiheadAttention`. */
export interface MultiheadAttentionOptions {
  /**
   * Width of extra context tokens (e.g. encoded text). When set, the layer owns `kContext` and
   * `vContext` projections (kvDim -> dim) whose keys/values are appended after the sequence's own,
   * as GLIDE's AttentionBlock does with `encoder_kv` (Nichol et al. 2022).
   */
  kvDim?: number;
  /** Biases on the projections (default true). */
  bias?: boolean;
}

/** Arguments of `MultiheadAttention.forward`. */
export interface AttentionForwardOptions {
  /** Context tokens [B, S, kvDim], attended to after x's own T tokens (needs `kvDim`). */
  context?: Tensor | null;
  /** Query i attends only to keys j <= i. Not combinable with `context`. */
  causal?: boolean;
  /** Additive f32 mask broadcastable to [B, heads, T, T (+ S)]; -Infinity drops a key. */
  mask?: Tensor | null;
}

/**
 * Self-attention over x [B, T, dim] with `heads` heads of width dim / heads: q, k, v and output
 * projections (`q`, `k`, `v`, `out`, each a `Linear(dim, dim)`), softmax(q k^T / sqrt(d) + mask) v.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function attend(x: Tensor, textTokens: Tensor): Tensor {
 *   const attn = new MultiheadAttention(128, 4, { kvDim: 64 });
 *   return attn.forward(x, { context: textTokens }); // [B, T, 128]
 * }
 * ```
 */
export class MultiheadAttention extends Module {
  /** Query projection. */
  readonly q: Linear;
  /** Key projection. */
  readonly k: Linear;
  /** Value projection. */
  readonly v: Linear;
  /** Output projection. */
  readonly out: Linear;
  /** Key projection of context tokens (null without kvDim). */
  readonly kContext: Linear | null;
  /** Value projection of context tokens (null without kvDim). */
  readonly vContext: Linear | null;

  /** Creates the object; parameters are drawn from the global generator in a fixed order. */
  constructor(readonly dim: number, readonly heads: number, opts: MultiheadAttentionOptions = {}) {
    super();
    if (!Number.isInteger(heads) || heads < 1 || dim % heads !== 0) {
      throw new Error(`MultiheadAttention: ${heads} heads do not divide the width ${dim}.`);
    }
    const bias = opts.bias ?? true;
    this.q = this.addModule("q", new Linear(dim, dim, { bias }));
    this.k = this.addModule("k", new Linear(dim, dim, { bias }));
    this.v = this.addModule("v", new Linear(dim, dim, { bias }));
    this.out = this.addModule("out", new Linear(dim, dim, { bias }));
    const kvDim = opts.kvDim;
    this.kContext = kvDim ? this.addModule("kContext", new Linear(kvDim, dim, { bias })) : null;
    this.vContext = kvDim ? this.addModule("vContext", new Linear(kvDim, dim, { bias })) : null;
  }

  /** x [B, T, dim] -> [B, T, dim]. */
  forward(x: Tensor, opts: AttentionForwardOptions = {}): Tensor {
    const { context = null, causal = false, mask = null } = opts;
    if (x.rank !== 3 || x.shape[2] !== this.dim) {
      throw new Error(`MultiheadAttention: input must be [B, T, ${this.dim}], got [${x.shape}].`);
    }
    let k = this.k.forward(x), v = this.v.forward(x);
    if (context) {
      if (!this.kContext || !this.vContext) {
        throw new Error("MultiheadAttention: got a context but the layer was built without kvDim.");
      }
      if (causal) {
        throw new Error(
          "MultiheadAttention: causal attention with context tokens is not supported.",
        );
      }
      if (
        context.rank !== 3 || context.shape[0] !== x.shape[0] ||
        context.shape[2] !== this.kContext.inFeatures
      ) {
        throw new Error(
          `MultiheadAttention: context must be [${
            x.shape[0]
          }, S, ${this.kContext.inFeatures}], got [${context.shape}].`,
        );
      }
      k = concat([k, this.kContext.forward(context)], 1);
      v = concat([v, this.vContext.forward(context)], 1);
    }
    const h = this.heads;
    const y = scaledDotProductAttention(
      splitHeads(this.q.forward(x), h),
      splitHeads(k, h),
      splitHeads(v, h),
      {
        causal,
        mask,
      },
    );
    return this.out.forward(mergeHeads(y));
  }
}
