/**
 * Trains one probe variant on the shapes train split (dataset 1) and scores it on real test
 * images: `deno run -A tools/probe_variant.ts OUT_DIR '{"steps":1500,"augment":"dihedral"}' [TEST]`.
 */
import {
  DEFAULT_PROBE_OPTIONS,
  PROBE_FORMAT_VERSION,
  type ProbeOptions,
  saveProbe,
  scoreImages,
  trainProbe,
} from "../datasets/probe.ts";
import { imagesToNchw } from "../core/data/images.ts";
import { initBackend } from "../core/tensor/mod.ts";
import { generateSplit } from "../datasets/mod.ts";

await initBackend();
const dir = Deno.args[0];
const options: ProbeOptions = {
  ...DEFAULT_PROBE_OPTIONS,
  imageSize: 32,
  ...JSON.parse(Deno.args[1] ?? "{}"),
};
const testCount = Number(Deno.args[2] ?? 1000);
// The probe's own data (format 4, as loadOrTrainProbe): every colour-shape pair, its own seed.
const train = generateSplit({
  set: 1,
  split: "test",
  seed: "unclip-shapes/probe",
  size: 32,
  count: options.trainCount,
});
const test = generateSplit({ set: 1, split: "test", size: 32, count: testCount });
const t0 = performance.now();
let tl = t0;
const { probe, loss } = await trainProbe(train, options, {
  print: (l) => {
    if (!l.includes("00/") || Number(l.split(" ")[2].split("/")[0]) % 500 !== 0) return;
    const now = performance.now();
    console.log(`${l}  ${((now - tl) / 500).toFixed(0)} ms/step`);
    tl = now;
  },
});
const seconds = (performance.now() - t0) / 1000;
const realTest = await scoreImages(probe, imagesToNchw(test), test.map((d) => d.caption));
await saveProbe(dir, probe, {
  format_version: PROBE_FORMAT_VERSION,
  options,
  dataset: null,
  loss,
  seconds,
  realTest,
});
console.log(JSON.stringify({ dir, options, loss, seconds, realTest }));
