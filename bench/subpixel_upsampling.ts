/**
 * The U-Net's upsampling layers as sub-pixel 3x3 convolutions (core/tensor/ops/conv_subpixel.ts)
 * against the direct transposed convolution, on the CPU backend, in one process: the decoder's two
 * upsampling layers alone (forward, and forward with backward), its whole training step and the
 * sampling of 8 images with weights/default (at most 6 runs each), the two settings alternating
 * run by run so that other work on the machine slows both alike.
 *
 * Usage: deno run -A bench/subpixel_upsampling.ts [--preset presets/cpu32-default.jsonc]
 *        [--batch 32] [--reps 20]
 */
import { parseArgs } from "node:util";
import * as T from "../core/tensor/mod.ts";
import { generateSplit } from "../datasets/mod.ts";
import { builtins } from "../plugins/mod.ts";
import { loadConfig } from "../core/config_file.ts";
import { createTokenizer, loadPipeline, textToImage } from "../core/pipeline.ts";
import { Adam, gradNorm } from "../core/optim/mod.ts";
import { decoderLoss } from "../core/diffusion/mod.ts";
import { decoderBatch } from "../tasks/_bench_models.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    preset: { type: "string", default: "presets/cpu32-default.jsonc" },
    batch: { type: "string", default: "32" },
    reps: { type: "string", default: "20" },
  },
});
const B = Number(values.batch), reps = Number(values.reps);
await T.initBackend({ backend: "cpu" });
const registry = builtins();
const config = await loadConfig(values.preset!, registry);
const samples = generateSplit({ set: 1, split: "train", count: B, size: 32 });
const captions = samples.map((s) => s.caption);
const tokenizer = await createTokenizer(config, registry, { captions });
const E = (config.components.textEncoder.options as { embedDim: number }).embedDim;
const { decoder, decoderSchedule: schedule, images, decoderCond: cond } = await decoderBatch(
  config,
  registry,
  tokenizer,
  captions,
  E,
);
const opt = new Adam(decoder.parameters(), { lr: 1e-4 });
/** One clipped training step, as the train loop takes it. */
function step(): void {
  T.scope(() => {
    decoderLoss(decoder, images, cond, schedule).backward();
    opt.step(undefined, { norm: gradNorm(decoder.parameters()), maxNorm: 1 });
  });
  opt.zeroGrad();
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
type Mode = "direct" | "subpixel";

/**
 * Times `run` with the sub-pixel route off and on, alternating (a busy machine slows both alike),
 * after one warm-up each; prints the median and the minimum of each, the minimum being the
 * figure least disturbed by other work on the machine.
 */
async function alternate(
  label: string,
  run: () => void | Promise<unknown>,
  runs = reps,
): Promise<void> {
  const times: Record<Mode, number[]> = { direct: [], subpixel: [] };
  const before = T.useSubpixelUpsampling(true);
  for (let r = -1; r < runs; r++) {
    for (const mode of r % 2 ? ["direct", "subpixel"] as const : ["subpixel", "direct"] as const) {
      T.useSubpixelUpsampling(mode === "subpixel");
      const t0 = performance.now();
      await run();
      await T.sync();
      if (r >= 0) times[mode].push(performance.now() - t0);
    }
  }
  T.useSubpixelUpsampling(before);
  const cell = (t: number[]) => `${median(t).toFixed(1)} / ${Math.min(...t).toFixed(1)}`;
  console.log(
    `${label.padEnd(44)} ${cell(times.direct).padStart(15)} ${cell(times.subpixel).padStart(15)}`,
  );
}

console.log(`${T.deviceLine()}, decoder of ${values.preset}, ${reps} alternated runs each`);
console.log(
  `${"ms, median / min".padEnd(44)} ${"direct".padStart(15)} ${"sub-pixel".padStart(15)}`,
);
// The decoder's two upsampling layers (64 channels, 8x8 -> 16x16 and 16x16 -> 32x32).
for (const side of [8, 16]) {
  const x = T.randn([B, 64, side, side]).keep(), w = T.randn([64, 64, 4, 4]).keep();
  const bias = T.randn([64]).keep();
  const up = () => T.convTranspose2d(x, w, bias, { stride: 2, padding: 1 });
  await alternate(`upsampling ${side}->${2 * side}, forward (no tape)`, () => {
    T.noGrad(() => T.scope(up));
  });
  for (const p of [x, w, bias]) p.requiresGrad = true;
  await alternate(`upsampling ${side}->${2 * side}, forward + backward`, () => {
    T.scope(() => T.sum(up()).backward());
    for (const p of [x, w, bias]) {
      p.grad?.dispose();
      p.grad = null;
    }
  });
  for (const p of [x, w, bias]) p.dispose();
}
await alternate(`decoder training step, batch ${B}`, step);
opt.dispose();
decoder.dispose();
// `deno task sample "a large red circle" --n 8` without the process start and the PNGs: the
// whole textToImage of weights/default at its stored sampling (the decoder reranks three guided
// candidates per image, batch 48, over 20 steps).
const weights = new URL("../weights/default", import.meta.url).pathname;
const pipeline = await loadPipeline(weights, registry);
await alternate(
  "sample 8 images (weights/default)",
  () => textToImage(pipeline, ["a large red circle"], { n: 8 }),
  Math.min(reps, 6),
);
pipeline.dispose();
