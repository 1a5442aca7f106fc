import assert from "node:assert/strict";
import { cosineAlphaBar, cosineBetas, linearBetas } from "../plugins/schedules/mod.ts";
import { NoiseSchedule } from "../core/diffusion/mod.ts";
import { builtins } from "../plugins/mod.ts";

const close = (a: number, b: number, tol = 1e-12, what = ""): void => {
  assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} != ${b}`);
};

/** mulberry32 + Box-Muller: a seeded normal generator for the statistics tests. */
function normals(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

Deno.test("cosineBetas() reproduce the closed-form alphaBar (Nichol & Dhariwal eq. 17)", () => {
  const T = 1000, s = 0.008;
  const f = (t: number): number => Math.cos(((t / T) + s) / (1 + s) * Math.PI / 2) ** 2;
  const sched = new NoiseSchedule(cosineBetas(T));
  // Before the 0.999 clip kicks in, prod(1 - beta) telescopes to f(t + 1) / f(0).
  for (const i of [0, 1, 10, 100, 500, 900, 990]) {
    close(sched.alphaBar[i], f(i + 1) / f(0), 1e-9, `alphaBar[${i}]`);
    close(cosineAlphaBar(i + 1, T), f(i + 1) / f(0), 1e-12, `cosineAlphaBar(${i + 1})`);
  }
  close(cosineAlphaBar(0, T), 1);
});

Deno.test("cosineBetas() with logSnrShift move every step's log-SNR by the shift (simple diffusion)", () => {
  const T = 1000, k = 2 * Math.log(16 / 32);
  const logit = (a: number): number => Math.log(a / (1 - a));
  const plain = new NoiseSchedule(cosineBetas(T));
  const shifted = new NoiseSchedule(cosineBetas(T, 0.008, 0.999, k));
  // Before the 0.999 clip, prod(1 - beta) telescopes to the shifted alphaBar(t + 1).
  for (const i of [0, 1, 10, 100, 500, 900, 990]) {
    close(logit(shifted.alphaBar[i]) - logit(plain.alphaBar[i]), k, 1e-6, `log-SNR at ${i}`);
    close(shifted.alphaBar[i], cosineAlphaBar(i + 1, T, 0.008, k), 1e-9, `alphaBar[${i}]`);
    assert.ok(shifted.alphaBar[i] < plain.alphaBar[i], "a negative shift adds noise");
  }
  close(cosineAlphaBar(0, T, 0.008, k), 1);
  assert.ok(cosineAlphaBar(T, T, 0.008, k) < 1e-30, "all noise at t = T");
  assert.deepEqual(cosineBetas(50, 0.008, 0.999, 0), cosineBetas(50));
  assert.equal(Math.max(...cosineBetas(T, 0.008, 0.999, k)), 0.999);
});

Deno.test("cosineBetas() are clipped at maxBeta", () => {
  const betas = cosineBetas(1000);
  assert.equal(Math.max(...betas), 0.999);
  assert.equal(betas[999], 0.999); // the unclipped value is 1 (alphaBar(T) = 0)
  for (let i = 1; i < betas.length; i++) assert.ok(betas[i] >= betas[i - 1]);
  assert.equal(Math.max(...cosineBetas(50, 0.008, 0.5)), 0.5);
});

Deno.test("linearBetas() run from 1e-4 to 0.02 scaled by 1000/T", () => {
  const b = linearBetas(1000);
  close(b[0], 1e-4);
  close(b[999], 0.02);
  close(b[500] - b[499], (0.02 - 1e-4) / 999);
  const b4 = linearBetas(250);
  close(b4[0], 4e-4);
  close(b4[249], 0.08);
});

Deno.test("NoiseSchedule posterior matches thesis eq. 2.8-2.9 computed independently", () => {
  const betas = linearBetas(50);
  const s = new NoiseSchedule(betas);
  let abar = 1;
  for (let t = 0; t < 50; t++) {
    const abarPrev = abar;
    abar *= 1 - betas[t];
    close(s.alphaBar[t], abar);
    close(s.alphaBarPrev[t], abarPrev);
    const varTilde = (1 - abarPrev) / (1 - abar) * betas[t];
    close(s.posteriorVariance[t], varTilde, 1e-12, "beta tilde");
    close(s.posteriorMeanCoef1[t], Math.sqrt(abarPrev) * betas[t] / (1 - abar), 1e-12, "coef1");
    close(s.posteriorMeanCoef2[t], Math.sqrt(1 - betas[t]) * (1 - abarPrev) / (1 - abar));
    if (t > 0) close(s.posteriorLogVarianceClipped[t], Math.log(varTilde));
  }
  assert.equal(s.posteriorVariance[0], 0);
  close(s.posteriorLogVarianceClipped[0], Math.log(s.posteriorVariance[1]));

  // The posterior mean of a known (x0, xt) pair, element by element.
  const x0 = new Float32Array([0.5, -1, 0.25]), xt = new Float32Array([0.1, 0.2, -0.3]);
  const mu = s.posteriorMean(x0, xt, 10);
  for (let i = 0; i < 3; i++) {
    close(mu[i], s.posteriorMeanCoef1[10] * x0[i] + s.posteriorMeanCoef2[10] * xt[i], 1e-6);
  }
});

Deno.test("NoiseSchedule.predictX0FromEps() inverts qSample()", () => {
  const s = new NoiseSchedule(cosineBetas(100));
  const rand = normals(1);
  const x0 = Float32Array.from({ length: 64 }, rand);
  const eps = Float32Array.from({ length: 64 }, rand);
  for (const t of [0, 50, 90]) {
    const xt = s.qSample(x0, t, eps);
    const back = s.predictX0FromEps(xt, t, eps);
    const epsBack = s.predictEpsFromX0(xt, t, x0);
    for (let i = 0; i < 64; i++) {
      assert.ok(Math.abs(back[i] - x0[i]) < 1e-3 * Math.max(1, s.sqrtRecipAlphaBar[t]));
      assert.ok(Math.abs(epsBack[i] - eps[i]) < 1e-3);
    }
  }
  assert.throws(() => s.qSample(x0, 100, eps), /out of range/);
});

Deno.test("NoiseSchedule.respace() with every step reproduces the original betas", () => {
  const s = new NoiseSchedule(cosineBetas(300));
  for (const r of [s.respace(300), s.respace([...Array(300).keys()])]) {
    assert.equal(r.numSteps, 300);
    for (let i = 0; i < 300; i++) close(r.betas[i], s.betas[i], 1e-9, `beta ${i}`);
    assert.deepEqual([...r.timesteps], [...s.timesteps]);
  }
});

Deno.test("NoiseSchedule.respace() keeps alphaBar and the original timesteps", () => {
  const s = new NoiseSchedule(cosineBetas(1000));
  const r = s.respace(50);
  assert.equal(r.numSteps, 50);
  assert.equal(r.timesteps[0], 0);
  assert.equal(r.timesteps[49], 999);
  for (let i = 0; i < 50; i++) close(r.alphaBar[i], s.alphaBar[r.timesteps[i]], 1e-9);
  // Respacing a respaced schedule maps back to the original indices.
  const rr = r.respace([0, 10, 49]);
  assert.deepEqual([...rr.timesteps], [0, r.timesteps[10], 999]);
  close(rr.alphaBar[1], s.alphaBar[r.timesteps[10]], 1e-9);
  assert.throws(() => s.respace([5, 5]), /strictly increasing/);
  assert.throws(() => s.respace(0), /expected an integer/);
});

Deno.test("NoiseSchedule.qSample() has mean sqrt(abar) x0 and variance 1 - abar", () => {
  const s = new NoiseSchedule(cosineBetas(1000));
  const rand = normals(42);
  const n = 200_000;
  const x0 = new Float32Array(n).fill(0.7);
  const eps = Float32Array.from({ length: n }, rand);
  for (const t of [10, 400, 800]) {
    const xt = s.qSample(x0, t, eps);
    let mean = 0;
    for (const v of xt) mean += v;
    mean /= n;
    let variance = 0;
    for (const v of xt) variance += (v - mean) ** 2;
    variance /= n - 1;
    const sd = Math.sqrt(1 - s.alphaBar[t]);
    // 5 standard errors of the mean and of the variance.
    assert.ok(Math.abs(mean - s.sqrtAlphaBar[t] * 0.7) < 5 * sd / Math.sqrt(n), `mean t=${t}`);
    assert.ok(
      Math.abs(variance - (1 - s.alphaBar[t])) < 5 * (1 - s.alphaBar[t]) * Math.sqrt(2 / n),
      `variance t=${t}`,
    );
  }
});

Deno.test("schedule plugins validate their options", async () => {
  const r = builtins();
  const lin = await r.use<NoiseSchedule>("schedule", "linear", { steps: 100 });
  close(lin.betas[0], 1e-3);
  await assert.rejects(() => r.use("schedule", "cosine", { steps: -1 }), /steps/);
  const shifted = await r.use<NoiseSchedule>("schedule", "cosine", { logSnrShift: -1.386 });
  assert.deepEqual(shifted.betas, cosineBetas(1000, 0.008, 0.999, -1.386));
  await assert.rejects(() => r.use("schedule", "cosine", { logSnrShift: "2" }), /logSnrShift/);
  // A beta of 1 leaves no signal (alphaBar = 0, x_0 = NaN): refused when the options load.
  await assert.rejects(() => r.use("schedule", "cosine", { maxBeta: 1 }), /maxBeta/);
  await assert.rejects(
    () => r.use("schedule", "linear", { steps: 20 }),
    /betaEnd.*0\.02 x 1000 \/ 20 steps = 1 is not below 1; use more steps \(above 20\)/,
  );
  await r.use("schedule", "linear", { steps: 21 });
  assert.throws(() => new NoiseSchedule(Float64Array.of(0.5, 1)), /Beta at step 1 is "1"/);
});
