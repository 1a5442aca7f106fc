/**
 * On WebGPU, sampling compiles its kernels in the first step and never again: per-step scalars
 * (diffusion coefficients, timesteps) travel in buffers, not in the WGSL source, so a sample of
 * any length compiles the same pipelines as a sample of one step. (The CPU backend compiles
 * nothing; the test is skipped there.)
 */
import assert from "node:assert/strict";
import "./_support/check.ts";
import { tinyUNetOptions } from "./_support/tiny_unet.ts";
import { engineStats, full, manualSeed, noGrad, onCpu, tensor } from "../core/tensor/mod.ts";
import { UNetDecoder } from "../plugins/decoders/mod.ts";
import { DdimSampler, DdpmSampler } from "../plugins/samplers/mod.ts";
import { guidedPredictor } from "../core/diffusion/mod.ts";
import { cosineBetas } from "../plugins/schedules/mod.ts";
import { NoiseSchedule } from "../core/diffusion/mod.ts";

Deno.test({
  name: "sampling creates no new WebGPU pipelines after its first step (DDPM and DDIM)",
  ignore: onCpu(),
  fn() {
    manualSeed(4);
    const T = 5, B = 2;
    const decoder = new UNetDecoder(tinyUNetOptions({ contextLength: T }));
    const cond = {
      tokens: {
        ids: tensor(Int32Array.from({ length: B * T }, (_, k) => k % 30), [B, T], "i32"),
        endIndex: tensor(new Int32Array([4, 3]), [B], "i32"),
      },
      imageEmbedding: full([B, 8], 0.1),
      keep: full([B], 1),
    };
    const schedule = new NoiseSchedule(cosineBetas(40));
    for (const sampler of [new DdpmSampler(), new DdimSampler({ steps: 10 })]) {
      const counts: number[] = [];
      noGrad(() =>
        sampler.sample(guidedPredictor(decoder, cond, 2), [B, 3, 8, 8], schedule, {
          onStep: () => counts.push(engineStats().pipelines),
        }).dispose()
      );
      assert.ok(counts.length >= 10, `${sampler.name}: ran ${counts.length} steps`);
      assert.equal(
        counts.at(-1),
        counts[0],
        `${sampler.name}: pipelines per step ${counts.join(", ")}`,
      );
    }
    decoder.dispose();
  },
});
