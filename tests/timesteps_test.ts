import assert from "node:assert/strict";
import { hostRandom } from "./_support/check.ts";
import { scope, type Tensor, tensor } from "../core/tensor/mod.ts";
import { cosineBetas } from "../plugins/schedules/mod.ts";
import {
  decoderLoss,
  drawTimesteps,
  logitNormalStepProbabilities,
  NoiseSchedule,
} from "../core/diffusion/mod.ts";
import { unetOptions } from "../plugins/decoders/unet.ts";
import { upsamplerOptions } from "../plugins/decoders/upsampler.ts";
import { lossOptions } from "../core/train/stages.ts";

const schedule = new NoiseSchedule(cosineBetas(1000));

/** The step whose log-SNR is nearest to lambda (log-SNR falls with the step). */
function nearestStep(lambdas: number[], lambda: number): number {
  let best = 0;
  for (let i = 1; i < lambdas.length; i++) {
    if (Math.abs(lambdas[i] - lambda) < Math.abs(lambdas[best] - lambda)) best = i;
  }
  return best;
}

Deno.test("logitNormalStepProbabilities() matches logit-normal draws mapped by log-SNR", () => {
  // Reference: Esser et al. 2024's sampler, t_rf = sigmoid(m + s n), on the host; its log-SNR
  // is 2 log((1 - t_rf) / t_rf); each draw goes to the step of the nearest log-SNR.
  const small = new NoiseSchedule(cosineBetas(40));
  const lambdas = Array.from(small.alphaBar, (a) => Math.log(a / (1 - a)));
  const r = hostRandom(11);
  for (const dist of [{ mean: 0, std: 1 }, { mean: 0.5, std: 1 }, { mean: -1, std: 0.5 }]) {
    const p = logitNormalStepProbabilities(small, dist);
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12);
    const n = 100_000, counts = new Array(40).fill(0);
    for (let k = 0; k < n; k++) {
      const gauss = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
      const tRf = 1 / (1 + Math.exp(-(dist.mean + dist.std * gauss)));
      counts[nearestStep(lambdas, 2 * Math.log((1 - tRf) / tRf))]++;
    }
    for (let i = 0; i < 40; i++) {
      const sd = Math.sqrt(n * p[i] * (1 - p[i]));
      assert.ok(
        Math.abs(counts[i] - n * p[i]) <= 5 * sd + 2,
        `mean ${dist.mean} std ${dist.std}, step ${i}: ${counts[i]} draws, expected ${n * p[i]}`,
      );
    }
  }
});

Deno.test("logitNormalStepProbabilities(): mean 0 centres on log-SNR 0, a positive mean on noisier steps", () => {
  const median = (p: Float64Array) => {
    let run = 0;
    for (let i = 0; i < p.length; i++) if ((run += p[i]) >= 0.5) return i;
    return p.length - 1;
  };
  const lambdaZero = Array.from(schedule.alphaBar).findIndex((a) => a < 0.5);
  const centred = median(logitNormalStepProbabilities(schedule, { mean: 0, std: 1 }));
  assert.ok(Math.abs(centred - lambdaZero) <= 1, `median ${centred}, log-SNR 0 at ${lambdaZero}`);
  const noisier = median(logitNormalStepProbabilities(schedule, { mean: 0.5, std: 1 }));
  assert.ok(noisier > centred + 50, `median ${noisier} against ${centred}`);
  assert.throws(
    () => logitNormalStepProbabilities(schedule, { mean: 0, std: 0 }),
    /needs a finite mean and a positive std \(got mean 0, std 0\)/,
  );
});

Deno.test("drawTimesteps() draws on the device with the logit-normal probabilities, or uniformly", async () => {
  const small = new NoiseSchedule(cosineBetas(12));
  const dist = { mean: 0.5, std: 1 };
  const p = logitNormalStepProbabilities(small, dist);
  const n = 20_000;
  const t = await scope(() => drawTimesteps(n, small, dist)).read();
  const counts = new Array(12).fill(0);
  for (const v of t) {
    assert.ok(Number.isInteger(v) && v >= 0 && v < 12, `step ${v}`);
    counts[v]++;
  }
  for (let i = 0; i < 12; i++) {
    const sd = Math.sqrt(n * p[i] * (1 - p[i]));
    assert.ok(Math.abs(counts[i] - n * p[i]) <= 5 * sd + 2, `step ${i}: ${counts} vs ${p}`);
  }
  const uniform = await scope(() => drawTimesteps(n, small, null)).read();
  const u = new Array(12).fill(0);
  for (const v of uniform) u[v]++;
  for (const c of u) assert.ok(Math.abs(c - n / 12) < 5 * Math.sqrt(n / 12), `uniform ${u}`);
});

Deno.test("decoderLoss() trains on the timesteps its logitNormal option draws", async () => {
  const seen: Tensor[] = [];
  const spy = {
    predictNoise(xt: Tensor, t: Tensor): Tensor {
      seen.push(t.keep());
      return xt;
    },
  };
  const small = new NoiseSchedule(cosineBetas(50));
  const stepsOf = async (logitNormal: { mean: number; std: number } | null) => {
    seen.length = 0;
    await scope(() =>
      decoderLoss(spy, tensor(new Float32Array(512 * 4), [512, 4]), {}, small, { logitNormal })
    ).read();
    const t = await seen[0].read();
    seen[0].dispose();
    return Array.from(t);
  };
  const noisy = await stepsOf({ mean: 3, std: 0.3 }); // t_rf near 0.95: log-SNR near -6
  assert.ok(noisy.every((v) => v >= 40), `steps ${Math.min(...noisy)}..${Math.max(...noisy)}`);
  const uniform = await stepsOf(null);
  assert.ok(uniform.filter((v) => v < 25).length > 150, "uniform draws cover the low steps");
});

Deno.test("logitNormalTimesteps: plugin option read by the trainer, bad values refused", () => {
  const dist = { mean: 0.5, std: 1 };
  for (const schema of [unetOptions, upsamplerOptions]) {
    assert.deepEqual(lossOptions(schema.parse({ logitNormalTimesteps: dist })), {
      minSnrGamma: null,
      logitNormal: dist,
      multiscale: null,
    });
    assert.deepEqual(lossOptions(schema.parse({})), {
      minSnrGamma: null,
      logitNormal: null,
      multiscale: null,
    });
    for (const bad of [{ mean: 0, std: 0 }, { mean: 0, std: -1 }, { mean: 0 }, { ...dist, k: 1 }]) {
      assert.equal(schema.safeParse({ logitNormalTimesteps: bad }).success, false);
    }
  }
});
