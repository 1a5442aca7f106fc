/**
 * The ground-truth probe's network: a small CNN that reads the shapes data's labels from an image
 * as a multi-label classifier over the 17 x 6 (colour, shape) pairs, a figure-count logit and the
 * size word of each pair (17 x 6 x 3 logits); its options and their defaults, and the 8 flips and
 * quarter turns it is trained and read with. Training is in `probe_train.ts`, reading its logits
 * and scoring images in `probe_predict.ts`, the cache in `<run>/probe/` in `probe_cache.ts`.
 *
 * @module
 */
import { Conv2d, GroupNorm, Linear, Module } from "../core/nn/mod.ts";
import {
  adaptiveAvgPool2d,
  add,
  concat,
  maxPool2d,
  relu,
  reshape,
  slice,
  type Tensor,
} from "../core/tensor/mod.ts";
import { COLOUR_NAMES, SHAPES } from "./shapes.ts";
import { PAIR_COUNT, SIZE_LOGITS } from "./score.ts";

/** Training options of the probe. */
export interface ProbeOptions {
  /** Image side in pixels (the run's). */
  imageSize: number;
  /** Channels of the first convolution (the next two use 2x, a fourth at >= 32 px uses 4x). */
  width: number;
  /** Adam steps. */
  steps: number;
  /** Images per step. */
  batchSize: number;
  /** Adam learning rate. */
  lr: number;
  /** Seed of the weights and of the batch order. */
  seed: number;
  /** Training images generated from the run's dataset config (its train split). */
  trainCount: number;
  /**
   * "flip": random horizontal flips; "dihedral": any of the 8 flips and quarter turns (the labels
   * and the box distribution of the shapes data are invariant to all 8), and at prediction time
   * the logits averaged over the 8.
   */
  augment: "flip" | "dihedral";
  /** A second 3x3 convolution at full resolution before the first pooling. */
  stem: boolean;
  /**
   * A second head applied at every cell of the last feature map (two 1x1 convolutions), its
   * logits max-pooled over the cells and added to the global head's: a figure's colour and shape
   * are read where the figure is, not from features pooled over both figures.
   */
  localHead: boolean;
  /**
   * Largest standard deviation (in the [-1, 1] pixel scale) of Gaussian noise added to each
   * training image, its own level drawn uniformly from [0, noise]; 0 for none. Generated images
   * carry some grain that real ones do not, and a probe trained only on flat-coloured images
   * misreads them: noise of 0.02 (2.5 grey levels of 255), invisible to the eye, took such a
   * probe from 91% to 52% exact on real images (docs/training.md, "A judge robust to grain").
   */
  noise: number;
}

/**
 * Default steps: with 40,000 training images, 90.2% exact matches on the 256 real 32x32 test
 * images of presets/cpu32.jsonc (6,000 steps on 20,000 images gave 84.4%; docs/training.md).
 * About half an hour on the 2-core machine, trained once per run and cached.
 */
export const DEFAULT_PROBE_STEPS = 12000;

/** Defaults of everything but the image size. */
export const DEFAULT_PROBE_OPTIONS: Omit<ProbeOptions, "imageSize"> = {
  width: 32,
  steps: DEFAULT_PROBE_STEPS,
  batchSize: 64,
  lr: 3e-3,
  seed: 0,
  trainCount: 40000,
  augment: "dihedral",
  stem: false,
  localHead: true,
  noise: 0.1,
};

/** The fewest images the probe trains on: one batch of the defaults. */
export const MIN_PROBE_IMAGES: number = DEFAULT_PROBE_OPTIONS.batchSize;

/** Index of the figure-count logit in a row of probe logits; the size logits follow it. */
export const COUNT_LOGIT: number = PAIR_COUNT + COLOUR_NAMES.length + SHAPES.length;

/** Logits per image: 102 pairs, 17 colours, 6 shapes, the figure count, 306 (pair, size). */
export const PROBE_LOGITS: number = COUNT_LOGIT + 1 + SIZE_LOGITS;

/**
 * The probe network: conv 3x3 + ReLU + 2x2 max-pool, conv 3x3 + GroupNorm + ReLU + 2x2 max-pool,
 * a third conv + GroupNorm + ReLU (at >= 32 px one more 2x2 max-pool and conv + GroupNorm + ReLU,
 * so that the receptive field covers the largest figures), global max and mean pooling, then a
 * hidden Linear and a Linear to 102 pair, 17 colour, 6 shape, 1 "two figures" and 306 size logits.
 * With `localHead` the same logits also come from two 1x1 convolutions at every cell of the last
 * feature map, max-pooled over the cells and added: with two figures the global pooling mixes
 * their features, a cell reads the figure it sits on. With `dihedral` the logits are averaged over
 * the 8 flips and quarter turns of the image when predicting.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../core/tensor/mod.ts";
 * function logits(images: Tensor): Tensor {
 *   const probe = new ShapeProbe(16);
 *   return probe.forward(images); // [B, PROBE_LOGITS]
 * }
 * ```
 */
export class ShapeProbe extends Module {
  readonly conv1: Conv2d;
  readonly conv1b: Conv2d | null;
  readonly conv2: Conv2d;
  readonly norm2: GroupNorm;
  readonly conv3: Conv2d;
  readonly norm3: GroupNorm;
  readonly conv4: Conv2d | null;
  readonly norm4: GroupNorm | null;
  readonly hidden: Linear;
  readonly head: Linear;
  readonly localHidden: Conv2d | null;
  readonly localOut: Conv2d | null;

  constructor(
    readonly imageSize: number,
    readonly width = DEFAULT_PROBE_OPTIONS.width,
    readonly stem = DEFAULT_PROBE_OPTIONS.stem,
    /** Average the logits over the 8 flips and quarter turns of each image when predicting. */
    readonly dihedral = false,
    readonly localHead = false,
  ) {
    super();
    if (!Number.isInteger(imageSize) || imageSize < 8) {
      throw new Error(`Probe image size ${imageSize} is not an integer >= 8`);
    }
    const w = width, w2 = 2 * width;
    this.conv1 = this.addModule("conv1", new Conv2d(3, w, 3, { padding: 1 }));
    this.conv1b = stem ? this.addModule("conv1b", new Conv2d(w, w, 3, { padding: 1 })) : null;
    this.conv2 = this.addModule("conv2", new Conv2d(w, w2, 3, { padding: 1 }));
    this.norm2 = this.addModule("norm2", new GroupNorm(4, w2));
    this.conv3 = this.addModule("conv3", new Conv2d(w2, w2, 3, { padding: 1 }));
    this.norm3 = this.addModule("norm3", new GroupNorm(4, w2));
    const deep = imageSize >= 32, last = deep ? 2 * w2 : w2;
    this.conv4 = deep ? this.addModule("conv4", new Conv2d(w2, last, 3, { padding: 1 })) : null;
    this.norm4 = deep ? this.addModule("norm4", new GroupNorm(4, last)) : null;
    this.hidden = this.addModule("hidden", new Linear(2 * last, 256));
    this.head = this.addModule("head", new Linear(256, PROBE_LOGITS));
    this.localHidden = localHead ? this.addModule("localHidden", new Conv2d(last, 256, 1)) : null;
    this.localOut = localHead ? this.addModule("localOut", new Conv2d(256, PROBE_LOGITS, 1)) : null;
  }

  /**
   * images [B, 3, S, S] in [-1, 1] -> logits [B, PROBE_LOGITS]: 102 pair logits, 17 colour
   * logits, 6 shape logits, the count logit, 306 (pair, size) logits. A pair's logit is its own
   * term plus its colour's and its shape's, so every image teaches every pair of its colours and
   * shapes something.
   */
  forward(x: Tensor): Tensor {
    const B = x.shape[0];
    // No norm after conv1: GroupNorm there normalises each image's colour statistics away.
    let h = relu(this.conv1.forward(x));
    if (this.conv1b) h = relu(this.conv1b.forward(h));
    h = maxPool2d(h, 2);
    h = maxPool2d(relu(this.norm2.forward(this.conv2.forward(h))), 2);
    h = relu(this.norm3.forward(this.conv3.forward(h)));
    if (this.conv4 && this.norm4) {
      h = relu(this.norm4.forward(this.conv4.forward(maxPool2d(h, 2))));
    }
    // Global max + mean pooling: "is there a red triangle anywhere" is position-free, so the
    // hidden layer need not learn each feature once per spatial cell.
    const local = this.localHidden && this.localOut
      ? reshape(maxPool2d(this.localOut.forward(relu(this.localHidden.forward(h))), h.shape[2]), [
        B,
        -1,
      ])
      : null;
    h = concat([
      reshape(maxPool2d(h, h.shape[2]), [B, -1]),
      reshape(adaptiveAvgPool2d(h, [1, 1]), [B, -1]),
    ], 1);
    let raw = this.head.forward(this.hidden.forward(reshape(h, [B, -1]), "relu"));
    if (local) raw = add(raw, local);
    const C = COLOUR_NAMES.length, K = SHAPES.length;
    const pair = add(
      add(
        reshape(slice(raw, 1, 0, PAIR_COUNT), [B, C, K]),
        reshape(slice(raw, 1, PAIR_COUNT, PAIR_COUNT + C), [B, C, 1]),
      ),
      reshape(slice(raw, 1, PAIR_COUNT + C, PAIR_COUNT + C + K), [B, 1, K]),
    );
    return concat([reshape(pair, [B, PAIR_COUNT]), slice(raw, 1, PAIR_COUNT)], 1);
  }
}

/** A fresh probe with the layers `options` ask for (its weights are random until trained). */
export function probeForOptions(options: ProbeOptions): ShapeProbe {
  return new ShapeProbe(
    options.imageSize,
    options.width,
    options.stem,
    options.augment === "dihedral",
    options.localHead,
  );
}

/**
 * Writes transform `k` (0-7; bit 0 mirrors x, bit 1 mirrors y, bit 2 swaps the axes) of one
 * planar [C, S, S] image `src` into `dst` at `offset`: the 8 flips and quarter turns.
 */
export function dihedralInto(
  src: Float32Array,
  S: number,
  k: number,
  dst: Float32Array,
  offset = 0,
): void {
  const fx = (k & 1) !== 0, fy = (k & 2) !== 0, swap = (k & 4) !== 0, plane = S * S;
  for (let c = 0; c < src.length / plane; c++) {
    const sc = c * plane, dc = offset + c * plane;
    for (let y = 0; y < S; y++) {
      const yy = fy ? S - 1 - y : y;
      for (let x = 0; x < S; x++) {
        const xx = fx ? S - 1 - x : x;
        dst[dc + y * S + x] = src[sc + (swap ? xx * S + yy : yy * S + xx)];
      }
    }
  }
}
