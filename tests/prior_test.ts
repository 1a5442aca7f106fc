import assert from "node:assert/strict";
import { assertClose, hostRandom } from "./_support/check.ts";
import { noGrad, randn, scope, tensor } from "../core/tensor/mod.ts";
import { cosineBetas, NoiseSchedule } from "../plugins/schedules/mod.ts";
import {
  gatherSteps,
  posteriorMeanVariance,
  qSample,
  randomSteps,
} from "../plugins/priors/diffusion.ts";

const schedule = new NoiseSchedule(cosineBetas(1000));

Deno.test("gatherSteps() picks per-sample coefficients on the GPU", async () => {
  const steps = [0, 1, 17, 500, 999, 3];
  const got = await scope(() => gatherSteps(schedule, "sqrtAlphaBar", tensor(steps, [6]))).read();
  assertClose(got, steps.map((s) => schedule.sqrtAlphaBar[s]), { atol: 1e-6, rtol: 1e-6 });
});

Deno.test("randomSteps() draws integers covering 0..T-1", async () => {
  const t = await scope(() => randomSteps(4000, 10)).read();
  const counts = new Array(10).fill(0);
  for (const v of t) {
    assert.ok(Number.isInteger(v) && v >= 0 && v < 10, `step ${v}`);
    counts[v]++;
  }
  for (const c of counts) assert.ok(c > 300 && c < 500, `counts ${counts}`);
});

Deno.test("qSample() matches q(x_t | x_0) statistics (Ho et al. eq. 4)", async () => {
  const E = 64, perGroup = 256, steps = [0, 100, 500, 900];
  const B = perGroup * steps.length;
  const r = hostRandom(7);
  const x0Row = Float32Array.from({ length: E }, () => 2 * r() - 1);
  const x0 = new Float32Array(B * E);
  for (let b = 0; b < B; b++) x0.set(x0Row, b * E);
  const t = Float32Array.from({ length: B }, (_, b) => steps[b % steps.length]);
  const xt = await scope(() => {
    const x = tensor(x0, [B, E]);
    return qSample(x, tensor(t, [B]), randn([B, E]), schedule);
  }).read();
  for (const [g, s] of steps.entries()) {
    let dot = 0, sq = 0;
    const residuals: number[] = [];
    for (let b = g; b < B; b += steps.length) {
      for (let e = 0; e < E; e++) {
        const v = xt[b * E + e];
        dot += v * x0Row[e];
        sq += x0Row[e] * x0Row[e];
        residuals.push(v - schedule.sqrtAlphaBar[s] * x0Row[e]);
      }
    }
    const n = residuals.length;
    const m = residuals.reduce((a, v) => a + v, 0) / n;
    const v = residuals.reduce((a, x) => a + (x - m) ** 2, 0) / n;
    const want = 1 - schedule.alphaBar[s];
    assert.ok(Math.abs(dot / sq - schedule.sqrtAlphaBar[s]) < 0.02, `scale at ${s}: ${dot / sq}`);
    assert.ok(Math.abs(m) < 4 * Math.sqrt(Math.max(want, 1e-8) / n) + 1e-6, `mean at ${s}: ${m}`);
    assert.ok(Math.abs(v - want) <= 0.05 * want + 1e-9, `variance at ${s}: ${v} vs ${want}`);
  }
});

Deno.test("posteriorMeanVariance() matches eq. 2.8-2.9 in float64", async () => {
  const B = 3, E = 16;
  const r = hostRandom(11);
  const x0 = Float32Array.from({ length: B * E }, () => 2 * r() - 1);
  const xt = Float32Array.from({ length: B * E }, () => 2 * r() - 1);
  for (const s of [0, 1, 250, 998, 999]) {
    const post = scope(() =>
      noGrad(() => posteriorMeanVariance(tensor(x0, [B, E]), tensor(xt, [B, E]), s, schedule))
    );
    const mean = await post.mean.read();
    post.mean.dispose();
    // Independent float64 reference from alphaBar (thesis eq. 2.8 and 2.9).
    const ab = schedule.alphaBar[s], prev = s === 0 ? 1 : schedule.alphaBar[s - 1];
    const beta = 1 - ab / prev;
    const c1 = Math.sqrt(prev) * beta / (1 - ab);
    const c2 = Math.sqrt(1 - beta) * (1 - prev) / (1 - ab);
    const want = Array.from(x0, (v, i) => c1 * v + c2 * xt[i]);
    assertClose(mean, want, { atol: 1e-5, rtol: 1e-5, label: `mean at ${s}` });
    const wantVar = (1 - prev) / (1 - ab) * beta;
    assert.ok(Math.abs(post.variance - wantVar) <= 1e-12 + 1e-9 * wantVar, `variance at ${s}`);
  }
});
