/**
 * Test support: seeded host data, float64 comparisons and finite-difference gradient checks.
 * Every differentiable op is checked with `gradCheck` against central differences computed from
 * the op's own forward pass on the GPU.
 */
import assert from "node:assert/strict";
import { mulberry32 } from "../../core/host_random.ts";
import {
  initBackend,
  mul,
  noGrad,
  scope,
  sum,
  type Tensor,
  tensor,
} from "../../core/tensor/mod.ts";

await initBackend();

/** A seeded host generator (mulberry32) for test inputs. */
export const hostRandom = mulberry32;

/** `n` values uniform in [lo, hi) from a seed. */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float64Array {
  const r = hostRandom(seed);
  return Float64Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/** A leaf tensor that requires a gradient. */
export function param(data: ArrayLike<number>, shape: number[]): Tensor {
  const t = tensor(Float32Array.from(data), shape);
  t.requiresGrad = true;
  return t;
}

/** Asserts |actual - expected| <= atol + rtol * |expected| elementwise. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-5, rtol = 1e-4, label = "" } = {},
): void {
  assert.equal(
    actual.length,
    expected.length,
    `${label}: length ${actual.length} != ${expected.length}`,
  );
  let worst = -1, worstErr = 0;
  for (let i = 0; i < actual.length; i++) {
    const err = Math.abs(actual[i] - expected[i]);
    const ok = err <= atol + rtol * Math.abs(expected[i]);
    if (
      !ok && (worst < 0 || err > worstErr) || Number.isNaN(actual[i]) !== Number.isNaN(expected[i])
    ) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0) {
    assert.fail(
      `${label}: element ${worst} is ${actual[worst]}, expected ${
        expected[worst]
      } (error ${worstErr})`,
    );
  }
}

/**
 * Checks analytic gradients of `f` (inputs -> tensor) against central differences of the scalar
 * L = sum(f(x) * w) for a fixed random w. Inputs are host arrays; each is perturbed elementwise
 * (keep shapes tiny: every element costs two forward passes).
 */
export async function gradCheck(
  f: (...xs: Tensor[]) => Tensor,
  inputs: { data: ArrayLike<number>; shape: number[] }[],
  { eps = 1e-2, atol = 2e-3, rtol = 2e-2, label = "gradCheck", seed = 7 } = {},
): Promise<void> {
  // Weights make every output element matter differently (a plain sum hides some errors).
  const probe = noGrad(() => f(...inputs.map((x) => tensor(Float32Array.from(x.data), x.shape))));
  const outShape = [...probe.shape];
  probe.dispose();
  const w = tensor(
    Float32Array.from(randomArray(outShape.reduce((a, b) => a * b, 1), seed)),
    outShape,
  );
  const loss = async (arrays: Float64Array[]): Promise<number> => {
    const out = noGrad(() =>
      scope(() =>
        sum(mul(f(...arrays.map((a, i) => tensor(Float32Array.from(a), inputs[i].shape))), w))
      )
    );
    const v = await out.item();
    out.dispose();
    return v;
  };
  const params = inputs.map((x) => param(x.data, x.shape));
  const l = scope(() => {
    const out = sum(mul(f(...params), w));
    out.backward();
    return out;
  });
  l.dispose();
  const arrays = inputs.map((x) => Float64Array.from(x.data));
  for (let p = 0; p < params.length; p++) {
    const analytic = params[p].grad
      ? await params[p].grad!.read()
      : new Float32Array(arrays[p].length);
    const numeric = new Float64Array(arrays[p].length);
    for (let i = 0; i < arrays[p].length; i++) {
      const orig = arrays[p][i];
      arrays[p][i] = orig + eps;
      const up = await loss(arrays);
      arrays[p][i] = orig - eps;
      const down = await loss(arrays);
      arrays[p][i] = orig;
      numeric[i] = (up - down) / (2 * eps);
    }
    assertClose(analytic, numeric, { atol, rtol, label: `${label} input ${p}` });
    params[p].grad?.dispose();
    params[p].dispose();
  }
  w.dispose();
}

/**
 * `gradCheck` for the parameters of a module: the accumulated gradient of each named parameter of
 * L = sum(f() * w) against central differences, each element perturbed in place and restored
 * (keep the module tiny). The parameters' `grad` must be empty before the call.
 */
export async function parameterGradCheck(
  parameters: [string, Tensor][],
  f: () => Tensor,
  { eps = 1e-2, atol = 2e-3, rtol = 2e-2, label = "parameterGradCheck", seed = 7 } = {},
): Promise<void> {
  const outShape = noGrad(() => scope(() => f().keep())).shape;
  const w = tensor(
    Float32Array.from(randomArray(outShape.reduce((a, b) => a * b, 1), seed)),
    [...outShape],
  );
  const loss = async (): Promise<number> => {
    const out = noGrad(() => scope(() => sum(mul(f(), w))));
    const v = await out.item();
    out.dispose();
    return v;
  };
  scope(() => sum(mul(f(), w)).backward());
  for (const [name, p] of parameters) {
    assert.ok(p.grad, `${label} ${name}: no gradient`);
    const analytic = await p.grad.read();
    const data = await p.read();
    const numeric = new Float64Array(p.size);
    const shifted = Float32Array.from(data);
    for (let i = 0; i < p.size; i++) {
      shifted[i] = data[i] + eps;
      p.write(shifted);
      const up = await loss();
      shifted[i] = data[i] - eps;
      p.write(shifted);
      numeric[i] = (up - await loss()) / (2 * eps);
      shifted[i] = data[i];
    }
    p.write(data);
    assertClose(analytic, numeric, { atol, rtol, label: `${label} ${name}` });
  }
  w.dispose();
}
