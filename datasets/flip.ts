/**
 * Horizontal flip augmentation (image, caption and labels together) and the conversion of RGB
 * bytes to the model's [-1, 1] float NCHW layout.
 * @module
 */

import { swapLeftRight } from "./captions.ts";
import { CANVAS_SIZE, type CaptionedImage, type FigureLabel, type Position } from "./shapes.ts";

/**
 * Mirrors an RGB image (row-major, 3 bytes per pixel) left to right.
 *
 * @example
 * ```ts
 * const mirrored = flipImage(sample.image, sample.width, sample.height);
 * ```
 */
export function flipImage(rgb: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(rgb.length);
  for (let y = 0; y < height; y++) {
    const row = y * width * 3;
    for (let x = 0; x < width; x++) {
      const s = row + x * 3, d = row + (width - 1 - x) * 3;
      out[d] = rgb[s];
      out[d + 1] = rgb[s + 1];
      out[d + 2] = rgb[s + 2];
    }
  }
  return out;
}

/**
 * Mirrors one figure's labels: the box is reflected about the canvas's vertical centre line,
 * "left" and "right" swap in the position, and polygon rotations are reflected.
 *
 * @example
 * ```ts
 * flipLabel(label).bbox; // [128 - x2, y1, 128 - x1, y2]
 * ```
 */
export function flipLabel(label: FigureLabel): FigureLabel {
  const [x1, y1, x2, y2] = label.bbox;
  return {
    ...label,
    bbox: [CANVAS_SIZE - x2, y1, CANVAS_SIZE - x1, y2],
    position: label.position === null ? null : (swapLeftRight(label.position) as Position),
    // A vertex at angle a lands at 180 - a; the vertex set of a regular polygon is what matters.
    rotation: label.rotation === null ? null : (((180 - label.rotation) % 360) + 360) % 360,
  };
}

/**
 * Flips a captioned image horizontally: pixels mirrored, "left" and "right" swapped in the caption
 * and in the labels, boxes mirrored.
 *
 * @example
 * ```ts
 * flipSample(sample).caption; // "a red circle at the top right" for "... top left"
 * ```
 */
export function flipSample<T extends CaptionedImage>(sample: T): T {
  return {
    ...sample,
    image: flipImage(sample.image, sample.width, sample.height),
    caption: swapLeftRight(sample.caption),
    labels: sample.labels?.map(flipLabel),
  };
}

/**
 * Writes an RGB image as planar float32 (C, H, W) in [-1, 1] into `out` at `offset`
 * (element offset), optionally mirrored left to right on the way.
 *
 * @example
 * ```ts
 * const x = new Float32Array(3 * 32 * 32);
 * toNchw(sample.image, 32, 32, x);
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
 * const rgb = fromNchw(x, 32, 32);
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
