/**
 * A small PNG file whose header declares a huge image, as a 420 KB PNG of 12000x12000 does
 * (1.44 GB once decoded). Only the header is real: its IHDR size is patched into a 1x1 PNG, so
 * code that checks the size before decoding refuses it, and code that decodes first fails on the
 * data instead (or, with a real file of that size, runs out of memory).
 *
 * @module
 */
import { encodeRgbPng } from "../../core/io/png.ts";

/** PNG bytes declaring `side`x`side` pixels (default 12000). */
export function hugePng(side = 12000): Uint8Array {
  const png = encodeRgbPng(new Uint8Array(3), 1, 1);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  view.setUint32(16, side); // IHDR width
  view.setUint32(20, side); // IHDR height
  return png;
}
