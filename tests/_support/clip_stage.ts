/**
 * The clip stage of presets/tiny.jsonc for tests of its training options: the config with
 * `train.clip` overrides (batch 16), and the stage's loss on chosen batches.
 */
import { builtins } from "../../plugins/mod.ts";
import type { ResolvedConfig, TrainStageConfig } from "../../core/config.ts";
import { loadConfig } from "../../core/config_file.ts";
import { setupStage } from "../../core/train/stages.ts";
import { scope } from "../../core/tensor/mod.ts";

const registry = builtins();

/** presets/tiny.jsonc with `train.clip` overridden (and batch 16). */
export async function tinyClipConfig(clip: Partial<TrainStageConfig>): Promise<ResolvedConfig> {
  const config = await loadConfig("presets/tiny.jsonc", registry);
  config.train.clip = { ...config.train.clip, ...clip, batchSize: 16 };
  return config;
}

/**
 * A fresh clip stage's loss on the batches of `steps` (the seeded initialisation: the same for
 * every setup), and its summary lines. `check` sees each batch before and after its loss.
 */
export async function clipStageLosses(
  config: ResolvedConfig,
  steps: number[],
  check?: (before: Float32Array, after: Float32Array) => void,
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
      check?.(before, batch.images);
    }
    return { loss, summary: setup.summary.join("\n") };
  } finally {
    setup.dispose();
  }
}
