import assert from "node:assert/strict";
import {
  affine,
  full,
  initBackend,
  manualSeed,
  noGrad,
  randn as randnLike,
  scope,
  sub,
  type Tensor,
  tensor,
} from "../core/tensor/mod.ts";
import { builtins } from "../plugins/mod.ts";
import type { DecoderConditioning, NoisePredictor, Sampler } from "../core/components.ts";
import { cosineBetas } from "../plugins/schedules/mod.ts";
import { NoiseSchedule } from "../core/diffusion/mod.ts";
import {
  DdimSampler,
  ddimSigma,
  ddimStep,
  DdpmSampler,
  ddpmStep,
  dpmSolver2mSdeStep,
  dpmSolver2mStep,
  DpmSolverSampler,
  halfLogSnr,
  logSnrSteps,
} from "../plugins/samplers/mod.ts";
import {
  checkGuidanceInterval,
  combineGuidance,
  conditionalPredictor,
  FULL_GUIDANCE_INTERVAL,
  guidedNoise,
  guidedPredictor,
} from "../core/diffusion/mod.ts";
import { UNetDecoder } from "../plugins/decoders/mod.ts";
import { hostRandom } from "./_support/check.ts";
import { tinyUNetOptions } from "./_support/tiny_unet.ts";
import { switchedPredictor } from "../core/pipeline.ts";

await initBackend();

const read = async (t: Tensor): Promise<Float32Array> => (await t.read()) as Float32Array;

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function uniform(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = hostRandom(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * r());
}

/**
 * An oracle that knows x_0: eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t) at the ORIGINAL
 * timestep index (eq. 2.4 solved for eps). Records the timesteps it was called with.
 */
function oracle(x0: Tensor, schedule: NoiseSchedule, seen: number[]): NoisePredictor {
  return (xt, timestep) => {
    seen.push(timestep);
    const ab = schedule.alphaBar[timestep];
    return affine(sub(xt, affine(x0, Math.sqrt(ab), 0)), 1 / Math.sqrt(1 - ab), 0);
  };
}

const schedule = new NoiseSchedule(cosineBetas(50));
const SHAPE = [3, 3, 4, 4];

Deno.test("ddpmStep() matches the closed-form posterior (thesis eqs. 2.8, 2.9, 2.15)", async () => {
  const n = 48;
  const xt = uniform(n, 1, -2, 2), eps = uniform(n, 2, -2, 2), z = uniform(n, 3, -2, 2);
  for (const i of [1, 17, 49]) {
    const [mean, noisy, noisyLarge] = await Promise.all(
      scope(() => {
        const x = tensor(xt, [n]), e = tensor(eps, [n]), noise = tensor(z, [n]);
        return [
          ddpmStep(x, e, schedule, i, null, { clipDenoised: false }),
          ddpmStep(x, e, schedule, i, noise, { clipDenoised: false }),
          ddpmStep(x, e, schedule, i, noise, { clipDenoised: false, variance: "large" }),
        ];
      }).map(read),
    );
    const x0 = schedule.predictX0FromEps(xt, i, eps);
    const expected = schedule.posteriorMean(x0, xt, i);
    assert.ok(maxDiff(mean, expected) < 1e-4, `posterior mean at ${i}`);
    // Algorithm 3, line 7 (eq. 2.15): 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t) eps).
    const a = schedule.alphas[i], b = schedule.betas[i], s = schedule.sqrtOneMinusAlphaBar[i];
    const eq215 = xt.map((v, k) => (v - b / s * eps[k]) / Math.sqrt(a));
    assert.ok(maxDiff(mean, eq215) < 1e-4, `eq. 2.15 at ${i}`);
    const sd = Math.sqrt(schedule.posteriorVariance[i]);
    assert.ok(maxDiff(noisy, expected.map((v, k) => v + sd * z[k])) < 1e-4);
    // The other bound (Ho et al. 2020, section 3.2): the same mean, sigma_t^2 = beta_t.
    assert.ok(maxDiff(noisyLarge, expected.map((v, k) => v + Math.sqrt(b) * z[k])) < 1e-4);
    assert.ok(b > schedule.posteriorVariance[i], `beta_t > beta-tilde_t at ${i}`);
  }
});

Deno.test("DdpmSampler with the true noise returns x_0 (full and respaced chains)", async () => {
  const x0 = tensor(uniform(144, 4, -0.9, 0.9), SHAPE);
  const target = await read(x0);
  for (const steps of [undefined, 7]) {
    manualSeed(1);
    const seen: number[] = [];
    let calls = 0;
    const out = new DdpmSampler().sample(oracle(x0, schedule, seen), SHAPE, schedule, {
      steps,
      onStep: () => calls++,
    });
    assert.ok(maxDiff(await read(out), target) < 1e-4, `steps ${steps}`);
    const expected = steps ? [...schedule.respace(steps).timesteps].reverse() : null;
    assert.equal(calls, steps ?? 50);
    if (expected) assert.deepEqual(seen, expected); // original indices, high to low
    else assert.deepEqual(seen, Array.from({ length: 50 }, (_, k) => 49 - k));
    out.dispose();
  }
  x0.dispose();
});

Deno.test("DdpmSampler clampXt keeps every x_t in [-1, 1]", async () => {
  manualSeed(2);
  const big = full(SHAPE, 3); // an oracle for an out-of-range x_0 pushes x_t outside [-1, 1]
  const out = new DdpmSampler({ clampXt: true, clipDenoised: false })
    .sample(oracle(big, schedule, []), SHAPE, schedule, { steps: 5 });
  assert.ok((await read(out)).every((v) => v >= -1 && v <= 1));
  out.dispose(), big.dispose();
});

Deno.test("DdimSampler eta = 0 is deterministic given the seed and recovers x_0", async () => {
  const x0 = tensor(uniform(144, 5, -0.9, 0.9), SHAPE);
  const runs: Float32Array[] = [];
  for (let k = 0; k < 2; k++) {
    manualSeed(7);
    const seen: number[] = [];
    const out = new DdimSampler({ steps: 10 }).sample(oracle(x0, schedule, seen), SHAPE, schedule);
    assert.deepEqual(seen, [...schedule.respace(10).timesteps].reverse());
    runs.push(await read(out));
    out.dispose();
  }
  assert.deepEqual(runs[0], runs[1]);
  assert.ok(maxDiff(runs[0], await read(x0)) < 1e-4);
  // A different seed gives a different start but the oracle still lands on x_0.
  manualSeed(8);
  const other = new DdimSampler({ steps: 4 }).sample(oracle(x0, schedule, []), SHAPE, schedule);
  assert.ok(maxDiff(await read(other), await read(x0)) < 1e-4);
  other.dispose(), x0.dispose();
});

Deno.test("ddimStep() with eta = 1 has DDPM's posterior mean and variance (Song et al. eq. 16)", async () => {
  const n = 48;
  const xt = uniform(n, 9, -2, 2), eps = uniform(n, 10, -2, 2);
  for (const i of [1, 20, 49]) {
    const sigma = ddimSigma(schedule, i, 1);
    assert.ok(Math.abs(sigma * sigma - schedule.posteriorVariance[i]) < 1e-9);
    const [ddim, ddpm] = await Promise.all(
      scope(() => {
        const x = tensor(xt, [n]), e = tensor(eps, [n]);
        return [
          ddimStep(x, e, schedule, i, null, { eta: 1, clipDenoised: false }),
          ddpmStep(x, e, schedule, i, null, { clipDenoised: false }),
        ];
      }).map(read),
    );
    assert.ok(maxDiff(ddim, ddpm) < 1e-4, `step ${i}: ${maxDiff(ddim, ddpm)}`);
  }
  assert.equal(ddimSigma(schedule, 10, 0), 0);
});

Deno.test("DpmSolverSampler with the true x_0 keeps the starting noise and returns x_0", async () => {
  const x0 = tensor(uniform(144, 6, -0.9, 0.9), SHAPE);
  const target = await read(x0);
  manualSeed(9);
  const start = await read(noGrad(() => randnLike(SHAPE)));
  manualSeed(9);
  const inputs: Promise<Float32Array>[] = [], seen: number[] = [];
  const truth = oracle(x0, schedule, seen);
  const out = new DpmSolverSampler({ steps: 8 }).sample(
    (xt, t) => {
      inputs.push(xt.read() as Promise<Float32Array>);
      return truth(xt, t);
    },
    SHAPE,
    schedule,
  );
  assert.ok(maxDiff(await read(out), target) < 1e-4);
  assert.deepEqual(seen, [...logSnrSteps(schedule, 8)].reverse());
  // With x_theta = x_0 every update is exact: x_t = alpha_t x_0 + sigma_t eps, same eps.
  for (const [k, p] of inputs.entries()) {
    const ab = schedule.alphaBar[seen[k]];
    const eps = (await p).map((v, j) => (v - Math.sqrt(ab) * target[j]) / Math.sqrt(1 - ab));
    assert.ok(maxDiff(eps, start) < 2e-3, `call ${k}: ${maxDiff(eps, start)}`);
  }
  out.dispose(), x0.dispose();
});

Deno.test("dpmSolver2mStep() is Algorithm 2 of Lu et al. 2022", async () => {
  const n = 16;
  const xs = uniform(n, 11, -2, 2), d1 = uniform(n, 12), d0 = uniform(n, 13);
  const i = 20;
  const [first, second] = await Promise.all(
    scope(() => {
      const x = tensor(xs, [n]), a = tensor(d1, [n]), b = tensor(d0, [n]);
      return [dpmSolver2mStep(x, a, null, schedule, i), dpmSolver2mStep(x, a, b, schedule, i)];
    }).map(read),
  );
  const alpha = (k: number) => Math.sqrt(schedule.alphaBar[k]);
  const sigma = (k: number) => Math.sqrt(1 - schedule.alphaBar[k]);
  const lam = (k: number) => Math.log(alpha(k) / sigma(k));
  assert.ok(Math.abs(halfLogSnr(schedule, i) - lam(i)) < 1e-9);
  const h = lam(i - 1) - lam(i), r = (lam(i) - lam(i + 1)) / h;
  const step = (d: (j: number) => number) =>
    xs.map((v, j) => sigma(i - 1) / sigma(i) * v - alpha(i - 1) * (Math.exp(-h) - 1) * d(j));
  assert.ok(maxDiff(first, step((j) => d1[j])) < 1e-5);
  const D = (j: number) => (1 + 1 / (2 * r)) * d1[j] - 1 / (2 * r) * d0[j];
  assert.ok(maxDiff(second, step(D)) < 1e-5);
});

Deno.test("dpmSolver2mSdeStep(): first order is DDPM's posterior step, second adds the 2M term", async () => {
  const n = 16;
  const xs = uniform(n, 21, -2, 2), eps = uniform(n, 22, -2, 2), prev = uniform(n, 23);
  const z = uniform(n, 24, -2, 2);
  for (const i of [1, 20, 48]) {
    const [sde, ddpm, sde2, x0] = await Promise.all(
      scope(() => {
        const x = tensor(xs, [n]), e = tensor(eps, [n]), noise = tensor(z, [n]);
        // The data prediction DDPM makes from eps (no clamping on either side).
        const ab = schedule.alphaBar[i];
        const x0 = affine(sub(x, affine(e, Math.sqrt(1 - ab), 0)), 1 / Math.sqrt(ab), 0);
        const p = tensor(prev, [n]);
        return [
          dpmSolver2mSdeStep(x, x0, null, schedule, i, noise),
          ddpmStep(x, e, schedule, i, noise, { clipDenoised: false }),
          dpmSolver2mSdeStep(x, x0, p, schedule, i, noise),
          x0,
        ];
      }).map(read),
    );
    assert.ok(maxDiff(sde, ddpm) < 1e-4, `step ${i}: ${maxDiff(sde, ddpm)}`);
    // The second order replaces x0 by D = x0 + (x0 - prev) / (2 r): the update moves by
    // alpha_t (1 - e^{-2h}) (D - x0).
    const lam = (k: number) => halfLogSnr(schedule, k);
    const h = lam(i - 1) - lam(i), r = (lam(i) - lam(i + 1)) / h;
    const coef = Math.sqrt(schedule.alphaBar[i - 1]) * -Math.expm1(-2 * h);
    const expected = sde.map((v, j) => v + coef * (x0[j] - prev[j]) / (2 * r));
    assert.ok(maxDiff(sde2, expected) < 1e-4, `step ${i}: ${maxDiff(sde2, expected)}`);
  }
});

Deno.test("DpmSolverSampler (stochastic) with the true x_0 returns x_0 and uses fresh noise", async () => {
  const x0 = tensor(uniform(144, 6, -0.9, 0.9), SHAPE);
  const target = await read(x0);
  const seen: number[] = [];
  const sampler = new DpmSolverSampler({ steps: 8, spacing: "logsnr" }, { stochastic: true });
  assert.equal(sampler.name, "dpm-solver++-sde");
  manualSeed(3);
  const out = sampler.sample(oracle(x0, schedule, seen), SHAPE, schedule);
  assert.ok(maxDiff(await read(out), target) < 1e-4);
  assert.deepEqual(seen, [...logSnrSteps(schedule, 8)].reverse());
  // Two seeds: the same x_0 at the end, different paths (the noise is drawn at every step).
  const paths: Float32Array[] = [];
  for (const seed of [1, 2]) {
    manualSeed(seed);
    let third: Promise<Float32Array> | null = null, calls = 0;
    const truth = oracle(x0, schedule, []);
    const o = sampler.sample(
      (xt, t) => {
        if (++calls === 3) third = xt.read() as Promise<Float32Array>;
        return truth(xt, t);
      },
      SHAPE,
      schedule,
    );
    paths.push(await third!);
    o.dispose();
  }
  assert.ok(maxDiff(paths[0], paths[1]) > 0.1);
  out.dispose(), x0.dispose();
});

Deno.test("DpmSolverSampler solves the ODE of Gaussian data better than DDIM in 10 steps", async () => {
  // Data ~ N(0, c^2): the exact data prediction is E[x_0 | x_t] = alpha c^2 x_t / (alpha^2 c^2 +
  // sigma^2), and the probability-flow ODE maps x_T to x_0 = c x_T / sqrt(alpha_T^2 c^2 + sigma_T^2).
  const c = 0.5, fine = new NoiseSchedule(cosineBetas(1000));
  const gaussian: NoisePredictor = (xt, t) => {
    const ab = fine.alphaBar[t], a = Math.sqrt(ab), s2 = 1 - ab;
    const x0 = affine(xt, (a * c * c) / (ab * c * c + s2), 0);
    return affine(sub(xt, affine(x0, a, 0)), 1 / Math.sqrt(s2), 0);
  };
  const errors: Record<string, number> = {};
  for (
    const sampler of [
      new DdimSampler({ steps: 10, clipDenoised: false }),
      new DpmSolverSampler({ steps: 10, clipDenoised: false }),
    ]
  ) {
    manualSeed(4);
    const xT = await read(noGrad(() => randnLike([64])));
    manualSeed(4);
    const out = sampler.sample(gaussian, [64], fine);
    const abT = fine.alphaBar[999];
    const exact = xT.map((v) => (c * v) / Math.sqrt(abT * c * c + 1 - abT));
    errors[sampler.name] = maxDiff(await read(out), exact);
    out.dispose();
  }
  assert.ok(errors["dpm-solver++"] < 0.05, JSON.stringify(errors));
  assert.ok(errors["dpm-solver++"] < errors.ddim / 2, JSON.stringify(errors));
});

Deno.test("logSnrSteps() spaces steps evenly in log-SNR, distinct and in range", () => {
  const fine = new NoiseSchedule(cosineBetas(1000));
  for (const n of [1, 2, 10, 50, 1000]) {
    const steps = logSnrSteps(fine, n);
    assert.equal(steps.length, n);
    assert.ok(steps.every((t, k) => t >= 0 && t < 1000 && (k === 0 || t > steps[k - 1])));
  }
  const ten = logSnrSteps(fine, 10);
  assert.deepEqual([ten[0], ten[9]], [0, 999]);
  const gaps = ten.slice(1).map((t, k) => halfLogSnr(fine, ten[k]) - halfLogSnr(fine, t));
  // Even where the schedule is fine-grained; its last few steps are far apart in lambda (the
  // cosine betas are clipped at 0.999), so the gaps there cannot be matched.
  const body = gaps.slice(0, 6), mean = body.reduce((a, b) => a + b) / body.length;
  assert.ok(body.every((g) => Math.abs(g - mean) < 0.1 * mean), gaps.join(", "));
  assert.throws(() => logSnrSteps(fine, 0), /expected an integer in 1..1000/);
});

Deno.test("sampler plugins are registered with defaults", async () => {
  const registry = builtins();
  const ddpm = await registry.use<Sampler>("sampler", "ddpm", {});
  const ddim = await registry.use<DdimSampler>("sampler", "ddim", { eta: 0.5, steps: 20 });
  assert.equal(ddpm.name, "ddpm");
  assert.equal(ddim.options.eta, 0.5);
  assert.equal(ddim.options.clipDenoised, true);
  const dpm = await registry.use<DpmSolverSampler>("sampler", "dpm-solver++", {});
  assert.equal(dpm.options.steps, 20);
  const sde = await registry.use<DpmSolverSampler>("sampler", "dpm-solver++-sde", {});
  assert.equal(sde.stochastic, true);
  assert.deepEqual([sde.options.steps, sde.options.spacing], [15, "uniform"]);
  await assert.rejects(registry.use("sampler", "ddim", { eat: 1 }), /Invalid options/);
});

/** A tiny U-Net whose output depends on its condition, a batch of 3 conditions and an x_t. */
function conditionedTinyDecoder() {
  manualSeed(21);
  const T = 5, B = 3;
  const model = new UNetDecoder(tinyUNetOptions({ attentionLevels: [0], contextLength: T }));
  // Give the zero-initialised layers values so the output depends on the condition.
  const r = hostRandom(22);
  for (const [name, p] of model.namedParameters()) {
    if (/(conv2|proj|outConv)\./.test(name + ".")) {
      p.write(Float32Array.from({ length: p.size }, () => (r() - 0.5) * 0.2));
    }
  }
  const cond = (keep: number): DecoderConditioning => ({
    tokens: {
      ids: tensor(Int32Array.from({ length: B * T }, (_, k) => (k * 7) % 30), [B, T], "i32"),
      endIndex: tensor(new Int32Array([4, 2, 3]), [B], "i32"),
    },
    imageEmbedding: tensor(uniform(B * 8, 23), [B, 8]),
    keep: full([B], keep),
  });
  const x = tensor(uniform(B * 3 * 64, 24), [B, 3, 8, 8]);
  return { model, cond, x, B };
}

Deno.test("guidedNoise() with s = 1 equals the conditional prediction, s = 0 the unconditional", async () => {
  const { model, cond, x, B } = conditionedTinyDecoder();
  // Sampling runs without gradients (fused kernels), as here.
  const [g1, g0, g2, c, u, p] = await Promise.all(
    noGrad(() =>
      scope(() => [
        guidedNoise(model, x, 12, cond(1), 1),
        guidedNoise(model, x, 12, cond(1), 0),
        guidedNoise(model, x, 12, cond(1), 2.5),
        model.predictNoise(x, full([B], 12), cond(1)),
        model.predictNoise(x, full([B], 12), cond(0)),
        conditionalPredictor(model, cond(1))(x, 12),
      ])
    ).map(read),
  );
  assert.deepEqual(p, c);
  assert.ok(maxDiff(g1, c) < 1e-4, `s = 1: ${maxDiff(g1, c)}`);
  assert.ok(maxDiff(g0, u) < 1e-4, `s = 0: ${maxDiff(g0, u)}`);
  assert.ok(maxDiff(c, u) > 1e-3, "the condition must matter");
  const expected = u.map((v, k) => v + 2.5 * (c[k] - v));
  assert.ok(maxDiff(g2, expected) < 1e-4);
  const combined = await read(
    scope(() => combineGuidance(tensor(c, [c.length]), tensor(u, [u.length]), 2.5)),
  );
  assert.ok(maxDiff(combined, expected) < 1e-5);
  model.dispose();
});

Deno.test("guidedPredictor() guides only inside its interval: one conditional pass outside", async () => {
  const { model, cond, x } = conditionedTinyDecoder();
  // T = 20: timestep 12 is t/T = 0.6 (inside [0.4, 1]), timestep 4 is 0.2 (outside).
  const limit = { interval: [0.4, 1] as const, timesteps: 20 };
  const [inside, outside, guided12, cond4, full12] = await Promise.all(
    noGrad(() =>
      scope(() => {
        const limited = guidedPredictor(model, cond(1), 2.5, limit);
        const everywhere = guidedPredictor(model, cond(1), 2.5, {
          interval: FULL_GUIDANCE_INTERVAL,
          timesteps: 20,
        });
        return [
          limited(x, 12),
          limited(x, 4),
          guidedNoise(model, x, 12, cond(1), 2.5),
          conditionalPredictor(model, cond(1))(x, 4),
          everywhere(x, 12),
        ];
      })
    ).map(read),
  );
  assert.deepEqual(inside, guided12);
  assert.deepEqual(full12, guided12);
  assert.deepEqual(outside, cond4);
  const unguided4 = await read(noGrad(() => scope(() => guidedNoise(model, x, 4, cond(1), 2.5))));
  assert.ok(maxDiff(outside, unguided4) > 1e-3, "outside the interval guidance must be off");
  for (const bad of [[0.5, 0.5], [-0.1, 1], [0, 1.5], [0.4], [NaN, 1], "0,1"]) {
    assert.throws(
      () => checkGuidanceInterval(bad, "guidanceInterval"),
      /guidanceInterval must be two fractions lo < hi from 0 to 1/,
    );
  }
  model.dispose();
});

/**
 * The oracle's output written as what an x_0- or v-predicting network returns: x_0 itself, or
 * v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022, section 4).
 */
function oracleAs(
  prediction: "x0" | "v",
  x0: Tensor,
  schedule: NoiseSchedule,
  seen: number[],
): NoisePredictor {
  const eps = oracle(x0, schedule, seen);
  if (prediction === "x0") {
    return (xt, t) => (eps(xt, t).dispose(), affine(x0, 1, 0));
  }
  return (xt, t) => {
    const ab = schedule.alphaBar[t];
    return sub(affine(eps(xt, t), Math.sqrt(ab), 0), affine(x0, Math.sqrt(1 - ab), 0));
  };
}

Deno.test("every sampler takes an x_0- or v-predicting network as the same eps one", async () => {
  const x0 = tensor(uniform(144, 11, -0.9, 0.9), SHAPE);
  const samplers: Sampler[] = [
    new DdpmSampler({ steps: 6 }),
    new DdimSampler({ steps: 6 }),
    new DdimSampler({ steps: 6, eta: 1 }),
    new DdimSampler({ steps: 6, clipDenoised: false }),
    new DpmSolverSampler({ steps: 6 }),
    new DpmSolverSampler({ steps: 6 }, { stochastic: true }),
  ];
  for (const sampler of samplers) {
    manualSeed(12);
    const viaEps = sampler.sample(oracle(x0, schedule, []), SHAPE, schedule);
    const a = await read(viaEps);
    viaEps.dispose();
    for (const prediction of ["x0", "v"] as const) {
      manualSeed(12);
      const seen: number[] = [];
      const out = sampler.sample(oracleAs(prediction, x0, schedule, seen), SHAPE, schedule, {
        prediction,
      });
      const b = await read(out);
      const what = `${sampler.name} (${prediction})`;
      assert.ok(maxDiff(a, b) < 1e-4, `${what}: ${maxDiff(a, b)}`);
      assert.ok(maxDiff(b, await read(x0)) < 1e-4, `${what} does not land on x_0`);
      assert.equal(seen.length, 6);
      out.dispose();
    }
  }
  x0.dispose();
});

Deno.test("switchedPredictor() gives the steps below the switch to the late network", async () => {
  const schedule = new NoiseSchedule(cosineBetas(100));
  const calls: { early: number[]; late: number[] } = { early: [], late: [] };
  const recorder = (into: number[]): NoisePredictor => (xt, t) => {
    into.push(t);
    return affine(xt, 0, 0);
  };
  const predict = switchedPredictor(
    recorder(calls.early),
    recorder(calls.late),
    0.3,
    schedule.numSteps,
  );
  const sampler = await builtins().use<Sampler>("sampler", "ddim", { steps: 10 });
  await scope(() => sampler.sample(predict, [1, 2], schedule)).read();
  assert.equal(calls.early.length + calls.late.length, 10);
  assert.ok(calls.late.length > 0 && calls.early.length > 0, JSON.stringify(calls));
  assert.ok(calls.late.every((t) => t < 30), `late ${calls.late}`);
  assert.ok(calls.early.every((t) => t >= 30), `early ${calls.early}`);
});
