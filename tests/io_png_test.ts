import assert from "node:assert/strict";
import { decodePng, encodePng } from "../core/deps.ts";
import { decodePngRgb, encodeRgbPng, imageGrid, tensorToImages } from "../core/io/mod.ts";

Deno.test("encodeRgbPng() and decodePngRgb() round-trip pixels exactly", () => {
  const w = 5, h = 3;
  const pixels = new Uint8Array(w * h * 3).map((_, i) => (i * 37) % 256);
  const png = encodeRgbPng(pixels, w, h);
  assert.deepEqual(Array.from(png.subarray(0, 8)), [137, 80, 78, 71, 13, 10, 26, 10]);
  const raw = decodePng(png);
  assert.equal(raw.channels, 3);
  assert.equal(raw.depth, 8);
  const back = decodePngRgb(png);
  assert.equal(back.width, w);
  assert.equal(back.height, h);
  assert.deepEqual(back.data, pixels);
});

Deno.test("encodeRgbPng() rejects a buffer of the wrong size", () => {
  assert.throws(() => encodeRgbPng(new Uint8Array(5), 2, 1), /needs 6 bytes, got "5"/);
  assert.throws(() => encodeRgbPng(new Uint8Array(0), 0, 1), /must be positive integers/);
});

Deno.test("decodePngRgb() converts grey, grey+alpha, RGBA and 16-bit images", () => {
  const grey = encodePng({ width: 2, height: 1, data: new Uint8Array([10, 200]), channels: 1 });
  assert.deepEqual(decodePngRgb(grey).data, new Uint8Array([10, 10, 10, 200, 200, 200]));

  const greyAlpha = encodePng({
    width: 1,
    height: 1,
    data: new Uint8Array([77, 0]),
    channels: 2,
  });
  assert.deepEqual(decodePngRgb(greyAlpha).data, new Uint8Array([77, 77, 77]));

  const rgba = encodePng({
    width: 2,
    height: 1,
    data: new Uint8Array([1, 2, 3, 255, 4, 5, 6, 0]),
    channels: 4,
  });
  assert.deepEqual(decodePngRgb(rgba).data, new Uint8Array([1, 2, 3, 4, 5, 6]));

  const deep = encodePng({
    width: 2,
    height: 1,
    data: new Uint16Array([0, 65535, 257 * 100, 257 * 50 + 100, 1000, 65535]),
    channels: 3,
    depth: 16,
  });
  assert.deepEqual(decodePngRgb(deep).data, new Uint8Array([0, 255, 100, 50, 4, 255]));
});

Deno.test("decodePngRgb() unpacks sub-byte grey and palette images", () => {
  // 1-bit grey, 10 pixels wide: rows are padded to whole bytes.
  const bits = new Uint8Array([0b10110000, 0b01000000, 0b01111111, 0b11000000]);
  const oneBit = encodePng({ width: 10, height: 2, data: bits, channels: 1, depth: 1 });
  const decoded = decodePngRgb(oneBit);
  const expected = [1, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1];
  assert.deepEqual(
    Array.from(decoded.data.filter((_, i) => i % 3 === 0)),
    expected.map((b) => b * 255),
  );

  // 2-bit palette image: indices 0..3 looked up in the palette.
  const palette = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]];
  const indexed = encodePng({
    width: 4,
    height: 1,
    data: new Uint8Array([0b00011011]),
    channels: 1,
    depth: 2,
    palette,
  });
  assert.deepEqual(Array.from(decodePngRgb(indexed).data), palette.flat());
});

Deno.test("decodePngRgb() reports a corrupt file in one line", () => {
  assert.throws(() => decodePngRgb(new Uint8Array([1, 2, 3])), /^Error: Cannot decode PNG: /);
});

Deno.test("tensorToImages() maps [-1, 1] NCHW to clamped, rounded RGB bytes", () => {
  // Image 0 planes R, G, B = [-1, 1], [0, 0.5], [-2, NaN]; image 1 = [1, 1], [-1, -1], [0.999, 3].
  const data = new Float32Array([-1, 1, 0, 0.5, -2, NaN, 1, 1, -1, -1, 0.999, 3]);
  const [a, b] = tensorToImages(data, [2, 3, 1, 2]);
  assert.deepEqual(Array.from(a), [0, 128, 0, 255, 191, 0]);
  assert.deepEqual(Array.from(b), [255, 0, 255, 255, 0, 255]);
  const [g] = tensorToImages(new Float32Array([0, 1]), [1, 1, 1, 2]);
  assert.deepEqual(Array.from(g), [128, 128, 128, 255, 255, 255]);
  assert.throws(() => tensorToImages(new Float32Array(4), [1, 2, 1, 2]), /1 or 3 channels/);
  assert.throws(() => tensorToImages(new Float32Array(4), [1, 3, 1, 2]), /needs 6 values/);
});

Deno.test("imageGrid() lays images out row by row with padding and background", () => {
  const w = 2, h = 1;
  const img = (v: number): Uint8Array => new Uint8Array(w * h * 3).fill(v);
  const grid = imageGrid([img(10), img(20), img(30)], w, h, {
    columns: 2,
    padding: 1,
    background: 0,
  });
  assert.equal(grid.width, 2 * w + 3);
  assert.equal(grid.height, 2 * h + 3);
  const px = (x: number, y: number): number => grid.data[(y * grid.width + x) * 3];
  const rows: number[][] = [];
  for (let y = 0; y < grid.height; y++) {
    const row = [];
    for (let x = 0; x < grid.width; x++) row.push(px(x, y));
    rows.push(row);
  }
  assert.deepEqual(rows, [
    [0, 0, 0, 0, 0, 0, 0],
    [0, 10, 10, 0, 20, 20, 0],
    [0, 0, 0, 0, 0, 0, 0],
    [0, 30, 30, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0],
  ]);

  // Defaults: square-ish layout, 2 px white padding; the result encodes as a PNG.
  const def = imageGrid([img(1), img(2), img(3), img(4), img(5)], w, h);
  assert.equal(def.width, 3 * (w + 2) + 2);
  assert.equal(def.height, 2 * (h + 2) + 2);
  assert.equal(def.data[0], 255);
  const back = decodePngRgb(encodeRgbPng(def.data, def.width, def.height));
  assert.deepEqual(back.data, def.data);

  assert.throws(() => imageGrid([], w, h), /at least one image/);
  assert.throws(() => imageGrid([new Uint8Array(5)], w, h), /Image 0 has 5 bytes, expected 6/);
});
