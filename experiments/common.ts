/**
 * What every experiment of `deno task experiment` shares: its description, its context (the run,
 * the flags), its output (one JSON document plus PNG/SVG figures, kept in memory and written by
 * the task at the end) and loading a split of the run's dataset with --limit checked.
 *
 * @module
 */
import type { ResolvedConfig, TrainStage } from "../core/config.ts";
import { encodeRgbPng, imageGrid, tensorToImages } from "../core/io/mod.ts";
import { loadCheckedSplit, type LoadPipelineOptions } from "../core/pipeline.ts";
import type { Registry } from "../core/registry.ts";
import { asShapesData, type CaptionedImage, type SplitName } from "../datasets/mod.ts";

/** A usage problem an experiment finds (bad flag value, --limit beyond the split). */
export class ExperimentUsageError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** What an experiment runs with. */
export interface ExperimentContext {
  /** The run folder. */
  checkpoint: string;
  registry: Registry;
  /** --limit (undefined: the experiment's default). */
  limit: number | undefined;
  /** --seed. */
  seed: number;
  /** --steps: decoder sampling steps (undefined: the sampler's). */
  steps: number | undefined;
  /** --sampler (undefined: the config's). */
  sampler: string | undefined;
  /**
   * --rerank: decoder candidates per text-to-image image, the best by CLIP kept (undefined: the
   * model config's `sampling.rerank`).
   */
  rerank: number | undefined;
  /** What `loadPipeline` takes: --sampler and the prior's --prior-sampler/-steps/-guidance. */
  load: LoadPipelineOptions;
  /** The experiment's own flags, raw (validated by the experiment). */
  flags: Record<string, string | boolean | undefined>;
  print(line: string): void;
}

/** A figure an experiment made: a PNG image or an SVG chart, with a caption. */
export interface ExperimentFile {
  /** File name inside the output folder. */
  name: string;
  data: Uint8Array | string;
  caption: string;
}

/** What an experiment returns: its numbers and its figures. */
export interface ExperimentOutput {
  /** The experiment's results (its own schema, documented in docs/experiments.md). */
  results: Record<string, unknown>;
  files: ExperimentFile[];
}

/**
 * What an experiment draws, which decides the shared flags it takes: "captions" draws text to
 * image (every sampling flag, --rerank included: CLIP reranks against the caption);
 * "prior-embeddings" decodes embeddings the prior makes from text it composes (the prior's flags,
 * not --rerank: no caption to rerank against); "image-embeddings" decodes CLIP image embeddings of
 * real images (no prior runs); "nothing" draws no image (only --limit).
 */
export type ExperimentDraws = "captions" | "prior-embeddings" | "image-embeddings" | "nothing";

/**
 * The prior's sampling flags, shared by `deno task experiment`, `sample` and `eval` (tasks/_cli.ts
 * reads them from here: experiments/ does not import tasks/).
 */
export const PRIOR_FLAGS: readonly string[] = [
  "prior-sampler",
  "prior-steps",
  "prior-guidance",
  "prior-candidates",
];

/** The decoder's sampling flags of `deno task experiment` (every drawing experiment's). */
const DECODER_FLAGS = [
  "steps",
  "seed",
  "sampler",
  "sampler-options",
  "raw-decoder",
  "late-decoder",
  "late-below",
];

/**
 * Why an experiment that draws `draws` ignores the shared flag `flag` (e.g. "draws no image"), or
 * null when it takes it.
 */
export function sharedFlagUnread(draws: ExperimentDraws, flag: string): string | null {
  if ((flag === "rerank" || flag === "no-reranker") && draws !== "captions") {
    return draws === "nothing" ? "draws no image" : "draws no caption to rerank against";
  }
  if (PRIOR_FLAGS.includes(flag) && draws !== "captions" && draws !== "prior-embeddings") {
    return draws === "nothing" ? "draws no image" : "samples no prior";
  }
  return DECODER_FLAGS.includes(flag) && draws === "nothing" ? "draws no image" : null;
}

/** Whether an experiment that draws `draws` takes the shared flag `flag`. */
export function takesSharedFlag(draws: ExperimentDraws, flag: string): boolean {
  return sharedFlagUnread(draws, flag) === null;
}

/** An experiment of `deno task experiment`. */
export interface Experiment {
  name: string;
  /** The thesis figure or section it reproduces. */
  thesis: string;
  /** One line for --help. */
  summary: string;
  /** The stages of the run it needs. */
  stages: readonly TrainStage[];
  /** What it draws (which shared flags it takes). */
  draws: ExperimentDraws;
  /** Flags of this experiment only: name -> help line. */
  flags: Record<string, { type: "string" | "boolean"; help: string }>;
  run(ctx: ExperimentContext): Promise<ExperimentOutput>;
}

/**
 * The first `limit` images of a split of the run's dataset (all when undefined); a limit beyond
 * the split is a usage error naming the split's size.
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../core/config.ts";
 * import type { Registry } from "../core/registry.ts";
 * async function test64(config: ResolvedConfig, registry: Registry) {
 *   return await loadSplit(config, registry, "test", 64);
 * }
 * ```
 */
export async function loadSplit(
  config: ResolvedConfig,
  registry: Registry,
  split: SplitName,
  limit: number | undefined,
): Promise<CaptionedImage[]> {
  const data = await loadCheckedSplit(config, registry, split, limit);
  if (limit !== undefined && data.length < limit) {
    throw new ExperimentUsageError(
      `--limit ${limit} is more than the ${data.length} images of the ${split} split; ` +
        `use --limit ${data.length} or less`,
    );
  }
  if (data.length < 4) {
    throw new ExperimentUsageError(`The ${split} split has ${data.length} images; need at least 4`);
  }
  return asShapesData(data);
}

/**
 * A PNG grid of NCHW images in [-1, 1].
 *
 * @example
 * ```ts
 * function grid(images: Float32Array): Uint8Array {
 *   return gridPng(images, 16, 16, 8); // 16 images of 16x16 pixels, 8 per row
 * }
 * ```
 */
export function gridPng(
  images: Float32Array,
  count: number,
  size: number,
  columns = 8,
): Uint8Array {
  const list = tensorToImages(images, [count, 3, size, size]);
  const grid = imageGrid(list, size, size, { columns: Math.min(columns, count) });
  return encodeRgbPng(grid.data, grid.width, grid.height);
}

/**
 * A comma-separated list of numbers flag (e.g. "--scales 1,1.5,2").
 *
 * @example
 * ```ts
 * numberList("1,1.5,2", "scales", { min: 0 }); // [1, 1.5, 2]
 * ```
 */
export function numberList(
  raw: string | boolean | undefined,
  name: string,
  options: { min?: number; max?: number; integer?: boolean; count?: number } = {},
): number[] | undefined {
  if (raw === undefined) return undefined;
  const parts = String(raw).split(",").map((s) => s.trim());
  const values = parts.map(Number);
  const bad = parts.findIndex((s, i) =>
    s === "" || !Number.isFinite(values[i]) || (options.integer && !/^\d+$/.test(s)) ||
    (options.min !== undefined && values[i] < options.min) ||
    (options.max !== undefined && values[i] > options.max)
  );
  const range = options.max !== undefined
    ? ` from ${options.min ?? "-inf"} to ${options.max}`
    : options.min !== undefined
    ? ` of at least ${options.min}`
    : "";
  const one = options.count === 1;
  if (bad >= 0 || raw === true || (one && values.length !== 1)) {
    const what = one
      ? (options.integer ? "an integer" : "a number")
      : `a comma-separated list of ${options.integer ? "integers" : "numbers"}`;
    throw new ExperimentUsageError(`--${name} "${raw}" must be ${what}${range}`);
  }
  if (options.count !== undefined && values.length !== options.count) {
    throw new ExperimentUsageError(`--${name} "${raw}" needs exactly ${options.count} values`);
  }
  return values;
}

/**
 * A flag of one number, checked as `numberList` checks each (undefined when absent).
 *
 * @example
 * ```ts
 * oneNumber("8", "n", { integer: true, min: 1 }); // 8
 * ```
 */
export function oneNumber(
  raw: string | boolean | undefined,
  name: string,
  options: { min?: number; max?: number; integer?: boolean } = {},
): number | undefined {
  return numberList(raw, name, { ...options, count: 1 })?.[0];
}

/** Rounds for JSON (keeps files readable; 6 significant digits). */
export function round(x: number): number {
  return Number.isFinite(x) ? Number(x.toPrecision(6)) : x;
}

/** The `--guidance` flag of the experiments that decode with one guidance scale. */
export const GUIDANCE_FLAG: Experiment["flags"] = {
  guidance: {
    type: "string",
    help: "decoder guidance scale (default: the model config's sampling.guidance, 2 unless set)",
  },
};

/**
 * The decoder guidance scale of `--guidance`, checked before any work (undefined when absent:
 * `decoderGuidance` then gives the model config's `sampling.guidance`).
 */
export function guidanceFlag(
  flags: Record<string, string | boolean | undefined>,
): number | undefined {
  return oneNumber(flags.guidance, "guidance", { min: 0, max: 100 });
}
