/**
 * Shape arithmetic shared by the ops, and the argument checks that turn bad input into errors
 * naming the op, the shapes and the argument (never a WGSL validation dump).
 */
import type { Tensor } from "./tensor.ts";

/** Row-major strides of a shape. */
export function stridesOf(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/** NumPy broadcasting of two shapes; throws naming the op when they are incompatible. */
export function broadcastShapes(op: string, a: readonly number[], b: readonly number[]): number[] {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(
        `${op}: shapes [${a}] and [${b}] cannot be broadcast together (dimension ${i}).`,
      );
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Resolves a possibly negative axis; throws naming the op when out of range. */
export function normalizeAxis(op: string, axis: number, rank: number): number {
  if (!Number.isInteger(axis) || axis < -rank || axis >= Math.max(rank, 1)) {
    throw new Error(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}.`);
  }
  return axis < 0 ? axis + rank : axis;
}

/** Resolves a list of axes (undefined = all), sorted and unique. */
export function normalizeAxes(
  op: string,
  axes: number | number[] | undefined,
  rank: number,
): number[] {
  if (axes === undefined) return [...Array(rank).keys()];
  const list = (Array.isArray(axes) ? axes : [axes]).map((a) => normalizeAxis(op, a, rank));
  const unique = [...new Set(list)].sort((x, y) => x - y);
  if (unique.length !== list.length) throw new Error(`${op}: repeated axis in [${axes}].`);
  return unique;
}

/** Throws unless the tensor has the dtype. */
export function expectDType(op: string, name: string, t: Tensor, dtype: Tensor["dtype"]): void {
  if (t.dtype !== dtype) {
    throw new Error(
      `${op}: argument "${name}" must be ${dtype}, got ${t.dtype} with shape [${t.shape}].`,
    );
  }
}

/** Throws unless the tensor has the rank. */
export function expectRank(op: string, name: string, t: Tensor, rank: number): void {
  if (t.rank !== rank) {
    throw new Error(`${op}: argument "${name}" must have rank ${rank}, got shape [${t.shape}].`);
  }
}

/** Whether two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
