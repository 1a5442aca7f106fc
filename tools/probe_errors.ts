/**
 * Error analysis of a trained ground-truth probe on real test images of the shapes data:
 * exact rate by figure count, per-figure hit rate by shape and size word, the shape confusion of
 * one-figure images, and how often a figure's box makes it geometrically ambiguous at 32 px.
 *
 *   deno run -A tools/probe_errors.ts PROBE_DIR [COUNT]
 */
import { join } from "node:path";
import { loadProbe, predictProbe, type ProbeOptions } from "../datasets/probe.ts";
import { imagesToNchw } from "../core/data/images.ts";
import { pairIndex, pairOf, scoreCaption, summarizeScores } from "../datasets/score.ts";
import { initBackend } from "../core/tensor/mod.ts";
import { generateSplit, SHAPES } from "../datasets/mod.ts";

await initBackend();
const dir = Deno.args[0];
const n = Number(Deno.args[1] ?? 1000);
const info = JSON.parse(await Deno.readTextFile(join(dir, "probe.json")));
const options = info.options as ProbeOptions;
const probe = await loadProbe(dir, options);
const test = generateSplit({ set: 1, split: "test", size: options.imageSize, count: n });
const t0 = performance.now();
const preds = await predictProbe(probe, imagesToNchw(test), test.length);
const inferS = (performance.now() - t0) / 1000;
const scores = preds.map((p, i) => scoreCaption(p, test[i].caption));
const pct = (x: number) => (100 * x).toFixed(1);
const all = summarizeScores(scores);
console.log(`probe ${dir}: ${n} real test images (inference ${inferS.toFixed(1)} s)`);
console.log(
  `  exact ${pct(all.exact)}  lenient ${pct(all.lenient)}  colour ${pct(all.colour)}  shape ${
    pct(all.shape)
  }  count ${pct(all.count)}  size ${pct(all.size)} (${all.sizeImages})`,
);
for (const k of [1, 2]) {
  const idx = test.map((t, i) => [t, i] as const).filter(([t]) => t.labels.length === k);
  const s = summarizeScores(idx.map(([, i]) => scores[i]));
  console.log(
    `  ${k} figure(s): ${idx.length} images, exact ${pct(s.exact)}, lenient ${
      pct(s.lenient)
    }, shape ${pct(s.shape)}`,
  );
}
// Two-figure images: how the misses split.
{
  const kinds = new Map<string, number>();
  let twos = 0;
  test.forEach((t, i) => {
    if (t.labels.length !== 2) return;
    twos++;
    if (scores[i].exact) return;
    const found = t.labels.filter((l) => preds[i].pairs.includes(pairIndex(l.colour, l.shape)))
      .length;
    const same = t.labels[0].colour === t.labels[1].colour &&
      t.labels[0].shape === t.labels[1].shape;
    const kind = !scores[i].count
      ? "count wrong"
      : scores[i].colour && scores[i].shape
      ? "colours and shapes right, pairs swapped/merged"
      : `${found} of 2 pairs found${same ? " (same pair twice)" : ""}, ${
        scores[i].colour ? "colours right" : "colour wrong"
      }`;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  });
  console.log(`  two-figure misses (of ${twos} images):`);
  for (const [k, v] of [...kinds].sort((a, b) => b[1] - a[1])) console.log(`    ${k}: ${v}`);
}
// Per figure: is its (colour, shape) pair among the predicted pairs?
const byKey = new Map<string, [number, number]>();
const bump = (key: string, ok: boolean) => {
  const v = byKey.get(key) ?? [0, 0];
  v[0] += ok ? 1 : 0;
  v[1]++;
  byKey.set(key, v);
};
test.forEach((t, i) => {
  for (const l of t.labels) {
    const ok = preds[i].pairs.includes(pairIndex(l.colour, l.shape));
    bump(`shape ${l.shape}`, ok);
    bump(`size ${l.size}`, ok);
    bump(`size ${l.size} / ${l.shape}`, ok);
    bump(`${t.labels.length} fig / ${l.size}`, ok);
    if (l.shape === "rectangle" || l.shape === "ellipse") {
      const d = Math.abs((l.bbox[2] - l.bbox[0]) - (l.bbox[3] - l.bbox[1])) / (128 / 32);
      bump(`${l.shape} |w-h| ${d < 1 ? "< 1" : d < 2 ? "1-2" : d < 3 ? "2-3" : ">= 3"} px`, ok);
    }
  }
});
console.log("  per-figure pair found:");
for (const [k, [a, b]] of [...byKey].sort()) {
  console.log(`    ${k.padEnd(28)} ${pct(a / b)}% of ${b}`);
}
// Shape confusion on one-figure images (predicted: the shape of the best pair).
const conf = SHAPES.map(() => SHAPES.map(() => 0));
test.forEach((t, i) => {
  if (t.labels.length !== 1) return;
  const want = SHAPES.indexOf(t.labels[0].shape);
  const got = SHAPES.indexOf(pairOf(preds[i].pairs[0])[1]);
  conf[want][got]++;
});
console.log("  shape confusion, one-figure images (rows: true, columns: predicted):");
console.log("    " + "".padEnd(10) + SHAPES.map((s) => s.slice(0, 5).padStart(6)).join(""));
SHAPES.forEach((s, r) =>
  console.log("    " + s.padEnd(10) + conf[r].map((v) => String(v).padStart(6)).join(""))
);
probe.dispose();
