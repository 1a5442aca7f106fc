/**
 * The experiments' report pages: one self-contained HTML page (PNG figures inlined as data URLs,
 * charts as inline SVG, nothing fetched) and a Markdown page that links the figure files; both
 * carry the note on the image metrics' features.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { join, relative } from "node:path";
import { EXPERIMENTS } from "./mod.ts";
import type { ExperimentDoc, ReportInput } from "./report_input.ts";
import { experimentTables, type Table } from "./report_tables.ts";

/** What the report says about the image metrics' features, on every page. */
export const FEATURE_NOTE = "FID, KID, precision and recall here are computed on the trained " +
  "CLIP image tower's embeddings (named e.g. FID(clip-image)), not on Inception-v3 features: " +
  "Inception weights cannot be downloaded here. Their absolute values are NOT comparable with " +
  "the thesis's (Inception) numbers; only their trends (e.g. over the guidance scale) are.";

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
 * import { findExperiments, lossChart } from "./report_input.ts";
 * async function page(runDir: string): Promise<string> {
 *   const { found, missing } = await findExperiments(runDir);
 *   return await renderHtml({ runDir, found, missing, lossSvg: await lossChart(runDir) });
 * }
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
 * import type { ReportInput } from "./report_input.ts";
 * function markdown(input: ReportInput): string {
 *   return renderMarkdown(input, input.runDir); // figures linked relative to the run folder
 * }
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
