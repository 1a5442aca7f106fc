/**
 * Shuffled, seeded mini-batches. The data order depends only on (seed, epoch), and every batch
 * only on (seed, step), so a run resumed at step k sees exactly the batches it would have seen.
 * Generic over the dataset's label type; a dataset whose labels change with a horizontal flip
 * passes `flipLabel` (the shapes data's loader in datasets/loader.ts does).
 * @module
 */

import type { CaptionedImage } from "../components.ts";
import { swapLeftRight, toNchw } from "./images.ts";
import { deriveSeed, Rng, type Seed } from "./rng.ts";

/** Options of {@link DataLoader}. */
export interface LoaderOptions<Label = unknown> {
  /** Images per batch. */
  batchSize: number;
  /** Shuffling and flip seed (default 0). */
  seed?: Seed;
  /** Random horizontal flips with p = 0.5, fixing "left"/"right" in captions and labels. */
  flip?: boolean;
  /** Drop the incomplete last batch of an epoch (default true, so that shapes stay fixed). */
  dropLast?: boolean;
  /** Names the data in errors, e.g. `Dataset "shapes", train split` (default "Dataset"). */
  name?: string;
  /** The side every image must have (default: the first image's size). */
  imageSize?: number;
  /**
   * Mirrors one label with its image. Without it, flipped images carry no labels (training reads
   * only images and captions).
   */
  flipLabel?: (label: Label) => Label;
}

/**
 * Checks that every image has the same size (`imageSize` when given, else the first image's) and
 * holds exactly width x height x 3 bytes. A dataset plugin that returns other byte lengths would
 * otherwise train without any error: `toNchw` reads missing bytes as NaN and ignores extra ones.
 *
 * @throws Error naming the data (`name`) and the index of the first bad image.
 * @example
 * ```ts
 * const image = { image: new Uint8Array(16 * 16 * 3), width: 16, height: 16, caption: "grey" };
 * checkImages([image, image], { name: "mine", imageSize: 16 }); // passes
 * // checkImages([{ ...image, image: new Uint8Array(3) }]) throws: "Dataset: image 0 has 3 bytes; ..."
 * ```
 */
export function checkImages(
  data: readonly CaptionedImage<unknown>[],
  options: { name?: string; imageSize?: number } = {},
): void {
  const name = options.name ?? "Dataset";
  const w = options.imageSize ?? data[0]?.width;
  const h = options.imageSize ?? data[0]?.height;
  const expected = options.imageSize !== undefined ? "the dataset's imageSize" : "the first image";
  data.forEach((d, i) => {
    if (d.width !== w || d.height !== h) {
      throw new Error(
        `${name}: image ${i} is ${d.width}x${d.height}, expected ${w}x${h} like ${expected}`,
      );
    }
    checkImageBytes(d, i, name);
  });
}

function checkImageBytes(d: CaptionedImage<unknown>, index: number, name: string): void {
  const bytes = d.width * d.height * 3;
  if (d.image?.length !== bytes) {
    throw new Error(
      `${name}: image ${index} has ${d.image?.length} bytes; ` +
        `expected ${d.width} x ${d.height} x 3 = ${bytes}`,
    );
  }
}

/** One batch, ready to upload: a single contiguous float32 array. */
export interface Batch<Label = unknown> {
  /** NCHW float32 in [-1, 1]. */
  images: Float32Array;
  /** [B, 3, H, W]. */
  shape: [number, number, number, number];
  /** Captions (with "left"/"right" swapped for flipped images). */
  captions: string[];
  /** Per image: figure labels (flipped with the image), or undefined for unlabelled data. */
  labels: (Label[] | undefined)[];
  /** Dataset indices of the images. */
  indices: number[];
  /** Global step this batch belongs to. */
  step: number;
  /** Epoch of the step. */
  epoch: number;
}

/** Seeded shuffling batch loader over an in-memory list of same-sized images. */
export class DataLoader<Label = unknown> {
  /** The images. */
  readonly data: readonly CaptionedImage<Label>[];
  /** Images per batch. */
  readonly batchSize: number;
  /** Shuffling and flip seed. */
  readonly seed: Seed;
  /** Whether images are flipped at random. */
  readonly flip: boolean;
  /** Whether the incomplete last batch of an epoch is dropped. */
  readonly dropLast: boolean;
  /** Image width. */
  readonly width: number;
  /** Image height. */
  readonly height: number;
  /** Batches per epoch. */
  readonly stepsPerEpoch: number;
  /** Names the data in errors. */
  readonly name: string;
  readonly #flipLabel?: (label: Label) => Label;
  #orderEpoch = -1;
  #order: Uint32Array = new Uint32Array(0);

  /**
   * Creates a loader.
   *
   * @throws Error when the data is empty, an image has another size or byte length
   * (`checkImages`), or the batch size is invalid.
   * @example
   * ```ts
   * const data = Array.from({ length: 10 }, (_, i) => ({
   *   image: new Uint8Array(4 * 4 * 3).fill(i),
   *   width: 4,
   *   height: 4,
   *   caption: `image ${i} at the left`,
   * }));
   * const loader = new DataLoader(data, { batchSize: 4, seed: 1, flip: true });
   * for (const batch of loader.batches()) {
   *   batch.shape; // [4, 3, 4, 4]
   *   if (batch.step === 2) break;
   * }
   * ```
   */
  constructor(data: readonly CaptionedImage<Label>[], options: LoaderOptions<Label>) {
    const { batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new Error(`Batch size "${batchSize}" is not a positive integer`);
    }
    if (data.length === 0) throw new Error("The dataset is empty");
    this.data = data;
    this.batchSize = batchSize;
    this.seed = options.seed ?? 0;
    this.flip = options.flip ?? false;
    this.#flipLabel = options.flipLabel;
    this.dropLast = options.dropLast ?? true;
    this.name = options.name ?? "Dataset";
    this.width = options.imageSize ?? data[0].width;
    this.height = options.imageSize ?? data[0].height;
    checkImages(data, { name: this.name, imageSize: options.imageSize });
    this.stepsPerEpoch = this.dropLast
      ? Math.floor(data.length / batchSize)
      : Math.ceil(data.length / batchSize);
    if (this.stepsPerEpoch === 0) {
      throw new Error(
        `Batch size "${batchSize}" is larger than the dataset (${data.length} images)`,
      );
    }
  }

  /**
   * The data order (a permutation of indices) of an epoch.
   *
   * @example
   * ```ts
   * function first(loader: DataLoader): number {
   *   return loader.order(0)[0]; // index of the first image seen
   * }
   * ```
   */
  order(epoch: number): Uint32Array {
    if (epoch !== this.#orderEpoch) {
      const n = this.data.length;
      const perm = new Uint32Array(n);
      for (let i = 0; i < n; i++) perm[i] = i;
      const rng = new Rng(deriveSeed(this.seed, "order", epoch));
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rng.next() * (i + 1));
        const t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
      }
      this.#order = perm;
      this.#orderEpoch = epoch;
    }
    return this.#order;
  }

  /**
   * The batch of a global step (epoch = floor(step / stepsPerEpoch)).
   *
   * @example
   * ```ts
   * function firstBatch(loader: DataLoader) {
   *   const b = loader.batch(0);
   *   return b.shape; // e.g. [64, 3, 32, 32]
   * }
   * ```
   */
  batch(step: number): Batch<Label> {
    const epoch = Math.floor(step / this.stepsPerEpoch);
    const within = step - epoch * this.stepsPerEpoch;
    const order = this.order(epoch);
    const from = within * this.batchSize;
    const to = Math.min(from + this.batchSize, order.length);
    const b = to - from;
    const { width: w, height: h } = this;
    const images = new Float32Array(b * 3 * w * h);
    const captions: string[] = [];
    const labels: (Label[] | undefined)[] = [];
    const indices: number[] = [];
    const rng = new Rng(deriveSeed(this.seed, "flip", step));
    for (let k = 0; k < b; k++) {
      const index = order[from + k];
      const item = this.data[index];
      // Checked again per batch (one comparison): the arrays are the plugin's to mutate.
      checkImageBytes(item, index, this.name);
      const flip = this.flip && rng.next() < 0.5;
      toNchw(item.image, w, h, images, k * 3 * w * h, flip);
      captions.push(flip ? swapLeftRight(item.caption) : item.caption);
      const mirror = this.#flipLabel;
      labels.push(flip ? (mirror ? item.labels?.map(mirror) : undefined) : item.labels);
      indices.push(index);
    }
    return { images, shape: [b, 3, h, w], captions, labels, indices, step, epoch };
  }

  /**
   * Endless batches from `startStep` on (pass the saved step to resume).
   *
   * @example
   * ```ts
   * function resume(loader: DataLoader, resumeStep: number, total: number) {
   *   for (const batch of loader.batches(resumeStep)) if (batch.step >= total) break;
   * }
   * ```
   */
  *batches(startStep = 0): Generator<Batch<Label>> {
    for (let step = startStep;; step++) yield this.batch(step);
  }
}
