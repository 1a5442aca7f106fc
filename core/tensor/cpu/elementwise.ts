/**
 * Elementwise loops of the CPU backend: map a unary function (and its gradient) over a tensor,
 * and combine two or three tensors under NumPy broadcasting. The functions applied per element
 * are the TypeScript twins of the WGSL expressions in `ops/elementwise.ts`; the loops here only
 * walk the memory.
 *
 * Broadcasting is planned once per call (`planBroadcast`): dimensions of size 1 in the output are
 * dropped and neighbouring dimensions that every operand walks the same way are merged, so
 * `[B, C, H, W] + [1, C, 1, 1]` becomes a 3-D walk whose innermost row reads the bias with
 * stride 0, and `[N, D] + [D]` a 2-D walk whose rows read both operands with stride 1.
 *
 * Speed: a loop that calls a different `f` for every op is a megamorphic call site, which V8
 * cannot inline, so every element pays a call and boxes its argument and result (measured
 * 0.6 ns/element when one op owns the loop, 7-10 when several share it). The hottest ops,
 * tensor-scalar affine and binary arithmetic, therefore have loops of their own below; the
 * activations (exp, sigmoid, SiLU, GELU, ReLU) have WebAssembly SIMD kernels
 * (`assembly/unary.ts`: a vector exp instead of Math.exp's ~20 ns per call), see `unaryKernel`,
 * and so does binary arithmetic on same-shape operands and per-channel or row-vector broadcasts
 * (`assembly/binary.ts`, `arithmeticKernel`): four lanes and every thread, where the row loops
 * run on one.
 */
import { kernelsFor, runKernel } from "./parallel.ts";

/** The activations with a WebAssembly kernel, by their op codes in `assembly/unary.ts`. */
const UNARY_KERNELS = { exp: 0, sigmoid: 1, silu: 2, gelu: 3, relu: 4 } as const;
export type KernelUnary = keyof typeof UNARY_KERNELS;

/**
 * y = op(x) by the WebAssembly kernel (on the thread pool when large). Returns false, having
 * done nothing, where the kernels are not loaded: the caller's TypeScript loop runs instead.
 */
export function unaryKernel(op: KernelUnary, x: Float32Array, y: Float32Array): boolean {
  const k = kernelsFor(x, y);
  if (!k) return false;
  runKernel(
    k,
    "unary_forward",
    [UNARY_KERNELS[op], x.byteOffset, y.byteOffset, y.length],
    y.length,
  );
  return true;
}

/** gx = d op(x) / dx * g from x, the forward output y and g; as `unaryKernel`. */
export function unaryGradKernel(
  op: KernelUnary,
  x: Float32Array,
  y: Float32Array,
  g: Float32Array,
  gx: Float32Array,
): boolean {
  const k = kernelsFor(x, y, g, gx);
  if (!k) return false;
  const args = [UNARY_KERNELS[op], ...[x, y, g, gx].map((v) => v.byteOffset), gx.length];
  runKernel(k, "unary_backward", args, gx.length);
  return true;
}

/** The arithmetic ops with a WebAssembly kernel, by their op codes in `assembly/binary.ts`. */
const ARITHMETIC_KERNELS = { add: 0, sub: 1, mul: 2, div: 3 } as const;
export type KernelArithmetic = keyof typeof ARITHMETIC_KERNELS;

/**
 * How an operand of shape `shape` repeats over an output of shape `outShape` when it is a
 * periodic broadcast: output element i reads its element (i / inner) % period. That holds when
 * the operand's dimensions other than 1 (aligned right, as in NumPy) are one consecutive block of
 * the output's (dimensions of size 1 in the output aside): `period` is the block's size and
 * `inner` the output's size after it. A per-channel bias [1, C, 1, 1] over [B, C, H, W] gives
 * inner H W and period C; a row vector [D] over [N, D] gives inner 1 and period D. Null for
 * other broadcasts (e.g. [B, 1, W] over [B, H, W]).
 *
 * @example
 * ```ts
 * periodicBroadcast([8, 16, 4, 4], [1, 16, 1, 1]); // { inner: 16, period: 16 }
 * ```
 */
export function periodicBroadcast(
  outShape: readonly number[],
  shape: readonly number[],
): { inner: number; period: number } | null {
  const offset = outShape.length - shape.length;
  if (offset < 0) return null;
  // Walk the output's dimensions: broadcast ones, then the operand's block, then broadcast ones.
  let phase = 0; // 0 before the block, 1 in it, 2 after it
  let period = 1, inner = 1;
  for (let d = 0; d < outShape.length; d++) {
    const size = outShape[d];
    if (size === 1) continue;
    const own = d < offset ? 1 : shape[d - offset];
    if (own === size) {
      if (phase === 2) return null;
      phase = 1;
      period *= size;
    } else {
      if (own !== 1) return null;
      if (phase === 1) phase = 2;
      if (phase === 2) inner *= size;
    }
  }
  // No block: a scalar (or all-ones shape) repeats over the whole output.
  if (phase === 0) return { inner: outShape.reduce((x, y) => x * y, 1), period: 1 };
  return { inner, period };
}

/**
 * out = a op b by the WebAssembly kernels (on the thread pool when large), for operands of the
 * same size or one full operand and one periodic broadcast (`periodicBroadcast`). Returns false,
 * having done nothing, for other broadcasts or where the kernels are not loaded: the caller's
 * TypeScript loop (`mapBinary`) runs instead.
 */
export function arithmeticKernel(
  op: KernelArithmetic,
  a: Float32Array,
  aShape: readonly number[],
  b: Float32Array,
  bShape: readonly number[],
  out: Float32Array,
  outShape: readonly number[],
): boolean {
  const n = out.length;
  if (n === 0) return false;
  const code = ARITHMETIC_KERNELS[op];
  if (a.length === n && b.length === n) {
    const k = kernelsFor(a, b, out);
    if (!k) return false;
    runKernel(k, "binary_same", [code, a.byteOffset, b.byteOffset, out.byteOffset, n], n);
    return true;
  }
  const swapped = a.length !== n;
  const [full, bc, bcShape] = swapped ? [b, a, aShape] : [a, b, bShape];
  if (full.length !== n) return false;
  const plan = periodicBroadcast(outShape, bcShape);
  if (!plan || plan.period !== bc.length) return false;
  const k = kernelsFor(full, bc, out);
  if (!k) return false;
  const args = [code, swapped ? 1 : 0, full.byteOffset, bc.byteOffset, out.byteOffset, n];
  runKernel(k, "binary_broadcast", [...args, plan.inner, plan.period], n);
  return true;
}

/** y = f(x) */
export type UnaryFn = (x: number) => number;
/** d(loss)/dx from x, the forward output y and the incoming gradient g. */
export type UnaryGradFn = (x: number, y: number, g: number) => number;
/** out = f(a, b) */
export type BinaryFn = (a: number, b: number) => number;

/** y[i] = f(x[i]). */
export function mapUnary(x: Float32Array, y: Float32Array, f: UnaryFn): void {
  const n = y.length;
  for (let i = 0; i < n; i++) y[i] = f(x[i]);
}

/** y[i] = a x[i] + b: affine's own loop (every tensor-scalar add, sub, mul and div). */
export function mapAffine(x: Float32Array, y: Float32Array, a: number, b: number): void {
  const n = y.length;
  for (let i = 0; i < n; i++) y[i] = a * x[i] + b;
}

/** gx[i] = df(x[i], y[i], g[i]). */
export function mapUnaryGrad(
  x: Float32Array,
  y: Float32Array,
  g: Float32Array,
  gx: Float32Array,
  df: UnaryGradFn,
): void {
  const n = gx.length;
  for (let i = 0; i < n; i++) gx[i] = df(x[i], y[i], g[i]);
}

/**
 * A broadcast walk over an output: `dims` (outermost first, merged and without size-1
 * dimensions) and, per operand, its element stride along each of them (0 where it repeats).
 */
export interface BroadcastPlan {
  dims: number[];
  strides: number[][];
}

/** Plans reading each of `inputs` (shapes broadcastable to `out`) in the order of `out`. */
export function planBroadcast(
  out: readonly number[],
  inputs: readonly (readonly number[])[],
): BroadcastPlan {
  const rank = out.length;
  // Per operand: row-major strides over its own shape, 0 on repeated (size-1 or missing) dims.
  const full = inputs.map((shape) => {
    const s = new Array<number>(rank).fill(0);
    let stride = 1;
    for (let d = shape.length - 1; d >= 0; d--) {
      const od = d + rank - shape.length;
      s[od] = shape[d] === 1 ? 0 : stride;
      stride *= shape[d];
    }
    return s;
  });
  const dims: number[] = [];
  const strides: number[][] = inputs.map(() => []);
  for (let d = 0; d < rank; d++) {
    if (out[d] === 1) continue;
    const last = dims.length - 1;
    // Merge with the previous kept dimension when every operand continues its walk through it.
    const mergeable = last >= 0 &&
      full.every((s, k) => strides[k][last] === s[d] * out[d]);
    if (mergeable) {
      dims[last] *= out[d];
      full.forEach((s, k) => (strides[k][last] = s[d]));
    } else {
      dims.push(out[d]);
      full.forEach((s, k) => strides[k].push(s[d]));
    }
  }
  if (dims.length === 0) {
    dims.push(1);
    strides.forEach((s) => s.push(0));
  }
  return { dims, strides };
}

/**
 * Moves `offsets` (one per operand) to the start of the next row of a broadcast walk: an
 * odometer over all but the innermost dimension. `count` holds the odometer's digits.
 */
export function nextRow(plan: BroadcastPlan, count: Int32Array, offsets: Int32Array): void {
  const { dims, strides } = plan;
  for (let d = dims.length - 2; d >= 0; d--) {
    for (let k = 0; k < offsets.length; k++) offsets[k] += strides[k][d];
    if (++count[d] < dims[d]) return;
    count[d] = 0;
    for (let k = 0; k < offsets.length; k++) offsets[k] -= strides[k][d] * dims[d];
  }
}

/**
 * One row of a binary op with its own loop: `n` outputs from `o`, operands read from `ia` / `ib`
 * stepping by `sa` / `sb` (1, or 0 for an operand that repeats along the row).
 */
export type BinaryRow = (
  out: Float32Array,
  o: number,
  n: number,
  a: Float32Array,
  ia: number,
  sa: number,
  b: Float32Array,
  ib: number,
  sb: number,
) => void;

/** Rows of the four arithmetic ops (the formulas of their BinaryFn twins). */
export const ARITHMETIC_ROWS: Record<"add" | "sub" | "mul" | "div", BinaryRow> = {
  add: (out, o, n, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++) out[o + j] = a[ia + j * sa] + b[ib + j * sb];
  },
  sub: (out, o, n, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++) out[o + j] = a[ia + j * sa] - b[ib + j * sb];
  },
  mul: (out, o, n, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++) out[o + j] = a[ia + j * sa] * b[ib + j * sb];
  },
  div: (out, o, n, a, ia, sa, b, ib, sb) => {
    for (let j = 0; j < n; j++) out[o + j] = a[ia + j * sa] / b[ib + j * sb];
  },
};

/**
 * out = f(a, b) under broadcasting (`out` has the broadcast shape). `row`, when given, computes
 * whole rows with its own loop instead of calling `f` per element.
 */
export function mapBinary(
  a: Float32Array,
  aShape: readonly number[],
  b: Float32Array,
  bShape: readonly number[],
  out: Float32Array,
  outShape: readonly number[],
  f: BinaryFn,
  row?: BinaryRow,
): void {
  const n = out.length;
  if (n === 0) return;
  if (a.length === n && b.length === n) {
    if (row) return row(out, 0, n, a, 0, 1, b, 0, 1);
    // Same shape (the common case): one flat loop.
    for (let i = 0; i < n; i++) out[i] = f(a[i], b[i]);
    return;
  }
  const plan = planBroadcast(outShape, [aShape, bShape]);
  const inner = plan.dims[plan.dims.length - 1];
  const sa = plan.strides[0].at(-1)!, sb = plan.strides[1].at(-1)!;
  const count = new Int32Array(plan.dims.length);
  const off = new Int32Array(2);
  for (let o = 0; o < n; o += inner) {
    const ia = off[0], ib = off[1];
    if (row) row(out, o, inner, a, ia, sa, b, ib, sb);
    else if (sa === 1 && sb === 1) {
      for (let j = 0; j < inner; j++) out[o + j] = f(a[ia + j], b[ib + j]);
    } else if (sa === 1) {
      const bv = b[ib]; // b repeats along the row (a per-channel bias, a scalar, ...)
      for (let j = 0; j < inner; j++) out[o + j] = f(a[ia + j], bv);
    } else {
      const av = a[ia];
      for (let j = 0; j < inner; j++) out[o + j] = f(av, b[ib + j]);
    }
    nextRow(plan, count, off);
  }
}

/** out = cond != 0 ? a : b under broadcasting of all three. */
export function mapWhere(
  cond: Float32Array,
  condShape: readonly number[],
  a: Float32Array,
  aShape: readonly number[],
  b: Float32Array,
  bShape: readonly number[],
  out: Float32Array,
  outShape: readonly number[],
): void {
  const n = out.length;
  if (n === 0) return;
  const plan = planBroadcast(outShape, [condShape, aShape, bShape]);
  const inner = plan.dims[plan.dims.length - 1];
  const [sc, sa, sb] = plan.strides.map((s) => s.at(-1)!);
  const count = new Int32Array(plan.dims.length);
  const off = new Int32Array(3);
  for (let o = 0; o < n; o += inner) {
    const ic = off[0], ia = off[1], ib = off[2];
    for (let j = 0; j < inner; j++) {
      out[o + j] = cond[ic + j * sc] !== 0 ? a[ia + j * sa] : b[ib + j * sb];
    }
    nextRow(plan, count, off);
  }
}

// ---- Counter-based random numbers (twin of RNG_PRELUDE in creation.ts) ------------------------

/** The murmur3 32-bit finaliser, exactly as the WGSL `fmix` (u32 wrap-around via Math.imul). */
export function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The WGSL `rand_u32(k0, k1, i)`: a uniform u32, bit-identical to the GPU's. */
export function randU32(k0: number, k1: number, i: number): number {
  const inner = (fmix((i ^ k0) >>> 0) + k1 + 0x9e3779b9) >>> 0;
  return fmix((fmix(inner) ^ Math.imul(k0, 0x27d4eb2d)) >>> 0);
}

/** The WGSL `rand_unit`: (24 bits + 0.5) / 2^24 with the addition rounded to float32 as there. */
export function randUnit(k0: number, k1: number, i: number): number {
  return Math.fround((randU32(k0, k1, i) >>> 8) + 0.5) / 16777216;
}

/** Uniform [0, 1): the top 24 bits over 2^24 (exact in float32, identical to the GPU). */
export function fillRand(out: Float32Array, k0: number, k1: number): void {
  for (let i = 0; i < out.length; i++) out[i] = (randU32(k0, k1, i) >>> 8) / 16777216;
}

/** Standard normals by Box-Muller from uniforms 2i and 2i + 1 (the uniforms match the GPU's;
 * log/cos in float64 may differ from the GPU's float32 ones in the last bits). */
export function fillRandn(out: Float32Array, k0: number, k1: number): void {
  for (let i = 0; i < out.length; i++) {
    const u1 = randUnit(k0, k1, (2 * i) >>> 0);
    const u2 = randUnit(k0, k1, (2 * i + 1) >>> 0);
    out[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(6.283185307179586 * u2);
  }
}

/** 1 where the uniform is below `p` (rounded to float32 as the GPU's constant), else 0. */
export function fillBernoulli(out: Float32Array, p: number, k0: number, k1: number): void {
  const p32 = Math.fround(p);
  for (let i = 0; i < out.length; i++) out[i] = randUnit(k0, k1, i) < p32 ? 1 : 0;
}
