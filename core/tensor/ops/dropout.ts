/**
 * Inverted dropout (Srivastava et al. 2014): zero each element with probability p and scale the
 * survivors by 1 / (1 - p), so the expectation is unchanged; identity outside training.
 */
import { bernoulli } from "../creation.ts";
import { expectDType } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { affine, mul } from "./elementwise.ts";

/**
 * Dropout with drop probability `p` when `training` (the mask comes from the seeded GPU
 * generator; pass `seed` for a fixed mask).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function regularised(x: Tensor, model: { training: boolean }): Tensor {
 *   return dropout(x, 0.1, model.training); // x itself when not training
 * }
 * ```
 */
export function dropout(x: Tensor, p: number, training: boolean, seed?: number): Tensor {
  expectDType("dropout", "x", x, "f32");
  if (!(p >= 0 && p <= 1)) {
    throw new Error(`dropout: probability ${p} is not in [0, 1] (input [${x.shape}]).`);
  }
  if (!training || p === 0) return x;
  if (p === 1) return affine(x, 0, 0);
  const keep = bernoulli(x.shape, 1 - p, seed);
  const mask = affine(keep, 1 / (1 - p), 0);
  keep.dispose();
  return mul(x, mask);
}
