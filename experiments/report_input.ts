/**
 * What the experiments' report is made from: each `<run>/experiments/<name>/<name>.json` that
 * `deno task experiment` wrote (found in report order, checked to be what it claims) and the
 * training loss logs (`<run>/<stage>/metrics.jsonl`) drawn as one chart.
 *
 * @module
 */
import { join } from "node:path";
import { exists } from "../core/io/mod.ts";
import { readMetrics } from "../core/train/metrics.ts";
import { EXPERIMENTS } from "./mod.ts";
import { linePanels, type LinePoint } from "../core/eval/plot.ts";

/** One experiment's JSON as `deno task experiment` wrote it. */
export interface ExperimentDoc {
  experiment: string;
  thesis: string;
  checkpoint: string;
  limit: number | null;
  seed: number;
  steps: number | null;
  device: string;
  seconds: number;
  files: { name: string; caption: string }[];
  // deno-lint-ignore no-explicit-any
  results: Record<string, any>;
}

/** An experiment found in a run, with the folder that holds its files. */
export interface FoundExperiment {
  dir: string;
  doc: ExperimentDoc;
}

/** What the report pages are made of. */
export interface ReportInput {
  runDir: string;
  found: FoundExperiment[];
  missing: string[];
  lossSvg: string | null;
}

/**
 * The experiments already run in `<run>/experiments/` (in report order) and the names of those
 * not run yet.
 *
 * @example
 * ```ts
 * async function ran(runDir: string): Promise<string[]> {
 *   const { found } = await findExperiments(runDir);
 *   return found.map((f) => f.doc.experiment);
 * }
 * ```
 */
export async function findExperiments(
  runDir: string,
): Promise<{ found: FoundExperiment[]; missing: string[] }> {
  const found: FoundExperiment[] = [], missing: string[] = [];
  for (const e of EXPERIMENTS) {
    const dir = join(runDir, "experiments", e.name);
    const path = join(dir, `${e.name}.json`);
    if (!(await exists(path))) {
      missing.push(e.name);
      continue;
    }
    let doc: ExperimentDoc;
    try {
      doc = JSON.parse(await Deno.readTextFile(path));
    } catch (err) {
      throw new Error(`Experiment results "${path}" are unreadable: ${(err as Error).message}`);
    }
    if (
      doc?.experiment !== e.name || !Array.isArray(doc.files) || typeof doc.results !== "object"
    ) {
      throw new Error(`"${path}" is not a result of "deno task experiment ${e.name}"`);
    }
    found.push({ dir, doc });
  }
  return { found, missing };
}

/**
 * An SVG chart of each stage's training loss from `<run>/<stage>/metrics.jsonl`, or null when no
 * stage has a log (exported weights keep none).
 *
 * @example
 * ```ts
 * async function losses(runDir: string): Promise<string | null> {
 *   return await lossChart(runDir); // null when no stage has a metrics log
 * }
 * ```
 */
export async function lossChart(runDir: string): Promise<string | null> {
  const points: LinePoint[] = [];
  for (const stage of ["clip", "prior", "decoder"]) {
    const records = await readMetrics(join(runDir, stage, "metrics.jsonl"));
    for (const r of records) {
      if (Number.isFinite(r.loss)) points.push({ x: r.step, y: r.loss, series: `${stage} loss` });
    }
  }
  if (points.length === 0) return null;
  return await linePanels(points, { x: "step", title: "Training loss per stage" });
}
