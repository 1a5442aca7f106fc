/**
 * Elementwise ops: unary math, binary arithmetic with NumPy broadcasting, comparisons, `where`
 * and clamping. Each differentiable op keeps its vector-Jacobian product beside it; broadcast
 * gradients are summed back to the input's shape (`sumTo`). Every formula is written twice, side
 * by side: as WGSL for the GPU and as a TypeScript twin that the CPU backend's loops
 * (`cpu/elementwise.ts`) apply. Per-call constants (affine's coefficients, clamp bounds, ...)
 * reach the GPU in a small buffer, never in the WGSL source, so they compile no new pipelines.
 */
import { record } from "../autograd.ts";
import { cpu, onCpu } from "../backend.ts";
import {
  mapAffine,
  mapUnary,
  mapUnaryGrad,
  mapWhere,
  unaryGradKernel,
  unaryKernel,
} from "../cpu/elementwise.ts";
import { f32 } from "../cpu/views.ts";
import { broadcastShapes, expectDType, sameShape } from "../shape.ts";
import { emptyTensor, type Tensor } from "../tensor.ts";
import { broadcastIndexExpr, f32Bits, runElementwise } from "../kernels/wgsl.ts";
import { ACTIVATION_WGSL, ACTIVATIONS, type UnaryRule } from "../kernels/activation.ts";
import { BINARY, binaryKernel } from "../kernels/binary.ts";
import { sumTo } from "../kernels/reduce.ts";

const UNARY = {
  ...ACTIVATIONS,
  neg: {
    forward: "-x",
    f: (x) => -x,
    backward: "-g",
    df: (_x, _y, g) => -g,
  },
  exp: {
    forward: "exp(x)",
    f: Math.exp,
    backward: "g * y",
    df: (_x, y, g) => g * y,
    map: (x, y) => {
      if (unaryKernel("exp", x, y)) return;
      for (let i = 0; i < y.length; i++) y[i] = Math.exp(x[i]);
    },
    mapGrad: (x, y, g, gx) => {
      if (unaryGradKernel("exp", x, y, g, gx)) return;
      for (let i = 0; i < gx.length; i++) gx[i] = g[i] * y[i];
    },
  },
  log: {
    forward: "log(x)",
    f: Math.log,
    backward: "g / x",
    df: (x, _y, g) => g / x,
  },
  sqrt: {
    forward: "sqrt(x)",
    f: Math.sqrt,
    backward: "g * 0.5 / y",
    df: (_x, y, g) => g * 0.5 / y,
  },
  rsqrt: {
    forward: "inverseSqrt(x)",
    f: (x) => 1 / Math.sqrt(x),
    backward: "g * -0.5 * y * y * y",
    df: (_x, y, g) => g * -0.5 * y * y * y,
  },
  sin: {
    forward: "sin(x)",
    f: Math.sin,
    backward: "g * cos(x)",
    df: (x, _y, g) => g * Math.cos(x),
  },
  cos: {
    forward: "cos(x)",
    f: Math.cos,
    backward: "-g * sin(x)",
    df: (x, _y, g) => -g * Math.sin(x),
  },
  square: {
    forward: "x * x",
    f: (x) => x * x,
    backward: "2.0 * g * x",
    df: (x, _y, g) => 2 * g * x,
  },
  abs: {
    forward: "abs(x)",
    f: Math.abs,
    backward: "g * sign(x)",
    df: (x, _y, g) => g * Math.sign(x),
  },
  sign: {
    forward: "sign(x)",
    f: Math.sign,
  },
} satisfies Record<string, UnaryRule>;

/** Names of the unary ops. */
export type UnaryOp = keyof typeof UNARY;

/** WGSL lines naming the call's scalars `s0`, `s1`, ... (bound as bit patterns in `S`). */
function scalarLets(count: number): string {
  let lines = "";
  for (let k = 0; k < count; k++) lines += `  let s${k} = bitcast<f32>(S[${k}u]);\n`;
  return lines;
}

/**
 * Runs a unary rule. `scalars` are the values the rule's WGSL reads as `s0`, `s1`, ... (the TS
 * twins capture them directly); they reach the GPU in a buffer, so the kernel's source, and
 * with it the compiled pipeline, is the same for every value.
 */
function unary(op: string, x: Tensor, rule: UnaryRule, scalars: number[] = []): Tensor {
  expectDType(op, "x", x, "f32");
  const y = emptyTensor(x.shape);
  if (onCpu()) {
    if (rule.map) rule.map(f32(x), f32(y));
    else mapUnary(f32(x), f32(y), rule.f);
    cpu().countOp();
  } else {
    runElementwise({
      label: op,
      n: x.size,
      prelude: ACTIVATION_WGSL,
      bindings: [
        { binding: { name: "X", type: "f32", access: "read" }, tensor: x },
        { binding: { name: "Y", type: "f32", access: "read_write" }, tensor: y },
      ],
      scalars: scalars.length ? f32Bits(...scalars) : undefined,
      body: `${scalarLets(scalars.length)}  let x = X[i];\n  Y[i] = ${rule.forward};`,
    });
  }
  if (!rule.backward) return y;
  return record(y, op, [x], (g) => [unaryGrad(op, x, y, g, rule, scalars)]);
}

function unaryGrad(
  op: string,
  x: Tensor,
  y: Tensor,
  g: Tensor,
  rule: UnaryRule,
  scalars: number[],
): Tensor {
  const gx = emptyTensor(x.shape);
  if (onCpu()) {
    if (rule.mapGrad) rule.mapGrad(f32(x), f32(y), f32(g), f32(gx));
    else mapUnaryGrad(f32(x), f32(y), f32(g), f32(gx), rule.df!);
    cpu().countOp();
    return gx;
  }
  runElementwise({
    label: `${op}_grad`,
    n: x.size,
    prelude: ACTIVATION_WGSL,
    bindings: [
      { binding: { name: "X", type: "f32", access: "read" }, tensor: x },
      { binding: { name: "Y", type: "f32", access: "read" }, tensor: y },
      { binding: { name: "G", type: "f32", access: "read" }, tensor: g },
      { binding: { name: "GX", type: "f32", access: "read_write" }, tensor: gx },
    ],
    scalars: scalars.length ? f32Bits(...scalars) : undefined,
    body: `${scalarLets(scalars.length)}  let x = X[i];\n  let y = Y[i];\n  let g = G[i];\n` +
      `  GX[i] = ${rule.backward};`,
  });
  return gx;
}

/** -x */
export const neg = (x: Tensor): Tensor => unary("neg", x, UNARY.neg);
/** e^x */
export const exp = (x: Tensor): Tensor => unary("exp", x, UNARY.exp);
/** Natural logarithm. */
export const log = (x: Tensor): Tensor => unary("log", x, UNARY.log);
/** Square root. */
export const sqrt = (x: Tensor): Tensor => unary("sqrt", x, UNARY.sqrt);
/** 1 / sqrt(x). */
export const rsqrt = (x: Tensor): Tensor => unary("rsqrt", x, UNARY.rsqrt);
/** Hyperbolic tangent. */
export const tanh = (x: Tensor): Tensor => unary("tanh", x, UNARY.tanh);
/** Logistic sigmoid. */
export const sigmoid = (x: Tensor): Tensor => unary("sigmoid", x, UNARY.sigmoid);
/** max(x, 0). */
export const relu = (x: Tensor): Tensor => unary("relu", x, UNARY.relu);
/** GELU; `approximate: "tanh"` (default, as in GPT-2 and CLIP's code) or `"erf"` (exact form). */
export const gelu = (x: Tensor, approximate: "tanh" | "erf" = "tanh"): Tensor =>
  approximate === "tanh" ? unary("gelu", x, UNARY.gelu) : unary("gelu_erf", x, UNARY.gelu_erf);
/** x * sigmoid(x) (Elfwing et al. 2018). */
export const silu = (x: Tensor): Tensor => unary("silu", x, UNARY.silu);
/** Sine. */
export const sin = (x: Tensor): Tensor => unary("sin", x, UNARY.sin);
/** Cosine. */
export const cos = (x: Tensor): Tensor => unary("cos", x, UNARY.cos);
/** x^2. */
export const square = (x: Tensor): Tensor => unary("square", x, UNARY.square);
/** |x|. */
export const abs = (x: Tensor): Tensor => unary("abs", x, UNARY.abs);
/** Sign of x (no gradient). */
export const sign = (x: Tensor): Tensor => unary("sign", x, UNARY.sign);

/** x^p for a constant exponent p. */
export function powScalar(x: Tensor, p: number): Tensor {
  if (p === 0) {
    return unary("pow", x, { forward: "1.0", f: () => 1, backward: "0.0 * g", df: () => 0 });
  }
  const P = Math.fround(p), Q = Math.fround(p - 1);
  if (!Number.isInteger(p)) {
    return unary("pow", x, {
      forward: "pow(x, s0)",
      f: (x) => Math.pow(x, P),
      backward: "g * s0 * pow(x, s1)",
      df: (x, _y, g) => g * P * Math.pow(x, Q),
    }, [p, p - 1]);
  }
  // Integer powers of negative bases are defined: multiply out |x|^p with the sign fixed
  // (s2, s3: whether p and p - 1 are odd).
  const oddP = Math.abs(p) % 2 === 1, oddQ = Math.abs(p - 1) % 2 === 1;
  return unary("pow", x, {
    forward: "select(1.0, sign(x), s2 != 0.0) * pow(abs(x), s0)",
    f: (x) => (oddP ? Math.sign(x) : 1) * Math.pow(Math.abs(x), P),
    backward: "g * s0 * select(1.0, sign(x), s3 != 0.0) * pow(abs(x), s1)",
    df: (x, _y, g) => g * P * (oddQ ? Math.sign(x) : 1) * Math.pow(Math.abs(x), Q),
  }, [p, p - 1, +oddP, +oddQ]);
}

/** Clamps to [lo, hi]; the gradient passes only where x is strictly inside. */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  if (lo > hi) throw new Error(`clamp: lower bound ${lo} is above upper bound ${hi}.`);
  const L = Math.fround(lo), H = Math.fround(hi);
  return unary("clamp", x, {
    forward: "clamp(x, s0, s1)",
    f: (x) => Math.min(Math.max(x, L), H),
    backward: "select(0.0, g, x > s0 && x < s1)",
    df: (x, _y, g) => x > L && x < H ? g : 0,
  }, [lo, hi]);
}

/** a * x + b with constants (a fused scale-and-shift). */
export function affine(x: Tensor, a: number, b: number): Tensor {
  const A = Math.fround(a), B = Math.fround(b);
  return unary("affine", x, {
    forward: "s0 * x + s1",
    f: (x) => A * x + B,
    backward: "s0 * g",
    df: (_x, _y, g) => A * g,
    map: (x, y) => mapAffine(x, y, A, B),
    mapGrad: (_x, _y, g, gx) => mapAffine(g, gx, A, 0),
  }, [a, b]);
}

type Operand = Tensor | number;

/** a + b with broadcasting. */
export function add(a: Operand, b: Operand): Tensor {
  if (typeof b === "number") return typeof a === "number" ? fail("add") : affine(a, 1, b);
  if (typeof a === "number") return affine(b, 1, a);
  const out = binaryKernel("add", a, b);
  return record(out, "add", [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

/** a - b with broadcasting. */
export function sub(a: Operand, b: Operand): Tensor {
  if (typeof b === "number") return typeof a === "number" ? fail("sub") : affine(a, 1, -b);
  if (typeof a === "number") return affine(b, -1, a);
  const out = binaryKernel("sub", a, b);
  return record(out, "sub", [a, b], (g) => [sumTo(g, a.shape), sumTo(neg(g), b.shape)]);
}

/** a * b with broadcasting. */
export function mul(a: Operand, b: Operand): Tensor {
  if (typeof b === "number") return typeof a === "number" ? fail("mul") : affine(a, b, 0);
  if (typeof a === "number") return affine(b, a, 0);
  const out = binaryKernel("mul", a, b);
  return record(out, "mul", [a, b], (g) => [
    a.requiresGrad ? sumTo(mul(g, b), a.shape) : null,
    b.requiresGrad ? sumTo(mul(g, a), b.shape) : null,
  ]);
}

/** a / b with broadcasting. */
export function div(a: Operand, b: Operand): Tensor {
  if (typeof b === "number") return typeof a === "number" ? fail("div") : affine(a, 1 / b, 0);
  if (typeof a === "number") {
    const A = Math.fround(a);
    return unary("rdiv", b, {
      forward: "s0 / x",
      f: (x) => A / x,
      backward: "-g * s0 / (x * x)",
      df: (x, _y, g) => -g * A / (x * x),
    }, [a]);
  }
  const out = binaryKernel("div", a, b);
  return record(out, "div", [a, b], (g) => [
    a.requiresGrad ? sumTo(div(g, b), a.shape) : null,
    b.requiresGrad ? sumTo(neg(div(mul(g, out), b)), b.shape) : null,
  ]);
}

/** Elementwise maximum; ties send the gradient to `a`. */
export function maximum(a: Tensor, b: Operand): Tensor {
  if (typeof b === "number") {
    const B = Math.fround(b);
    return unary("maximum", a, {
      forward: "max(x, s0)",
      f: (x) => Math.max(x, B),
      backward: "select(0.0, g, x >= s0)",
      df: (x, _y, g) => x >= B ? g : 0,
    }, [b]);
  }
  const out = binaryKernel("maximum", a, b);
  return record(out, "maximum", [a, b], (g) => {
    const mask = greaterEqual(a, b);
    return [sumTo(mul(g, mask), a.shape), sumTo(mul(g, affine(mask, -1, 1)), b.shape)];
  });
}

/** Elementwise minimum; ties send the gradient to `a`. */
export function minimum(a: Tensor, b: Operand): Tensor {
  if (typeof b === "number") {
    const B = Math.fround(b);
    return unary("minimum", a, {
      forward: "min(x, s0)",
      f: (x) => Math.min(x, B),
      backward: "select(0.0, g, x <= s0)",
      df: (x, _y, g) => x <= B ? g : 0,
    }, [b]);
  }
  const out = binaryKernel("minimum", a, b);
  return record(out, "minimum", [a, b], (g) => {
    const mask = lessEqual(a, b);
    return [sumTo(mul(g, mask), a.shape), sumTo(mul(g, affine(mask, -1, 1)), b.shape)];
  });
}

type CompareOp = "greater" | "greaterEqual" | "less" | "lessEqual" | "equal";
const SYMBOL: Record<CompareOp, string> = {
  greater: ">",
  greaterEqual: ">=",
  less: "<",
  lessEqual: "<=",
  equal: "==",
};

function compare(op: CompareOp, a: Tensor, b: Operand): Tensor {
  if (typeof b !== "number") return binaryKernel(op, a, b);
  const B = Math.fround(b), f = BINARY[op].f;
  return unary(op, a, { forward: `select(0.0, 1.0, x ${SYMBOL[op]} s0)`, f: (x) => f(x, B) }, [b]);
}

/** 1.0 where a > b else 0.0 (no gradient). */
export const greater = (a: Tensor, b: Operand): Tensor => compare("greater", a, b);
/** 1.0 where a >= b else 0.0. */
export const greaterEqual = (a: Tensor, b: Operand): Tensor => compare("greaterEqual", a, b);
/** 1.0 where a < b else 0.0. */
export const less = (a: Tensor, b: Operand): Tensor => compare("less", a, b);
/** 1.0 where a <= b else 0.0. */
export const lessEqual = (a: Tensor, b: Operand): Tensor => compare("lessEqual", a, b);
/** 1.0 where a == b else 0.0. */
export const equal = (a: Tensor, b: Operand): Tensor => compare("equal", a, b);

/** Picks `a` where `cond` is non-zero, else `b` (all broadcast together). */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  expectDType("where", "cond", cond, "f32");
  expectDType("where", "a", a, "f32");
  expectDType("where", "b", b, "f32");
  const shape = broadcastShapes("where", broadcastShapes("where", cond.shape, a.shape), b.shape);
  const out = emptyTensor(shape);
  // A true select, not a * mask + b * (1 - mask): -inf * 0 would give NaN (attention masks).
  if (onCpu()) {
    mapWhere(f32(cond), cond.shape, f32(a), a.shape, f32(b), b.shape, f32(out), shape);
    cpu().countOp();
  } else {
    const index = (
      t: Tensor,
    ) => (sameShape(t.shape, shape) ? "i" : broadcastIndexExpr(shape, t.shape));
    runElementwise({
      label: "where",
      n: out.size,
      bindings: [
        { binding: { name: "C", type: "f32", access: "read" }, tensor: cond },
        { binding: { name: "A", type: "f32", access: "read" }, tensor: a },
        { binding: { name: "B", type: "f32", access: "read" }, tensor: b },
        { binding: { name: "O", type: "f32", access: "read_write" }, tensor: out },
      ],
      body: `  O[i] = select(B[${index(b)}], A[${index(a)}], C[${index(cond)}] != 0.0);`,
    });
  }
  return record(out, "where", [a, b], (g) => {
    const mask = notZero(cond);
    return [
      a.requiresGrad ? sumTo(mul(g, mask), a.shape) : null,
      b.requiresGrad ? sumTo(mul(g, affine(mask, -1, 1)), b.shape) : null,
    ];
  });
}

function notZero(x: Tensor): Tensor {
  return unary("notZero", x, { forward: "select(0.0, 1.0, x != 0.0)", f: (x) => x !== 0 ? 1 : 0 });
}

function fail(op: string): never {
  throw new Error(`${op}: at least one operand must be a tensor.`);
}
