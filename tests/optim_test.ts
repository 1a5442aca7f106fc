/** Optimizers: Adam/AdamW against float64 updates, clipping, schedules, EMA and state round trips. */
import assert from "node:assert/strict";
import { assertClose, randomArray } from "./_support/check.ts";
import {
  Adam,
  clipGradNorm,
  Ema,
  emaWarmupNote,
  emaWarmupUpdates,
  gradNorm,
  learningRateAt,
} from "../core/optim/mod.ts";
import { accumulateSquares, onCpu, type Tensor, tensor, zeros } from "../core/tensor/mod.ts";

const rd = async (t: Tensor): Promise<Float32Array> => (await t.read()) as Float32Array;

/** A parameter with the given values and gradient. */
function paramWithGrad(p: ArrayLike<number>, g: ArrayLike<number>): Tensor {
  const t = tensor(Float32Array.from(p), [p.length]).keep();
  t.requiresGrad = true;
  t.grad = tensor(Float32Array.from(g), [g.length]).keep();
  return t;
}

/** Float64 Adam (PyTorch's formulation) over `steps` steps with fixed gradients. */
function adamReference(
  p0: Float64Array,
  grads: Float64Array[],
  o: { lr: number; b1: number; b2: number; eps: number; wd: number; decoupled: boolean },
): Float64Array {
  const p = Float64Array.from(p0), m = new Float64Array(p.length), v = new Float64Array(p.length);
  grads.forEach((g0, s) => {
    const t = s + 1;
    for (let i = 0; i < p.length; i++) {
      if (o.decoupled) p[i] *= 1 - o.lr * o.wd;
      const g = o.decoupled ? g0[i] : g0[i] + o.wd * p[i];
      m[i] = o.b1 * m[i] + (1 - o.b1) * g;
      v[i] = o.b2 * v[i] + (1 - o.b2) * g * g;
      const denom = Math.sqrt(v[i]) / Math.sqrt(1 - o.b2 ** t) + o.eps;
      p[i] -= (o.lr / (1 - o.b1 ** t)) * m[i] / denom;
    }
  });
  return p;
}

for (
  const [name, wd, decoupled] of [["Adam", 0, false], ["Adam + L2", 0.1, false], [
    "AdamW",
    0.1,
    true,
  ]] as const
) {
  Deno.test(`${name}: two steps match a float64 reference; state round trip`, async () => {
    const p0 = randomArray(37, 1),
      g1 = randomArray(37, 2, -0.5, 0.5),
      g2 = randomArray(37, 3, -2, 2);
    const p = paramWithGrad(p0, g1);
    const opts = { lr: 0.01, b1: 0.9, b2: 0.99, eps: 1e-8, wd, decoupled };
    const opt = new Adam([p], { lr: 0.01, beta1: 0.9, beta2: 0.99, weightDecay: wd, decoupled });
    opt.step();
    assertClose(await rd(p), adamReference(p0, [g1], opts), {
      atol: 1e-6,
      rtol: 1e-5,
      label: `${name} step 1`,
    });
    opt.zeroGrad();
    assert.equal(p.grad, null);
    p.grad = tensor(Float32Array.from(g2), [37]).keep();
    const state = opt.stateDict();
    assert.equal(state.step, 1);
    const saved = { step: state.step, m: [await rd(state.m[0])], v: [await rd(state.v[0])] };
    const pAfter1 = await rd(p);
    opt.step();
    const expected = adamReference(p0, [g1, g2], opts);
    assertClose(await rd(p), expected, { atol: 1e-6, rtol: 1e-5, label: `${name} step 2` });
    // Restore the state after step 1 into a fresh optimizer: the same second step follows.
    p.write(pAfter1);
    const opt2 = new Adam([p], { lr: 0.01, beta1: 0.9, beta2: 0.99, weightDecay: wd, decoupled });
    opt2.loadStateDict(saved);
    opt2.step();
    assertClose(await rd(p), expected, { atol: 1e-6, rtol: 1e-5, label: `${name} resumed` });
    opt.zeroGrad();
    opt.dispose();
    opt2.dispose();
    p.dispose();
  });
}

/**
 * One AdamW step as the kernel computes it in float32: every operation rounded, in the WGSL
 * kernel's order, with the per-step scalars rounded as they are when written to the device.
 */
function adamwFloat32(p: number, g: number, lr: number, wd: number): number {
  const f = Math.fround, b1 = 0.9, b2 = 0.99, eps = f(1e-8);
  const s = [lr, 1 / (1 - b1), 1 / Math.sqrt(1 - b2), lr * wd].map(f);
  const m = f(f(f(b1) * 0) + f(f(1 - b1) * g)), v = f(f(f(b2) * 0) + f(f(f(1 - b2) * g) * g));
  const q = f(p * f(1 - s[3]));
  return f(q - f(f(f(s[0] * s[1]) * m) / f(f(f(Math.sqrt(v)) * s[2]) + eps)));
}

Deno.test({
  name: "Adam on the CPU is bit-exact with the kernel's float32 formula",
  ignore: !onCpu(), // GPUs may contract to fused multiply-adds and use approximate division
  fn: async () => {
    const p0 = randomArray(64, 4), g = randomArray(64, 5, -3, 3);
    const p = paramWithGrad(p0, g);
    const opt = new Adam([p], {
      lr: 0.01,
      beta1: 0.9,
      beta2: 0.99,
      weightDecay: 0.1,
      decoupled: true,
    });
    opt.step();
    const want = Float32Array.from(
      p0,
      (v, i) => adamwFloat32(Math.fround(v), Math.fround(g[i]), 0.01, 0.1),
    );
    assert.deepEqual(await rd(p), want);
    opt.zeroGrad();
    opt.dispose();
    p.dispose();
  },
});

Deno.test("AdamW with a zero gradient only decays the weights: p * (1 - lr * wd)", async () => {
  const p = paramWithGrad([1, -2, 4], [0, 0, 0]);
  const opt = new Adam([p], { lr: 0.1, weightDecay: 0.5, decoupled: true });
  opt.step();
  assertClose(await rd(p), [0.95, -1.9, 3.8], { atol: 1e-6, label: "decay" });
  opt.step(0.2); // lr override
  assertClose(await rd(p), [0.95 * 0.9, -1.9 * 0.9, 3.8 * 0.9], {
    atol: 1e-6,
    label: "decay lr 0.2",
  });
  opt.zeroGrad();
  opt.dispose();
  p.dispose();
});

Deno.test("clipGradNorm scales gradients to the max norm, leaves small ones alone", async () => {
  const a = paramWithGrad([0, 0], [3, 0]), b = paramWithGrad([0, 0, 0], [0, 4, 0]);
  const norm = clipGradNorm([a, b], 1);
  assert.deepEqual(norm.shape, [1]);
  assert.ok(Math.abs((await norm.item()) - 5) < 1e-5);
  const s = 1 / (5 + 1e-6);
  assertClose(await rd(a.grad!), [3 * s, 0], { label: "a" });
  assertClose(await rd(b.grad!), [0, 4 * s, 0], { label: "b" });
  const norm2 = clipGradNorm([a, b], 10);
  assert.ok(Math.abs((await norm2.item()) - 1) < 1e-5, "norm after clipping is 1");
  assertClose(await rd(b.grad!), [0, 4 * s, 0], { label: "unchanged below max" });
  for (const t of [norm, norm2, a.grad!, b.grad!, a, b]) t.dispose();
});

Deno.test("gradNorm: the global L2 norm of gradients of many sizes, one launch each", async () => {
  // Sizes below, at and far above the kernel's 256 threads, and a parameter without a gradient.
  const sizes = [1, 255, 256, 257, 5000, 70001];
  const grads = sizes.map((n, k) => randomArray(n, 10 + k, -1, 1));
  const params = grads.map((g) => paramWithGrad(new Float64Array(g.length), g));
  const bare = tensor(new Float32Array(3), [3]).keep();
  let expected = 0;
  for (const g of grads) for (const x of g) expected += Math.fround(x) ** 2;
  const norm = gradNorm([...params, bare]);
  assert.deepEqual(norm.shape, [1]);
  assertClose(await rd(norm), [Math.sqrt(expected)], { rtol: 1e-5, label: "norm" });
  const total = tensor(new Float32Array([2]), [1]).keep();
  accumulateSquares(total, params[1].grad!);
  let part = 2;
  for (const x of grads[1]) part += Math.fround(x) ** 2;
  assertClose(await rd(total), [part], { rtol: 1e-5, label: "added to what was there" });
  const two = zeros([2]).keep();
  assert.throws(() => accumulateSquares(two, params[0].grad!), /total must have one element/);
  for (const t of [norm, total, two, bare, ...params.map((p) => p.grad!), ...params]) t.dispose();
});

Deno.test("Adam.step with clip = clipGradNorm then step, and leaves the gradients as they were", async () => {
  const p0 = [randomArray(300, 21), randomArray(7, 22)];
  const g0 = [randomArray(300, 23, -2, 2), randomArray(7, 24, -2, 2)];
  let total = 0;
  for (const g of g0) for (const x of g) total += Math.fround(x) ** 2;
  // eps 1: Adam's first step, lr * g / (|g| + eps), would otherwise hardly depend on g's scale.
  // Clipping (factor ~0.05) and a limit above the norm (factor 1); plain Adam and Adam + L2.
  for (const [maxNorm, weightDecay] of [[1, 0], [1, 0.1], [1e6, 0]]) {
    const factor = Math.min(1, maxNorm / (Math.sqrt(total) + 1e-6));
    const a = p0.map((p, k) => paramWithGrad(p, g0[k])),
      b = p0.map((p, k) => paramWithGrad(p, g0[k]));
    const opts = { lr: 0.01, eps: 1, weightDecay };
    const optA = new Adam(a, opts), optB = new Adam(b, opts);
    clipGradNorm(a, maxNorm).dispose();
    optA.step();
    const norm = gradNorm(b);
    optB.step(undefined, { norm, maxNorm });
    const label = `maxNorm ${maxNorm}, wd ${weightDecay}`;
    for (let k = 0; k < 2; k++) {
      assertClose(await rd(b[k]), await rd(a[k]), {
        atol: 1e-6,
        rtol: 1e-5,
        label: `p${k} ${label}`,
      });
      // the first moment after one step: (1 - b1) * (g * factor + wd * p)
      const m = Float64Array.from(g0[k], (g, i) => 0.1 * (g * factor + weightDecay * p0[k][i]));
      assertClose(await rd(optB.stateDict().m[k]), m, {
        atol: 1e-6,
        rtol: 1e-4,
        label: `m${k} ${label}`,
      });
      assertClose(await rd(b[k].grad!), Float32Array.from(g0[k]), {
        atol: 0,
        rtol: 0,
        label: `grad ${k} untouched`,
      });
    }
    for (const t of [norm, ...a.map((p) => p.grad!), ...b.map((p) => p.grad!), ...a, ...b]) {
      t.dispose();
    }
    optA.dispose();
    optB.dispose();
  }
  const p = paramWithGrad([1], [1]), norm = gradNorm([p]), opt = new Adam([p], { lr: 0.01 });
  for (const maxNorm of [0, -1, NaN]) {
    assert.throws(() => opt.step(undefined, { norm, maxNorm }), /maxNorm must be positive/);
  }
  assert.throws(() => opt.step(undefined, { norm: p0Tensor(), maxNorm: 1 }), /one element/);
  for (const t of [norm, p.grad!, p]) t.dispose();
  opt.dispose();
});

/** A two-element tensor, not a norm. */
function p0Tensor(): Tensor {
  return tensor(new Float32Array(2), [2]);
}

Deno.test("learningRateAt: linear warmup, then constant or cosine to zero", () => {
  const o = { lr: 1, warmupSteps: 4, totalSteps: 14 };
  assert.deepEqual([0, 1, 2, 3].map((s) => learningRateAt(s, o)), [0.25, 0.5, 0.75, 1]);
  assert.equal(learningRateAt(100, o), 1);
  const c = { ...o, schedule: "cosine" as const };
  assert.equal(learningRateAt(4, c), 1);
  assert.ok(Math.abs(learningRateAt(9, c) - 0.5) < 1e-12, "half way");
  assert.ok(Math.abs(learningRateAt(6.5, c) - (1 + Math.cos(Math.PI / 4)) / 2) < 1e-12, "quarter");
  assert.equal(learningRateAt(14, c), 0);
  assert.equal(learningRateAt(50, c), 0);
  assert.ok(Math.abs(learningRateAt(9, { ...c, minLr: 0.2 }) - 0.6) < 1e-12, "floor");
  assert.throws(() => learningRateAt(5, { lr: 1, schedule: "cosine" }), /totalSteps/);
});

Deno.test("emaWarmupUpdates: the updates after which the warm-up reaches the decay", () => {
  assert.deepEqual([0.999, 0.9995, 0.9999, 0.5, 0.1, 0.05].map(emaWarmupUpdates), [
    8990,
    17990,
    89990,
    8,
    0,
    0,
  ]);
  // The warm-up decay itself: below 0.99 one update before, 0.99 from then on.
  const ema = new Ema([], 0.99, { warmup: true });
  const n = emaWarmupUpdates(0.99);
  ema.updates = n - 1;
  assert.ok(ema.currentDecay() < 0.99);
  ema.updates = n;
  assert.equal(ema.currentDecay(), 0.99);
  ema.dispose();
});

Deno.test("emaWarmupNote: names every decay the warm-up keeps, singular and plural", () => {
  const warm = (...decays: number[]) => decays.map((decay) => ({ decay, warmup: true }));
  assert.equal(emaWarmupNote("decoder", [], 300), null);
  // Reached within the run (0.9 at 80 updates), or without warm-up: not named.
  assert.equal(emaWarmupNote("decoder", [...warm(0.9), { decay: 0.99, warmup: false }], 300), null);
  assert.equal(
    emaWarmupNote("decoder", warm(0.99), 300),
    "decoder: EMA 0.99 stays in the warm-up, decay (1 + n) / (10 + n), for all 300 steps " +
      '(0.99 needs 890); "emaWarmup": false uses it from the start',
  );
  assert.equal(
    emaWarmupNote("prior", warm(0.999, 0.9995), 7000),
    "prior: EMA 0.999, 0.9995 stay in the warm-up, decay (1 + n) / (10 + n), for all 7000 steps " +
      '(0.999 needs 8990, 0.9995 needs 17990); "emaWarmup": false uses them from the start',
  );
});

Deno.test("Ema: values after 3 updates (constant and warmed-up decay), swap, copyTo, state", async () => {
  const p = tensor([1, 2], [2]).keep();
  const ema = new Ema([p], 0.9);
  const warm = new Ema([p], 0.9, { warmup: true });
  const steps = [[3, 4], [5, 0], [-1, 2]];
  const ref = [1, 2], refWarm = [1, 2];
  for (const [n, values] of steps.entries()) {
    p.write(Float32Array.from(values));
    ema.update();
    warm.update();
    const dw = Math.min(0.9, (1 + n) / (10 + n));
    for (let i = 0; i < 2; i++) {
      ref[i] = 0.9 * ref[i] + 0.1 * values[i];
      refWarm[i] = dw * refWarm[i] + (1 - dw) * values[i];
    }
  }
  assertClose(await rd(ema.stateDict().shadow[0]), ref, { atol: 1e-6, label: "ema" });
  assertClose(await rd(warm.stateDict().shadow[0]), refWarm, { atol: 1e-6, label: "ema warmup" });
  assert.equal(ema.updates, 3);
  ema.swap();
  assertClose(await rd(p), ref, { atol: 1e-6, label: "swapped in" });
  ema.swap();
  assertClose(await rd(p), [-1, 2], { label: "swapped back" });
  const q = tensor([0, 0], [2]).keep();
  ema.copyTo([q]);
  assertClose(await rd(q), ref, { atol: 1e-6, label: "copyTo" });
  warm.loadStateDict({ updates: 3, shadow: [new Float32Array([7, 8])] });
  assertClose(await rd(warm.stateDict().shadow[0]), [7, 8], { label: "loaded" });
  for (const x of [ema, warm]) x.dispose();
  for (const t of [p, q]) t.dispose();
});
