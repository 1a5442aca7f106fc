/**
 * Creating tensors: from host arrays, constants, ranges, and seeded random numbers generated on
 * the device by a counter-based generator (so no random data crosses the bus, and a seed plus a
 * counter reproduce any draw exactly, bit for bit the same uniforms on the GPU and the CPU).
 */
// Imported for its effect: installs `Tensor.backward` for programs that import no op file.
import "./autograd.ts";
import { cpu, onCpu } from "./backend.ts";
import { fillBernoulli, fillRand, fillRandn } from "./cpu/elementwise.ts";
import { f32, i32, u32 } from "./cpu/views.ts";
import { type DType, emptyTensor, sizeOf, type Tensor } from "./tensor.ts";
import { bitsOf, fillKernel } from "./kernels/fill.ts";
import { f32Bits, runElementwise } from "./kernels/wgsl.ts";

/**
 * A tensor holding `data` (copied to the GPU in one write).
 *
 * @example
 * ```ts
 * function square2x2() {
 *   return tensor([1, 2, 3, 4], [2, 2]); // f32 [2, 2]; needs a started backend
 * }
 * ```
 */
export function tensor(
  data: ArrayLike<number> | Float32Array | Int32Array | Uint32Array,
  shape?: readonly number[],
  dtype?: DType,
): Tensor {
  const dt: DType = dtype ??
    (data instanceof Int32Array ? "i32" : data instanceof Uint32Array ? "u32" : "f32");
  const s = shape ?? [data.length];
  if (sizeOf(s) !== data.length) {
    throw new Error(
      `tensor: ${data.length} values do not fill shape [${s}] (${sizeOf(s)} elements).`,
    );
  }
  const typed = dt === "f32"
    ? (data instanceof Float32Array ? data : Float32Array.from(data))
    : dt === "i32"
    ? (data instanceof Int32Array ? data : Int32Array.from(data))
    : (data instanceof Uint32Array ? data : Uint32Array.from(data));
  const t = emptyTensor(s, dt);
  if (typed.length > 0) t.write(typed);
  return t;
}

/** A tensor filled with `value`. */
export function full(shape: readonly number[], value: number, dtype: DType = "f32"): Tensor {
  return fillKernel(shape, value, dtype);
}

/** Zeros. */
export const zeros = (shape: readonly number[], dtype: DType = "f32"): Tensor =>
  full(shape, 0, dtype);
/** Ones. */
export const ones = (shape: readonly number[], dtype: DType = "f32"): Tensor =>
  full(shape, 1, dtype);
/** Zeros shaped like `t`. */
export const zerosLike = (t: Tensor): Tensor => full(t.shape, 0, t.dtype);
/** Ones shaped like `t`. */
export const onesLike = (t: Tensor): Tensor => full(t.shape, 1, t.dtype);

/** start, start + step, ... below `end` (f32 unless dtype says otherwise). */
export function arange(start: number, end?: number, step = 1, dtype: DType = "f32"): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new Error("arange: step must not be zero.");
  const n = Math.max(0, Math.ceil((end - start) / step));
  const t = emptyTensor([n], dtype);
  if (onCpu()) {
    arangeCpu(t, start, step);
    return t;
  }
  // start and step travel as bit patterns (integers wrapped to 32 bits as WGSL's would be).
  runElementwise({
    label: "arange",
    n,
    bindings: [{ binding: { name: "O", type: dtype, access: "read_write" }, tensor: t }],
    scalars: Uint32Array.of(bitsOf(start, dtype), bitsOf(step, dtype)),
    body: `  O[i] = bitcast<${dtype}>(S[0u]) + ${dtype}(i) * bitcast<${dtype}>(S[1u]);`,
  });
  return t;
}

/** The CPU twin of the arange kernel, with the GPU's float32 rounding of i * step and the sum. */
function arangeCpu(t: Tensor, start: number, step: number): void {
  if (t.dtype === "f32") {
    const o = f32(t), a = Math.fround(start), d = Math.fround(step);
    for (let i = 0; i < o.length; i++) o[i] = a + Math.fround(i * d);
  } else {
    const o = t.dtype === "i32" ? i32(t) : u32(t), a = start | 0, d = step | 0;
    for (let i = 0; i < o.length; i++) o[i] = a + Math.imul(i, d);
  }
  cpu().countOp();
}

// ---- Random numbers --------------------------------------------------------------------------

/** State of the global generator: a seed and how many draws have been made. */
export interface RngState {
  seed: number;
  counter: number;
}

let rng: RngState = { seed: 0, counter: 0 };

/** Seeds the global GPU generator (each later draw gets a fresh counter value). */
export function manualSeed(seed: number): void {
  rng = { seed: seed >>> 0, counter: 0 };
}

/** The generator state, to store in a checkpoint for exact resume. */
export function getRngState(): RngState {
  return { ...rng };
}

/** Restores a state from `getRngState()`. */
export function setRngState(state: RngState): void {
  rng = { seed: state.seed >>> 0, counter: state.counter >>> 0 };
}

/**
 * Counter-based generator: a uniform u32 from (key0, key1, index) through three rounds of the
 * murmur3 finaliser (a stateless hash in the spirit of Philox: Salmon et al. 2011). Any element
 * of any draw can be recomputed from the seed, the draw counter and its index.
 */
const RNG_PRELUDE = `
fn fmix(h0: u32) -> u32 {
  var h = h0;
  h ^= h >> 16u; h *= 0x85ebca6bu; h ^= h >> 13u; h *= 0xc2b2ae35u; h ^= h >> 16u;
  return h;
}
fn rand_u32(k0: u32, k1: u32, i: u32) -> u32 {
  return fmix(fmix(fmix(i ^ k0) + k1 + 0x9e3779b9u) ^ (k0 * 0x27d4eb2du));
}
// Uniform in (0, 1): 24 random bits, offset by half a step so log() never sees 0.
fn rand_unit(k0: u32, k1: u32, i: u32) -> f32 {
  return (f32(rand_u32(k0, k1, i) >> 8u) + 0.5) / 16777216.0;
}`;

function nextKeys(seed?: number): [number, number] {
  if (seed !== undefined) return [seed >>> 0, 0x5bd1e995];
  const keys: [number, number] = [rng.seed, rng.counter + 1];
  rng.counter++;
  return keys;
}

/**
 * One draw: `body` (WGSL, seeing the keys `k0`, `k1` and the extra scalar `s2`) on the GPU, or
 * its CPU twin `fill` (the same hash, `cpu/elementwise.ts`).
 */
function randomKernel(
  label: string,
  shape: readonly number[],
  body: string,
  fill: (out: Float32Array, k0: number, k1: number) => void,
  seed?: number,
  extra = 0,
): Tensor {
  const t = emptyTensor(shape);
  const [k0, k1] = nextKeys(seed);
  if (onCpu()) {
    fill(f32(t), k0, k1);
    cpu().countOp();
    return t;
  }
  // The keys travel in a buffer, not in the source: baking them in would compile a new
  // pipeline for every draw (diffusion noise is drawn every step).
  runElementwise({
    label,
    n: t.size,
    prelude: RNG_PRELUDE,
    bindings: [{ binding: { name: "O", type: "f32", access: "read_write" }, tensor: t }],
    scalars: Uint32Array.of(k0, k1, f32Bits(extra)[0]),
    body: `  let k0 = S[0u];\n  let k1 = S[1u];\n  let s2 = bitcast<f32>(S[2u]);\n${body}`,
  });
  return t;
}

/** Uniform [0, 1) numbers (seeded by the global generator unless `seed` is given). */
export function rand(shape: readonly number[], seed?: number): Tensor {
  return randomKernel(
    "rand",
    shape,
    "  O[i] = f32(rand_u32(k0, k1, i) >> 8u) / 16777216.0;",
    fillRand,
    seed,
  );
}

/** Standard normal numbers by the Box-Muller transform of two uniforms per element. */
export function randn(shape: readonly number[], seed?: number): Tensor {
  return randomKernel(
    "randn",
    shape,
    `  let u1 = rand_unit(k0, k1, 2u * i);
  let u2 = rand_unit(k0, k1, 2u * i + 1u);
  O[i] = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);`,
    fillRandn,
    seed,
  );
}

/** 1.0 with probability `p`, else 0.0 (for dropout masks and condition dropping). */
export function bernoulli(shape: readonly number[], p: number, seed?: number): Tensor {
  if (!(p >= 0 && p <= 1)) throw new Error(`bernoulli: probability ${p} is not in [0, 1].`);
  return randomKernel(
    "bernoulli",
    shape,
    "  O[i] = select(0.0, 1.0, rand_unit(k0, k1, i) < s2);",
    (out, k0, k1) => fillBernoulli(out, p, k0, k1),
    seed,
    p,
  );
}
