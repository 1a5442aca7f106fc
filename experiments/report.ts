/**
 * The experiments' report: reads each `<run>/experiments/<name>/<name>.json` written by
 * `deno task experiment` and the training loss logs (`<run>/<stage>/metrics.jsonl`), and renders
 * one self-contained HTML page (PNG figures inlined as data URLs, charts as inline SVG) and a
 * Markdown page that links the figure files.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { join, relative } from "node:path";
import { exists } from "../core/io/mod.ts";
import { readMetrics } from "../core/train/metrics.ts";
import { EXPERIMENTS } from "./mod.ts";
import { linePanels, type LinePoint } from "../core/eval/plot.ts";

/** What the report says about the image metrics' features, on every page. */
export const FEATURE_NOTE = "FID, KID, precision and recall here are computed on the trained " +
  "CLIP image tower's embeddings (named e.g. FID(clip-image)), not on Inception-v3 features: " +
  "Inception weights cannot be downloaded here. Their absolute values are NOT comparable with " +
  "the thesis's (Inception) numbers; only their trends (e.g. over the guidance scale) are.";

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

/**
 * The experiments already run in `<run>/experiments/` (in report order) and the names of those
 * not run yet.
 *
 * @example
 * ```ts
 * const { found, missing } = await findExperiments("runs/tiny");
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
 * const svg = await lossChart("runs/tiny");
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

/** A table of a report section. */
export interface Table {
  head: string[];
  rows: string[][];
}

const pct = (x: number | null | undefined): string =>
  typeof x === "number" ? `${(x * 100).toFixed(1)}%` : "-";
const num = (x: number | null | undefined, digits = 4): string =>
  typeof x === "number" ? x.toFixed(digits) : "-";

/** The tables of one experiment's numbers. */
export function experimentTables(doc: ExperimentDoc): Table[] {
  const r = doc.results;
  switch (doc.experiment) {
    case "guidance": {
      const n = r.metricNames ?? {};
      const head = ["s", n.fid, n.kid, n.precision, n.recall, n.f1, "probe exact"];
      const rows = (r.scales ?? []).map((s: Record<string, number | null>) => [
        String(s.scale),
        num(s.fid),
        num(s.kid, 5),
        num(s.precision, 3),
        num(s.recall, 3),
        num(s.f1, 3),
        pct(s.probeExact),
      ]);
      const tables = [{ head, rows }];
      if (r.realProbe) {
        tables.push({
          head: [
            "ground-truth probe on the real test images (its ceiling)",
            "exact",
            "colours",
            "shapes",
            "count",
          ],
          rows: [[
            "real",
            pct(r.realProbe.exact),
            pct(r.realProbe.colour),
            pct(r.realProbe.shape),
            pct(r.realProbe.count),
          ]],
        });
      }
      return tables;
    }
    case "pca":
      return [{
        head: ["explained variance", "ours", "thesis Figure 4.4"],
        rows: [
          ["PC1", pct(r.explainedVariance?.pc1), pct(r.thesis?.pc1)],
          ["PC2", pct(r.explainedVariance?.pc2), pct(r.thesis?.pc2)],
        ],
      }];
    case "interpolate":
      return [{
        head: ["t", "cos(frame, A)", "cos(frame, B)"],
        rows: (r.frames ?? []).map((f: Record<string, number>) => [
          num(f.t, 3),
          num(f.cosineToA, 3),
          num(f.cosineToB, 3),
        ]),
      }];
    case "knn":
      return [
        {
          head: ["mean cosine distance to the nearest training image", "value"],
          rows: [
            [`samples (${r.samples})`, num(r.samplesMeanNearest)],
            ["real test images (new by construction)", num(r.realTestMeanNearest)],
            ["samples that copy a training image (distance < 1e-4)", String(r.samplesExactCopies)],
          ],
        },
        {
          head: ["sample caption", "nearest training captions (cosine distance)"],
          rows: (r.rows ?? []).slice(0, 16).map((
            row: { caption: string; neighbours: { caption: string; distance: number }[] },
          ) => [
            row.caption,
            row.neighbours.map((n) => `${n.caption} (${num(n.distance)})`).join("; "),
          ]),
        },
      ];
    case "textdiff":
      return [{
        head: [
          "r",
          "cos(frame, original caption)",
          "cos(frame, new caption)",
          "probe: original",
          "probe: new",
        ],
        rows: (r.steps ?? []).map((s: Record<string, number | null>) => [
          num(s.r, 2),
          num(s.cosineToFrom, 3),
          num(s.cosineToTo, 3),
          pct(s.probeFrom),
          pct(s.probeTo),
        ]),
      }];
    case "arithmetic":
      return [{
        head: [
          "equation",
          "cos(prior z, text D): arithmetic",
          "direct",
          "probe exact: arithmetic",
          "direct",
        ],
        rows: (r.equations ?? []).map((
          e: {
            equation: string;
            cosineToExpected: { arithmetic: number; direct: number };
            probe: { arithmetic: { exact: number }; direct: { exact: number } } | null;
          },
        ) => [
          e.equation,
          num(e.cosineToExpected?.arithmetic, 3),
          num(e.cosineToExpected?.direct, 3),
          pct(e.probe?.arithmetic.exact),
          pct(e.probe?.direct.exact),
        ]),
      }];
    case "binding": {
      type Row = {
        conditioning: string;
        decoderSteps: number;
        twoObjects: Record<string, number>;
        oneObject: Record<string, number>;
      };
      const line = (name: string, steps: string, x: Row["twoObjects"], y: Row["oneObject"]) => [
        name,
        steps,
        pct(x.exact),
        pct(x.colour),
        pct(x.shape),
        pct(x.misbound),
        pct(y.exact),
      ];
      return [{
        head: [
          "decoder conditioned on",
          "decoder steps",
          "two objects: exact",
          "colours",
          "shapes",
          "misbound",
          "one object: exact",
        ],
        rows: [
          ...(r.decoders ?? []).map((d: Row) =>
            line(d.conditioning, String(d.decoderSteps), d.twoObjects, d.oneObject)
          ),
          ...(r.real
            ? [line("real images (probe ceiling)", "-", r.real.twoObjects, r.real.oneObject)]
            : []),
        ],
      }];
    }
    case "zeroshot": {
      const row = (task: string, g: Record<string, number> | undefined, ref: string) => [
        task,
        pct(g?.exact),
        pct(g?.colour),
        pct(g?.shape),
        pct(g?.count),
        ref,
      ];
      return [
        {
          head: ["task (exact match)", "exact", "colours", "shapes", "count", "reference"],
          rows: [
            row(
              `unseen pairs (${r.unseenPairs?.captions})`,
              r.unseenPairs?.generated,
              `real images ${pct(r.unseenPairs?.real?.exact)}`,
            ),
            row(
              `rephrased, e.g. "${r.rephrased?.example?.rephrased}"`,
              r.rephrased?.generated,
              `original wording ${pct(r.rephrased?.originalWording?.exact)}`,
            ),
          ],
        },
        {
          head: ["task (attribute drawn)", "rate", "one figure"],
          rows: [
            [
              `shape only, e.g. "${r.partial?.shapeOnly?.example}"`,
              pct(r.partial?.shapeOnly?.shapeDrawn),
              pct(r.partial?.shapeOnly?.oneFigure),
            ],
            [
              `colour only, e.g. "${r.partial?.colourOnly?.example}"`,
              pct(r.partial?.colourOnly?.colourDrawn),
              pct(r.partial?.colourOnly?.oneFigure),
            ],
          ],
        },
        {
          head: ["three objects", "1st pair drawn", "2nd", "3rd", "all three"],
          rows: [[
            `e.g. "${r.threeObjects?.example}"`,
            ...(r.threeObjects?.pairDrawn ?? []).map(pct),
            pct(r.threeObjects?.allThree),
          ]],
        },
      ];
    }
    default:
      return [];
  }
}

const escapeHtml = (s: string): string =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

const escapeMd = (s: string): string => s.replace(/\|/g, "\\|");

function htmlTable(t: Table): string {
  const row = (cells: string[], tag: string) =>
    `<tr>${cells.map((c) => `<${tag}>${escapeHtml(c)}</${tag}>`).join("")}</tr>`;
  return `<table>${row(t.head, "th")}${t.rows.map((r) => row(r, "td")).join("")}</table>`;
}

function mdTable(t: Table): string {
  return [
    `| ${t.head.map(escapeMd).join(" | ")} |`,
    `| ${t.head.map(() => "---").join(" | ")} |`,
    ...t.rows.map((r) => `| ${r.map(escapeMd).join(" | ")} |`),
  ].join("\n");
}

/** Inline SVG for HTML: without an XML declaration. */
function inlineSvg(svg: string): string {
  return svg.replace(/^<\?xml[^>]*>\s*/, "");
}

/** What the report pages are made of. */
export interface ReportInput {
  runDir: string;
  found: FoundExperiment[];
  missing: string[];
  lossSvg: string | null;
}

function heading(doc: ExperimentDoc): string {
  const e = EXPERIMENTS.find((x) => x.name === doc.experiment);
  return `${doc.experiment}: ${e?.summary ?? ""} (thesis ${doc.thesis})`;
}

function settings(doc: ExperimentDoc): string {
  return `Run with --limit ${doc.limit ?? "default"}, --seed ${doc.seed}, --steps ${
    doc.steps ?? "default"
  } on ${doc.device}, ${doc.seconds} s.`;
}

/**
 * The self-contained HTML page: every PNG as a data URL, every SVG inline, nothing fetched.
 *
 * @example
 * ```ts
 * const html = await renderHtml({ runDir, found, missing, lossSvg });
 * ```
 */
export async function renderHtml(input: ReportInput): Promise<string> {
  const parts: string[] = [];
  for (const { dir, doc } of input.found) {
    parts.push(`<section id="${escapeHtml(doc.experiment)}"><h2>${escapeHtml(heading(doc))}</h2>`);
    parts.push(`<p class="meta">${escapeHtml(settings(doc))}</p>`);
    for (const t of experimentTables(doc)) parts.push(htmlTable(t));
    for (const f of doc.files) {
      const path = join(dir, f.name);
      let body: string;
      if (f.name.endsWith(".svg")) {
        body = inlineSvg(await Deno.readTextFile(path));
      } else if (f.name.endsWith(".png")) {
        const b64 = Buffer.from(await Deno.readFile(path)).toString("base64");
        body = `<img class="px" alt="${escapeHtml(f.name)}" src="data:image/png;base64,${b64}">`;
      } else continue;
      parts.push(`<figure>${body}<figcaption>${escapeHtml(f.caption)}</figcaption></figure>`);
    }
    parts.push("</section>");
  }
  if (input.lossSvg) {
    parts.push(
      `<section id="training"><h2>Training loss</h2><figure>${inlineSvg(input.lossSvg)}` +
        `<figcaption>Loss per stage from each stage's metrics.jsonl</figcaption></figure></section>`,
    );
  }
  const missing = input.missing.length
    ? `<p>Not run yet: ${
      input.missing.map((m) =>
        `<code>deno task experiment ${escapeHtml(m)} --checkpoint ${
          escapeHtml(input.runDir)
        }</code>`
      ).join(", ")
    }.</p>`
    : "";
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>unCLIP experiments: ${escapeHtml(input.runDir)}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
img.px { image-rendering: pixelated; width: 100%; max-width: 640px; height: auto; }
figure { margin: 1em 0; } figcaption { color: #444; font-size: 0.9em; }
.note { background: #fff6dd; padding: 0.6em 1em; border-left: 4px solid #e0b000; }
.meta { color: #666; font-size: 0.85em; }
</style></head><body>
<h1>Thesis chapter 4 experiments: <code>${escapeHtml(input.runDir)}</code></h1>
<p class="note">${escapeHtml(FEATURE_NOTE)}</p>
${missing}
${parts.join("\n")}
</body></html>
`;
}

/**
 * The Markdown page: the same tables, figures linked by their path relative to `outDir`.
 *
 * @example
 * ```ts
 * const md = renderMarkdown({ runDir, found, missing, lossSvg }, runDir);
 * ```
 */
export function renderMarkdown(input: ReportInput, outDir: string, lossFile?: string): string {
  const lines = [
    `# Thesis chapter 4 experiments: \`${input.runDir}\``,
    "",
    `> ${FEATURE_NOTE}`,
    "",
  ];
  if (input.missing.length) {
    lines.push(
      `Not run yet: ${
        input.missing.map((m) => `\`deno task experiment ${m} --checkpoint ${input.runDir}\``)
          .join(", ")
      }.`,
      "",
    );
  }
  for (const { dir, doc } of input.found) {
    lines.push(`## ${heading(doc)}`, "", settings(doc), "");
    for (const t of experimentTables(doc)) lines.push(mdTable(t), "");
    for (const f of doc.files) {
      const rel = relative(outDir, join(dir, f.name)).split("\\").join("/");
      lines.push(`![${f.caption}](${rel})`, "", `_${f.caption}_`, "");
    }
  }
  if (lossFile) lines.push("## Training loss", "", `![Training loss per stage](${lossFile})`, "");
  return lines.join("\n");
}
