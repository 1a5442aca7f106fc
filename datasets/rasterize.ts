/**
 * Draws labelled figures on the 128x128 grey canvas and area-averages the result down to the
 * model resolution. Coverage at 128 is exact per pixel centre (inside test); the box average to
 * 32 (or any power of two <= 128) supplies the anti-aliasing.
 * @module
 */

import { BACKGROUND, CANVAS_SIZE, COLOURS, type FigureLabel } from "./shapes.ts";

// Reused between calls: which figure (index + 1) covers each canvas pixel; 0 is background.
const idMap = new Uint8Array(CANVAS_SIZE * CANVAS_SIZE);

/**
 * Checks that `size` is a power of two between 1 and 128.
 *
 * @example
 * ```ts
 * checkImageSize(32); // ok
 * ```
 */
export function checkImageSize(size: number): void {
  if (!Number.isInteger(size) || size < 1 || size > CANVAS_SIZE || (size & (size - 1)) !== 0) {
    throw new Error(`Image size "${size}" is not a power of two between 1 and ${CANVAS_SIZE}`);
  }
}

function fillFigure(fig: FigureLabel, id: number): void {
  const [x1, y1, x2, y2] = fig.bbox;
  const n = CANVAS_SIZE;
  switch (fig.shape) {
    case "rectangle":
    case "square": {
      for (let y = y1; y < y2; y++) idMap.fill(id, y * n + x1, y * n + x2);
      return;
    }
    case "ellipse":
    case "circle": {
      const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
      const irx2 = 4 / ((x2 - x1) * (x2 - x1)), iry2 = 4 / ((y2 - y1) * (y2 - y1));
      for (let y = y1; y < y2; y++) {
        const dy = y + 0.5 - cy;
        const ty = dy * dy * iry2;
        for (let x = x1; x < x2; x++) {
          const dx = x + 0.5 - cx;
          if (dx * dx * irx2 + ty <= 1) idMap[y * n + x] = id;
        }
      }
      return;
    }
    case "triangle":
    case "pentagon": {
      const sides = fig.shape === "triangle" ? 3 : 5;
      const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
      const r = Math.min(x2 - x1, y2 - y1) / 2;
      const rot = ((fig.rotation ?? 0) * Math.PI) / 180;
      const vx = new Float64Array(sides + 1), vy = new Float64Array(sides + 1);
      for (let k = 0; k <= sides; k++) {
        const a = rot + (2 * Math.PI * k) / sides;
        vx[k] = cx + r * Math.cos(a);
        vy[k] = cy + r * Math.sin(a);
      }
      for (let y = y1; y < y2; y++) {
        const py = y + 0.5;
        for (let x = x1; x < x2; x++) {
          const px = x + 0.5;
          let inside = true;
          for (let k = 0; k < sides; k++) {
            // Vertices go by increasing angle, so the inside is where every cross product >= 0.
            const cross = (vx[k + 1] - vx[k]) * (py - vy[k]) - (vy[k + 1] - vy[k]) * (px - vx[k]);
            if (cross < 0) {
              inside = false;
              break;
            }
          }
          if (inside) idMap[y * n + x] = id;
        }
      }
      return;
    }
  }
}

/**
 * Renders figures (non-overlapping, boxes on the 128 canvas) to an RGB image of `size` x `size`
 * (row-major, 3 bytes per pixel) by exact pixel-centre coverage at 128 and area averaging.
 *
 * @example
 * ```ts
 * const rgb = rasterize([{
 *   shape: "circle",
 *   colour: "red",
 *   size: "large",
 *   bbox: [10, 10, 110, 110],
 *   position: null,
 *   rotation: null,
 * }], 32); // Uint8Array(32 * 32 * 3)
 * ```
 */
export function rasterize(
  figures: readonly FigureLabel[],
  size = 32,
  out?: Uint8Array,
): Uint8Array {
  checkImageSize(size);
  const result = out ?? new Uint8Array(size * size * 3);
  idMap.fill(0);
  const palette = new Uint8Array((figures.length + 1) * 3);
  palette.set(BACKGROUND, 0);
  figures.forEach((fig, i) => {
    palette.set(COLOURS[fig.colour], (i + 1) * 3);
    fillFigure(fig, i + 1);
  });
  const f = CANVAS_SIZE / size;
  const n = CANVAS_SIZE;
  const area = f * f;
  for (let oy = 0; oy < size; oy++) {
    for (let ox = 0; ox < size; ox++) {
      let r = 0, g = 0, b = 0;
      for (let dy = 0; dy < f; dy++) {
        const row = (oy * f + dy) * n + ox * f;
        for (let dx = 0; dx < f; dx++) {
          const p = idMap[row + dx] * 3;
          r += palette[p];
          g += palette[p + 1];
          b += palette[p + 2];
        }
      }
      const o = (oy * size + ox) * 3;
      result[o] = Math.round(r / area);
      result[o + 1] = Math.round(g / area);
      result[o + 2] = Math.round(b / area);
    }
  }
  return result;
}
