/**
 * `deno task experiment <name> --checkpoint DIR [...]`: the thesis's chapter 4 experiments on a
 * trained run, each writing `<name>.json` and its PNG/SVG figures into one folder (default
 * `DIR/experiments/<name>/`), which `deno task report` gathers into one page.
 *
 * @module
 */
import { join } from "node:path";
import { exists, writeFileAtomic, writeTextAtomic } from "../core/io/mod.ts";
import { deviceLine } from "../core/tensor/mod.ts";
import { MAX_CONFIG_RERANK } from "../core/config.ts";
import {
  experimentByName,
  type ExperimentFile,
  EXPERIMENTS,
  sharedFlagUnread,
  takesSharedFlag,
} from "../experiments/mod.ts";
import {
  BACKEND_HELP,
  checkCheckpointFolder,
  checkOutputFile,
  type FlagSpec,
  LATE_DECODER_HELP,
  NO_RERANKER_HELP,
  numberFlag,
  openSampling,
  type ParsedFlags,
  parseFlags,
  PRIOR_SAMPLING_HELP,
  RAW_DECODER_HELP,
  runMain,
  SAMPLER_OPTIONS_HELP,
  SAMPLING_FLAGS,
  seedFlag,
  UsageError,
} from "./_cli.ts";

const NAMES = EXPERIMENTS.map((e) => e.name);

function choices(): string {
  return `${NAMES.slice(0, -1).join(", ")} or ${NAMES.at(-1)}`;
}

const USAGE = `Usage: deno task experiment <name> --checkpoint DIR [options]

Runs one of the thesis's chapter 4 experiments on a trained run and writes its numbers
(<name>.json) and figures (PNG/SVG) into --out (default DIR/experiments/<name>/).
"deno task report --checkpoint DIR" gathers them into report.html and report.md.

Experiments:
${EXPERIMENTS.map((e) => `  ${e.name.padEnd(12)} ${e.summary} (thesis ${e.thesis})`).join("\n")}

Options:
  --checkpoint DIR   run folder with clip/, prior/, decoder/
  --out DIR          output folder (default DIR/experiments/<name>/); a folder that already
                     holds files is kept unless --force
  --force            overwrite the output folder's results
  --limit N          test images or captions to use (at least 4; default: the experiment's)
  --seed S           random seed, a decimal integer 0 to 4294967295 (default 0)
  --steps N          decoder sampling steps (respaced; default: the sampler's)
  --sampler NAME     ddpm, ddim, dpm-solver++ or dpm-solver++-sde (default: the config's)
  --rerank K         decoder candidates per image where a caption is decoded, the one CLIP
                     matches best kept (default: the model config's sampling.rerank, 1 unless
                     set; --rerank 1 turns a stored one off)
${PRIOR_SAMPLING_HELP}
${RAW_DECODER_HELP}
${NO_RERANKER_HELP}
${LATE_DECODER_HELP}
${SAMPLER_OPTIONS_HELP}
${BACKEND_HELP}
  --debug            print stack traces of errors
  -h, --help         show this help

Options of single experiments:
${
  EXPERIMENTS.flatMap((e) =>
    Object.entries(e.flags).map(([f, s]) =>
      `  --${(f + (s.type === "string" ? " X" : "")).padEnd(16)} ${e.name}: ${s.help}`
    )
  ).join("\n")
}`;

/**
 * The numbers every experiment may take (--limit, --steps, --rerank, --seed), checked; `report`
 * checks them with this before its first experiment runs.
 */
export function sharedExperimentNumbers(values: ParsedFlags["values"]) {
  return {
    limit: numberFlag(values, "limit", { integer: true, min: 4 }),
    steps: numberFlag(values, "steps", { integer: true, min: 1 }),
    rerank: numberFlag(values, "rerank", { integer: true, min: 1, max: MAX_CONFIG_RERANK }),
    seed: seedFlag(values),
  };
}

/** What `runExperiment` wrote. */
export interface ExperimentRun {
  name: string;
  out: string;
  /** The JSON document written to `<out>/<name>.json`. */
  report: Record<string, unknown>;
}

/** The first existing folder at or above `path`. */
async function existingAncestor(path: string): Promise<string> {
  let dir = path;
  while (!(await exists(dir))) {
    const up = join(dir, "..");
    if (up === dir) break;
    dir = up;
  }
  return dir;
}

/**
 * Checks before any work that `out` can take the results: an existing folder must be empty
 * unless `force`, and the folder (or its nearest existing parent) must be writable.
 */
async function checkOutputDir(out: string, force: boolean): Promise<void> {
  if (await exists(out)) {
    if (!(await Deno.stat(out)).isDirectory) {
      throw new UsageError(`Output folder "${out}" is a file; choose another --out`);
    }
    let entries = 0;
    for await (const _ of Deno.readDir(out)) entries++;
    if (entries > 0 && !force) {
      throw new UsageError(
        `Output folder "${out}" already holds results; pass --force to overwrite them, or ` +
          `choose another --out`,
      );
    }
  }
  const dir = await existingAncestor(out);
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  await checkOutputFile(join(dir, `.experiment-${rand}`), { force: true, flag: "--out" });
}

/** Removes the figures a previous run listed in `<out>/<name>.json` (with --force). */
async function removePrevious(out: string, name: string): Promise<void> {
  try {
    const old = JSON.parse(await Deno.readTextFile(join(out, `${name}.json`)));
    for (const f of old.files ?? []) {
      if (typeof f?.name === "string" && !f.name.includes("/") && !f.name.startsWith(".")) {
        await Deno.remove(join(out, f.name)).catch(() => {});
      }
    }
  } catch {
    // No previous results (or unreadable): nothing to clean.
  }
}

/**
 * The experiment task, callable in-process (tests) and from the CLI.
 *
 * @example
 * ```ts
 * async function pca() {
 *   return await runExperiment(["pca", "--checkpoint", "runs/tiny", "--limit", "64"]);
 * }
 * ```
 */
export async function runExperiment(
  args: string[],
  hooks: { print?: (line: string) => void } = {},
): Promise<ExperimentRun | null> {
  const print = hooks.print ?? ((line: string) => console.log(line));
  const own: Record<string, FlagSpec> = {};
  for (const e of EXPERIMENTS) {
    for (const [f, s] of Object.entries(e.flags)) own[f] = { type: s.type };
  }
  // Guidance is each experiment's own business (the guidance sweep sets it).
  const { guidance: _g, "guidance-interval": _gi, ...sampling } = SAMPLING_FLAGS;
  const { values, positionals } = parseFlags(args, {
    ...sampling,
    ...own,
    limit: { type: "string" },
    rerank: { type: "string" },
  }, "experiment");
  if (values.help) {
    print(USAGE);
    return null;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      `Expected one experiment name (${choices()}); see "deno task experiment --help"`,
    );
  }
  const experiment = experimentByName(positionals[0]);
  if (!experiment) {
    throw new UsageError(`Unknown experiment "${positionals[0]}"; choose ${choices()}`);
  }
  for (const f of Object.keys(own)) {
    if (values[f] !== undefined && !(f in experiment.flags)) {
      const owners = EXPERIMENTS.filter((e) => f in e.flags).map((e) => e.name).join(", ");
      throw new UsageError(
        `--${f} does not apply to experiment "${experiment.name}" (only to ${owners})`,
      );
    }
  }
  for (const f of Object.keys(values)) {
    const why = values[f] === undefined ? null : sharedFlagUnread(experiment.draws, f);
    if (why) {
      const owners = EXPERIMENTS.filter((e) => takesSharedFlag(e.draws, f)).map((e) => e.name);
      throw new UsageError(
        `--${f} does not apply to experiment "${experiment.name}", which ${why} (only to ${
          owners.join(", ")
        })`,
      );
    }
  }
  const checkpoint = values.checkpoint as string | undefined;
  if (!checkpoint) {
    throw new UsageError(`Missing --checkpoint DIR; see "deno task experiment --help"`);
  }
  const { limit, steps, rerank, seed } = sharedExperimentNumbers(values);
  await checkCheckpointFolder(checkpoint);
  for (const stage of experiment.stages) {
    if (!(await exists(join(checkpoint, stage)))) {
      throw new UsageError(
        `Checkpoint folder "${checkpoint}" has no "${stage}" stage, which experiment ` +
          `"${experiment.name}" needs; train it with "deno task train ${stage} --config FILE ` +
          `--out ${checkpoint}"`,
      );
    }
  }
  const out = (values.out as string | undefined) ??
    join(checkpoint, "experiments", experiment.name);
  const force = values.force === true;
  await checkOutputDir(out, force);

  const { registry, load } = await openSampling(values, print);
  const sampler = load.sampler;
  const t0 = performance.now();
  const flags: Record<string, string | boolean | undefined> = {};
  for (const f of Object.keys(experiment.flags)) flags[f] = values[f];
  const { results, files } = await experiment.run({
    checkpoint,
    registry,
    limit,
    seed,
    steps,
    sampler,
    rerank,
    load,
    flags,
    print,
  });
  const seconds = (performance.now() - t0) / 1000;
  const report = {
    experiment: experiment.name,
    thesis: experiment.thesis,
    checkpoint,
    limit: limit ?? null,
    seed,
    steps: steps ?? null,
    sampler: sampler ?? null,
    samplerOptions: load.samplerOptions ?? null,
    // null: the model config's sampling.rerank (1 unless set).
    rerank: rerank ?? null,
    rawDecoder: load.rawDecoder === true,
    lateDecoder: load.lateDecoder ?? null,
    prior: {
      sampler: load.priorSampler ?? "ddpm",
      steps: load.priorSteps ?? null,
      guidance: load.priorGuidance ?? 1,
      candidates: load.priorCandidates ?? 2,
    },
    device: deviceLine(),
    seconds: Number(seconds.toFixed(2)),
    files: files.map((f: ExperimentFile) => ({ name: f.name, caption: f.caption })),
    results,
  };
  await Deno.mkdir(out, { recursive: true });
  if (force) await removePrevious(out, experiment.name);
  for (const f of files) {
    await (typeof f.data === "string"
      ? writeTextAtomic(join(out, f.name), f.data)
      : writeFileAtomic(join(out, f.name), f.data));
  }
  // The JSON last: its presence marks a complete result for `deno task report`.
  await writeTextAtomic(
    join(out, `${experiment.name}.json`),
    JSON.stringify(report, null, 2) + "\n",
  );
  print(`Wrote ${join(out, `${experiment.name}.json`)} and ${files.length} figure(s)`);
  return { name: experiment.name, out, report };
}

if (import.meta.main) await runMain(runExperiment);
