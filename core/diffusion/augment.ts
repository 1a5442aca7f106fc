/**
 * The low-resolution side of a diffusion upsampler (DALL-E 2's cascade): the conditioning image
 * made from a training image by area averaging, its conditioning augmentation (Gaussian noise,
 * Ho et al. 2021 "Cascaded Diffusion Models", section 3.2; Gaussian blur, Ramesh et al. 2022,
 * Appendix C) and the levels drawn per sample. Everything runs on the device from the engine's
 * seeded generator: nothing is uploaded or read back.
 *
 * @module
 */
import type { AugmentKind } from "../components.ts";
import {
  add,
  affine,
  avgPool2d,
  concat,
  div,
  exp,
  full,
  mul,
  rand,
  randn,
  reshape,
  slice,
  sqrt,
  square,
  type Tensor,
  upsampleNearest2d,
} from "../tensor/mod.ts";

/** The kinds of conditioning augmentation, for option schemas. */
export const AUGMENT_KINDS = ["noise", "blur", "none"] as const satisfies readonly AugmentKind[];

/** Blur sigma, in low-resolution pixels, at level 1 (the 5-tap kernel reaches 2 pixels out). */
export const BLUR_SIGMA_AT_1 = 2;

/**
 * Images [B, C, H, H] averaged over (H / size)^2 blocks to [B, C, size, size] (area
 * downsampling, as the shapes generator makes its images from its 128 canvas).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function low(images: Tensor): Tensor {
 *   return downsampleArea(images, 8); // [B, 3, 16, 16] -> [B, 3, 8, 8]
 * }
 * ```
 */
export function downsampleArea(x: Tensor, size: number): Tensor {
  const H = x.shape[2];
  if (x.rank !== 4 || x.shape[3] !== H || H % size !== 0 || size < 1) {
    throw new RangeError(`Cannot area-downsample [${x.shape}] to ${size}x${size}`);
  }
  return H === size ? x : avgPool2d(x, H / size);
}

/**
 * Images [B, C, h, h] repeated to [B, C, size, size] (nearest neighbour; SR3 and Cascaded
 * Diffusion upsample the condition before concatenating it to x_t).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function big(lowRes: Tensor): Tensor {
 *   return upsampleToSize(lowRes, 16); // [B, 3, 8, 8] -> [B, 3, 16, 16]
 * }
 * ```
 */
export function upsampleToSize(x: Tensor, size: number): Tensor {
  const h = x.shape[2];
  if (x.rank !== 4 || x.shape[3] !== h || size % h !== 0) {
    throw new RangeError(`Cannot upsample [${x.shape}] to ${size}x${size}`);
  }
  return h === size ? x : upsampleNearest2d(x, size / h);
}

/**
 * Training levels f32 [B], uniform in [0, max) from the seeded generator (all 0 for "none").
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function levels(): Tensor {
 *   return drawLevels(4, 0.5, "noise"); // f32 [4] in [0, 0.5)
 * }
 * ```
 */
export function drawLevels(batch: number, max: number, kind: AugmentKind): Tensor {
  return kind === "none" || max === 0 ? full([batch], 0) : affine(rand([batch]), max, 0);
}

/**
 * The highest level `drawLevels` trains on: `max`, or 0 for "none" (whose levels are all 0). A
 * sampling level above it is one the upsampler never saw.
 *
 * @example
 * ```ts
 * trainedLevelMax(0.5, "noise"); // 0.5
 * trainedLevelMax(0.5, "none"); // 0
 * ```
 */
export function trainedLevelMax(max: number, kind: AugmentKind): number {
  return kind === "none" ? 0 : max;
}

/** Edge rows/columns repeated `r` times on both sides of `axis` (replicate padding). */
function replicatePad(x: Tensor, axis: number, r: number): Tensor {
  const n = x.shape[axis];
  const first = slice(x, axis, 0, 1);
  const last = slice(x, axis, n - 1, n);
  return concat([...Array(r).fill(first), x, ...Array(r).fill(last)], axis);
}

/** A per-sample 5-tap Gaussian blur along `axis` with weights w0, w1, w2 [B, 1, 1, 1]. */
function blurAxis(x: Tensor, axis: number, w: Tensor[]): Tensor {
  const n = x.shape[axis];
  const p = replicatePad(x, axis, 2);
  const at = (k: number): Tensor => slice(p, axis, 2 + k, 2 + k + n);
  let out = mul(x, w[0]);
  for (const k of [1, 2]) out = add(out, mul(add(at(k), at(-k)), w[k]));
  return out;
}

/**
 * The conditioning augmentation of low-resolution images x [B, C, h, h] at levels f32 [B] in
 * [0, 1]: "noise" is x sqrt(1 - l^2) + l eps (variance preserving, Ho et al. 2021); "blur" a
 * separable Gaussian blur of sigma `BLUR_SIGMA_AT_1` x l pixels over 5 taps with replicated edges
 * (level 0 leaves the image as it is); "none" returns x.
 *
 * @example
 * ```ts
 * import { full, type Tensor } from "../tensor/mod.ts";
 * function blurred(lowRes: Tensor): Tensor {
 *   return augmentLowRes(lowRes, full([lowRes.shape[0]], 0.2), "blur");
 * }
 * ```
 */
export function augmentLowRes(x: Tensor, level: Tensor, kind: AugmentKind): Tensor {
  if (kind === "none") return x;
  const B = x.shape[0];
  if (level.size !== B) {
    throw new RangeError(`Augmentation levels have shape [${level.shape}]; expected [${B}]`);
  }
  const l = reshape(level, [B, 1, 1, 1]);
  if (kind === "noise") {
    return add(mul(x, sqrt(affine(square(l), -1, 1))), mul(randn(x.shape), l));
  }
  // w_k = exp(-k^2 / (2 sigma^2)), normalised over k = -2..2; a tiny floor keeps sigma 0 exact.
  const twoVar = affine(square(l), 2 * BLUR_SIGMA_AT_1 ** 2, 1e-6);
  const raw = [full([B, 1, 1, 1], 1), exp(div(-1, twoVar)), exp(div(-4, twoVar))];
  const total = add(raw[0], affine(add(raw[1], raw[2]), 2, 0));
  const w = raw.map((r) => div(r, total));
  return blurAxis(blurAxis(x, 2, w), 3, w);
}
