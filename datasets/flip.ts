/**
 * Horizontal flip augmentation of shapes samples (image, caption and labels together). The
 * conversion of RGB bytes to the models' NCHW layout lives in core/data/images.ts (re-exported).
 * @module
 */

import { swapLeftRight } from "../core/data/images.ts";
import { CANVAS_SIZE, type CaptionedImage, type FigureLabel, type Position } from "./shapes.ts";

export { fromNchw, toNchw } from "../core/data/images.ts";

/**
 * Mirrors an RGB image (row-major, 3 bytes per pixel) left to right.
 *
 * @example
 * ```ts
 * import { generateSample } from "./generate.ts";
 * const sample = generateSample(0, { size: 16 });
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
 * import { generateSample } from "./generate.ts";
 * const [label] = generateSample(0).labels;
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
 * import { generateSample } from "./generate.ts";
 * const sample = generateSample(0, { set: 2, size: 16 });
 * flipSample(sample).caption; // "... top right" for "... top left"
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
