/**
 * CLIP training with hard-negative captions (`train.clip.hardNegatives`; NegCLIP, Yuksekgonul
 * et al. 2023): the clip stage scores each image against its batch's colour-swapped captions too,
 * and a dataset that cannot make them is refused with a one-line error.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { builtins } from "../plugins/mod.ts";
import type { ResolvedConfig } from "../core/config.ts";
import { setupStage } from "../core/train/stages.ts";
import { initBackend } from "../core/tensor/mod.ts";
import { generateSplit, writeFolder } from "../datasets/mod.ts";
import { clipStageLosses, tinyClipConfig } from "./_support/clip_stage.ts";

await initBackend();
const registry = builtins();

const tinyConfig = (hardNegatives: boolean) => tinyClipConfig({ hardNegatives });

/** The clip stage's loss on its first batch and its summary lines. */
async function firstLoss(
  config: ResolvedConfig,
): Promise<{ loss: number; summary: string }> {
  const { loss, summary } = await clipStageLosses(config, [0]);
  return { loss: loss[0], summary };
}

Deno.test("train.clip.hardNegatives adds the batch's swapped captions to the clip stage's loss", async () => {
  const plain = await firstLoss(await tinyConfig(false));
  const hard = await firstLoss(await tinyConfig(true));
  assert.ok(Number.isFinite(hard.loss));
  // The same images, captions and weights; more texts for each image to tell its own caption from.
  assert.ok(hard.loss > plain.loss, `${hard.loss} <= ${plain.loss}`);
  // The training log says so.
  assert.match(hard.summary, /hard-negative captions/);
  assert.doesNotMatch(plain.summary, /hard-negative/);
});

Deno.test("train.clip.hardNegatives on a dataset without hardNegative is a one-line error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = await tinyConfig(true);
    await writeFolder(join(dir, "train"), generateSplit({ count: 16, size: 16 }));
    config.components.dataset = {
      plugin: "folder",
      options: { train: join(dir, "train"), imageSize: 16, flip: false },
    };
    await assert.rejects(
      () => setupStage("clip", { config, registry, outDir: dir }),
      /^Error: train\.clip\.hardNegatives: dataset "folder" cannot make hard-negative captions .*; remove the option/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
