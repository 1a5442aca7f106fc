/**
 * Reductions over any set of axes (sum, mean, max, var) with their gradients; the kernels are in
 * `kernels/reduce.ts`, as is `sumTo`, which folds a broadcast gradient back to an input's shape.
 */
import { record } from "../autograd.ts";
import { expectDType, normalizeAxes } from "../shape.ts";
import type { Tensor } from "../tensor.ts";
import { reduceKernel, sumTo } from "../kernels/reduce.ts";
import { expand, reshape } from "./view.ts";
import { affine, equal, mul, square, sub } from "./elementwise.ts";

export { sumTo };

function finish(t: Tensor, x: Tensor, axes: number[], keepdim: boolean): Tensor {
  if (keepdim) return t;
  return reshape(t, x.shape.filter((_, i) => !axes.includes(i)));
}

/**
 * Sum over `axes` (default: all).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function totals(x: Tensor): [Tensor, Tensor] {
 *   return [sum(x), sum(x, -1, true)]; // x [n, m]: shape [] and shape [n, 1]
 * }
 * ```
 */
export function sum(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  expectDType("sum", "x", x, "f32");
  const ax = normalizeAxes("sum", axes, x.rank);
  const kept = reduceKernel("sum", x, ax);
  record(kept, "sum", [x], (g) => [expandTo(g, x.shape)]);
  return finish(kept, x, ax, keepdim);
}

/** Mean over `axes` (default: all). */
export function mean(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  const ax = normalizeAxes("mean", axes, x.rank);
  const count = ax.reduce((n, a) => n * x.shape[a], 1);
  return affine(sum(x, ax, keepdim), 1 / Math.max(count, 1), 0);
}

/** Maximum over `axes`; the gradient goes to every position equal to the maximum. */
export function max(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  expectDType("max", "x", x, "f32");
  const ax = normalizeAxes("max", axes, x.rank);
  const kept = reduceKernel("max", x, ax);
  record(kept, "max", [x], (g) => [mul(expandTo(g, x.shape), equal(x, kept))]);
  return finish(kept, x, ax, keepdim);
}

/** Variance over `axes` (biased by default, as LayerNorm/BatchNorm use; `unbiased` divides by n-1). */
export function variance(
  x: Tensor,
  axes?: number | number[],
  keepdim = false,
  unbiased = false,
): Tensor {
  const ax = normalizeAxes("var", axes, x.rank);
  const count = ax.reduce((n, a) => n * x.shape[a], 1);
  const centered = sub(x, mean(x, ax, true));
  const s = sum(square(centered), ax, keepdim);
  return affine(s, 1 / Math.max(unbiased ? count - 1 : count, 1), 0);
}

function expandTo(g: Tensor, shape: readonly number[]): Tensor {
  return expand(g, shape);
}
