/**
 * Dataset plugins: the synthetic coloured shapes (thesis datasets 1 and 2, section 3.1)
 * and folders of PNGs with a captions.jsonl (datasets/folder.ts).
 *
 * @module
 */
import { z } from "../../core/deps.ts";
import { definePlugin, type PluginDefinition } from "../../core/registry.ts";
import type { ImageTextDataset } from "../../core/components.ts";
import { generateSplit, hasTwoFigures, readFolder, swapColours } from "../../datasets/mod.ts";

export type { ImageTextDataset };

/** Validated options of the "shapes" dataset plugin. */
export interface ShapesDatasetOptions {
  set: 1 | 2;
  imageSize: number;
  trainCount?: number;
  testCount?: number;
  seed: string | number;
  sizeDropProb: number;
  flip: boolean;
  twoFigureShare?: number;
}

/** Options of the "shapes" dataset plugin. */
export const shapesDatasetOptions: z.ZodType<ShapesDatasetOptions> & z.ZodObject = z.object({
  set: z.union([z.literal(1), z.literal(2)]).default(1).describe("Thesis dataset 1 or 2"),
  imageSize: z.number().int().positive().default(32).describe("Image side (a power of two <= 128)"),
  trainCount: z.number().int().positive().optional()
    .describe("Training images (default: the thesis count, 20,000 or 25,000)"),
  testCount: z.number().int().positive().optional()
    .describe("Test and zero-shot images (default: 2,000)"),
  seed: z.union([z.string(), z.number()]).default("unclip-shapes").describe("Generator seed"),
  sizeDropProb: z.number().min(0).max(1).default(0.3)
    .describe("Probability of dropping the size word"),
  flip: z.boolean().default(true).describe("Random horizontal flips while training"),
  // Optional (absent means the thesis's 0.5), so configs and probes cached before it match.
  twoFigureShare: z.number().min(0).max(1).optional().describe(
    "Share of two-figure images in the training split of dataset 1 (default 0.5, the thesis's " +
      "equal odds); the test split keeps 0.5, so that results stay comparable",
  ),
}).strict();

/** The "shapes" dataset plugin: generated in memory, deterministic for a seed. */
export const shapesDataset: PluginDefinition<
  "dataset",
  typeof shapesDatasetOptions,
  ImageTextDataset
> = definePlugin({
  kind: "dataset",
  name: "shapes",
  description: "Synthetic coloured shapes with captions (thesis datasets 1 and 2)",
  options: shapesDatasetOptions,
  create: (o): ImageTextDataset => {
    if (o.twoFigureShare !== undefined && !hasTwoFigures(o.set, "train")) {
      throw new Error(
        `The shapes dataset's twoFigureShare is for set 1 (set 2 draws one figure per image); ` +
          `remove it`,
      );
    }
    return {
      imageSize: o.imageSize,
      flip: o.flip,
      // The colours of the caption's figures swapped (datasets/captions.ts).
      hardNegative: swapColours,
      split: (name, limit) => {
        const full = name === "train" ? o.trainCount : o.testCount;
        const count = limit !== undefined && (full === undefined || limit < full) ? limit : full;
        return Promise.resolve(generateSplit({
          set: o.set,
          split: name,
          size: o.imageSize,
          seed: o.seed,
          count,
          sizeDropProb: o.sizeDropProb,
          // Only the training split: the test split (and the probe, which trains on another seed's
          // test split) keep the thesis's mix.
          ...(name === "train" && { twoFigureShare: o.twoFigureShare }),
        }));
      },
    };
  },
});

/** Validated options of the "folder" dataset plugin. */
export interface FolderDatasetOptions {
  train: string;
  test?: string;
  zeroshot?: string;
  imageSize: number;
  flip: boolean;
}

/** Options of the "folder" dataset plugin. */
export const folderDatasetOptions: z.ZodType<FolderDatasetOptions> & z.ZodObject = z.object({
  train: z.string().min(1)
    .describe("Folder of the training split (PNGs + captions.jsonl), relative to the config file"),
  test: z.string().min(1).optional().describe("Folder of the test split (same)"),
  zeroshot: z.string().min(1).optional().describe("Folder of the zero-shot split (same)"),
  imageSize: z.number().int().positive().default(32).describe("Required image side"),
  flip: z.boolean().default(false).describe("Random horizontal flips while training"),
}).strict();

/** The "folder" dataset plugin: user images written by `deno task dataset` or by hand. */
export const folderDataset: PluginDefinition<
  "dataset",
  typeof folderDatasetOptions,
  ImageTextDataset
> = definePlugin({
  kind: "dataset",
  name: "folder",
  description: "Folders of PNG images with a captions.jsonl per split",
  options: folderDatasetOptions,
  // Relative folders start at the config file's folder (loadConfig), not the working directory.
  pathOptions: ["train", "test", "zeroshot"],
  create: (o): ImageTextDataset => ({
    imageSize: o.imageSize,
    flip: o.flip,
    split: (name, limit) => {
      const dir = o[name];
      if (dir === undefined) {
        throw new Error(`The folder dataset has no "${name}" split; set its "${name}" option`);
      }
      return readFolder(dir, { size: o.imageSize, limit });
    },
  }),
});
