/**
 * PNG in and out (through fast-png), conversion of model output tensors to 8-bit RGB images,
 * and image grids. Images are row-major, interleaved RGB, 8 bits per channel (HWC).
 *
 * @module
 */

import { decodePng, encodePng } from "../deps.ts";

/** An 8-bit RGB image, row-major with interleaved channels. */
export interface RgbImage {
  /** Width in pixels. */
  width: number;
  /** Height in pixels. */
  height: number;
  /** `width * height * 3` bytes, R G B per pixel, rows top to bottom. */
  data: Uint8Array;
}

/**
 * The largest PNG side the tasks decode. A PNG's size is not its file size: 420 KB of compressed
 * zeros can declare 12000x12000 pixels, 1.44 GB once decoded, so sizes are read from the header
 * ({@linkcode pngSize}) and checked before decoding. 4096x4096 decodes to 64 MB of RGBA.
 */
export const MAX_PNG_SIDE = 4096;

/**
 * Width and height from a PNG's header (the IHDR chunk, which must come first), without decoding
 * anything.
 *
 * @throws Error when the bytes do not start with a PNG signature and IHDR chunk.
 * @example
 * ```ts
 * import { encodeRgbPng, pngSize } from "./png.ts";
 * pngSize(encodeRgbPng(new Uint8Array(6), 2, 1)); // { width: 2, height: 1 }
 * ```
 */
export function pngSize(bytes: Uint8Array): { width: number; height: number } {
  const SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];
  const ihdr = bytes.length >= 24 && SIGNATURE.every((b, i) => bytes[i] === b) &&
    String.fromCharCode(...bytes.subarray(12, 16)) === "IHDR";
  if (!ihdr) throw new Error("not a PNG file (no PNG signature and IHDR header)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/**
 * Reads a PNG's size from its header and refuses, before any decoding, one wider or taller than
 * `maxSide`. `name` (a file path) starts the error message.
 *
 * @throws Error naming `name` and the limit.
 * @example
 * ```ts
 * import { checkPngSize, encodeRgbPng } from "./png.ts";
 * checkPngSize(encodeRgbPng(new Uint8Array(6), 2, 1), "x.png"); // { width: 2, height: 1 }
 * ```
 */
export function checkPngSize(
  bytes: Uint8Array,
  name: string,
  maxSide: number = MAX_PNG_SIDE,
): { width: number; height: number } {
  let size;
  try {
    size = pngSize(bytes);
  } catch (e) {
    throw new Error(`Image "${name}" is ${(e as Error).message}`);
  }
  if (size.width > maxSide || size.height > maxSide) {
    throw new Error(
      `Image "${name}" is ${size.width}x${size.height} pixels, more than the limit of ` +
        `${maxSide}x${maxSide}; scale it down first (nothing was decoded)`,
    );
  }
  return size;
}

/**
 * Encodes an 8-bit RGB image as PNG.
 *
 * @example
 * ```ts
 * import { encodeRgbPng } from "./png.ts";
 * const png = encodeRgbPng(new Uint8Array([255, 0, 0, 0, 0, 255]), 2, 1); // red, blue
 * png.length > 8; // true: a PNG signature, then chunks
 * ```
 */
export function encodeRgbPng(pixels: Uint8Array, width: number, height: number): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new RangeError(`Image size "${width}x${height}" must be positive integers`);
  }
  if (pixels.length !== width * height * 3) {
    throw new RangeError(
      `RGB image of ${width}x${height} needs ${width * height * 3} bytes, got "${pixels.length}"`,
    );
  }
  return encodePng({ width, height, data: pixels, channels: 3, depth: 8 });
}

/**
 * Decodes a PNG to 8-bit RGB, whatever its colour type: grey is replicated to three channels,
 * palettes are looked up, 16-bit samples are rounded to 8 bits, sub-byte depths are scaled up,
 * and alpha is dropped (the stored colour is kept, not composited over a background).
 *
 * @example
 * ```ts
 * import { decodePngRgb, encodeRgbPng } from "./png.ts";
 * const png = encodeRgbPng(new Uint8Array([255, 0, 0, 0, 0, 255]), 2, 1);
 * const { width, height, data } = decodePngRgb(png); // 2, 1, Uint8Array [255, 0, 0, 0, 0, 255]
 * ```
 */
export function decodePngRgb(bytes: Uint8Array): RgbImage {
  let png;
  try {
    png = decodePng(bytes);
  } catch (err) {
    throw new Error(`Cannot decode PNG: ${(err as Error).message}`);
  }
  const { width, height, depth, channels, palette } = png;
  const n = width * height;
  const out = new Uint8Array(n * 3);
  const samplesPerRow = width * channels;

  // Every sample as an integer in [0, 2^depth), whatever the packing.
  let sample: (row: number, i: number) => number;
  if (depth === 16 || depth === 8) {
    const src = png.data;
    sample = (row, i) => src[row * samplesPerRow + i];
  } else {
    const src = png.data as Uint8Array;
    const bytesPerRow = Math.ceil((samplesPerRow * depth) / 8);
    const mask = (1 << depth) - 1;
    sample = (row, i) => {
      const bit = i * depth;
      return (src[row * bytesPerRow + (bit >> 3)] >> (8 - depth - (bit & 7))) & mask;
    };
  }

  if (palette) {
    for (let y = 0, o = 0; y < height; y++) {
      for (let x = 0; x < width; x++, o += 3) {
        const idx = sample(y, x);
        const color = palette[idx];
        if (!color) throw new Error(`Cannot decode PNG: palette index "${idx}" out of range`);
        out[o] = color[0];
        out[o + 1] = color[1];
        out[o + 2] = color[2];
      }
    }
    return { width, height, data: out };
  }

  const max = (1 << depth) - 1;
  const to8 = depth === 8 ? (v: number) => v : (v: number) => Math.round((v * 255) / max);
  const grey = channels <= 2;
  for (let y = 0, o = 0; y < height; y++) {
    for (let x = 0; x < width; x++, o += 3) {
      const base = x * channels;
      if (grey) {
        const v = to8(sample(y, base));
        out[o] = v;
        out[o + 1] = v;
        out[o + 2] = v;
      } else {
        out[o] = to8(sample(y, base));
        out[o + 1] = to8(sample(y, base + 1));
        out[o + 2] = to8(sample(y, base + 2));
      }
    }
  }
  return { width, height, data: out };
}

/**
 * Converts a batch of images in NCHW layout with values in [-1, 1] to 8-bit RGB images (HWC):
 * values are clamped, mapped to [0, 255] and rounded; NaN becomes 0. One channel is treated
 * as grey; three as RGB.
 *
 * @example
 * ```ts
 * import { tensorToImages } from "./png.ts";
 * const [img] = tensorToImages(new Float32Array([-1, 0, 1]), [1, 3, 1, 1]);
 * img; // Uint8Array [0, 128, 255]
 * ```
 */
export function tensorToImages(data: Float32Array, shape: readonly number[]): Uint8Array[] {
  if (shape.length !== 4) {
    throw new RangeError(`Image tensor shape "${JSON.stringify(shape)}" must be [N, C, H, W]`);
  }
  const [n, c, h, w] = shape;
  if (c !== 1 && c !== 3) {
    throw new RangeError(`Image tensor must have 1 or 3 channels, got "${c}"`);
  }
  if (data.length !== n * c * h * w) {
    throw new RangeError(
      `Image tensor of shape "${JSON.stringify(shape)}" needs ${n * c * h * w} values, ` +
        `got "${data.length}"`,
    );
  }
  const plane = h * w;
  const images: Uint8Array[] = [];
  for (let b = 0; b < n; b++) {
    const img = new Uint8Array(plane * 3);
    const base = b * c * plane;
    for (let p = 0; p < plane; p++) {
      for (let ch = 0; ch < 3; ch++) {
        const v = data[base + (c === 1 ? 0 : ch) * plane + p];
        // Uint8Array stores NaN as 0; the clamp keeps everything else in range.
        img[p * 3 + ch] = Math.round((Math.min(1, Math.max(-1, v)) + 1) * 127.5);
      }
    }
    images.push(img);
  }
  return images;
}

/** Options for {@linkcode imageGrid}. */
export interface GridOptions {
  /** Images per row; default: ceil(sqrt(count)). */
  columns?: number;
  /** Pixels between images and around the border; default 2. */
  padding?: number;
  /** Grey level of the padding, 0-255; default 255 (white). */
  background?: number;
}

/**
 * Tiles equally sized RGB images into one grid image, row by row, with `padding` pixels between
 * cells and around the border (as torchvision's `make_grid`). Unused cells are background.
 *
 * @example
 * ```ts
 * import { encodeRgbPng, imageGrid } from "./png.ts";
 * const tile = new Uint8Array(8 * 8 * 3);
 * const grid = imageGrid([tile, tile, tile], 8, 8, { columns: 2 });
 * grid.width; // 2 * 8 + 3 * 2 = 22
 * const png = encodeRgbPng(grid.data, grid.width, grid.height);
 * ```
 */
export function imageGrid(
  images: readonly Uint8Array[],
  width: number,
  height: number,
  options: GridOptions = {},
): RgbImage {
  const count = images.length;
  if (count === 0) throw new RangeError("Image grid needs at least one image, got 0");
  const columns = options.columns ?? Math.ceil(Math.sqrt(count));
  const padding = options.padding ?? 2;
  const background = options.background ?? 255;
  if (!Number.isInteger(columns) || columns <= 0) {
    throw new RangeError(`Grid columns must be a positive integer, got "${columns}"`);
  }
  if (!Number.isInteger(padding) || padding < 0) {
    throw new RangeError(`Grid padding must be a non-negative integer, got "${padding}"`);
  }
  images.forEach((img, i) => {
    if (img.length !== width * height * 3) {
      throw new RangeError(
        `Image ${i} has ${img.length} bytes, expected ${width * height * 3} for ${width}x${height}`,
      );
    }
  });
  const cols = Math.min(columns, count);
  const rows = Math.ceil(count / columns);
  const gw = cols * (width + padding) + padding;
  const gh = rows * (height + padding) + padding;
  const out = new Uint8Array(gw * gh * 3).fill(background);
  const rowBytes = width * 3;
  images.forEach((img, i) => {
    const x0 = padding + (i % columns) * (width + padding);
    const y0 = padding + Math.floor(i / columns) * (height + padding);
    for (let y = 0; y < height; y++) {
      const dst = ((y0 + y) * gw + x0) * 3;
      out.set(img.subarray(y * rowBytes, (y + 1) * rowBytes), dst);
    }
  });
  return { width: gw, height: gh, data: out };
}

/**
 * Box-downsamples a square RGB image by an integer factor (e.g. a 128x128 shapes image to 32x32).
 *
 * @example
 * ```ts
 * const small = downsampleRgb(new Uint8Array(4 * 4 * 3), 4, 2); // 2x2
 * ```
 */
export function downsampleRgb(rgb: Uint8Array, side: number, factor: number): Uint8Array {
  const out = side / factor;
  const dst = new Uint8Array(out * out * 3);
  for (let y = 0; y < out; y++) {
    for (let x = 0; x < out; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let dy = 0; dy < factor; dy++) {
          for (let dx = 0; dx < factor; dx++) {
            s += rgb[((y * factor + dy) * side + x * factor + dx) * 3 + c];
          }
        }
        dst[(y * out + x) * 3 + c] = Math.round(s / (factor * factor));
      }
    }
  }
  return dst;
}
