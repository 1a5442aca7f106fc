/**
 * Filling and copying whole tensors, without autograd: `full` and friends (`creation.ts`) and the
 * seed and copies of `autograd.ts` run these, so they stay kernels recorded with the other ops
 * (no host upload, which would submit the queued work early on WebGPU).
 */
import { cpu, onCpu } from "../backend.ts";
import { u32 } from "../cpu/views.ts";
import { type DType, emptyTensor, type Tensor } from "../tensor.ts";
import { f32Bits, runElementwise } from "./wgsl.ts";

/** The 32-bit pattern of `value` as a `dtype` element (floats rounded, integers wrapped). */
export function bitsOf(value: number, dtype: DType): number {
  if (dtype === "f32") return f32Bits(value)[0];
  return dtype === "i32" ? (value | 0) >>> 0 : value >>> 0;
}

/** A new tensor of `shape` filled with `value`. */
export function fillKernel(shape: readonly number[], value: number, dtype: DType = "f32"): Tensor {
  const t = emptyTensor(shape, dtype);
  const bits = bitsOf(value, dtype);
  if (onCpu()) {
    u32(t).fill(bits);
    cpu().countOp();
    return t;
  }
  // The value travels as its bit pattern in a buffer: one pipeline per dtype for every value.
  runElementwise({
    label: "fill",
    n: t.size,
    bindings: [{ binding: { name: "O", type: dtype, access: "read_write" }, tensor: t }],
    scalars: Uint32Array.of(bits),
    body: `  O[i] = bitcast<${dtype}>(S[0u]);`,
  });
  return t;
}

/** A contiguous copy of `x` in a buffer of its own. */
export function copyKernel(x: Tensor): Tensor {
  const out = emptyTensor(x.shape, x.dtype);
  if (onCpu()) {
    u32(out).set(u32(x));
    cpu().countOp();
    return out;
  }
  runElementwise({
    label: "copy",
    n: out.size,
    bindings: [
      { binding: { name: "X", type: x.dtype, access: "read" }, tensor: x },
      { binding: { name: "O", type: x.dtype, access: "read_write" }, tensor: out },
    ],
    body: "  O[i] = X[i];",
  });
  return out;
}
