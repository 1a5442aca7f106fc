/**
 * `deno task eval compare A.json B.json`: two `eval pipeline` results of the same captions,
 * compared. The probe's rates and CLIP's top-1 side by side, and the exact-match verdicts paired
 * caption by caption (`exactByImage`): how many captions only A or only B got exactly right, the
 * difference with a 95% interval and McNemar's exact p-value (core/eval/paired.ts). Each side may
 * be a comma-separated list (e.g. five noise seeds of each model): the i-th files of A and B are
 * paired, the rates are the means over the pairs and the verdicts are pooled (one item per
 * caption and file). The same pooling summarises one model's files of `eval pipeline --seeds`
 * (`summarizeSeeds`).
 * @module
 */
import { comparePaired, type PairedComparison } from "../core/eval/paired.ts";
import type { FigureCounts } from "../datasets/figure_count.ts";
import type { FigureScores } from "../datasets/score.ts";
import { DEFAULT_PRIOR_SAMPLER } from "../core/pipeline/load.ts";
import { guidanceText, UsageError } from "./_cli.ts";
import { fmt, seededResultsPath } from "./_eval_common.ts";

/** The parts of an `eval pipeline` JSON the comparison reads. */
interface PipelineResult {
  path: string;
  split: string;
  checkpoint: string;
  sampler: string;
  steps: number | null;
  /** Null for `--from downsampled`, which runs no decoder. */
  guidance: number | null;
  guidanceInterval?: [number, number];
  seed: number;
  from?: string;
  rerank?: number;
  /** The run's reranking CLIP that chose among the candidates, when one did. */
  reranker?: { step: number; grain: number } | null;
  /** The prior's sampling, in results written since it was recorded (`--from prior` only). */
  prior?: { sampler: string; steps: number | null; guidance: number } | null;
  /** A cascade's decoder scored alone (`--no-upsampler`): its side, enlarged as blocks. */
  enlargedFrom: number | null;
  modelSteps?: { decoder?: number };
  clipTop1: number;
  /** The probe's exact verdict per caption, in order (`probe.generated.exactByImage`). */
  exactByImage: boolean[];
  generated: Record<string, number | string>;
  real: Record<string, number | string>;
  /** The probe's rates per captioned figure count, when recorded (`probe.*.byFigures`). */
  generatedByFigures?: Record<string, FigureScores>;
  realByFigures?: Record<string, FigureScores>;
  /** Figures counted from the pixels, when recorded (`probe.figuresCounted`). */
  figuresCounted?: FiguresCounted;
  probe: unknown;
}

/** Figures counted from the pixels of the generated and the real images. */
type FiguresCounted = { generated: FigureCounts; realImages: FigureCounts };

/** The `probe` section of an `eval pipeline` JSON: scores of generated and real images. */
interface ProbeSection {
  generated?: Record<string, number | string> & FigureSection;
  realImages?: Record<string, number | string> & FigureSection;
  figuresCounted?: FiguresCounted;
  probe?: unknown;
}

/** Rates per captioned figure count, in results written since they were recorded. */
interface FigureSection {
  byFigures?: Record<string, FigureScores>;
}

/** The per-figure-count rows: label and key of the group's scores. */
const FIGURE_ROWS: [string, keyof FigureScores][] = [
  ["exact", "exact"],
  ["colours right", "colour"],
];

/** The rows of the side-by-side table: label and key of the probe's scores. */
const RATE_ROWS: [string, string][] = [
  ["exact: just the captioned colour-shape pairs", "exact"],
  ["colours right", "colour"],
  ["shapes right", "shape"],
  ["figure count right", "count"],
  ["exact, squares=rectangles, circles=ellipses", "lenient"],
  ["size words right", "size"],
];

/** Reads one `eval pipeline` JSON, checking it has what a paired comparison needs. */
async function readPipelineResult(path: string): Promise<PipelineResult> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(`${path} not found; give two "deno task eval pipeline" JSON files`);
    }
    throw e;
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch {
    throw new UsageError(`${path} is not JSON; give two "deno task eval pipeline" JSON files`);
  }
  return pipelineResult(json, path);
}

/** The parts of one `eval pipeline` report (`json`, from `path`) a paired comparison reads. */
function pipelineResult(json: Record<string, unknown>, path: string): PipelineResult {
  if (json?.what !== "pipeline") {
    throw new UsageError(`${path} is not an "eval pipeline" result (what: ${json?.what})`);
  }
  const probe = json.probe as ProbeSection | undefined;
  const byImage = probe?.generated?.exactByImage;
  if (typeof byImage !== "string" || !/^[01]+$/.test(byImage)) {
    throw new UsageError(
      `${path} has no per-caption verdicts (probe.generated.exactByImage): evaluations ` +
        `written before they were recorded, or of a split without labels, cannot be paired; ` +
        `run "deno task eval pipeline" again`,
    );
  }
  return {
    path,
    split: String(json.split),
    checkpoint: String(json.checkpoint),
    sampler: String(json.sampler),
    steps: (json.steps as number | null) ?? null,
    guidance: (json.guidance as number | null | undefined) ?? null,
    guidanceInterval: (json.guidanceInterval ?? undefined) as [number, number] | undefined,
    seed: json.seed as number,
    from: json.from as string | undefined,
    rerank: json.rerank as number | undefined,
    reranker: json.reranker as PipelineResult["reranker"],
    prior: json.prior as PipelineResult["prior"],
    enlargedFrom: (json.enlargedFrom as number | null | undefined) ?? null,
    modelSteps: json.modelSteps as { decoder?: number } | undefined,
    clipTop1: (json.generated as { top1: number }).top1,
    exactByImage: [...byImage].map((x) => x === "1"),
    generated: probe!.generated!,
    real: probe!.realImages!,
    generatedByFigures: probe!.generated!.byFigures,
    realByFigures: probe!.realImages?.byFigures,
    figuresCounted: probe!.figuresCounted,
    probe: probe!.probe,
  };
}

/**
 * Several results of the same captions and probe (e.g. noise seeds) as one: the verdicts
 * concatenated, every rate the mean over the results (each scores the same number of captions,
 * and the same captions fall in each figure group, so the mean is the pooled rate).
 */
function pool(results: PipelineResult[]): PipelineResult {
  if (results.length === 1) return results[0];
  const mean = (f: (r: PipelineResult) => number): number =>
    results.reduce((sum, r) => sum + f(r), 0) / results.length;
  const [first] = results;
  const rates = (f: (r: PipelineResult) => Record<string, number | string>) =>
    Object.fromEntries(
      RATE_ROWS.map(([, key]) => [key, mean((r) => f(r)[key] as number)]),
    );
  const groups = (f: (r: PipelineResult) => Record<string, FigureScores> | undefined) => {
    const firstGroups = f(first);
    if (!firstGroups || results.some((r) => !f(r))) return undefined;
    return Object.fromEntries(
      Object.keys(firstGroups).map((figures) => [
        figures,
        Object.fromEntries(
          FIGURE_ROWS.map(([, key]) => [key, mean((r) => f(r)![figures]?.[key] ?? NaN)]),
        ) as unknown as FigureScores,
      ]),
    );
  };
  const counted = results.every((r) => r.figuresCounted)
    ? {
      generated: {
        ...first.figuresCounted!.generated,
        right: mean((r) => r.figuresCounted!.generated.right),
      },
      realImages: {
        ...first.figuresCounted!.realImages,
        right: mean((r) => r.figuresCounted!.realImages.right),
      },
    }
    : undefined;
  return {
    ...first,
    path: `${first.path} and ${results.length - 1} more`,
    clipTop1: mean((r) => r.clipTop1),
    exactByImage: results.flatMap((r) => r.exactByImage),
    generated: rates((r) => r.generated),
    real: rates((r) => r.real),
    generatedByFigures: groups((r) => r.generatedByFigures),
    realByFigures: groups((r) => r.realByFigures),
    figuresCounted: counted,
  };
}

/**
 * One line saying what produced a list of results (one file, or the files pooled on one side):
 * the settings with the seeds in order, or each file's own when their settings differ.
 */
function describe(list: PipelineResult[]): string {
  const seeds = list.length === 1
    ? `seed ${list[0].seed}`
    : `seeds ${list.map((r) => r.seed).join(", ")}`;
  const shared = new Set(list.map((r) => describeSettings(r, "")));
  if (shared.size === 1) return describeSettings(list[0], seeds);
  return `mixed settings: ${list.map((r) => describeSettings(r, `seed ${r.seed}`)).join("; ")}`;
}

/** The settings of one result, with `seeds` in its place after the guidance ("" leaves it out). */
function describeSettings(r: PipelineResult, seeds: string): string {
  const decoderStep = r.modelSteps?.decoder !== undefined
    ? ` (decoder step ${r.modelSteps.decoder})`
    : "";
  const parts = [
    `${r.checkpoint}${decoderStep}`,
    `${r.sampler}${r.steps ? ` ${r.steps} steps` : ""}`,
    r.guidance === null ? "no decoder" : guidanceText(r.guidance, r.guidanceInterval),
  ];
  if (seeds) parts.push(seeds);
  if (r.from && r.from !== "prior") parts.push(`from ${r.from}`);
  if (r.rerank && r.rerank > 1) {
    parts.push(
      `rerank ${r.rerank}` +
        (r.reranker
          ? ` by the reranking CLIP (step ${r.reranker.step}, grain ${r.reranker.grain})`
          : ""),
    );
  }
  const prior = r.prior;
  if (
    prior &&
    (prior.sampler !== DEFAULT_PRIOR_SAMPLER || prior.steps !== null || prior.guidance !== 1)
  ) {
    const steps = prior.steps !== null ? ` ${prior.steps} steps` : "";
    parts.push(`prior ${prior.sampler}${steps}, prior guidance ${prior.guidance}`);
  }
  if (r.enlargedFrom !== null) parts.push(`no upsampler (${r.enlargedFrom}px enlarged)`);
  return parts.join(", ");
}

/** A signed difference in percentage points. */
function points(x: number): string {
  return `${x >= 0 ? "+" : ""}${(x * 100).toFixed(2)}`;
}

/**
 * Compares two `eval pipeline` JSON files, or two lists of them paired in order (`pathsA[i]`
 * with `pathsB[i]`, pooled); prints the tables and returns the paired comparison of the
 * exact-match verdicts. Refuses (UsageError) results that are not of the same captions scored by
 * the same probe, and lists of different lengths.
 */
export async function evalCompare(
  pathsA: string | string[],
  pathsB: string | string[],
  print: (line: string) => void,
): Promise<PairedComparison> {
  const [listA, listB] = [pathsA, pathsB].map((p) => (typeof p === "string" ? [p] : p));
  if (listA.length !== listB.length || listA.length === 0) {
    throw new UsageError(
      `"eval compare" pairs the files of A and B in order: A has ${listA.length}, B ` +
        `${listB.length}`,
    );
  }
  const pairs: [PipelineResult, PipelineResult][] = [];
  for (let i = 0; i < listA.length; i++) {
    const pair = [await readPipelineResult(listA[i]), await readPipelineResult(listB[i])];
    checkPair(pair[0], pair[1]);
    pairs.push(pair as [PipelineResult, PipelineResult]);
  }
  // Every file scores the same captions with the same probe.
  for (const [r] of pairs.slice(1)) checkPair(pairs[0][0], r);
  const a = pool(pairs.map(([x]) => x)), b = pool(pairs.map(([, y]) => y));
  const c = comparePaired(a.exactByImage, b.exactByImage);
  const captions = pairs[0][0].exactByImage.length;
  print(
    pairs.length === 1
      ? `Paired comparison on the first ${c.items} ${a.split} captions (one probe):`
      : `Paired comparison on the first ${captions} ${a.split} captions x ${pairs.length} ` +
        `result pairs, pooled (one probe):`,
  );
  print(`  A  ${a.path}: ${describe(pairs.map(([x]) => x))}`);
  print(`  B  ${b.path}: ${describe(pairs.map(([, y]) => y))}`);
  if (pairs.length > 1) {
    for (const [x, y] of pairs) {
      const [ra, rb] = [x.generated.exact as number, y.generated.exact as number];
      const seeds = x.seed === y.seed ? `seed ${x.seed}` : `seeds ${x.seed} / ${y.seed}`;
      print(`  exact, ${seeds}: A ${fmt(ra, true)}, B ${fmt(rb, true)} (${points(rb - ra)})`);
    }
  }
  printRates(a, b, print);
  const [lo, hi] = c.interval95;
  const unit = pairs.length === 1 ? "captions" : "caption-result pairs";
  print(
    c.onlyA + c.onlyB === 0
      ? `Exact, caption by caption: A and B agree on all ${c.items} ${unit} (McNemar p = 1)`
      : `Exact, caption by caption: only A right on ${c.onlyA}, only B on ${c.onlyB} of ` +
        `${c.items}${pairs.length === 1 ? "" : ` ${unit}`}; B - A = ${points(c.difference)} ` +
        `points (95% interval ${points(lo)} to ${points(hi)}); McNemar exact p = ` +
        c.pValue.toPrecision(3),
  );
  return c;
}

/** Throws a UsageError unless `a` and `b` score the same captions with the same probe. */
function checkPair(a: PipelineResult, b: PipelineResult): void {
  const [pathA, pathB] = [a.path, b.path];
  if (a.split !== b.split) {
    throw new UsageError(`${pathA} is of the ${a.split} split, ${pathB} of ${b.split}`);
  }
  if (a.exactByImage.length !== b.exactByImage.length) {
    throw new UsageError(
      `${pathA} scores ${a.exactByImage.length} captions, ${pathB} ${b.exactByImage.length}: ` +
        `evaluate both with the same --limit`,
    );
  }
  // The same probe on the same real images gives the same verdicts: different ones mean other
  // captions or another judge, and the pairs would not be pairs.
  if (
    JSON.stringify(a.probe) !== JSON.stringify(b.probe) ||
    a.real.exactByImage !== b.real.exactByImage
  ) {
    throw new UsageError(
      `${pathA} and ${pathB} were scored by different probes or on different captions ` +
        `(their real images' verdicts differ); compare evaluations of one probe`,
    );
  }
}

/**
 * The rows of the probe's rates, one generated column per result in `sides` and the first's real
 * images last: the rates, the captions' figure groups where every result has them (the same
 * captions: the same groups) and the figures counted from the pixels where recorded.
 */
function rateRows(sides: PipelineResult[]): [string, ...number[]][] {
  const [first] = sides;
  const rows: [string, ...number[]][] = RATE_ROWS.map(([label, key]) => [
    label,
    ...sides.map((s) => s.generated[key] as number),
    first.real[key] as number,
  ]);
  const groups = sides.map((s) => s.generatedByFigures);
  const real = first.realByFigures;
  if (real && groups.every((g) => g)) {
    const shared = Object.keys(groups[0]!).filter((k) => real[k] && groups.every((g) => g![k]));
    for (const figures of shared) {
      for (const [label, key] of FIGURE_ROWS) {
        const name = `${figures} figure${figures === "1" ? "" : "s"}: ${label}`;
        rows.push([name, ...groups.map((g) => g![figures][key]), real[figures][key]]);
      }
    }
  }
  if (sides.every((s) => s.figuresCounted)) {
    rows.push([
      "figures counted from the pixels right",
      ...sides.map((s) => s.figuresCounted!.generated.right),
      first.figuresCounted!.realImages.right,
    ]);
  }
  return rows;
}

/** The side-by-side table of the probe's rates and CLIP's top-1. */
function printRates(a: PipelineResult, b: PipelineResult, print: (line: string) => void): void {
  const rows = rateRows([a, b]);
  const w0 = Math.max(...rows.map((r) => r[0].length), "CLIP top-1 retrieval".length);
  print(
    `  ${"".padEnd(w0)}  ${"A".padStart(8)}  ${"B".padStart(8)}  ${"B - A".padStart(8)}` +
      `  ${"real".padStart(8)}`,
  );
  for (const [label, x, y, real] of rows) {
    print(
      `  ${label.padEnd(w0)}  ${fmt(x, true).padStart(8)}  ${fmt(y, true).padStart(8)}  ` +
        `${points(y - x).padStart(8)}  ${fmt(real, true).padStart(8)}`,
    );
  }
  print(
    `  ${"CLIP top-1 retrieval".padEnd(w0)}  ${fmt(a.clipTop1, true).padStart(8)}  ` +
      `${fmt(b.clipTop1, true).padStart(8)}  ${points(b.clipTop1 - a.clipTop1).padStart(8)}`,
  );
}

/**
 * `eval pipeline --seeds`: the reports it wrote, of one model at several noise seeds (same
 * captions, one probe), pooled: exact per seed, then every rate as the mean over the seeds (the pooled rate)
 * beside the real images', and the `eval compare` line that pairs them with another model's.
 */
export function summarizeSeeds(
  reports: { path: string; results: Record<string, unknown> }[],
  print: (line: string) => void,
): void {
  const results = reports.map((r) => pipelineResult(r.results, r.path));
  const paths = reports.map((r) => r.path);
  for (const r of results.slice(1)) checkPair(results[0], r);
  const pooled = pool(results);
  print(
    `Pooled over ${results.length} seeds of the first ${results[0].exactByImage.length} ` +
      `${pooled.split} captions (one probe): ${describe(results)}`,
  );
  for (const r of results) {
    print(`  exact, seed ${r.seed}: ${fmt(r.generated.exact as number, true)}`);
  }
  const rows = rateRows([pooled]);
  const w0 = Math.max(...rows.map((r) => r[0].length), "CLIP top-1 retrieval".length);
  print(`  ${"".padEnd(w0)}  ${"pooled".padStart(8)}  ${"real".padStart(8)}`);
  for (const [label, x, real] of rows) {
    print(`  ${label.padEnd(w0)}  ${fmt(x, true).padStart(8)}  ${fmt(real, true).padStart(8)}`);
  }
  print(`  ${"CLIP top-1 retrieval".padEnd(w0)}  ${fmt(pooled.clipTop1, true).padStart(8)}`);
  print(
    `Pair them with another model's results of the same seeds: deno task eval compare ` +
      `${paths.join(",")} ${
        results.slice(0, 2).map((r) => seededResultsPath("OTHER.json", r.seed)).join(",")
      },...`,
  );
}
