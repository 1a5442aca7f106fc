/**
 * Counting figures from the pixels (datasets/figure_count.ts): regions away from the grey
 * background on hand-made images, and the count of real images against their labels.
 */
import assert from "node:assert/strict";
import { imagesToNchw } from "../core/data/images.ts";
import { countFigures, figureCounts } from "../datasets/figure_count.ts";
import { COLOURS, generateSplit } from "../datasets/mod.ts";

const GREY = 128 / 127.5 - 1;

/** A grey CHW image of side `size` with the given pixels set to an RGB colour (0..255). */
function image(
  size: number,
  pixels: [x: number, y: number, rgb: readonly number[]][],
): Float32Array {
  const n = size * size;
  const img = new Float32Array(3 * n).fill(GREY);
  for (const [x, y, rgb] of pixels) {
    for (let c = 0; c < 3; c++) img[c * n + y * size + x] = rgb[c] / 127.5 - 1;
  }
  return img;
}

/** The pixels of a w x h block at (x0, y0). */
function block(x0: number, y0: number, w: number, h: number, rgb: readonly number[]) {
  const out: [number, number, readonly number[]][] = [];
  for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) out.push([x, y, rgb]);
  return out;
}

Deno.test("countFigures: regions away from the background, 8-connected, small ones ignored", () => {
  assert.equal(countFigures(image(8, []), 8), 0);
  assert.equal(countFigures(image(8, block(0, 0, 2, 2, COLOURS.red)), 8), 1);
  const two = [...block(0, 0, 2, 2, COLOURS.red), ...block(5, 5, 3, 2, COLOURS.navy)];
  assert.equal(countFigures(image(8, two), 8), 2);
  // Touching at a corner: one region (the 8-neighbourhood), as overlapping figures are.
  const corner = [...block(0, 0, 2, 2, COLOURS.red), ...block(2, 2, 2, 2, COLOURS.blue)];
  assert.equal(countFigures(image(8, corner), 8), 1);
  // Silver, the figure colour nearest the grey background, still counts.
  assert.equal(countFigures(image(8, block(3, 3, 2, 2, COLOURS.silver)), 8), 1);
  // Two pixels are noise at the default minimum of 3, a figure at 2.
  const speck = block(4, 4, 2, 1, COLOURS.white);
  assert.equal(countFigures(image(8, speck), 8), 0);
  assert.equal(countFigures(image(8, speck), 8, 0, { minPixels: 2 }), 1);
  // Grain within the threshold is background.
  const grain = image(8, []).map((v, i) => v + (i % 2 ? 0.2 : -0.2));
  assert.equal(countFigures(grain, 8), 0);
  // The second image of a batch, read at its offset.
  const batch = new Float32Array([...image(8, []), ...image(8, two)]);
  assert.equal(countFigures(batch, 8, 3 * 64), 2);
  assert.throws(() => countFigures(batch, 8, 3 * 64 + 1), /No 8x8 RGB image at element 193/);
});

Deno.test("figureCounts: real 32x32 test images have their captions' figure counts", () => {
  const data = generateSplit({ set: 1, split: "test", size: 32, count: 200 });
  const captions = data.map((d) => d.caption);
  const counts = figureCounts(imagesToNchw(data), 32, captions);
  const one = counts.byFigures["1"], two = counts.byFigures["2"];
  assert.equal(one.images + two.images, 200);
  assert.equal(one.images, data.filter((d) => d.labels.length === 1).length);
  // One figure is always one region.
  assert.deepEqual(one.histogram, { "0": 0, "1": one.images, "2": 0, "3+": 0 });
  assert.equal(one.right, 1);
  // Two figures are two regions unless they touch or overlap (4.6% of 1,000 images): never
  // none and never three.
  assert.equal(two.histogram["0"] + two.histogram["3+"], 0);
  assert.ok(two.right >= 0.9, `two-figure images counted right: ${two.right}`);
  assert.equal(counts.right, (one.images + two.histogram["2"]) / 200);
  assert.throws(() => figureCounts(new Float32Array(10), 32, captions), /200 captions need/);
});
