/**
 * CLIP training on grained images (`train.clip.grain`): each image of a clip batch gets Gaussian
 * grain at its own standard deviation from [0, grain), drawn from the seed and the step alone (so
 * a resumed run sees the grain an unbroken one would), without touching the loader's batch.
 */
import assert from "node:assert/strict";
import { builtins } from "../plugins/mod.ts";
import type { ResolvedConfig } from "../core/config.ts";
import { loadConfig } from "../core/config_file.ts";
import { grainImages } from "../core/data/images.ts";
import { Rng } from "../core/data/rng.ts";
import { setupStage } from "../core/train/stages.ts";
import { initBackend, scope } from "../core/tensor/mod.ts";

await initBackend();
const registry = builtins();

async function tinyConfig(grain: number): Promise<ResolvedConfig> {
  const config = await loadConfig("presets/tiny.jsonc", registry);
  config.train.clip = { ...config.train.clip, grain, batchSize: 16 };
  return config;
}

/** The clip stage's loss on the batches of `steps` (seeded initialisation), and its summary. */
async function losses(
  config: ResolvedConfig,
  steps = [0, 1],
): Promise<{ loss: number[]; summary: string }> {
  const setup = await setupStage("clip", { config, registry, outDir: "unused", trainLimit: 64 });
  try {
    const loss: number[] = [];
    for (const step of steps) {
      const batch = setup.loader.batch(step);
      const before = Float32Array.from(batch.images);
      const l = scope(() => setup.loss(batch, step));
      loss.push(await l.item());
      l.dispose();
      assert.deepEqual(batch.images, before, "the loader's batch is left as it was");
    }
    return { loss, summary: setup.summary.join("\n") };
  } finally {
    setup.dispose();
  }
}

Deno.test("train.clip.grain reaches the clip stage's loss, the same grain for the same step", async () => {
  const plain = await losses(await tinyConfig(0));
  const grained = await losses(await tinyConfig(0.3));
  const again = await losses(await tinyConfig(0.3));
  for (const step of [0, 1]) {
    assert.ok(Number.isFinite(grained.loss[step]));
    assert.notEqual(grained.loss[step], plain.loss[step], `step ${step}: grain changed nothing`);
  }
  assert.deepEqual(again.loss, grained.loss);
  // A run resumed at step 1 (a fresh stage, step 0 never drawn) sees step 1's grain.
  assert.deepEqual((await losses(await tinyConfig(0.3), [1])).loss, [grained.loss[1]]);
  assert.match(grained.summary, /grain up to 0\.3 \(train\.clip\.grain\)/);
  assert.doesNotMatch(plain.summary, /grain/);
});

Deno.test("grainImages gives each image its own deviation below the maximum, reproducibly", () => {
  const n = 64, per = 3 * 16 * 16, maxSd = 0.2;
  const x = new Float32Array(n * per);
  grainImages(x, n, maxSd, new Rng("grain-test"));
  const sds = Array.from({ length: n }, (_, i) => {
    const v = x.subarray(i * per, (i + 1) * per);
    return Math.sqrt(v.reduce((a, b) => a + b * b, 0) / per);
  });
  // 768 values per image: the sample deviation is within about 5% of the drawn one.
  assert.ok(Math.max(...sds) < maxSd * 1.1, `largest ${Math.max(...sds)}`);
  assert.ok(Math.min(...sds) < maxSd * 0.2, `smallest ${Math.min(...sds)}: not uniform from 0`);
  const mean = sds.reduce((a, b) => a + b, 0) / n;
  assert.ok(Math.abs(mean - maxSd / 2) < maxSd * 0.15, `mean deviation ${mean}`);
  const again = new Float32Array(n * per);
  grainImages(again, n, maxSd, new Rng("grain-test"));
  assert.deepEqual(again, x);
  assert.throws(() => grainImages(new Float32Array(10), 3, 0.1, new Rng(1)), /do not split into 3/);
});
