/**
 * Conversions between RGB bytes and the models' [-1, 1] float NCHW layout, the caption side of a
 * horizontal flip, and Gaussian grain. Every dataset and every stage uses these; nothing here knows
 * a dataset.
 *
 * @module
 */
import type { CaptionedImage } from "../components.ts";
import type { Rng } from "./rng.ts";

/**
 * Writes an RGB image as planar float32 (C, H, W) in [-1, 1] into `out` at `offset`
 * (element offset), optionally mirrored left to right on the way.
 *
 * @example
 * ```ts
 * const rgb = new Uint8Array(2 * 2 * 3).fill(255); // a white 2x2 image
 * const x = toNchw(rgb, 2, 2); // Float32Array(12), every value 1
 * ```
 */
export function toNchw(
  rgb: Uint8Array,
  width: number,
  height: number,
  out: Float32Array = new Float32Array(3 * width * height),
  offset = 0,
  flip = false,
): Float32Array {
  const plane = width * height;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = (y * width + (flip ? width - 1 - x : x)) * 3;
      const d = offset + y * width + x;
      out[d] = rgb[s] / 127.5 - 1;
      out[d + plane] = rgb[s + 1] / 127.5 - 1;
      out[d + 2 * plane] = rgb[s + 2] / 127.5 - 1;
    }
  }
  return out;
}

/**
 * Converts planar float32 (C, H, W) in [-1, 1] back to RGB bytes (clamped, rounded); the inverse
 * of {@link toNchw}, for saving generated images.
 *
 * @example
 * ```ts
 * const rgb = fromNchw(new Float32Array([-1, 0, 1]), 1, 1); // Uint8Array [0, 128, 255]
 * ```
 */
export function fromNchw(x: Float32Array, width: number, height: number, offset = 0): Uint8Array {
  const plane = width * height;
  const out = new Uint8Array(plane * 3);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      const v = Math.round((x[offset + c * plane + i] + 1) * 127.5);
      out[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return out;
}

/**
 * NCHW float images in [-1, 1] of captioned RGB images (not flipped).
 *
 * @example
 * ```ts
 * const image = { image: new Uint8Array(12), width: 2, height: 2, caption: "black" };
 * const x = imagesToNchw([image, image]); // Float32Array(24), every value -1
 * ```
 */
export function imagesToNchw(data: readonly CaptionedImage[]): Float32Array {
  if (data.length === 0) return new Float32Array(0);
  const { width: w, height: h } = data[0];
  const out = new Float32Array(data.length * 3 * w * h);
  data.forEach((d, i) => toNchw(d.image, w, h, out, i * 3 * w * h, false));
  return out;
}

/**
 * NCHW RGB images of side `from` enlarged to side `to` (a multiple of it), each pixel repeated as
 * a block: nearest-neighbour, so nothing is drawn that the images do not hold.
 *
 * @example
 * ```ts
 * enlargeBlocks(new Float32Array([1, 2, 3]), 1, 2); // each channel's pixel as a 2x2 block
 * ```
 */
export function enlargeBlocks(images: Float32Array, from: number, to: number): Float32Array {
  const f = to / from, planes = images.length / (from * from);
  if (!Number.isInteger(f) || !Number.isInteger(planes)) {
    throw new RangeError(`Cannot enlarge ${images.length} values of side ${from} to ${to}`);
  }
  const out = new Float32Array(planes * to * to);
  for (let c = 0; c < planes; c++) {
    for (let y = 0; y < to; y++) {
      const row = c * from * from + Math.floor(y / f) * from;
      for (let x = 0; x < to; x++) out[(c * to + y) * to + x] = images[row + Math.floor(x / f)];
    }
  }
  return out;
}

/**
 * Swaps the words "left" and "right" (for horizontal flips); other text is unchanged.
 *
 * @example
 * ```ts
 * swapLeftRight("a red circle at the top left"); // "a red circle at the top right"
 * ```
 */
export function swapLeftRight(text: string): string {
  return text.replace(/\b(left|right)\b/gi, (w) => {
    const swapped = w.toLowerCase() === "left" ? "right" : "left";
    return w[0] === w[0].toUpperCase() ? swapped[0].toUpperCase() + swapped.slice(1) : swapped;
  });
}

/**
 * Adds Gaussian noise of standard deviation `sd` to `count` values of `x` from `offset` (grain:
 * the probe's augmentation, `ProbeOptions.noise`, and its robustness check in `eval probe`; CLIP's
 * `train.clip.grain`), drawn from `rng` by the Box-Muller transform.
 *
 * @example
 * ```ts
 * import { Rng } from "./rng.ts";
 * const x = new Float32Array(12);
 * addGrain(x, 0, x.length, 0.05, new Rng("grain"));
 * ```
 */
export function addGrain(
  x: Float32Array,
  offset: number,
  count: number,
  sd: number,
  rng: Rng,
): void {
  for (let i = 0; i < count; i += 2) {
    const r = sd * Math.sqrt(-2 * Math.log(1 - rng.next())), a = 2 * Math.PI * rng.next();
    x[offset + i] += r * Math.cos(a);
    if (i + 1 < count) x[offset + i + 1] += r * Math.sin(a);
  }
}

/**
 * Grain on each of a batch's `n` images (NCHW in `x`, modified in place), each at its own standard
 * deviation drawn uniformly from [0, maxSd): generated images carry some grain that real ones do
 * not, so a model that judges generated images trains on both (as the probe does, "A judge robust
 * to grain" in docs/training.md).
 *
 * @example
 * ```ts
 * import { Rng } from "./rng.ts";
 * const x = new Float32Array(2 * 3 * 4 * 4); // two 4x4 RGB images
 * grainImages(x, 2, 0.1, new Rng("clip-grain-0-17"));
 * ```
 */
export function grainImages(x: Float32Array, n: number, maxSd: number, rng: Rng): void {
  const per = x.length / n;
  if (!Number.isInteger(per)) {
    throw new RangeError(`grainImages: ${x.length} values do not split into ${n} images`);
  }
  for (let i = 0; i < n; i++) addGrain(x, i * per, per, maxSd * rng.next(), rng);
}
