/**
 * Writes a shapes dataset split to a folder of PNGs + captions.jsonl.
 *
 * Usage: deno task dataset --set 1 --split train --out DIR [--size 32] [--seed S] [--count N]
 *        [--size-drop P] [--two-figures P]
 * @module
 */

import {
  checkSetAndSplit,
  DEFAULT_SEED,
  generateSplit,
  hasTwoFigures,
} from "../datasets/generate.ts";
import { checkOutputFolder, writeFolder } from "../datasets/folder.ts";
import { checkImageSize } from "../datasets/rasterize.ts";
import { SPLIT_COUNTS } from "../datasets/shapes.ts";
import { numberFlag, parseFlags, runMain, UsageError } from "./_cli.ts";

/**
 * The most images one call writes: the split is generated in memory before it is written
 * (100,000 images of 128x128 are about 5 GB), five times the thesis's largest split.
 */
export const MAX_DATASET_COUNT = 100_000;

const HELP = `Generate a synthetic coloured-shapes dataset (thesis datasets 1 and 2).

Usage: deno task dataset --set 1 --split train --out DIR [options]

  --set N         dataset: 1 (1-2 figures, no positions) or 2 (1 figure with position)  [1]
  --split NAME    train, test or zeroshot (only the colour-shape pairs held out of train) [train]
  --out DIR       output folder (must not exist or be empty): 00000.png... + captions.jsonl
  --size N        image side, a power of two <= 128                                     [32]
  --seed S        base seed (any text); the same seed gives identical files     [${DEFAULT_SEED}]
  --count N       number of images, at most ${MAX_DATASET_COUNT.toLocaleString("en-US")}
                  [set 1: 20000 train, 2000 test; set 2: 25000 train]
  --size-drop P   probability of leaving the size word out of a caption                [0.3]
  --two-figures P share of images with two figures (set 1, train and test splits)      [0.5]
  --debug         print stack traces of errors
  -h, --help      show this help`;

/**
 * The dataset task, callable in-process (tests) and from the CLI; returns the number of images
 * written, or null for --help.
 *
 * @example
 * ```ts
 * async function testSplit() {
 *   return await runDataset(["--split", "test", "--count", "16", "--out", "data/test16"]);
 * }
 * ```
 */
export async function runDataset(
  args: string[],
  hooks: { print?: (line: string) => void } = {},
): Promise<number | null> {
  const print = hooks.print ?? ((line: string) => console.log(line));
  const { values: v, positionals } = parseFlags(args, {
    set: { type: "string" },
    split: { type: "string" },
    out: { type: "string" },
    size: { type: "string" },
    seed: { type: "string" },
    count: { type: "string" },
    "size-drop": { type: "string" },
    "two-figures": { type: "string" },
  }, "dataset");
  if (v.help) {
    print(HELP);
    return null;
  }
  if (positionals.length > 0) {
    throw new UsageError(`Unexpected argument "${positionals[0]}"; see "deno task dataset --help"`);
  }
  const usage = <T>(check: () => T): T => {
    try {
      return check();
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  };
  const { set, split } = usage(() => checkSetAndSplit(v.set ?? "1", v.split ?? "train"));
  const out = v.out as string | undefined;
  if (out === undefined) throw new UsageError(`Missing --out DIR; see "deno task dataset --help"`);
  const size = numberFlag(v, "size", { integer: true, min: 1 }) ?? 32;
  usage(() => checkImageSize(size));
  const count = numberFlag(v, "count", { integer: true, min: 1, max: MAX_DATASET_COUNT }) ??
    SPLIT_COUNTS[set][split];
  const sizeDropProb = numberFlag(v, "size-drop", { min: 0, max: 1 }) ?? 0.3;
  const twoFigureShare = numberFlag(v, "two-figures", { min: 0, max: 1 });
  if (twoFigureShare !== undefined && !hasTwoFigures(set, split)) {
    throw new UsageError(
      `--two-figures is for set 1's train and test splits (set ${set}'s ${split} split has one ` +
        `figure per image); drop it`,
    );
  }
  usage(() => checkOutputFolder(out));
  const seed = (v.seed as string | undefined) ?? DEFAULT_SEED;
  print(
    `Generating dataset ${set}, split ${split}: ${count} images of ${size}x${size}, seed "${seed}"`,
  );
  const t0 = performance.now();
  const samples = generateSplit({ set, split, size, count, seed, sizeDropProb, twoFigureShare });
  const t1 = performance.now();
  await writeFolder(out, samples);
  const t2 = performance.now();
  print(
    `Generated in ${((t1 - t0) / 1000).toFixed(2)} s, wrote ${count} PNGs and captions.jsonl ` +
      `to "${out}" in ${((t2 - t1) / 1000).toFixed(2)} s`,
  );
  return count;
}

if (import.meta.main) await runMain(runDataset);
