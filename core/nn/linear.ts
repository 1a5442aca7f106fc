/** A fully connected layer. */
import { type Activation, linear, type Tensor } from "../tensor/mod.ts";
import { Module, uniformInit } from "./module.ts";

/** Options for `Linear`. */
export interface LinearOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
}

/**
 * y = act(x W^T + b) over the last dimension, W of shape [outFeatures, inFeatures]. Weights and
 * bias are initialised U(-1/sqrt(inFeatures), 1/sqrt(inFeatures)) as PyTorch's `nn.Linear`
 * (kaiming_uniform with a = sqrt(5) reduces to this bound). The bias and activation are fused
 * into the GEMM epilogue.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function project(x: Tensor): Tensor {
 *   const fc = new Linear(64, 256);
 *   return fc.forward(x, "gelu"); // [..., 256]
 * }
 * ```
 */
export class Linear extends Module {
  /** Learned weight. */
  readonly weight: Tensor;
  /** Learned bias (null when disabled). */
  readonly bias: Tensor | null;

  /** Creates the object; parameters are drawn from the global generator in a fixed order. */
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.addParameter("weight", uniformInit([outFeatures, inFeatures], bound));
    this.bias = (opts.bias ?? true)
      ? this.addParameter("bias", uniformInit([outFeatures], bound))
      : null;
  }

  /** Applies the layer to x [..., inFeatures] -> [..., outFeatures]. */
  forward(x: Tensor, activation: Activation = "none"): Tensor {
    return linear(x, this.weight, this.bias, activation);
  }
}
