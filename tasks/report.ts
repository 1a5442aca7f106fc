/**
 * `deno task report --checkpoint DIR [--out DIR] [--force]`: gathers the results of
 * `deno task experiment` (DIR/experiments/<name>/<name>.json and figures) and the training loss
 * logs into one self-contained report.html and a report.md.
 *
 * @module
 */
import { join } from "node:path";
import { exists, writeTextAtomic } from "../core/io/mod.ts";
import { findExperiments, lossChart, renderHtml, renderMarkdown } from "../experiments/report.ts";
import { EXPERIMENTS, takesSharedFlag } from "../experiments/mod.ts";
import {
  BACKEND_FLAG,
  BACKEND_HELP,
  backendChoice,
  checkOutputFile,
  type FlagSpec,
  parseFlags,
  runMain,
  UsageError,
} from "./_cli.ts";
import { runExperiment, sharedExperimentNumbers } from "./experiment.ts";

/** Flags passed on to the experiments the report runs (each gets those it knows). */
const PASSED: Record<string, FlagSpec> = {
  limit: { type: "string" },
  steps: { type: "string" },
  seed: { type: "string" },
  sampler: { type: "string" },
  rerank: { type: "string" },
  "prior-sampler": { type: "string" },
  "prior-steps": { type: "string" },
  "prior-guidance": { type: "string" },
  "prior-candidates": { type: "string" },
  "clip-only": { type: "string" },
  "text-only": { type: "string" },
  "probe-steps": { type: "string" },
  "probe-images": { type: "string" },
  "no-probe": { type: "boolean" },
  ...BACKEND_FLAG,
};

/**
 * Flags the experiments share, each passed to those that take it (`takesSharedFlag`: e.g. not
 * --steps to pca, which draws nothing); the rest only where the experiment lists them.
 */
const COMMON = new Set([
  "limit",
  "steps",
  "seed",
  "sampler",
  "rerank",
  "prior-sampler",
  "prior-steps",
  "prior-guidance",
  "prior-candidates",
  "backend",
]);

const USAGE = `Usage: deno task report --checkpoint DIR [options]

Runs the experiments not run yet on DIR (each as "deno task experiment <name> --checkpoint
DIR" would, results in DIR/experiments/<name>/), reuses those already run, and gathers them
with each stage's training loss into report.html (self-contained: figures inlined) and
report.md (figures linked). "binding" runs only with --clip-only and/or --text-only.

Options:
  --checkpoint DIR   run folder whose experiments/ to run and gather
  --out DIR          where report.html and report.md go (default DIR)
  --force            overwrite existing report files
  --no-run           only gather the experiments already run (with none, the training loss
                     curves alone)
  --limit N, --steps N, --seed S, --sampler NAME, --rerank K, --prior-sampler NAME, --prior-steps N,
  --prior-guidance S, --prior-candidates K, --clip-only DIR, --text-only DIR, --probe-steps N, --probe-images N,
  --no-probe
                     passed on to the experiments that take them (see
                     "deno task experiment --help")
${BACKEND_HELP}
  --debug            print stack traces of errors
  -h, --help         show this help`;

/** What `runReport` wrote. */
export interface ReportRun {
  html: string;
  markdown: string;
  experiments: string[];
  missing: string[];
}

/**
 * The report task, callable in-process (tests) and from the CLI.
 *
 * @example
 * ```ts
 * async function report() {
 *   return await runReport(["--checkpoint", "runs/tiny"]);
 * }
 * ```
 */
export async function runReport(
  args: string[],
  hooks: { print?: (line: string) => void } = {},
): Promise<ReportRun | null> {
  const print = hooks.print ?? ((line: string) => console.log(line));
  const { values, positionals } = parseFlags(args, {
    checkpoint: { type: "string" },
    out: { type: "string" },
    force: { type: "boolean" },
    "no-run": { type: "boolean" },
    ...PASSED,
  }, "report");
  if (values.help) {
    print(USAGE);
    return null;
  }
  if (positionals.length > 0) {
    throw new UsageError(`Unexpected argument "${positionals[0]}"; see "deno task report --help"`);
  }
  const checkpoint = values.checkpoint as string | undefined;
  if (!checkpoint) throw new UsageError(`Missing --checkpoint DIR; see "deno task report --help"`);
  if (!(await exists(checkpoint))) {
    throw new UsageError(`Checkpoint folder "${checkpoint}" does not exist; check --checkpoint`);
  }
  const passed = Object.keys(PASSED).filter((f) => values[f] !== undefined);
  if (values["no-run"] && passed.length > 0) {
    throw new UsageError(`--no-run runs no experiment, so --${passed[0]} does nothing; drop it`);
  }
  // Before the first experiment runs, not when the one that reads the flag comes up.
  sharedExperimentNumbers(values);
  backendChoice(values);
  for (const flag of ["clip-only", "text-only"]) {
    const dir = values[flag] as string | undefined;
    if (dir !== undefined && !(await exists(dir))) {
      throw new UsageError(`--${flag} "${dir}" does not exist; name a run folder`);
    }
  }
  const out = (values.out as string | undefined) ?? checkpoint;
  const html = join(out, "report.html"), markdown = join(out, "report.md");
  const loss = join(out, "report_loss.svg");
  const force = values.force === true;
  if (values.out !== undefined && !(await exists(out))) await Deno.mkdir(out, { recursive: true });
  for (const f of [html, markdown, loss]) await checkOutputFile(f, { force, flag: "--out" });

  if (!values["no-run"]) {
    for (const name of (await findExperiments(checkpoint)).missing) {
      const experiment = EXPERIMENTS.find((e) => e.name === name)!;
      if (name === "binding" && !values["clip-only"] && !values["text-only"]) {
        print(`report: skipping binding (it needs --clip-only and/or --text-only runs)`);
        continue;
      }
      const args = [name, "--checkpoint", checkpoint];
      for (const [flag, spec] of Object.entries(PASSED)) {
        const v = values[flag];
        const takes = COMMON.has(flag)
          ? takesSharedFlag(experiment.draws, flag)
          : flag in experiment.flags;
        if (v === undefined || !takes) continue;
        if (spec.type === "boolean") {
          if (v === true) args.push(`--${flag}`);
        } else args.push(`--${flag}`, String(v));
      }
      print(`report: running "deno task experiment ${args.join(" ")}"`);
      await runExperiment(args, { print });
    }
  }
  const { found, missing } = await findExperiments(checkpoint);
  // A run's training curves alone are a report too (e.g. `--no-run` before any experiment).
  const lossSvg = await lossChart(checkpoint);
  if (found.length === 0 && !lossSvg) {
    throw new UsageError(
      `No experiments in "${join(checkpoint, "experiments")}" yet, nor training logs ` +
        `(<stage>/metrics.jsonl) to chart; run e.g. ` +
        `"deno task experiment guidance --checkpoint ${checkpoint}" first`,
    );
  }
  const input = { runDir: checkpoint, found, missing, lossSvg };
  await writeTextAtomic(html, await renderHtml(input));
  if (lossSvg) await writeTextAtomic(loss, lossSvg);
  await writeTextAtomic(
    markdown,
    renderMarkdown(input, out, lossSvg ? "report_loss.svg" : undefined),
  );
  const names = found.map((f) => f.doc.experiment);
  print(
    `Wrote ${html} and ${markdown} (${names.join(", ")}${
      missing.length ? `; not run: ${missing.join(", ")}` : ""
    })`,
  );
  return { html, markdown, experiments: names, missing };
}

if (import.meta.main) await runMain(runReport);
