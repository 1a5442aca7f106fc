/**
 * `deno task bench [--backend auto|webgpu|cpu] [--quick] [--batch N] [--reps N] [--only LIST]
 * [--timing synced|pipelined] [--preset NAME] [--train-batch N] [--profile [--by-shape]]
 * [--json FILE]`: throughput of the
 * hot kernels at the thesis's shapes, of a preset's training steps, of the shipped demo decoder
 * and of sampling 8 images with weights/default, with the device line.
 * Every figure is the median of timed repetitions after a warm-up (pipelines compile on first
 * use), each measured to device completion; `--timing pipelined` times them back to back with one
 * sync instead. A row whose ops fail (for example a kernel the chosen backend lacks) is reported
 * as "failed: <reason>" and the bench goes on. Row names match bench/torch_baseline.py;
 * bench/compare.ts puts the two JSON files side by side. The rows are in `_bench_kernels.ts`
 * (kernels, data) and `_bench_models.ts` (training steps, the demo decoder, sampling).
 */
import { exists, writeTextAtomic } from "../core/io/mod.ts";
import type { ResolvedConfig } from "../core/config.ts";
import { loadConfig } from "../core/config_file.ts";
import { builtins } from "../plugins/mod.ts";
import {
  BACKEND_FLAG,
  BACKEND_HELP,
  backendChoice,
  checkOutputFile,
  errorLine,
  numberFlag,
  parseFlags,
  runMain,
  UsageError,
} from "./_cli.ts";
import * as T from "../core/tensor/mod.ts";
import {
  attentionRows,
  convRows,
  dataRows,
  failureReason,
  matmulRows,
  type Result,
  type RowRunner,
  setTimingMode,
  syncRoundTrip,
  type TimingMode,
} from "./_bench_kernels.ts";
import { demoRows, sampleRows, trainingSteps } from "./_bench_models.ts";

/** The row groups `--only` selects from, in the order they run. */
export const BENCH_GROUPS = [
  "matmul",
  "conv",
  "attention",
  "train",
  "demo",
  "sample",
  "data",
] as const;

/** Rows of each `--profile` table. */
const PROFILE_ROWS = 40;

const USAGE = `Usage: deno task bench [options]

Times the hot kernels at the thesis's shapes, one training step of each model of a preset, the
16x16 demo decoder (weights/cpu-demo) and sampling 8 images with weights/default; every figure is
the median of --reps timed runs after a warm-up (see --timing).

Options:
${BACKEND_HELP}
  --quick            smaller conv batch (8), train batch 4 and 2 repetitions, for slow devices
  --batch N          conv batch size (default 64, the thesis decoder's; 8 with --quick)
  --reps N           timed repetitions per row (default 5; 2 with --quick)
  --timing MODE      synced (default): each repetition waited for on the device, the median;
                     pipelined: repetitions back to back and one sync, the mean (device
                     throughput; --reps or more, enough to make Deno's ~11 ms sync under 5%),
                     with the host's recording time per repetition beside it. A "sync round
                     trip" row comes first either way
  --only LIST        comma-separated row groups: ${BENCH_GROUPS.join(",")}
                     ("demo": the shipped demo decoder, forward and training step at batch 16;
                     "sample": 8 images from weights/default, as "deno task sample --n 8")
  --preset NAME      preset of the "train" rows: a name in presets/ or a path (default thesis)
  --train-batch N    batch size of the "train" rows (default: the preset's; 4 with --quick)
  --profile          after each model's "train" rows, --reps more clipped steps under the op
                     profiler and their table: each op's forward and backward time per step,
                     slowest first (the top 40; on WebGPU the host's encoding time only)
  --by-shape         with --profile: one row per op and set of input shapes
  --json FILE        also write the device line and every row as JSON (compare with
                     bench/compare.ts); its folder is checked before the run
  --debug            print stack traces of errors
  -h, --help         show this help`;

/**
 * The bench task: flags are parsed and checked (numbers, --only groups, the --json folder)
 * before the backend starts; returns the rows measured.
 *
 * @example
 * ```ts
 * async function quickMatmul() {
 *   return await runBench(["--quick", "--only", "matmul", "--reps", "2"]);
 * }
 * ```
 */
export async function runBench(args: string[]): Promise<Result[]> {
  const { values, positionals } = parseFlags(args, {
    quick: { type: "boolean" },
    batch: { type: "string" },
    only: { type: "string" },
    preset: { type: "string" },
    "train-batch": { type: "string" },
    reps: { type: "string" },
    timing: { type: "string" },
    json: { type: "string" },
    profile: { type: "boolean" },
    "by-shape": { type: "boolean" },
    ...BACKEND_FLAG,
  }, "bench");
  if (values.help) {
    console.log(USAGE);
    return [];
  }
  if (positionals.length > 0) {
    throw new UsageError(`Unexpected argument "${positionals[0]}"; see "deno task bench --help"`);
  }
  const quick = values.quick === true;
  const reps = numberFlag(values, "reps", { integer: true, min: 1 }) ?? (quick ? 2 : 5);
  const batch = numberFlag(values, "batch", { integer: true, min: 1 }) ?? (quick ? 8 : 64);
  const trainBatch = numberFlag(values, "train-batch", { integer: true, min: 1 }) ??
    (quick ? 4 : undefined);
  let only: string[] | undefined;
  if (values.only !== undefined) {
    only = String(values.only).split(",").map((g) => g.trim());
    const unknown = only.filter((g) => !(BENCH_GROUPS as readonly string[]).includes(g));
    if (unknown.length > 0) {
      throw new UsageError(
        `--only: unknown group "${unknown[0]}"; valid: ${BENCH_GROUPS.join(", ")}`,
      );
    }
  }
  const timingFlag = (values.timing as string | undefined) ?? "synced";
  if (timingFlag !== "synced" && timingFlag !== "pipelined") {
    throw new UsageError(`--timing "${timingFlag}": use synced or pipelined`);
  }
  const timing: TimingMode = timingFlag;
  if (values["by-shape"] === true && values.profile !== true) {
    throw new UsageError("--by-shape goes with --profile (the op table's rows per input shape)");
  }
  if (values.profile === true && only && !only.includes("train")) {
    throw new UsageError('--profile times the "train" rows: add train to --only');
  }
  const profile = values.profile === true
    ? { byShape: values["by-shape"] === true, limit: PROFILE_ROWS }
    : undefined;
  const presetName = (values.preset as string | undefined) ?? "thesis";
  // A name in presets/, or a path (with a folder or a .json/.jsonc ending).
  const preset = /[/\\]|\.jsonc?$/.test(presetName) ? presetName : `presets/${presetName}.jsonc`;
  const registry = builtins();
  let trainConfig: ResolvedConfig | undefined;
  if (!only || only.includes("train")) {
    if (!(await exists(preset))) {
      throw new UsageError(`--preset "${presetName}": "${preset}" does not exist`);
    }
    // Before any work: a config that does not load is a usage error, not a failed row.
    try {
      trainConfig = await loadConfig(preset, registry);
    } catch (e) {
      throw new UsageError(`--preset "${presetName}": ${errorLine(e).replace(/^Error: /, "")}`);
    }
  }
  const json = values.json as string | undefined;
  if (json !== undefined) await checkOutputFile(json, { force: true, flag: "--json" });
  const choice = backendChoice(values);

  // No flag: UNCLIP_BACKEND, else auto (as every task).
  await T.initBackend({ backend: choice });
  const device = T.deviceLine();
  console.log(`device: ${device}`);
  const results: Result[] = [];
  const want = (k: string) => !only || only.includes(k);
  const report = (r: Result) => {
    results.push(r);
    if (r.error !== undefined) {
      console.log(`${r.name.padEnd(44)} failed: ${r.error}`);
      return;
    }
    const g = r.gflops !== undefined ? `${r.gflops.toFixed(2).padStart(9)} GFLOP/s` : "";
    const host = r.hostMs !== undefined ? `  host ${r.hostMs.toFixed(2)} ms` : "";
    const reuse = r.bindGroupReuse !== undefined
      ? ` (${Math.round(100 * r.bindGroupReuse)}% reused bind groups)`
      : "";
    const launches = r.dispatches !== undefined
      ? `  ${Math.round(r.dispatches)} dispatches${reuse}`
      : "";
    console.log(`${r.name.padEnd(44)} ${r.ms.toFixed(2).padStart(10)} ms ${g}${host}${launches}`);
  };
  /** Runs one row; a throw becomes a "failed" row instead of ending the bench. */
  const row: RowRunner = async (name, measure) => {
    try {
      report({ name, ...(await measure()) });
    } catch (e) {
      report({ name, ms: NaN, error: failureReason(e) });
    }
  };

  setTimingMode(timing);
  await row("sync round trip", () => syncRoundTrip(reps));
  if (want("matmul")) await matmulRows(quick, reps, row);
  if (want("conv")) await convRows(batch, reps, row);
  if (want("attention")) await attentionRows(reps, row);
  if (want("train")) {
    try {
      const rows = await trainingSteps(trainConfig!, registry, trainBatch, reps, profile);
      for (const r of rows) report(r);
    } catch (e) {
      report({ name: `train steps (${presetName})`, ms: NaN, error: failureReason(e) });
    }
  }
  if (want("demo")) await demoRows(reps, row);
  if (want("sample")) await sampleRows(reps, row);
  if (want("data")) await dataRows(row);
  if (json !== undefined) {
    const summary = {
      backend: T.backendKind(),
      device,
      adapter: T.adapterSummary(),
      date: new Date().toISOString(),
      batch,
      reps,
      timing,
      results,
    };
    await writeTextAtomic(json, JSON.stringify(summary, null, 2) + "\n");
  }
  return results;
}

if (import.meta.main) await runMain(runBench);
