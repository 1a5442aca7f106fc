/**
 * `deno run -A tools/gpu/report.ts BENCH.json TORCH.json [ADAPTER.json] [--out FILE]`: the
 * ours/PyTorch table for docs/benchmarks.md, as markdown, from the JSON that tasks/bench.ts
 * (`--json`) and bench/torch_baseline.py (`--json`) wrote on the same machine. Rows are matched
 * by result name; a ratio above 1 means we are slower. Printed to stdout, or written to --out.
 *
 * @module
 */
import { parseArgs } from "node:util";

interface Row {
  name: string;
  ms: number;
  gflops?: number;
  /** Pipelined timing: host milliseconds per repetition (tasks/bench.ts). */
  hostMs?: number;
  /** Kernel launches per repetition (tasks/bench.ts, WebGPU). */
  dispatches?: number;
}

interface BenchFile {
  adapter?: { description?: string; features?: string[] } | null;
  date?: string;
  timing?: string;
  results: Row[];
}

interface TorchFile {
  device?: string;
  torch?: string;
  date?: string;
  timing?: string;
  results: Row[];
}

/** Targets of issue 8: ratio ours/PyTorch at most this much. */
function target(name: string): number | undefined {
  const m = /^matmul (\d+)x/.exec(name);
  if (m && Number(m[1]) >= 1024) return 2;
  if (/^train step decoder/.test(name)) return 3;
  return undefined;
}

const fmt = (x: number | undefined, d = 2) => x === undefined ? "-" : x.toFixed(d);

/** How both sides timed their repetitions (tasks/bench.ts and torch_baseline.py --timing). */
function timingLine(ours: BenchFile, torch: TorchFile): string {
  const say = (t: string | undefined) =>
    t === "pipelined"
      ? "means of repetitions run back to back, one sync at the end"
      : "medians of synchronised repetitions";
  const a = say(ours.timing), b = say(torch.timing);
  return a === b ? `Both: ${a}, after warm-up` : `Ours: ${a}; PyTorch: ${b}; after warm-up`;
}

/** The markdown section; exported for tests. */
export function reportMarkdown(
  ours: BenchFile,
  torch: TorchFile,
  adapter?: { adapter?: { description?: string }; watched?: Record<string, boolean> },
): string {
  const date = (ours.date ?? torch.date ?? new Date().toISOString()).slice(0, 10);
  const gpu = torch.device ?? "?";
  const wg = adapter?.adapter?.description ?? ours.adapter?.description ?? "?";
  const lines = [
    `## ${gpu}, ${date}`,
    "",
    `WebGPU adapter: ${wg}` +
    (adapter?.watched
      ? ` (${
        Object.entries(adapter.watched).map(([k, v]) => `${k} ${v ? "yes" : "no"}`).join(", ")
      })`
      : ""),
    `PyTorch ${torch.torch ?? "?"} eager fp32, TF32 off. ${timingLine(ours, torch)}; ` +
    "ratio = ours / PyTorch time (lower is better, 1 = parity); host ms = our time to record " +
    "one repetition (pipelined timing only), dispatches = our kernel launches per repetition.",
    "",
    "| benchmark | ours ms | PyTorch ms | ours GFLOP/s | PyTorch GFLOP/s | ours/PyTorch | target " +
    "| host ms | dispatches |",
    "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
  ];
  const theirs = new Map(torch.results.map((r) => [r.name, r]));
  const seen = new Set<string>();
  for (const r of ours.results) {
    const t = theirs.get(r.name);
    seen.add(r.name);
    const ratio = t ? r.ms / t.ms : undefined;
    const tg = target(r.name);
    const verdict = tg === undefined || ratio === undefined
      ? ""
      : `<= ${tg}x: ${ratio <= tg ? "met" : "missed"}`;
    lines.push(
      `| ${r.name} | ${fmt(r.ms)} | ${fmt(t?.ms)} | ${fmt(r.gflops, 1)} | ${fmt(t?.gflops, 1)} | ` +
        `${ratio === undefined ? "-" : ratio.toFixed(2) + "x"} | ${verdict} | ${fmt(r.hostMs)} | ` +
        `${fmt(r.dispatches, 0)} |`,
    );
  }
  for (const t of torch.results) {
    if (seen.has(t.name)) continue;
    const tg = target(t.name);
    lines.push(
      `| ${t.name} | not measured | ${fmt(t.ms)} | - | ${fmt(t.gflops, 1)} | - | ` +
        `${tg ? `<= ${tg}x` : ""} | - | - |`,
    );
  }
  return lines.join("\n") + "\n";
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { out: { type: "string" }, help: { type: "boolean", default: false } },
    allowPositionals: true,
  });
  if (values.help || positionals.length < 2) {
    console.error("usage: report.ts BENCH.json TORCH.json [ADAPTER.json] [--out FILE]");
    Deno.exit(64);
  }
  const read = (p: string) => JSON.parse(Deno.readTextFileSync(p));
  const md = reportMarkdown(
    read(positionals[0]),
    read(positionals[1]),
    positionals[2] ? read(positionals[2]) : undefined,
  );
  if (values.out) Deno.writeTextFileSync(values.out, md);
  else console.log(md);
}
