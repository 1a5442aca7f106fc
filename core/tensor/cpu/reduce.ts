/**
 * Reductions of the CPU backend (sum and max over any set of axes). The input is read once, in
 * memory order; sums accumulate in float64, so the result is the exactly rounded sum for any
 * realistic length (the GPU's tree reduction in float32 is slightly less accurate). Large sums
 * run in the WebAssembly kernel `sum_rows` (`assembly/reduce.ts`, four lanes, every thread) on
 * the same plan; small ones and max stay with the loops here.
 */
import { cpu } from "../backend.ts";
import { kernelsFor, threadsFor } from "./parallel.ts";

/**
 * Inputs of at least this many elements are summed by the WebAssembly kernel; below it the
 * setup (scratch, views, the call) is not worth it next to the loop.
 */
const KERNEL_MIN_ELEMENTS = 4096;

/** Dimensions merged into runs that are all reduced or all kept, outermost first. */
interface ReducePlan {
  dims: number[];
  reduced: boolean[];
  /** Output element stride of each run (0 for reduced runs). */
  outStrides: number[];
}

function planReduce(shape: readonly number[], axes: readonly number[]): ReducePlan {
  const dims: number[] = [], reduced: boolean[] = [];
  shape.forEach((d, i) => {
    if (d === 1) return; // size-1 dims change nothing, reduced or not
    const r = axes.includes(i);
    if (dims.length > 0 && reduced[dims.length - 1] === r) dims[dims.length - 1] *= d;
    else {
      dims.push(d);
      reduced.push(r);
    }
  });
  if (dims.length === 0) {
    dims.push(1);
    reduced.push(false);
  }
  const outStrides = new Array<number>(dims.length);
  let s = 1;
  for (let k = dims.length - 1; k >= 0; k--) {
    outStrides[k] = reduced[k] ? 0 : s;
    if (!reduced[k]) s *= dims[k];
  }
  return { dims, reduced, outStrides };
}

/**
 * Reduces `x` (shape `shape`) over `axes` into `out` (the kept elements in order) with `kind`.
 * Empty reductions give 0 (sum) or -Infinity (max).
 */
export function reduceInto(
  kind: "sum" | "max",
  x: Float32Array,
  shape: readonly number[],
  axes: readonly number[],
  out: Float32Array,
): void {
  if (out.length === 0) return;
  if (kind === "sum" && x.length >= KERNEL_MIN_ELEMENTS) {
    if (sumKernel(x, planReduce(shape, axes), out)) return;
  }
  const acc = new Float64Array(out.length).fill(kind === "sum" ? 0 : -Infinity);
  if (x.length > 0) {
    const plan = planReduce(shape, axes);
    if (kind === "sum") sumRows(x, plan, acc);
    else maxRows(x, plan, acc);
  }
  out.set(acc);
}

/**
 * Walks `x` row by row (the innermost run) while an odometer over the outer runs tracks the
 * output offset: a reduced inner run folds into one accumulator, a kept one into a row of them.
 */
function sumRows(x: Float32Array, plan: ReducePlan, acc: Float64Array): void {
  const { dims, outStrides } = plan;
  const last = dims.length - 1;
  const inner = dims[last], innerReduced = plan.reduced[last];
  const count = new Int32Array(dims.length);
  let o = 0;
  for (let i = 0; i < x.length; i += inner) {
    if (innerReduced) {
      let s = 0;
      for (let j = 0; j < inner; j++) s += x[i + j];
      acc[o] += s;
    } else {
      for (let j = 0; j < inner; j++) acc[o + j] += x[i + j];
    }
    o = nextOffset(dims, outStrides, count, o);
  }
}

/**
 * `sumRows` by the WebAssembly kernel: each thread sums its range of rows into its own float64
 * accumulators, added up here. Returns false, having done nothing, where the kernels are not
 * loaded.
 */
function sumKernel(x: Float32Array, plan: ReducePlan, out: Float32Array): boolean {
  const k = kernelsFor(x, out);
  if (!k) return false;
  const { dims, outStrides, reduced } = plan;
  const outer = dims.length - 1, inner = dims[outer], nOut = out.length;
  const threads = threadsFor(k, x.length);
  // Addresses first: growing the scratch may replace the memory's buffer (and the views).
  const xAt = x.byteOffset, outAt = out.byteOffset;
  // Scratch: outer dims, their output strides, odometer digits per thread (i32), then the
  // threads' float64 accumulators.
  const header = Math.ceil(((2 + threads) * outer * 4) / 8) * 8;
  const base = k.scratch(header + threads * nOut * 8);
  const buffer = cpu().mem.buffer;
  const ints = new Int32Array(buffer, base, 2 * outer);
  ints.set(dims.slice(0, outer));
  ints.set(outStrides.slice(0, outer), outer);
  const acc = new Float64Array(buffer, base + header, threads * nOut).fill(0);
  const rowsArgs = [xAt, x.length / inner, inner, reduced[outer] ? 1 : 0];
  const planArgs = [outer, base, base + 4 * outer, base + 8 * outer, base + header, nOut];
  k.pool.run("sum_rows", [...rowsArgs, ...planArgs], threads);
  const result = new Float32Array(buffer, outAt, nOut);
  for (let i = 0; i < nOut; i++) {
    let s = acc[i];
    for (let t = 1; t < threads; t++) s += acc[t * nOut + i];
    result[i] = s;
  }
  return true;
}

/** As `sumRows`, with max; NaN propagates (Math.max). */
function maxRows(x: Float32Array, plan: ReducePlan, acc: Float64Array): void {
  const { dims, outStrides } = plan;
  const last = dims.length - 1;
  const inner = dims[last], innerReduced = plan.reduced[last];
  const count = new Int32Array(dims.length);
  let o = 0;
  for (let i = 0; i < x.length; i += inner) {
    if (innerReduced) {
      let m = acc[o];
      for (let j = 0; j < inner; j++) m = Math.max(m, x[i + j]);
      acc[o] = m;
    } else {
      for (let j = 0; j < inner; j++) acc[o + j] = Math.max(acc[o + j], x[i + j]);
    }
    o = nextOffset(dims, outStrides, count, o);
  }
}

/** Odometer step over all but the innermost run; returns the next row's output offset. */
function nextOffset(dims: number[], outStrides: number[], count: Int32Array, o: number): number {
  for (let d = dims.length - 2; d >= 0; d--) {
    o += outStrides[d];
    if (++count[d] < dims[d]) return o;
    count[d] = 0;
    o -= outStrides[d] * dims[d];
  }
  return o;
}
