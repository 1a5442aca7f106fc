// v-prediction (Salimans & Ho 2022, section 4) end to end: a decoder or upsampler that declares
// `prediction: "v"` is sampled as one by the pipeline, and the unet plugins take the option.
// The maths (targets, x_0 from v, min-SNR weights) is tested in decoder_test.ts and
// samplers_test.ts.
import assert from "node:assert/strict";
import {
  div,
  full,
  initBackend,
  manualSeed,
  mul,
  reshape,
  sub,
  type Tensor,
  tensor,
} from "../core/tensor/mod.ts";
import type { Decoder, SamplerRunOptions, Upsampler } from "../core/components.ts";
import { gatherSteps, NoiseSchedule } from "../core/diffusion/mod.ts";
import { decodeImages } from "../core/pipeline/generate.ts";
import type { Components } from "../core/pipeline/load.ts";
import { upsampleImages } from "../core/pipeline/upsample.ts";
import { DdimSampler } from "../plugins/samplers/mod.ts";
import { cosineBetas } from "../plugins/schedules/mod.ts";
import { builtins } from "../plugins/mod.ts";
import { hostRandom } from "./_support/check.ts";

await initBackend();

const schedule = new NoiseSchedule(cosineBetas(50));
const SHAPE = [2, 3, 4, 4];

function target(): Tensor {
  const r = hostRandom(5);
  return tensor(Float32Array.from({ length: 96 }, () => 1.8 * r() - 0.9), SHAPE).keep();
}

/**
 * The true velocity for images x0 at original timesteps t (f32 [B]): with eps = (x_t - sqrt(abar)
 * x_0) / sqrt(1 - abar), v = sqrt(abar) eps - sqrt(1 - abar) x_0 = (sqrt(abar) x_t - x_0) /
 * sqrt(1 - abar).
 */
function trueVelocity(xt: Tensor, t: Tensor, x0: Tensor): Tensor {
  const B = xt.shape[0];
  const a = reshape(gatherSteps(schedule, "sqrtAlphaBar", t), [B, 1, 1, 1]);
  const b = reshape(gatherSteps(schedule, "sqrtOneMinusAlphaBar", t), [B, 1, 1, 1]);
  return div(sub(mul(xt, a), x0), b);
}

async function maxDiff(a: Tensor, b: Tensor): Promise<number> {
  const [x, y] = [await a.read(), await b.read()];
  return Math.max(...Array.from(x, (v, i) => Math.abs(v - y[i])));
}

Deno.test("decodeImages() samples a v-predicting decoder as one (it lands on x_0)", async () => {
  const x0 = target();
  const decoder = (prediction: "eps" | "v") =>
    ({
      imageSize: 4,
      channels: 3,
      prediction,
      predictNoise: (xt: Tensor, t: Tensor) => trueVelocity(xt, t, x0),
    }) as unknown as Decoder;
  const pipeline = (prediction: "eps" | "v") =>
    ({
      decoder: decoder(prediction),
      sampler: new DdimSampler({ steps: 3 }),
      decoderSchedule: schedule,
    }) as unknown as Components;
  const tokens = { ids: full([2, 3], 0, "i32"), endIndex: full([2], 1, "i32") };
  const z = full([2, 8], 0.1);
  manualSeed(3);
  const images = decodeImages(pipeline("v"), tokens, z, { guidance: 1 });
  assert.ok(await maxDiff(images, x0) < 1e-4, "the v-predicting decoder's sample is not x_0");
  // The sampler is told what the decoder returns (an eps decoder says "eps").
  for (const prediction of ["eps", "v"] as const) {
    const told: unknown[] = [];
    const spy = {
      name: "spy",
      sample: (_p: unknown, shape: number[], _s: unknown, options: SamplerRunOptions = {}) => {
        told.push(options.prediction);
        return full(shape, 0);
      },
    };
    decodeImages({ ...pipeline(prediction), sampler: spy }, tokens, z, { guidance: 1 });
    assert.deepEqual(told, [prediction]);
  }
  x0.dispose();
});

Deno.test("upsampleImages() samples a v-predicting upsampler as one (it lands on x_0)", async () => {
  const x0 = target();
  const upsampler = {
    lowResSize: 2,
    imageSize: 4,
    channels: 3,
    augment: "none",
    augmentMax: 0,
    sampleAugment: 0,
    prediction: "v",
    predictNoise: (xt: Tensor, t: Tensor) => trueVelocity(xt, t, x0),
  } as unknown as Upsampler;
  manualSeed(4);
  const low = full([2, 3, 2, 2], 0);
  const images = upsampleImages(upsampler, low, new DdimSampler({ steps: 5 }), schedule);
  assert.ok(await maxDiff(images, x0) < 1e-4, "the v-predicting upsampler's sample is not x_0");
  x0.dispose();
});

Deno.test("unet and upsampler plugins: prediction defaults to eps, takes v, rejects x0", async () => {
  const registry = builtins();
  for (const kind of ["decoder", "upsampler"] as const) {
    const small = kind === "decoder"
      ? { imageSize: 8, baseChannels: 8, channelMults: [1], textLayers: 0, groups: 4 }
      : { imageSize: 8, lowResSize: 4, baseChannels: 8, channelMults: [1], groups: 4 };
    const plugin = "unet";
    const plain = await registry.use<Decoder>(kind, plugin, small, { vocabSize: 16 });
    assert.equal(plain.prediction, "eps");
    plain.dispose();
    const v = await registry.use<Decoder>(kind, plugin, { ...small, prediction: "v" }, {
      vocabSize: 16,
    });
    assert.equal(v.prediction, "v");
    v.dispose();
    await assert.rejects(
      registry.use(kind, plugin, { ...small, prediction: "x0" }),
      /prediction/,
    );
  }
});
