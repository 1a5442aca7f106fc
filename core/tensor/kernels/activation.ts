/**
 * The one table of activation functions. Elementwise ops (`ops/elementwise.ts`) and every fused
 * epilogue (the GEMM of `linear` and `conv2d`, group norm's fused SiLU) take their formulas from
 * here, on both backends: WGSL functions `act_<name>` generated from the table for the GPU, the
 * TypeScript twins (`activate`, `ACTIVATIONS[name].f`) for the CPU's scalar paths. The CPU's
 * WebAssembly SIMD kernels implement the same formulas in `cpu/assembly/math.ts`, shared there
 * by the unary, GEMM and norm kernels. So training (unfused, to keep the pre-activation for the
 * backward) and sampling (fused) compute the same activation.
 */
import {
  type UnaryFn,
  type UnaryGradFn,
  unaryGradKernel,
  unaryKernel,
} from "../cpu/elementwise.ts";

/** WGSL helpers shared by the unary kernels (erf per Abramowitz & Stegun 7.1.26, |err| < 1.5e-7;
 * tanh written from exp(-2|x|) so large inputs cannot overflow to NaN). Their TypeScript twins
 * follow. */
export const MATH_PRELUDE = `
fn safe_tanh(x: f32) -> f32 { let e = exp(-2.0 * abs(x)); return sign(x) * (1.0 - e) / (1.0 + e); }
fn square_f(x: f32) -> f32 { return x * x; }
fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn erf_approx(x: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.3275911 * abs(x));
  let p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return sign(x) * (1.0 - p * exp(-x * x));
}`;

export function safeTanh(x: number): number {
  const e = Math.exp(-2 * Math.abs(x));
  return Math.sign(x) * (1 - e) / (1 + e);
}

function sigmoidOf(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** erf(x), Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7). */
export function erfApprox(x: number): number {
  const t = 1 / (1 + 0.3275911 * Math.abs(x));
  const p = t *
    (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return Math.sign(x) * (1 - p * Math.exp(-x * x));
}

// GELU, tanh approximation (Hendrycks & Gimpel 2016): 0.5 x (1 + tanh(k (x + 0.044715 x^3))).
const GELU_K = "0.7978845608028654";
const K = 0.7978845608028654;
/** The tanh of the GELU approximation, and its derivative factor (0.134145 = 3 * 0.044715). */
const geluTanh = (x: number): number => safeTanh(K * (x + 0.044715 * x * x * x));
const geluGrad = (x: number, g: number): number => {
  const t = geluTanh(x);
  return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 0.134145 * x * x));
};

// The activations' twins by name: each also gets a CPU loop of its own in the table, so V8
// inlines the twin there (the shared loop of `mapUnary` calls it megamorphically, at several
// times the cost; see `cpu/elementwise.ts`).
const reluF: UnaryFn = (x) => Math.max(x, 0);
const reluDf: UnaryGradFn = (x, _y, g) => x > 0 ? g : 0;
const geluF: UnaryFn = (x) => 0.5 * x * (1 + geluTanh(x));
const geluDf: UnaryGradFn = (x, _y, g) => geluGrad(x, g);
const geluErfF: UnaryFn = (x) => 0.5 * x * (1 + erfApprox(x * 0.7071067811865476));
const geluErfDf: UnaryGradFn = (x, _y, g) =>
  g * (0.5 * (1 + erfApprox(x * 0.7071067811865476)) +
    x * 0.3989422804014327 * Math.exp(-0.5 * x * x));
const siluF: UnaryFn = (x) => x / (1 + Math.exp(-x));
const siluDf: UnaryGradFn = (x, _y, g) => g * sigmoidOf(x) * (1 + x * (1 - sigmoidOf(x)));

/**
 * One unary op, as WGSL for the GPU and as its TypeScript twin for the CPU (same formula).
 * WGSL sees `x`, and in the backward also `y` (the forward output) and `g` (the output
 * gradient); `s0`, `s1`, ... are the call's scalars (see `unary`).
 */
export interface UnaryRule {
  /** Forward, WGSL. */
  forward: string;
  /** Forward, TypeScript. */
  f: UnaryFn;
  /** d(out)/d(x) times `g`, WGSL (absent: no gradient). */
  backward?: string;
  /** The same, TypeScript. */
  df?: UnaryGradFn;
  /** Optional whole-tensor CPU loops replacing `f` / `df` for speed (see `cpu/elementwise.ts`). */
  map?: (x: Float32Array, y: Float32Array) => void;
  mapGrad?: (x: Float32Array, y: Float32Array, g: Float32Array, gx: Float32Array) => void;
}

/** The activation functions by name (also elementwise ops of the same names). */
export const ACTIVATIONS = {
  relu: {
    forward: "max(x, 0.0)",
    f: reluF,
    backward: "select(0.0, g, x > 0.0)",
    df: reluDf,
    map: (x, y) => {
      if (unaryKernel("relu", x, y)) return;
      for (let i = 0; i < y.length; i++) y[i] = reluF(x[i]);
    },
    mapGrad: (x, y, g, gx) => {
      if (unaryGradKernel("relu", x, y, g, gx)) return;
      for (let i = 0; i < gx.length; i++) gx[i] = reluDf(x[i], y[i], g[i]);
    },
  },

  gelu: {
    forward: `0.5 * x * (1.0 + safe_tanh(${GELU_K} * (x + 0.044715 * x * x * x)))`,
    f: geluF,
    backward: `g * (0.5 * (1.0 + safe_tanh(${GELU_K} * (x + 0.044715 * x * x * x))) + 0.5 * x * ` +
      `(1.0 - square_f(safe_tanh(${GELU_K} * (x + 0.044715 * x * x * x)))) * ${GELU_K} * (1.0 + 0.134145 * x * x))`,
    df: geluDf,
    map: (x, y) => {
      if (unaryKernel("gelu", x, y)) return;
      for (let i = 0; i < y.length; i++) y[i] = geluF(x[i]);
    },
    mapGrad: (x, y, g, gx) => {
      if (unaryGradKernel("gelu", x, y, g, gx)) return;
      for (let i = 0; i < gx.length; i++) gx[i] = geluDf(x[i], y[i], g[i]);
    },
  },

  gelu_erf: {
    forward: "0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476))",
    f: geluErfF,
    backward:
      "g * (0.5 * (1.0 + erf_approx(x * 0.7071067811865476)) + x * 0.3989422804014327 * exp(-0.5 * x * x))",
    df: geluErfDf,
    map: (x, y) => {
      for (let i = 0; i < y.length; i++) y[i] = geluErfF(x[i]);
    },
    mapGrad: (x, y, g, gx) => {
      for (let i = 0; i < gx.length; i++) gx[i] = geluErfDf(x[i], y[i], g[i]);
    },
  },

  silu: {
    forward: "x / (1.0 + exp(-x))",
    f: siluF,
    backward: "g * sigmoid(x) * (1.0 + x * (1.0 - sigmoid(x)))",
    df: siluDf,
    map: (x, y) => {
      if (unaryKernel("silu", x, y)) return;
      for (let i = 0; i < y.length; i++) y[i] = siluF(x[i]);
    },
    mapGrad: (x, y, g, gx) => {
      if (unaryGradKernel("silu", x, y, g, gx)) return;
      for (let i = 0; i < gx.length; i++) gx[i] = siluDf(x[i], y[i], g[i]);
    },
  },

  sigmoid: {
    forward: "sigmoid(x)",
    f: sigmoidOf,
    backward: "g * y * (1.0 - y)",
    df: (_x, y, g) => g * y * (1 - y),
    map: (x, y) => {
      if (unaryKernel("sigmoid", x, y)) return;
      for (let i = 0; i < y.length; i++) y[i] = sigmoidOf(x[i]);
    },
    mapGrad: (x, y, g, gx) => {
      if (unaryGradKernel("sigmoid", x, y, g, gx)) return;
      for (let i = 0; i < gx.length; i++) gx[i] = g[i] * y[i] * (1 - y[i]);
    },
  },

  tanh: {
    forward: "safe_tanh(x)",
    f: safeTanh,
    backward: "g * (1.0 - y * y)",
    df: (_x, y, g) => g * (1 - y * y),
  },
} satisfies Record<string, UnaryRule>;

/** Names of the activations. */
export type ActivationName = keyof typeof ACTIVATIONS;

/** Activations that `linear`, `conv2d` and group norm can fuse into their epilogues. */
export type FusedActivation = "none" | "relu" | "gelu" | "silu";

/**
 * WGSL for every kernel that applies an activation: the helpers, then for each activation
 * `fn act_<name>(x: f32) -> f32` and, when it has a gradient, `fn act_<name>_grad(x, y, g)`
 * (y the forward output, g the output gradient), each generated from the table's formula.
 */
export const ACTIVATION_WGSL: string = MATH_PRELUDE + "\n" +
  Object.entries(ACTIVATIONS as Record<string, UnaryRule>).map(([name, r]) =>
    `fn act_${name}(x: f32) -> f32 { return ${r.forward}; }\n` +
    (r.backward
      ? `fn act_${name}_grad(x: f32, y: f32, g: f32) -> f32 { return ${r.backward}; }\n`
      : "")
  ).join("");

/** The WGSL expression applying `act` to the expression `v` (needs `ACTIVATION_WGSL`). */
export function activationWgsl(act: FusedActivation, v: string): string {
  return act === "none" ? v : `act_${act}(${v})`;
}

/** The TypeScript twin: `act` applied to one value. */
export function activate(v: number, act: FusedActivation): number {
  return act === "none" ? v : ACTIVATIONS[act].f(v);
}

/** The TypeScript twin of the gradient: d act(x) / dx times g. */
export function activateGrad(x: number, g: number, act: FusedActivation): number {
  if (act === "none") return g;
  return ACTIVATIONS[act].df(x, ACTIVATIONS[act].f(x), g);
}
