/**
 * The binary elementwise kernels (arithmetic, maximum/minimum, comparisons) with NumPy
 * broadcasting, without autograd: the differentiable ops in `ops/elementwise.ts` and the
 * gradient accumulation of `autograd.ts` both run them. Each op is WGSL beside its TypeScript
 * twin (and, for arithmetic, the twin's own row loop on the CPU).
 */
import { cpu, onCpu } from "../backend.ts";
import {
  ARITHMETIC_ROWS,
  arithmeticKernel,
  type BinaryFn,
  type BinaryRow,
  type KernelArithmetic,
  mapBinary,
} from "../cpu/elementwise.ts";
import { f32 } from "../cpu/views.ts";
import { broadcastShapes, expectDType, sameShape } from "../shape.ts";
import { emptyTensor, type Tensor } from "../tensor.ts";
import { broadcastIndexExpr, runElementwise } from "./wgsl.ts";

/** The binary ops by name. */
export const BINARY = {
  add: { wgsl: "a + b", f: (a, b) => a + b, row: ARITHMETIC_ROWS.add },
  sub: { wgsl: "a - b", f: (a, b) => a - b, row: ARITHMETIC_ROWS.sub },
  mul: { wgsl: "a * b", f: (a, b) => a * b, row: ARITHMETIC_ROWS.mul },
  div: { wgsl: "a / b", f: (a, b) => a / b, row: ARITHMETIC_ROWS.div },
  maximum: { wgsl: "max(a, b)", f: Math.max },
  minimum: { wgsl: "min(a, b)", f: Math.min },
  greater: { wgsl: "select(0.0, 1.0, a > b)", f: (a, b) => a > b ? 1 : 0 },
  greaterEqual: { wgsl: "select(0.0, 1.0, a >= b)", f: (a, b) => a >= b ? 1 : 0 },
  less: { wgsl: "select(0.0, 1.0, a < b)", f: (a, b) => a < b ? 1 : 0 },
  lessEqual: { wgsl: "select(0.0, 1.0, a <= b)", f: (a, b) => a <= b ? 1 : 0 },
  equal: { wgsl: "select(0.0, 1.0, a == b)", f: (a, b) => a === b ? 1 : 0 },
} satisfies Record<string, { wgsl: string; f: BinaryFn; row?: BinaryRow }>;

export type BinaryOp = keyof typeof BINARY;

export function binaryKernel(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  expectDType(op, "a", a, "f32");
  expectDType(op, "b", b, "f32");
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = emptyTensor(shape);
  if (onCpu()) {
    const rule: { f: BinaryFn; row?: BinaryRow } = BINARY[op];
    const [av, bv, ov] = [f32(a), f32(b), f32(out)];
    const wasm = op in ARITHMETIC_ROWS &&
      arithmeticKernel(op as KernelArithmetic, av, a.shape, bv, b.shape, ov, shape);
    if (!wasm) mapBinary(av, a.shape, bv, b.shape, ov, shape, rule.f, rule.row);
    cpu().countOp();
    return out;
  }
  const ia = sameShape(a.shape, shape) ? "i" : broadcastIndexExpr(shape, a.shape);
  const ib = sameShape(b.shape, shape) ? "i" : broadcastIndexExpr(shape, b.shape);
  runElementwise({
    label: op,
    n: out.size,
    bindings: [
      { binding: { name: "A", type: "f32", access: "read" }, tensor: a },
      { binding: { name: "B", type: "f32", access: "read" }, tensor: b },
      { binding: { name: "O", type: "f32", access: "read_write" }, tensor: out },
    ],
    body: `  let a = A[${ia}];\n  let b = B[${ib}];\n  O[i] = ${BINARY[op].wgsl};`,
  });
  return out;
}
