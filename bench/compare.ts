/**
 * Puts a `deno task bench --json` file beside one or more `bench/torch_baseline.py --json` files
 * (for example 2 threads and 1 thread) as a markdown table with issue 11's targets, judged against
 * the first PyTorch file:
 *
 *     deno run -A bench/compare.ts OURS.json TORCH.json [MORE_TORCH.json ...]
 *
 * Rows are matched by name (both scripts use the same names). The ratio is ours / PyTorch, so
 * below 1 is faster than PyTorch. A row one side lacks or failed shows as such.
 *
 * @module
 */

/** One row of either JSON file. */
export interface BenchRow {
  name: string;
  ms: number | null;
  gflops?: number;
  params?: number;
  error?: string;
}

/** What both JSON files have in common (the rest is descriptive). */
export interface BenchFile {
  results: BenchRow[];
  device?: string;
  backend?: string;
  threads?: number;
  torch?: string;
  date?: string;
}

/** A target of issue 11: a bound on ours/PyTorch, or a floor on our GFLOP/s. */
export interface Target {
  matches: (name: string) => boolean;
  label: string;
  met: (ours: BenchRow, torch: BenchRow | undefined) => boolean | undefined;
}

const ratioAtMost = (bound: number) => (ours: BenchRow, torch: BenchRow | undefined) =>
  torch && ok(torch) ? ours.ms! / torch.ms! <= bound : undefined;

/** Issue 11, "Targets". */
export const TARGETS: Target[] = [
  {
    matches: (n) => n === "decoder forward B16 (cpu-demo)",
    label: "<= 1.0x",
    met: ratioAtMost(1.0),
  },
  {
    matches: (n) => n === "train step decoder B16 (cpu-demo)",
    label: "<= 1.5x",
    met: ratioAtMost(1.5),
  },
  { matches: (n) => n.startsWith("conv2d 3x3 fwd+bwd"), label: "<= 2x", met: ratioAtMost(2) },
  {
    matches: (n) => n === "matmul 1024x1024x1024",
    label: ">= 40 GFLOP/s",
    met: (ours) => (ours.gflops ?? 0) >= 40,
  },
];

function ok(r: BenchRow | undefined): r is BenchRow & { ms: number } {
  return r !== undefined && r.error === undefined && typeof r.ms === "number" &&
    Number.isFinite(r.ms);
}

function cell(r: BenchRow | undefined): string {
  if (r === undefined) return "-";
  if (!ok(r)) return `failed: ${r.error ?? "no time"}`;
  const g = r.gflops !== undefined ? ` (${r.gflops.toFixed(1)} GFLOP/s)` : "";
  return `${r.ms.toFixed(1)}${g}`;
}

/**
 * The markdown table: row, ours ms, then per PyTorch file its ms and ratio, the target and
 * whether it is met (against the first PyTorch file). Rows in our order, then rows only PyTorch
 * has.
 *
 * @example
 * ```ts
 * console.log(compareTable(ours, [torch2Threads, torch1Thread]));
 * ```
 */
export function compareTable(ours: BenchFile, torch: BenchFile[]): string {
  const mine = new Map(ours.results.map((r) => [r.name, r]));
  const theirs = torch.map((f) => new Map(f.results.map((r) => [r.name, r])));
  const names = ours.results.map((r) => r.name);
  for (const f of torch) for (const r of f.results) if (!names.includes(r.name)) names.push(r.name);
  const tag = (f: BenchFile) => (torch.length > 1 ? ` (${f.threads ?? "?"} thr)` : "");
  const head = ["row", "ours ms"];
  for (const f of torch) head.push(`PyTorch ms${tag(f)}`, `ratio${tag(f)}`);
  head.push("target", "met");
  const lines = [
    `| ${head.join(" | ")} |`,
    `|---|${head.slice(1, -2).map(() => "---:").join("|")}|---|---|`,
  ];
  for (const name of names) {
    const a = mine.get(name);
    const cells = [name, cell(a)];
    for (const t of theirs) {
      const b = t.get(name);
      cells.push(cell(b), ok(a) && ok(b) ? `${(a.ms / b.ms).toFixed(2)}x` : "-");
    }
    const target = TARGETS.find((t) => t.matches(name));
    const met = target && ok(a) ? target.met(a, theirs[0]?.get(name)) : undefined;
    cells.push(target?.label ?? "", !target ? "" : met === undefined ? "-" : met ? "yes" : "no");
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

function describe(f: BenchFile, fallback: string): string {
  if (f.torch) return `PyTorch ${f.torch} on ${f.device} (${f.threads} threads)`;
  return f.device ?? fallback;
}

async function readBench(path: string): Promise<BenchFile> {
  return JSON.parse(await Deno.readTextFile(path)) as BenchFile;
}

if (import.meta.main) {
  const [oursPath, ...torchPaths] = Deno.args;
  if (!oursPath || torchPaths.length === 0 || Deno.args.includes("--help")) {
    console.log("deno run -A bench/compare.ts OURS.json TORCH.json [MORE_TORCH.json ...]");
    Deno.exit(Deno.args.includes("--help") ? 0 : 1);
  }
  const ours = await readBench(oursPath);
  const torch = await Promise.all(torchPaths.map(readBench));
  console.log(`ours: ${describe(ours, oursPath)}`);
  torchPaths.forEach((p, i) => console.log(`PyTorch: ${describe(torch[i], p)}`));
  console.log(`targets against the first PyTorch file\n`);
  console.log(compareTable(ours, torch));
}
