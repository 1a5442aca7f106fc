/**
 * Test support: the tiny preset as DALL-E 2's cascade (16x16 images, the decoder at 8x8, an 8 -> 16
 * upsampler), for tests that train and sample a whole cascade in seconds.
 */
import { join } from "node:path";
import { loadConfig } from "../../core/config_file.ts";
import { builtins } from "../../plugins/mod.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

/** presets/tiny.jsonc as a cascade, every stage at batch 8 and checkpointed every 2 steps. */
export async function tinyCascadeConfig(): Promise<Json> {
  const c = structuredClone(await loadConfig(join(ROOT, "presets/tiny.jsonc"), builtins())) as Json;
  Object.assign(c.components.dataset.options, { trainCount: 32, testCount: 8 });
  delete c.components.decoder.options.imageSize; // taken from upsampler.lowResSize
  c.components.decoder.options.baseChannels = 8;
  c.components.decoderSchedule.options.steps = 20;
  c.components.upsampler = {
    plugin: "unet",
    options: { lowResSize: 8, baseChannels: 8, channelMults: [1, 2], timeEmbedDim: 8, groups: 4 },
  };
  for (const stage of ["clip", "prior", "decoder"]) {
    Object.assign(c.train[stage], { batchSize: 8, logEvery: 1, checkpointEvery: 2 });
  }
  c.train.upsampler = { batchSize: 8, steps: 10, logEvery: 1, checkpointEvery: 2, ema: 0.9 };
  return c;
}
