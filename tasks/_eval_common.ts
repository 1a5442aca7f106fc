/**
 * What the evaluations of `deno task eval` share: the options every one receives, loading the
 * evaluated split, and the text tables they print (ours beside the thesis's, or generated beside
 * real images).
 * @module
 */
import type { ResolvedConfig } from "../core/config.ts";
import type { ClipEvalResult, ClipEvalSet } from "../core/eval/clip.ts";
import { loadCheckedSplit, type LoadPipelineOptions } from "../core/pipeline.ts";
import type { Registry } from "../core/registry.ts";
import { asShapesData, type CaptionedImage, type SplitName, toNchw } from "../datasets/mod.ts";
import type { DrawnFigures, FigureCounts } from "../datasets/figure_count.ts";
import type { ProbeOptions } from "../datasets/probe.ts";
import type { FigureScores, ProbeScores, ShapeOutcome } from "../datasets/score.ts";
import { type ShapeName, SHAPES } from "../datasets/shapes.ts";
import { UsageError } from "./_cli.ts";

/** What every evaluation receives from the command line. */
export interface EvalContext {
  /** The run folder (clip/, prior/, decoder/). */
  checkpoint: string;
  /** The registry of the run's plugins. */
  registry: Registry;
  /** The split evaluated. */
  split: SplitName;
  /** The first N images of the split, or all. */
  limit: number | undefined;
  /** Whether `limit` came from `--limit` (a split smaller than it is then a usage error). */
  limitGiven: boolean;
  /** Seed of the random pairs and of sampling. */
  seed: number;
  /** The samplers chosen on the command line (`--sampler`, `--prior-sampler`, ...). */
  load: LoadPipelineOptions;
  /** Training options of the ground-truth probe that differ from its defaults. */
  probeOptions: Partial<ProbeOptions>;
  /** Prints one line of the report. */
  print: (line: string) => void;
}

/** A split as CLIP's evaluation takes it: NCHW images in [-1, 1] and their captions. */
export function evalSet(data: readonly CaptionedImage[]): ClipEvalSet {
  const { width: w, height: h } = data[0];
  const images = new Float32Array(data.length * 3 * w * h);
  data.forEach((d, i) => toNchw(d.image, w, h, images, i * 3 * w * h, false));
  return { images, shape: [data.length, 3, h, w], captions: data.map((d) => d.caption) };
}

/**
 * The probe's rates as a table: one column, or generated beside real (the real column is the
 * probe's ceiling).
 */
export function probeTable(title: string, a: ProbeScores, real: ProbeScores | null): string {
  const rows: [string, keyof ProbeScores][] = [
    ["exact: just the captioned colour-shape pairs", "exact"],
    ["colours right", "colour"],
    ["shapes right", "shape"],
    ["figure count right", "count"],
    ["exact, squares=rectangles, circles=ellipses", "lenient"],
  ];
  const cells = rows.map(([name, k]): [string, string, string] => [
    name,
    fmt(a[k], true),
    real ? fmt(real[k], true) : "",
  ]);
  cells.push([
    `size words right (${a.sizeImages} captions with one)`,
    fmt(a.size, true),
    real ? fmt(real.size, true) : "",
  ]);
  return table(title, cells, real ? ["generated", "real"] : ["real", ""]);
}

/**
 * The probe's rates per captioned figure count, generated / real: where the exact-match errors
 * are, and how many of the two-figure ones are colours bound to the wrong shapes (`swapped`). Both
 * come from the same captions, so they hold the same groups.
 */
export function figureCountTable(
  generated: Record<string, FigureScores>,
  real: Record<string, FigureScores>,
): string {
  const lines = [
    "  by captioned figures, generated / real: exact, colours, shapes, count, colours on the wrong shapes",
  ];
  for (const [figures, g] of Object.entries(generated)) {
    const r = real[figures];
    const cell = (k: keyof FigureScores) =>
      `${fmt(g[k], true).padStart(7)} / ${fmt(r[k], true).padStart(7)}`;
    lines.push(
      `    ${figures} figure${figures === "1" ? " " : "s"} (${g.images})`.padEnd(22) +
        [cell("exact"), cell("colour"), cell("shape"), cell("count"), cell("swapped")].join("  "),
    );
  }
  return lines.join("\n");
}

/**
 * The figures counted from the pixels (`figureCounts`: regions away from the grey background),
 * generated / real: how often the count is the caption's, and the images showing 0, 1, 2 and 3 or
 * more regions, per captioned figure count. Unlike the probe's count head it sees a third figure.
 */
export function drawnFiguresTable(generated: FigureCounts, real: FigureCounts): string {
  const lines = [
    `  figures counted from the pixels (regions ${generated.threshold} from the grey background, ` +
    `at least ${generated.minPixels} pixels), generated / real: count right; images with 0, 1, 2, 3+ regions`,
    `    all (${Object.values(generated.byFigures).reduce((n, g) => n + g.images, 0)})`.padEnd(22) +
    `${fmt(generated.right, true).padStart(7)} / ${fmt(real.right, true).padStart(7)}`,
  ];
  const counts = (h: DrawnFigures["histogram"]) => `${h["0"]}, ${h["1"]}, ${h["2"]}, ${h["3+"]}`;
  for (const [figures, g] of Object.entries(generated.byFigures)) {
    const r = real.byFigures[figures];
    lines.push(
      `    ${figures} figure${figures === "1" ? " " : "s"} (${g.images})`.padEnd(22) +
        `${fmt(g.right, true).padStart(7)} / ${fmt(r.right, true).padStart(7)}   ` +
        `${counts(g.histogram)} / ${counts(r.histogram)}`,
    );
  }
  return lines.join("\n");
}

/**
 * Per captioned shape: how often the generated and the real images show it, and what the
 * generated images of one-figure captions show (most common first).
 */
export function shapeOutcomeTable(
  generated: Record<ShapeName, ShapeOutcome>,
  real: Record<ShapeName, ShapeOutcome>,
): string {
  const lines = [
    "  shape shown when captioned: generated / real (captions); one-figure captions' generated images show",
  ];
  for (const shape of SHAPES) {
    const g = generated[shape], r = real[shape];
    const shows = Object.entries(g.singleFigure).map(([k, n]) => `${k} ${n}`).join(", ");
    lines.push(
      `    ${shape.padEnd(10)} ${fmt(g.shown, true).padStart(7)} / ${
        fmt(r.shown, true).padStart(7)
      } (${g.captions})  ${shows || "-"}`,
    );
  }
  return lines.join("\n");
}

/**
 * The results file of noise seed `seed`: seed 0 keeps `path`, any other seed S has _seed<S>
 * before its .json, as weights/default's files are named.
 *
 * @example
 * ```ts
 * seededResultsPath("runs/a/eval_pipeline_test.json", 0); // "runs/a/eval_pipeline_test.json"
 * seededResultsPath("runs/a/eval_pipeline_test.json", 3); // "runs/a/eval_pipeline_test_seed3.json"
 * ```
 */
export function seededResultsPath(path: string, seed: number): string {
  return seed === 0 ? path : path.replace(/(\.json)?$/, (ext) => `_seed${seed}${ext}`);
}

/** A number with 3 decimals, or a rate as a percentage. */
export function fmt(x: number, percent = false): string {
  return percent ? `${(x * 100).toFixed(2)}%` : x.toFixed(3);
}

/**
 * A titled table of rows (name, value, value), the value columns right-aligned under `columns`
 * (default "ours" and "thesis"; an empty name leaves its column unheaded).
 */
export function table(
  title: string,
  rows: [string, string, string][],
  columns: readonly [string, string] = ["ours", "thesis"],
): string {
  const w0 = Math.max(...rows.map((r) => r[0].length), 6);
  const [a, b] = columns;
  const lines = [title, `  ${"".padEnd(w0)}  ${a.padStart(9)}  ${b.padStart(9)}`.trimEnd()];
  for (const [name, ours, thesis] of rows) {
    lines.push(`  ${name.padEnd(w0)}  ${ours.padStart(9)}  ${thesis.padStart(9)}`);
  }
  return lines.join("\n");
}

/** The rows of thesis Table 4.1 for a CLIP result, beside a reference result when given. */
export function clipRows(
  r: ClipEvalResult,
  ref: ClipEvalResult | null,
): [string, string, string][] {
  const t = (x: number | undefined, p = false): string => (x === undefined ? "-" : fmt(x, p));
  return [
    ["image-text cosine similarity", fmt(r.meanCosine), t(ref?.meanCosine)],
    ["random pairs cosine similarity", fmt(r.meanRandomCosine), t(ref?.meanRandomCosine)],
    ["top-1 accuracy", fmt(r.top1, true), t(ref?.top1, true)],
    ["top-5 accuracy", fmt(r.top5, true), t(ref?.top5, true)],
    ...(r.top1AnyTrue === undefined || r.top1Ceiling === undefined ? [] : [
      ["top-1, any caption true of the image", fmt(r.top1AnyTrue, true), "-"],
      ["top-1 ceiling (true captions tied)", fmt(r.top1Ceiling, true), "-"],
    ] as [string, string, string][]),
    // Over no image (a split without two-figure captions, such as zeroshot) there is no rate.
    ...(r.bindingAccuracy === undefined || !r.bindingCount ? [] : [
      [
        `own caption over its colours swapped (${r.bindingCount})`,
        fmt(r.bindingAccuracy, true),
        "-",
      ],
    ] as [string, string, string][]),
  ];
}

/**
 * The labelled split evaluated (at least 2 images), checked against the run's config: its first
 * `ctx.limit` images, fewer only when the limit is a default rather than `--limit`.
 */
export async function loadSplit(
  config: ResolvedConfig,
  registry: Registry,
  ctx: Pick<EvalContext, "split" | "limit" | "limitGiven">,
): Promise<CaptionedImage[]> {
  const { split, limit } = ctx;
  const data = await loadCheckedSplit(config, registry, split, limit);
  if (ctx.limitGiven && limit !== undefined && data.length < limit) {
    throw new UsageError(
      `--limit ${limit} is more than the ${data.length} images of the ${split} split; ` +
        `use --limit ${data.length} or less`,
    );
  }
  if (data.length < 2) throw new UsageError(`Split "${split}" has ${data.length} images; need 2`);
  return asShapesData(data);
}
