/**
 * Where a cascade's layout is set: its decoder's own images (at the decoder's side, before the
 * upsampler) enlarged to the final side as blocks, scored by the run's cached ground-truth probe
 * and by the figures counted from the pixels, beside the same images after the upsampler. The
 * captions, seeds and guidance are those of `eval pipeline` (200 test captions, seed 0 + i per
 * call of 16, the run's default guidance: 2 unless its config sets `sampling.guidance`), so the
 * upsampled row repeats the run's eval_pipeline_test.json
 * (docs/results/upsampler_ceiling).
 *
 *   deno run -A tools/cascade_layout.ts RUN_DIR [COUNT]
 */
import { imagesToNchw } from "../core/data/images.ts";
import { upsampleToSize } from "../core/diffusion/mod.ts";
import { loadPipeline, outputImageSize, textToImage, upsampleImages } from "../core/pipeline.ts";
import { initBackend, noGrad, tensor } from "../core/tensor/mod.ts";
import { figureCounts } from "../datasets/figure_count.ts";
import { loadOrTrainProbe, scoreImages } from "../datasets/probe.ts";
import { builtins } from "../plugins/mod.ts";
import { loadSplit } from "../tasks/_eval_common.ts";
import { CAPTIONS_PER_CALL } from "../tasks/_eval_pipeline.ts";

await initBackend();
const run = Deno.args[0];
if (!run) throw new Error("Usage: deno run -A tools/cascade_layout.ts RUN_DIR [COUNT]");
const count = Number(Deno.args[1] ?? 200);
const registry = builtins();
const p = await loadPipeline(run, registry);
const { upsampler, upsamplerSchedule } = p;
if (!upsampler || !upsamplerSchedule) {
  throw new Error(`${run} has no upsampler/: not a cascade`);
}
const S = outputImageSize(p), L = p.decoder.imageSize;
const data = await loadSplit(p.config, registry, { split: "test", limit: count, limitGiven: true });
const captions = data.map((d) => d.caption);
const blocks = new Float32Array(count * 3 * S * S), upsampled = new Float32Array(blocks.length);
for (let i = 0; i < count; i += CAPTIONS_PER_CALL) {
  const part = captions.slice(i, i + CAPTIONS_PER_CALL);
  // The decoder's images alone, then the upsampler on them: the random stream continues where
  // textToImage stopped, so this draws what eval pipeline's one call draws (same seed).
  const low = await textToImage(p, part, { seed: i, upsample: false });
  const [enlarged, up] = noGrad(() => {
    const x = tensor(low.images, [part.length, 3, L, L]);
    return [
      upsampleToSize(x, S),
      upsampleImages(upsampler, x, p.sampler, upsamplerSchedule),
    ];
  });
  blocks.set(await enlarged.read() as Float32Array, i * 3 * S * S);
  upsampled.set(await up.read() as Float32Array, i * 3 * S * S);
  enlarged.dispose();
  up.dispose();
}
const { probe } = await loadOrTrainProbe(run, p.config, registry);
try {
  console.log(`${count} test captions, ${run}: the decoder's ${L}x${L} images and the cascade's`);
  const rows: [string, Float32Array][] = [
    ["real", imagesToNchw(data)],
    [`decoder, blocks`, blocks],
    [`upsampled`, upsampled],
  ];
  for (const [name, images] of rows) {
    const s = await scoreImages(probe, images, captions);
    const pixels = figureCounts(images, S, captions);
    const pct = (v: number) => `${(100 * v).toFixed(1)}%`.padStart(7);
    const two = pixels.byFigures["2"]?.histogram;
    console.log(
      `${name.padEnd(16)} exact ${pct(s.exact)}  colours ${pct(s.colour)}  shapes ` +
        `${pct(s.shape)}  count (pixels) ${pct(pixels.right)}  two-figure regions ` +
        `0/1/2/3+ ${two ? Object.values(two).join("/") : "-"}`,
    );
  }
} finally {
  probe.dispose();
  p.dispose();
}
