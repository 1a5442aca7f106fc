/**
 * What a 16 -> 32 upsampler has to beat: the real test images of the shapes data area-averaged to
 * 16x16 (as a cascade's upsampler sees them) and enlarged back to 32x32 with no model, by nearest
 * neighbour (2x2 blocks) and bilinear interpolation, scored by a run's cached ground-truth probe
 * and by the figures counted from the pixels. `eval pipeline --from downsampled` gives the same
 * numbers for a trained upsampler (docs/results/upsampler_ceiling).
 *
 *   deno run -A tools/upsampler_baselines.ts [RUN_DIR] [COUNT] [CONFIG]
 *
 * Defaults: weights/default (its probe/), 200 images, presets/cpu32-dalle2-7k.jsonc (the dataset).
 */
import { imagesToNchw } from "../core/data/images.ts";
import { loadConfig } from "../core/config_file.ts";
import { downsampleArea, upsampleToSize } from "../core/diffusion/mod.ts";
import { initBackend, noGrad, tensor } from "../core/tensor/mod.ts";
import { figureCounts } from "../datasets/figure_count.ts";
import { loadOrTrainProbe, scoreImages } from "../datasets/probe.ts";
import { builtins } from "../plugins/mod.ts";
import { loadSplit } from "../tasks/_eval_common.ts";

await initBackend();
const run = Deno.args[0] ?? "weights/default";
const count = Number(Deno.args[1] ?? 200);
const registry = builtins();
const config = await loadConfig(Deno.args[2] ?? "presets/cpu32-dalle2-7k.jsonc", registry);
const data = await loadSplit(config, registry, { split: "test", limit: count, limitGiven: true });
const captions = data.map((d) => d.caption);
const real = imagesToNchw(data);
const S = data[0].width, L = S / 2;

/** Bilinear enlargement of NCHW planes [n, L, L] to [n, 2L, 2L], pixel centres aligned. */
function bilinear(low: Float32Array, planes: number): Float32Array {
  const out = new Float32Array(planes * S * S);
  const at = (p: number, y: number, x: number) => low[p * L * L + y * L + x];
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < S; y++) {
      const fy = Math.min(Math.max((y + 0.5) / 2 - 0.5, 0), L - 1);
      const y0 = Math.floor(fy), y1 = Math.min(y0 + 1, L - 1), ay = fy - y0;
      for (let x = 0; x < S; x++) {
        const fx = Math.min(Math.max((x + 0.5) / 2 - 0.5, 0), L - 1);
        const x0 = Math.floor(fx), x1 = Math.min(x0 + 1, L - 1), ax = fx - x0;
        out[p * S * S + y * S + x] = (1 - ay) * ((1 - ax) * at(p, y0, x0) + ax * at(p, y0, x1)) +
          ay * ((1 - ax) * at(p, y1, x0) + ax * at(p, y1, x1));
      }
    }
  }
  return out;
}

const lowT = noGrad(() => downsampleArea(tensor(real, [count, 3, S, S]), L));
const nearestT = noGrad(() => upsampleToSize(lowT, S));
const low = await lowT.read() as Float32Array;
const nearest = await nearestT.read() as Float32Array;
lowT.dispose();
nearestT.dispose();

const { probe } = await loadOrTrainProbe(run, config, registry);
try {
  console.log(`${count} real test images, scored by ${run}/probe and by the pixels`);
  const rows: [string, Float32Array][] = [
    ["real 32x32", real],
    ["16x16, nearest", nearest],
    ["16x16, bilinear", bilinear(low, count * 3)],
  ];
  for (const [name, images] of rows) {
    const s = await scoreImages(probe, images, captions);
    const pixels = figureCounts(images, S, captions);
    const pct = (v: number) => `${(100 * v).toFixed(1)}%`.padStart(7);
    console.log(
      `${name.padEnd(16)} exact ${pct(s.exact)}  colours ${pct(s.colour)}  shapes ` +
        `${pct(s.shape)}  lenient ${pct(s.lenient)}  count (pixels) ${pct(pixels.right)}`,
    );
  }
} finally {
  probe.dispose();
}
