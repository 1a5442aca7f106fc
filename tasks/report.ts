/**
 * `deno task report --checkpoint DIR [--out DIR] [--force]`: gathers the results of
 * `deno task experiment` (DIR/experiments/<name>/<name>.json and figures) and the training loss
 * logs into one self-contained report.html and a report.md.
 *
 * @module
 */
import { join } from "node:path";
import { exists, writeTextAtomic } from "../core/io/mod.ts";
import { findExperiments, lossChart, renderHtml, renderMarkdown } from "../core/eval/report.ts";
import { checkOutputFile, parseFlags, runMain, UsageError } from "./_cli.ts";

const USAGE = `Usage: deno task report --checkpoint DIR [options]

Gathers the experiments already run on DIR ("deno task experiment <name> --checkpoint DIR")
and each stage's training loss into report.html (self-contained: figures inlined) and
report.md (figures linked). Experiments not run yet are listed with their command.

Options:
  --checkpoint DIR   run folder whose experiments/ to gather
  --out DIR          where report.html and report.md go (default DIR)
  --force            overwrite existing report files
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
 * await runReport(["--checkpoint", "runs/tiny"]);
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
  const out = (values.out as string | undefined) ?? checkpoint;
  const html = join(out, "report.html"), markdown = join(out, "report.md");
  const loss = join(out, "report_loss.svg");
  const force = values.force === true;
  for (const f of [html, markdown, loss]) await checkOutputFile(f, { force, flag: "--out" });

  const { found, missing } = await findExperiments(checkpoint);
  if (found.length === 0) {
    throw new UsageError(
      `No experiments in "${join(checkpoint, "experiments")}" yet; run e.g. ` +
        `"deno task experiment guidance --checkpoint ${checkpoint}" first`,
    );
  }
  const lossSvg = await lossChart(checkpoint);
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
