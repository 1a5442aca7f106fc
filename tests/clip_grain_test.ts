/**
 * CLIP training on grained images (`train.clip.grain`): each image of a clip batch gets Gaussian
 * grain at its own standard deviation from [0, grain), drawn from the seed and the step alone (so
 * a resumed run sees the grain an unbroken one would), without touching the loader's batch.
 */
import assert from "node:assert/strict";
import { grainImages } from "../core/data/images.ts";
import { Rng } from "../core/data/rng.ts";
import type { ResolvedConfig } from "../core/config.ts";
import { initBackend } from "../core/tensor/mod.ts";
import { clipStageLosses, tinyClipConfig } from "./_support/clip_stage.ts";

await initBackend();

const tinyConfig = (grain: number) => tinyClipConfig({ grain });

/** The clip stage's loss on the batches of `steps`, each batch checked to be left as it was. */
function losses(config: ResolvedConfig, steps = [0, 1]) {
  return clipStageLosses(config, steps, (before, after) => {
    assert.deepEqual(after, before, "the loader's batch is left as it was");
  });
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
