/**
 * Elementwise ops: unary math, binary arithmetic with NumPy broadcasting, comparisons, `where`
 * and clamping. Each differentiable op keeps its vector-Jacobian product beside it; broadcast
 * gradients are summed back to the input's shape (`unbroadcast`).
 */
import { record } from "../autograd.ts";
import { broadcastShapes, expectDType, sameShape } from "../shape.ts";
import { emptyTensor, type Tensor } from "../tensor.ts";
import { broadcastIndexExpr, f32Literal, runElementwise } from "../wgsl.ts";
import { sumTo } from "./reduce.ts";

/** WGSL helpers shared by the unary kernels (erf per Abramowitz & Stegun 7.1.26, |err| < 1.5e-7;
 * tanh written from exp(-2|x|) so large inputs cannot overflow to NaN). */
const MATH_PRELUDE = `
fn safe_tanh(x: f32) -> f32 { let e = exp(-2.0 * abs(x)); return sign(x) * (1.0 - e) / (1.0 + e); }
fn square_f(x: f32) -> f32 { return x * x; }
fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn erf_approx(x: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign(x) * (1.0 - p * exp(-x * x));
}`;

// GELU, tanh approximation (Hendrycks & Gimpel 2016): 0.5 x (1 + tanh(k (x + 0.044715 x^3))).
const GELU_K = "0.7978845608028654";

interface UnaryRule {
  /** Forward expression of `x`. */
  forward: string;
  /** d(out)/d(x) times `g`, in terms of `x`, `y` (the output) and `g`. */
  backward?: string;
}

const UNARY: Record<string, UnaryRule> = {
  neg: { forward: "-x", backward: "-g" },
  exp: { forward: "exp(x)", backward: "g * y" },
  log: { forward: "log(x)", backward: "g / x" },
  sqrt: { forward: "sqrt(x)", backward: "g * 0.5 / y" },
  rsqrt: { forward: "inverseSqrt(x)", backward: "g * -0.5 * y * y * y" },
  tanh: { forward: "safe_tanh(x)", backward: "g * (1.0 - y * y)" },
  sigmoid: { forward: "sigmoid(x)", backward: "g * y * (1.0 - y)" },
  relu: { forward: "max(x, 0.0)", backward: "select(0.0, g, x > 0.0)" },
  gelu: {
    forward: `0.5 * x * (1.0 + safe_tanh(${GELU_K} * (x + 0.044715 * x * x * x)))`,
    backward: `g * (0.5 * (1.0 + safe_tanh(${GELU_K} * (x + 0.044715 * x * x * x))) + 0.5 * x * ` +
      `(1.0 - square_f(safe_tanh(${GELU_K} * (x + 0.044715 * x * x * x)))) * ${GELU_K} * (1.0 + 0.134145 * x * x))`,
  },
  gelu_erf: {
    forward: "0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476))",
    backward:
      "g * (0.5 * (1.0 + erf_approx(x * 0.7071067811865476)) + x * 0.3989422804014327 * exp(-0.5 * x * x))",
  },
  silu: { forward: "x * sigmoid(x)", backward: "g * sigmoid(x) * (1.0 + x * (1.0 - sigmoid(x)))" },
  sin: { forward: "sin(x)", backward: "g * cos(x)" },
  cos: { forward: "cos(x)", backward: "-g * sin(x)" },
  square: { forward: "x * x", backward: "2.0 * g * x" },
  abs: { forward: "abs(x)", backward: "g * sign(x)" },
  sign: { forward: "sign(x)" },
};

/** Names of the unary ops. */
export type UnaryOp = keyof typeof UNARY;

function unary(op: string, x: Tensor, rule: UnaryRule): Tensor {
  expectDType(op, "x", x, "f32");
  const y = emptyTensor(x.shape);
  runElementwise({
    label: op,
    n: x.size,
    prelude: MATH_PRELUDE,
    bindings: [
      { binding: { name: "X", type: "f32", access: "read" }, tensor: x },
      { binding: { name: "Y", type: "f32", access: "read_write" }, tensor: y },
    ],
    body: `  let x = X[i];\n  Y[i] = ${rule.forward};`,
  });
  if (!rule.backward) return y;
  return record(y, op, [x], (g) => [unaryGrad(op, x, y, g, rule.backward!)]);
}

function unaryGrad(op: string, x: Tensor, y: Tensor, g: Tensor, expr: string): Tensor {
  const gx = emptyTensor(x.shape);
  runElementwise({
    label: `${op}_grad`,
    n: x.size,
    prelude: MATH_PRELUDE,
    bindings: [
      { binding: { name: "X", type: "f32", access: "read" }, tensor: x },
      { binding: { name: "Y", type: "f32", access: "read" }, tensor: y },
      { binding: { name: "G", type: "f32", access: "read" }, tensor: g },
      { binding: { name: "GX", type: "f32", access: "read_write" }, tensor: gx },
    ],
    body: `  let x = X[i];\n  let y = Y[i];\n  let g = G[i];\n  GX[i] = ${expr};`,
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
  const P = f32Literal(p);
  const rule: UnaryRule = Number.isInteger(p)
    ? {
      // Integer powers of negative bases are defined: multiply out |x|^p with the sign fixed.
      forward: `select(1.0, sign(x), ${Math.abs(p) % 2 === 1}) * pow(abs(x), ${P})`,
      backward: `g * ${P} * select(1.0, sign(x), ${Math.abs(p - 1) % 2 === 1}) * pow(abs(x), ${
        f32Literal(p - 1)
      })`,
    }
    : { forward: `pow(x, ${P})`, backward: `g * ${P} * pow(x, ${f32Literal(p - 1)})` };
  if (p === 0) return unary("pow", x, { forward: "1.0", backward: "0.0 * g" });
  return unary(`pow`, x, rule);
}

/** Clamps to [lo, hi]; the gradient passes only where x is strictly inside. */
export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  if (lo > hi) throw new Error(`clamp: lower bound ${lo} is above upper bound ${hi}.`);
  const L = f32Literal(lo), H = f32Literal(hi);
  return unary("clamp", x, {
    forward: `clamp(x, ${L}, ${H})`,
    backward: `select(0.0, g, x > ${L} && x < ${H})`,
  });
}

/** a * x + b with constants (a fused scale-and-shift). */
export function affine(x: Tensor, a: number, b: number): Tensor {
  const A = f32Literal(a);
  return unary("affine", x, { forward: `${A} * x + ${f32Literal(b)}`, backward: `${A} * g` });
}

type Operand = Tensor | number;

function binaryKernel(op: string, a: Tensor, b: Tensor, expr: string): Tensor {
  expectDType(op, "a", a, "f32");
  expectDType(op, "b", b, "f32");
  const shape = broadcastShapes(op, a.shape, b.shape);
  const out = emptyTensor(shape);
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
    body: `  let a = A[${ia}];\n  let b = B[${ib}];\n  O[i] = ${expr};`,
  });
  return out;
}

/** Applies a scalar on either side through a unary kernel (no broadcast buffer needed). */
function withScalar(op: string, x: Tensor, expr: string, grad: string | undefined): Tensor {
  return unary(op, x, { forward: expr, backward: grad });
}

/** a + b with broadcasting. */
export function add(a: Operand, b: Operand): Tensor {
  if (typeof b === "number") return typeof a === "number" ? fail("add") : affine(a, 1, b);
  if (typeof a === "number") return affine(b, 1, a);
  const out = binaryKernel("add", a, b, "a + b");
  return record(out, "add", [a, b], (g) => [sumTo(g, a.shape), sumTo(g, b.shape)]);
}

/** a - b with broadcasting. */
export function sub(a: Operand, b: Operand): Tensor {
  if (typeof b === "number") return typeof a === "number" ? fail("sub") : affine(a, 1, -b);
  if (typeof a === "number") return affine(b, -1, a);
  const out = binaryKernel("sub", a, b, "a - b");
  return record(out, "sub", [a, b], (g) => [sumTo(g, a.shape), sumTo(neg(g), b.shape)]);
}

/** a * b with broadcasting. */
export function mul(a: Operand, b: Operand): Tensor {
  if (typeof b === "number") return typeof a === "number" ? fail("mul") : affine(a, b, 0);
  if (typeof a === "number") return affine(b, a, 0);
  const out = binaryKernel("mul", a, b, "a * b");
  return record(out, "mul", [a, b], (g) => [
    a.requiresGrad ? sumTo(mul(g, b), a.shape) : null,
    b.requiresGrad ? sumTo(mul(g, a), b.shape) : null,
  ]);
}

/** a / b with broadcasting. */
export function div(a: Operand, b: Operand): Tensor {
  if (typeof b === "number") return typeof a === "number" ? fail("div") : affine(a, 1 / b, 0);
  if (typeof a === "number") {
    const A = f32Literal(a);
    return withScalar("rdiv", b, `${A} / x`, `-g * ${A} / (x * x)`);
  }
  const out = binaryKernel("div", a, b, "a / b");
  return record(out, "div", [a, b], (g) => [
    a.requiresGrad ? sumTo(div(g, b), a.shape) : null,
    b.requiresGrad ? sumTo(neg(div(mul(g, out), b)), b.shape) : null,
  ]);
}

/** Elementwise maximum; ties send the gradient to `a`. */
export function maximum(a: Tensor, b: Operand): Tensor {
  if (typeof b === "number") {
    const B = f32Literal(b);
    return withScalar("maximum", a, `max(x, ${B})`, `select(0.0, g, x >= ${B})`);
  }
  const out = binaryKernel("maximum", a, b, "max(a, b)");
  return record(out, "maximum", [a, b], (g) => {
    const mask = greaterEqual(a, b);
    return [sumTo(mul(g, mask), a.shape), sumTo(mul(g, affine(mask, -1, 1)), b.shape)];
  });
}

/** Elementwise minimum; ties send the gradient to `a`. */
export function minimum(a: Tensor, b: Operand): Tensor {
  if (typeof b === "number") {
    const B = f32Literal(b);
    return withScalar("minimum", a, `min(x, ${B})`, `select(0.0, g, x <= ${B})`);
  }
  const out = binaryKernel("minimum", a, b, "min(a, b)");
  return record(out, "minimum", [a, b], (g) => {
    const mask = lessEqual(a, b);
    return [sumTo(mul(g, mask), a.shape), sumTo(mul(g, affine(mask, -1, 1)), b.shape)];
  });
}

function compare(op: string, symbol: string, a: Tensor, b: Operand): Tensor {
  if (typeof b === "number") {
    return unary(op, a, { forward: `select(0.0, 1.0, x ${symbol} ${f32Literal(b)})` });
  }
  return binaryKernel(op, a, b, `select(0.0, 1.0, a ${symbol} b)`);
}

/** 1.0 where a > b else 0.0 (no gradient). */
export const greater = (a: Tensor, b: Operand): Tensor => compare("greater", ">", a, b);
/** 1.0 where a >= b else 0.0. */
export const greaterEqual = (a: Tensor, b: Operand): Tensor => compare("greaterEqual", ">=", a, b);
/** 1.0 where a < b else 0.0. */
export const less = (a: Tensor, b: Operand): Tensor => compare("less", "<", a, b);
/** 1.0 where a <= b else 0.0. */
export const lessEqual = (a: Tensor, b: Operand): Tensor => compare("lessEqual", "<=", a, b);
/** 1.0 where a == b else 0.0. */
export const equal = (a: Tensor, b: Operand): Tensor => compare("equal", "==", a, b);

/** Picks `a` where `cond` is non-zero, else `b` (all broadcast together). */
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  expectDType("where", "cond", cond, "f32");
  expectDType("where", "a", a, "f32");
  expectDType("where", "b", b, "f32");
  const shape = broadcastShapes("where", broadcastShapes("where", cond.shape, a.shape), b.shape);
  const out = emptyTensor(shape);
  const index = (
    t: Tensor,
  ) => (sameShape(t.shape, shape) ? "i" : broadcastIndexExpr(shape, t.shape));
  // A true select, not a * mask + b * (1 - mask): -inf * 0 would give NaN (attention masks).
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
  return record(out, "where", [a, b], (g) => {
    const mask = notZero(cond);
    return [
      a.requiresGrad ? sumTo(mul(g, mask), a.shape) : null,
      b.requiresGrad ? sumTo(mul(g, affine(mask, -1, 1)), b.shape) : null,
    ];
  });
}

function notZero(x: Tensor): Tensor {
  return unary("notZero", x, { forward: "select(0.0, 1.0, x != 0.0)" });
}

function fail(op: string): never {
  throw new Error(`${op}: at least one operand must be a tensor.`);
}
