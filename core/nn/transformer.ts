/** The pre-LN transformer block (Radford et al. 2019; Xiong et al. 2020). */
import type { Tensor } from "../tensor/mod.ts";
import { add } from "../tensor/mod.ts";
import { MultiheadAttention } from "./attention.ts";
import { Linear } from "./linear.ts";
import { Module } from "./module.ts";
import { LayerNorm } from "./norm.ts";

/** Options for `TransformerBlock`. */
export interface TransformerBlockOptions {
  /** Hidden width of the MLP as a multiple of dim (default 4). */
  mlpRatio?: number;
  /** Causal self-attention (default false). */
  causal?: boolean;
  /** Width of GLIDE-style context tokens passed to `forward` (see `MultiheadAttention`). */
  kvDim?: number;
}

/**
 * x + attn(ln1(x)), then x + mlp(ln2(x)) with mlp = Linear(dim, ratio * dim, GELU) -> Linear.
 * Children: `ln1`, `attn`, `ln2`, `fc1`, `fc2` (their parameter names in checkpoints).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function encode(x: Tensor): Tensor {
 *   const block = new TransformerBlock(256, 8, { causal: true });
 *   return block.forward(x); // [B, T, 256]
 * }
 * ```
 */
export class TransformerBlock extends Module {
  /** LayerNorm before attention. */
  readonly ln1: LayerNorm;
  /** Self-attention. */
  readonly attn: MultiheadAttention;
  /** LayerNorm before the MLP. */
  readonly ln2: LayerNorm;
  /** MLP input layer (GELU). */
  readonly fc1: Linear;
  /** MLP output layer. */
  readonly fc2: Linear;
  /** Whether attention is causal. */
  readonly causal: boolean;

  /** Creates the object; parameters are drawn from the global generator in a fixed order. */
  constructor(readonly dim: number, readonly heads: number, opts: TransformerBlockOptions = {}) {
    super();
    const hidden = Math.round((opts.mlpRatio ?? 4) * dim);
    this.causal = opts.causal ?? false;
    this.ln1 = this.addModule("ln1", new LayerNorm(dim));
    this.attn = this.addModule("attn", new MultiheadAttention(dim, heads, { kvDim: opts.kvDim }));
    this.ln2 = this.addModule("ln2", new LayerNorm(dim));
    this.fc1 = this.addModule("fc1", new Linear(dim, hidden));
    this.fc2 = this.addModule("fc2", new Linear(hidden, dim));
  }

  /** x [B, T, dim] -> [B, T, dim]; `mask` is additive (see `MultiheadAttention`). */
  forward(x: Tensor, opts: { mask?: Tensor | null; context?: Tensor | null } = {}): Tensor {
    const a = this.attn.forward(this.ln1.forward(x), {
      causal: this.causal,
      mask: opts.mask,
      context: opts.context,
    });
    const h = add(x, a);
    return add(h, this.fc2.forward(this.fc1.forward(this.ln2.forward(h), "gelu")));
  }
}
