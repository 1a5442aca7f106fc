/**
 * Gradient clipping by the global L2 norm (Pascanu et al. 2013), entirely with tensor ops: the
 * norm is never read back to the host, and every gradient is scaled in place by
 * min(1, maxNorm / (norm + 1e-6)) (`clipScale`), as PyTorch's `clip_grad_norm_`. `gradNorm` alone
 * gives the norm for `Adam.step`'s folded clipping, which leaves the gradients as they are and
 * saves the scaling launches (the training loop's path).
 */
import {
  accumulateSquares,
  clipScale,
  noGrad,
  scope,
  sqrt,
  type Tensor,
  zeros,
} from "../tensor/mod.ts";

/**
 * The global L2 norm of the gradients of `params` as a one-element tensor (shape [1]), left on
 * the device: a zero, one launch per gradient (`accumulateSquares`) and a square root. Parameters
 * without a gradient are ignored.
 */
export function gradNorm(params: Tensor[]): Tensor {
  return noGrad(() =>
    scope(() => {
      const total = zeros([1]);
      for (const p of params) if (p.grad) accumulateSquares(total, p.grad);
      return sqrt(total);
    })
  );
}

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
  const norm = gradNorm(params);
  noGrad(() => {
    for (const p of params) if (p.grad) clipScale(p.grad, norm, maxNorm);
  });
  return norm;
}
