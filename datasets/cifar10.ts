/**
 * CIFAR-10 (thesis appendix B.1) from the standard binary files, captioned with class names.
 * The files cannot be downloaded here: the user supplies them.
 * @module
 */

import type { CaptionedImage } from "./shapes.ts";

/** CIFAR-10 class names in label order; each image's caption is its class name. */
export const CIFAR10_CLASSES = [
  "airplane",
  "automobile",
  "bird",
  "cat",
  "deer",
  "dog",
  "frog",
  "horse",
  "ship",
  "truck",
] as const;

/** Where to get the files. */
export const CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";

const RECORD = 1 + 3072;

/** A CIFAR-10 image: caption is the class name, `classIndex` its label. */
export type CifarImage = CaptionedImage & { classIndex: number };

/** Options of {@link readCifar10}. */
export interface Cifar10Options {
  /** "train" (data_batch_1..5.bin, default) or "test" (test_batch.bin). */
  split?: "train" | "test";
  /** Read at most this many images. */
  limit?: number;
}

function fileExists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Reads CIFAR-10 from the binary version's files at `dir` (the folder holding data_batch_1.bin
 * ... test_batch.bin, or the folder that contains `cifar-10-batches-bin/`). Each record is one
 * label byte and 3072 bytes of planar RGB, 32x32.
 *
 * @throws Error saying where to put the files when they are missing, or naming a damaged file.
 * @example
 * ```ts
 * function firstTest() {
 *   const test = readCifar10("data/cifar-10-batches-bin", { split: "test" });
 *   return test[0].caption; // "cat"
 * }
 * ```
 */
export function readCifar10(dir: string, options: Cifar10Options = {}): CifarImage[] {
  const split = options.split ?? "train";
  if (split !== "train" && split !== "test") {
    throw new Error(`Unknown CIFAR-10 split "${split}"; choose train or test`);
  }
  const names = split === "train"
    ? [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`)
    : ["test_batch.bin"];
  const base = dir.replace(/\/+$/, "");
  const root = !fileExists(`${base}/${names[0]}`) &&
      fileExists(`${base}/cifar-10-batches-bin/${names[0]}`)
    ? `${base}/cifar-10-batches-bin`
    : base;
  const out: CifarImage[] = [];
  const limit = options.limit ?? Infinity;
  for (const name of names) {
    if (out.length >= limit) break;
    const path = `${root}/${name}`;
    if (!fileExists(path)) {
      throw new Error(
        `CIFAR-10 file "${path}" not found; download ${CIFAR10_URL} and extract it so that ` +
          `"${root}" holds data_batch_1.bin ... data_batch_5.bin and test_batch.bin`,
      );
    }
    const bytes = Deno.readFileSync(path);
    if (bytes.length === 0 || bytes.length % RECORD !== 0) {
      throw new Error(
        `CIFAR-10 file "${path}" is ${bytes.length} bytes, not a multiple of ${RECORD}; ` +
          `is it the binary version?`,
      );
    }
    for (let r = 0; r * RECORD < bytes.length && out.length < limit; r++) {
      const rec = bytes.subarray(r * RECORD, (r + 1) * RECORD);
      const label = rec[0];
      if (label >= CIFAR10_CLASSES.length) {
        throw new Error(`CIFAR-10 file "${path}" has an invalid label "${label}" in record ${r}`);
      }
      const image = new Uint8Array(3072);
      for (let i = 0; i < 1024; i++) {
        image[i * 3] = rec[1 + i];
        image[i * 3 + 1] = rec[1 + 1024 + i];
        image[i * 3 + 2] = rec[1 + 2048 + i];
      }
      out.push({
        image,
        width: 32,
        height: 32,
        caption: CIFAR10_CLASSES[label],
        classIndex: label,
      });
    }
  }
  return out;
}
