import assert from "node:assert/strict";
import {
  DataLoader,
  flipImage,
  flipLabel,
  flipSample,
  fromNchw,
  generateSplit,
  parseCaption,
  positionWord,
  rasterize,
  swapLeftRight,
  toNchw,
} from "../datasets/mod.ts";

Deno.test("flipSample() mirrors pixels and swaps left and right in caption and labels", () => {
  const samples = generateSplit({ set: 2, count: 200, seed: 5 });
  let sided = 0;
  for (const s of samples) {
    const f = flipSample(s);
    for (let y = 0; y < 32; y++) {
      for (let x = 0; x < 32; x++) {
        for (let c = 0; c < 3; c++) {
          assert.equal(f.image[(y * 32 + x) * 3 + c], s.image[(y * 32 + 31 - x) * 3 + c]);
        }
      }
    }
    const l = s.labels[0], fl = f.labels[0];
    assert.deepEqual(fl.bbox, [128 - l.bbox[2], l.bbox[1], 128 - l.bbox[0], l.bbox[3]]);
    assert.equal(fl.position, positionWord(fl.bbox));
    assert.equal(parseCaption(f.caption)[0].position, fl.position);
    if (/left|right/.test(s.caption)) {
      sided++;
      assert.notEqual(f.caption, s.caption);
    }
    assert.deepEqual(flipSample(f).caption, s.caption);
    assert.deepEqual(flipSample(f).image, s.image);
  }
  assert.ok(sided > 50);
});

Deno.test("flipLabel() reflects polygon rotations so the flipped labels redraw the flipped image", () => {
  for (const s of generateSplit({ set: 1, count: 100, seed: 9, size: 128 })) {
    const redrawn = rasterize(s.labels.map(flipLabel), 128);
    const flipped = flipImage(s.image, 128, 128);
    let diff = 0;
    for (let i = 0; i < redrawn.length; i++) if (redrawn[i] !== flipped[i]) diff++;
    // Pixel-centre ties on exact edges may differ; allow a handful of pixels.
    assert.ok(diff <= 30, `${diff} bytes differ for "${s.caption}"`);
  }
});

Deno.test("swapLeftRight() swaps whole words only", () => {
  assert.equal(swapLeftRight("a red circle at the top left"), "a red circle at the top right");
  assert.equal(swapLeftRight("Right, leftover left"), "Left, leftover right");
});

Deno.test("toNchw() scales to [-1, 1] planar and fromNchw() inverts it", () => {
  const [s] = generateSplit({ count: 1, seed: 2 });
  const x = toNchw(s.image, 32, 32);
  assert.equal(x.length, 3 * 32 * 32);
  assert.ok(x.every((v) => v >= -1 && v <= 1));
  assert.equal(x[0], Math.fround(s.image[0] / 127.5 - 1));
  assert.equal(x[1024], Math.fround(s.image[1] / 127.5 - 1));
  assert.deepEqual(fromNchw(x, 32, 32), s.image);
  const flipped = toNchw(s.image, 32, 32, undefined, 0, true);
  assert.deepEqual(fromNchw(flipped, 32, 32), flipImage(s.image, 32, 32));
});

Deno.test("DataLoader.batch() is deterministic per seed and step, shuffles, and resumes", () => {
  const data = generateSplit({ set: 2, count: 100, seed: 4 });
  const loader = new DataLoader(data, { batchSize: 16, seed: 1, flip: true });
  assert.equal(loader.stepsPerEpoch, 6);
  const b = loader.batch(0);
  assert.deepEqual(b.shape, [16, 3, 32, 32]);
  assert.equal(b.images.length, 16 * 3 * 32 * 32);
  assert.equal(b.captions.length, 16);
  // Same seed and step: identical batch, also from a fresh loader (resume).
  const again = new DataLoader(data, { batchSize: 16, seed: 1, flip: true });
  for (const step of [0, 7, 13]) {
    const x = loader.batch(step), y = again.batch(step);
    assert.deepEqual(x.images, y.images);
    assert.deepEqual(x.captions, y.captions);
  }
  const it = again.batches(7);
  assert.deepEqual(it.next().value!.indices, loader.batch(7).indices);
  // One epoch visits distinct images; epochs differ in order.
  const seen = new Set<number>();
  for (let s = 0; s < 6; s++) for (const i of loader.batch(s).indices) seen.add(i);
  assert.equal(seen.size, 96);
  assert.notDeepEqual(loader.batch(0).indices, loader.batch(6).indices);
  assert.notDeepEqual(
    loader.batch(0).indices,
    new DataLoader(data, { batchSize: 16, seed: 2 }).batch(0).indices,
  );
  // Flipped items: caption and labels agree with the flipped image.
  let flips = 0;
  for (let s = 0; s < 6; s++) {
    const batch = loader.batch(s);
    batch.indices.forEach((index, k) => {
      const item = data[index];
      const image = fromNchw(batch.images, 32, 32, k * 3 * 1024);
      const flipped = batch.captions[k] !== item.caption ||
        batch.labels[k]![0].bbox[0] !== item.labels[0].bbox[0];
      if (flipped) {
        flips++;
        assert.deepEqual(image, flipImage(item.image, 32, 32));
        assert.equal(batch.captions[k], swapLeftRight(item.caption));
      } else {
        assert.deepEqual(image, item.image);
      }
      assert.equal(parseCaption(batch.captions[k])[0].position, batch.labels[k]![0].position);
    });
  }
  assert.ok(flips > 20 && flips < 76, `${flips} flips`);
});

Deno.test("DataLoader rejects bad batch sizes and mixed image sizes", () => {
  const data = generateSplit({ count: 4 });
  assert.throws(() => new DataLoader(data, { batchSize: 0 }), /Batch size "0"/);
  assert.throws(() => new DataLoader(data, { batchSize: 5 }), /larger than the dataset/);
  assert.equal(new DataLoader(data, { batchSize: 3, dropLast: false }).batch(1).shape[0], 1);
  const mixed = [...data, ...generateSplit({ count: 1, size: 16 })];
  assert.throws(
    () => new DataLoader(mixed, { batchSize: 2 }),
    /^Error: Dataset: image 4 is 16x16, expected 32x32 like the first image$/,
  );
});

Deno.test("DataLoader rejects images of the wrong byte length, naming the data and the index", () => {
  const data = generateSplit({ count: 4, size: 16 });
  const name = 'Dataset "broken", train split';
  // Too short (read as NaN pixels before) and too long (the rest ignored before).
  for (const bytes of [700, 800]) {
    const bad = data.map((d, i) => (i === 2 ? { ...d, image: new Uint8Array(bytes) } : d));
    assert.throws(
      () => new DataLoader(bad, { batchSize: 2, name }),
      new RegExp(`^Error: ${name}: image 2 has ${bytes} bytes; expected 16 x 16 x 3 = 768$`),
    );
  }
  // Images of another size than the dataset's imageSize.
  assert.throws(
    () => new DataLoader(data, { batchSize: 2, name, imageSize: 32 }),
    /^Error: Dataset "broken", train split: image 0 is 16x16, expected 32x32 like the dataset's imageSize$/,
  );
  // Every batch checks its images again: a plugin may change them after the loader was made.
  const items = data.map((d) => ({ ...d }));
  const loader = new DataLoader(items, { batchSize: 4, name });
  items[1].image = new Uint8Array(10);
  assert.throws(() => loader.batch(0), /image 1 has 10 bytes; expected 16 x 16 x 3 = 768/);
});
