/**
 * Gradient clipping by the global L2 norm (Pascanu et al. 2013), entirely with tensor ops: the
 * norm is never read back to the host, and every gradient is scaled in place by
 * min(1, maxNorm / (norm + 1e-6)) (`clipScale`), as PyTorch's `clip_grad_norm_`.
 */
import {
  add,
  clipScale,
  noGrad,
  reshape,
  scope,
  sqrt,
  square,
  sum,
  type Tensor,
  zeros,
} from "../tensor/mod.ts";

/**
 * Scales the gradients of `params` so their global L2 norm is at most `maxNorm`. Returns the
 * norm before clipping as a one-element tensor (shape [1]); read it only when you need it.
 * Parameters without a gradient are ignored.
 *
 * @example
 * ```ts
 * import type { Module } from "../nn/mod.ts";
 * import type { Adam } from "./adam.ts";
 * function clippedStep(model: Module, opt: Adam): void {
 *   const norm = clipGradNorm(model.parameters(), 1.0); // [1], the norm before clipping
 *   opt.step();
 *   norm.dispose();
 * }
 * ```
 */
export function clipGradNorm(params: Tensor[], maxNorm: number): Tensor {
  if (!(maxNorm > 0)) throw new Error(`clipGradNorm: maxNorm must be positive, got ${maxNorm}.`);
  return noGrad(() =>
    scope(() => {
      const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
      let total = zeros([1]);
      for (const g of grads) total = add(total, reshape(sum(square(g)), [1]));
      const norm = sqrt(total);
      for (const g of grads) clipScale(g, norm, maxNorm);
      return norm;
    })
  );
}
