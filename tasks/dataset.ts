/**
 * Writes a shapes dataset split to a folder of PNGs + captions.jsonl.
 *
 * Usage: deno task dataset --set 1 --split train --out DIR [--size 32] [--seed S] [--count N]
 *        [--size-drop P]
 * @module
 */

import { parseArgs } from "node:util";
import { checkSetAndSplit, DEFAULT_SEED, generateSplit } from "../datasets/generate.ts";
import { checkOutputFolder, writeFolder } from "../datasets/folder.ts";
import { checkImageSize } from "../datasets/rasterize.ts";
import { SPLIT_COUNTS } from "../datasets/shapes.ts";

const HELP = `Generate a synthetic coloured-shapes dataset (thesis datasets 1 and 2).

Usage: deno task dataset --set 1 --split train --out DIR [options]

  --set N         dataset: 1 (1-2 figures, no positions) or 2 (1 figure with position)  [1]
  --split NAME    train, test or zeroshot (only the colour-shape pairs held out of train) [train]
  --out DIR       output folder (must not exist or be empty): 00000.png... + captions.jsonl
  --size N        image side, a power of two <= 128                                     [32]
  --seed S        base seed (any text); the same seed gives identical files     [${DEFAULT_SEED}]
  --count N       number of images            [set 1: 20000 train, 2000 test; set 2: 25000 train]
  --size-drop P   probability of leaving the size word out of a caption                [0.3]
  -h, --help      show this help`;

function parseNumber(
  name: string,
  value: string | undefined,
  integer: boolean,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new Error(`Option --${name} "${value}" is not ${integer ? "an integer" : "a number"}`);
  }
  return n;
}

async function main(args: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        set: { type: "string", default: "1" },
        split: { type: "string", default: "train" },
        out: { type: "string" },
        size: { type: "string", default: "32" },
        seed: { type: "string", default: DEFAULT_SEED },
        count: { type: "string" },
        "size-drop": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    // node:util messages are multi-line with a hint; keep the first line.
    const msg = e instanceof Error ? e.message.split("\n")[0] : String(e);
    throw new Error(`${msg} (see --help)`);
  }
  const v = parsed.values;
  if (v.help) {
    console.log(HELP);
    return;
  }
  const { set, split } = checkSetAndSplit(v.set, v.split);
  if (v.out === undefined || v.out === "") throw new Error("Missing --out DIR (see --help)");
  const size = parseNumber("size", v.size, true)!;
  checkImageSize(size);
  const count = parseNumber("count", v.count, true) ?? SPLIT_COUNTS[set][split];
  if (count < 1) throw new Error(`Option --count "${v.count}" must be at least 1`);
  const sizeDropProb = parseNumber("size-drop", v["size-drop"], false) ?? 0.3;
  if (sizeDropProb < 0 || sizeDropProb > 1) {
    throw new Error(`Option --size-drop "${v["size-drop"]}" must be between 0 and 1`);
  }
  checkOutputFolder(v.out);
  const seed = v.seed ?? DEFAULT_SEED;
  console.log(
    `Generating dataset ${set}, split ${split}: ${count} images of ${size}x${size}, seed "${seed}"`,
  );
  const t0 = performance.now();
  const samples = generateSplit({ set, split, size, count, seed, sizeDropProb });
  const t1 = performance.now();
  await writeFolder(v.out, samples);
  const t2 = performance.now();
  console.log(
    `Generated in ${((t1 - t0) / 1000).toFixed(2)} s, wrote ${count} PNGs and captions.jsonl ` +
      `to "${v.out}" in ${((t2 - t1) / 1000).toFixed(2)} s`,
  );
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (e) {
    console.error(`Error: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`);
    Deno.exit(1);
  }
}
