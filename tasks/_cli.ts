/**
 * Shared command-line plumbing for the tasks: strict flag parsing with `node:util` parseArgs,
 * `--help`, and the top-level handler that turns any error into ONE line on stderr and exit
 * code 1 (the stack only with `--debug`).
 *
 * @module
 */
import { dirname } from "node:path";
import { exists } from "../core/io/mod.ts";
import { parseArgs } from "node:util";
import { builtins } from "../plugins/mod.ts";
import type { Registry } from "../core/registry.ts";
import type { LoadPipelineOptions } from "../core/pipeline.ts";
import { checkGuidanceInterval, type GuidanceInterval } from "../core/diffusion/mod.ts";
import {
  type BackendChoice,
  closeBackend,
  deviceLine,
  initBackend,
  parseBackendChoice,
} from "../core/tensor/mod.ts";

/** A mistake on the command line (unknown flag, bad value, missing argument). */
export class UsageError extends Error {
  /**
   * @example
   * ```ts
   * function checkStage(stage: string): void {
   *   if (stage !== "clip") throw new UsageError(`Unknown stage "${stage}"; choose clip, prior, decoder or all`);
   * }
   * ```
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A flag definition for `parseFlags` (parseArgs's option shape). */
export interface FlagSpec {
  type: "string" | "boolean";
  short?: string;
  default?: string | boolean;
}

/** Flags every task accepts. */
const COMMON_FLAGS: Record<string, FlagSpec> = {
  help: { type: "boolean", short: "h" },
  debug: { type: "boolean" },
};

/** The `--backend` flag of every task that runs the engine, and its help line. */
export const BACKEND_FLAG: Record<string, FlagSpec> = { backend: { type: "string" } };
export const BACKEND_HELP =
  "  --backend NAME     auto (default: WebGPU on a hardware GPU, else the CPU), webgpu or cpu";

/**
 * Starts the engine on the backend `--backend` names (else `UNCLIP_BACKEND`, else auto) and
 * prints which one runs and why.
 *
 * @example
 * ```ts
 * async function start(values: ParsedFlags["values"]): Promise<void> {
 *   await startBackend(values, console.log); // "Device: CPU (WebAssembly SIMD, 2 threads) (...)"
 * }
 * ```
 */
export async function startBackend(
  values: ParsedFlags["values"],
  print: (line: string) => void,
): Promise<void> {
  await initBackend({ backend: backendChoice(values) });
  print(`Device: ${deviceLine()}`);
}

/**
 * The validated `--backend` value (undefined when absent); call it early to fail before work.
 *
 * @example
 * ```ts
 * backendChoice({ backend: "cpu" }); // "cpu"
 * ```
 */
export function backendChoice(values: ParsedFlags["values"]): BackendChoice | undefined {
  const raw = values.backend;
  try {
    return typeof raw === "string" ? parseBackendChoice(raw) : undefined;
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\.$/, ""));
  }
}

/** The result of `parseFlags`. */
export interface ParsedFlags {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * Parses `args` strictly: unknown flags and missing values are `UsageError`s that point at
 * `--help`.
 *
 * @example
 * ```ts
 * const { values, positionals } = parseFlags(["clip", "--config", "a.jsonc"], {
 *   config: { type: "string" },
 * }, "train");
 * positionals[0]; // "clip"
 * values.config; // "a.jsonc"
 * ```
 */
export function parseFlags(
  args: readonly string[],
  flags: Record<string, FlagSpec>,
  task: string,
): ParsedFlags {
  const options = { ...COMMON_FLAGS, ...flags };
  let parsed;
  try {
    parsed = parseArgs({
      args: joinNegativeValues(args, options),
      options,
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    const raw = (e as Error).message.split("\n")[0];
    const unknown = /^Unknown option '([^']+)'/.exec(raw);
    // parseArgs adds advice about "--" that does not apply here; keep its first sentence.
    const msg = unknown ? `Unknown flag "${unknown[1]}"` : raw.split(/\.\s/)[0].replace(/\.$/, "");
    throw new UsageError(`${msg}; see "deno task ${task} --help"`);
  }
  for (const [name, value] of Object.entries(parsed.values)) {
    // `--out ""` would otherwise mean the current folder, or a rename to "" after all the work.
    if (typeof value === "string" && value.trim() === "") {
      throw new UsageError(`--${name} needs a value; see "deno task ${task} --help"`);
    }
  }
  return { values: parsed.values as ParsedFlags["values"], positionals: parsed.positionals };
}

/**
 * `--flag -1` as `--flag=-1` for a flag that takes a value: parseArgs would read "-1" as a
 * flag and call the argument ambiguous.
 */
function joinNegativeValues(args: readonly string[], flags: Record<string, FlagSpec>): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = /^--([^=]+)$/.exec(args[i])?.[1];
    if (name && flags[name]?.type === "string" && /^-\.?\d/.test(args[i + 1] ?? "")) {
      out.push(`${args[i]}=${args[++i]}`);
    } else out.push(args[i]);
  }
  return out;
}

/**
 * A flag's value as a number within bounds, or undefined when absent.
 *
 * @example
 * ```ts
 * numberFlag({ n: "4" }, "n", { integer: true, min: 1 }); // 4
 * ```
 */
export function numberFlag(
  values: ParsedFlags["values"],
  name: string,
  options: { min?: number; max?: number; integer?: boolean; positive?: boolean } = {},
): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  const kind = options.integer ? "an integer" : "a number";
  if (typeof raw !== "string" || raw.trim() === "" || !Number.isFinite(n)) {
    throw new UsageError(`--${name} "${raw}" is not ${kind}`);
  }
  // Integers are plain decimal digits: "0x10", "1e3" and "16.0" are not taken for 16, 1000, 16.
  if (options.integer && (!/^[+-]?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n))) {
    throw new UsageError(`--${name} "${raw}" is not an integer (decimal digits)`);
  }
  if (options.positive && !(n > 0)) throw new UsageError(`--${name} "${raw}" must be positive`);
  if (options.min !== undefined && n < options.min) {
    throw new UsageError(`--${name} "${raw}" must be at least ${options.min}`);
  }
  if (options.max !== undefined && n > options.max) {
    throw new UsageError(`--${name} "${raw}" must be at most ${options.max}`);
  }
  return n;
}

/** The largest seed: seeds are 32-bit unsigned integers. */
export const MAX_SEED = 0xffffffff;

/**
 * `--seed`: a decimal integer from 0 to 2^32 - 1 (default 0). Larger values and other
 * notations ("0x10", "1e3") are usage errors rather than silently wrapped or converted.
 *
 * @example
 * ```ts
 * seedFlag({ seed: "42" }); // 42
 * ```
 */
export function seedFlag(values: ParsedFlags["values"]): number {
  const raw = values.seed;
  if (raw === undefined) return 0;
  if (typeof raw !== "string" || !/^\d+$/.test(raw) || Number(raw) > MAX_SEED) {
    throw new UsageError(
      `--seed "${raw}" must be a decimal integer from 0 to ${MAX_SEED} (2^32 - 1)`,
    );
  }
  return Number(raw);
}

/** The most seeds one `--seeds` list may name. */
export const MAX_SEEDS = 100;

/**
 * `--seeds LIST`: seeds and ranges of them, comma-separated ("0-4", "0,2,7", "0-2,9"), each a
 * seed as `--seed` takes it, in the order given; a repeated seed, a range that runs backwards and
 * more than `MAX_SEEDS` seeds are usage errors. Undefined when the flag is absent.
 *
 * @example
 * ```ts
 * seedsFlag({ seeds: "0-2,9" }); // [0, 1, 2, 9]
 * ```
 */
export function seedsFlag(values: ParsedFlags["values"]): number[] | undefined {
  const raw = values.seeds;
  if (raw === undefined) return undefined;
  const bad = (why: string) =>
    new UsageError(`--seeds "${raw}" ${why}; e.g. --seeds 0-4 or --seeds 0,2,7`);
  if (typeof raw !== "string" || !/^\d+(-\d+)?(,\d+(-\d+)?)*$/.test(raw)) {
    throw bad("must be seeds or ranges of them (decimal integers), comma-separated");
  }
  const seeds: number[] = [];
  for (const part of raw.split(",")) {
    const [lo, hi = lo] = part.split("-").map(Number);
    if (hi > MAX_SEED) throw bad(`names a seed above ${MAX_SEED} (2^32 - 1)`);
    if (hi < lo) throw bad(`has the range ${part}, which runs backwards`);
    if (seeds.length + hi - lo + 1 > MAX_SEEDS) throw bad(`names more than ${MAX_SEEDS} seeds`);
    for (let s = lo; s <= hi; s++) {
      if (seeds.includes(s)) throw bad(`names seed ${s} twice`);
      seeds.push(s);
    }
  }
  return seeds;
}

/**
 * Checks before any work that `path` can be written: its folder exists and accepts a new file
 * (probed by creating and removing a hidden file), it is not a folder, and it does not exist
 * yet unless `force` is set. Throws a one-line `UsageError` naming `flag`.
 *
 * @example
 * ```ts
 * async function checkOut(path: string): Promise<void> {
 *   await checkOutputFile(path, { force: false, flag: "--out" }); // throws if it exists
 * }
 * ```
 */
export async function checkOutputFile(
  path: string,
  options: { force: boolean; flag: string },
): Promise<void> {
  const dir = dirname(path);
  let info: Deno.FileInfo | null = null;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new UsageError(`Cannot check ${options.flag} "${path}": ${(e as Error).message}`);
    }
  }
  if (info?.isDirectory) throw new UsageError(`Output file "${path}" is a folder`);
  if (info && !options.force) {
    throw new UsageError(
      `Output file "${path}" already exists; pass --force to overwrite it, or choose another ${options.flag}`,
    );
  }
  try {
    if (!(await Deno.stat(dir)).isDirectory) {
      throw new UsageError(`Output folder "${dir}" is not a folder`);
    }
  } catch (e) {
    if (e instanceof UsageError) throw e;
    throw new UsageError(
      e instanceof Deno.errors.NotFound
        ? `Output folder "${dir}" does not exist`
        : `Cannot use output folder "${dir}": ${(e as Error).message}`,
    );
  }
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  const probe = `${dir}/.write-probe-${Deno.pid}-${rand}`;
  try {
    (await Deno.open(probe, { write: true, createNew: true })).close();
  } catch (e) {
    throw new UsageError(
      `Output folder "${dir}" is not writable (${
        (e as Error).message.split("\n")[0].replace(/ \(os error \d+\).*$/, "")
      })`,
    );
  }
  await Deno.remove(probe).catch(() => {});
}

/**
 * A one-line usage error when the `--checkpoint` folder does not exist, for tasks that must know
 * before other checks (an output path inside it, a stage folder).
 *
 * @example
 * ```ts
 * await checkCheckpointFolder("weights/default"); // resolves: the shipped weights exist
 * ```
 */
export async function checkCheckpointFolder(checkpoint: string): Promise<void> {
  if (!(await exists(checkpoint))) {
    throw new UsageError(`Checkpoint folder "${checkpoint}" does not exist; check --checkpoint`);
  }
}

/** The names of the prior's sampling flags among `SAMPLING_FLAGS` (experiments take the same). */
export { PRIOR_FLAGS } from "../experiments/common.ts";

/** The flags of the tasks that sample a trained run (`sample`, `eval`). */
export const SAMPLING_FLAGS: Record<string, FlagSpec> = {
  checkpoint: { type: "string" },
  guidance: { type: "string" },
  "guidance-interval": { type: "string" },
  steps: { type: "string" },
  sampler: { type: "string" },
  "prior-sampler": { type: "string" },
  "prior-steps": { type: "string" },
  "prior-guidance": { type: "string" },
  "prior-candidates": { type: "string" },
  "raw-decoder": { type: "boolean" },
  "late-decoder": { type: "string" },
  "late-below": { type: "string" },
  "no-reranker": { type: "boolean" },
  "sampler-options": { type: "string" },
  seed: { type: "string" },
  out: { type: "string" },
  force: { type: "boolean" },
  ...BACKEND_FLAG,
};

/**
 * `--guidance` (default undefined: the model config's `sampling.guidance`, 2 unless set),
 * `--guidance-interval LO,HI` (default: every step), `--steps` (default: the sampler's) and
 * `--seed` (default 0).
 *
 * @example
 * ```ts
 * samplingFlags({ guidance: "2.5" }); // { guidance: 2.5, guidanceInterval: undefined, steps: undefined, seed: 0 }
 * ```
 */
export function samplingFlags(values: ParsedFlags["values"]): {
  guidance: number | undefined;
  guidanceInterval: GuidanceInterval | undefined;
  steps: number | undefined;
  seed: number;
} {
  return {
    guidance: numberFlag(values, "guidance", { min: 0 }),
    guidanceInterval: guidanceIntervalFlag(values),
    steps: numberFlag(values, "steps", { integer: true, min: 1 }),
    seed: seedFlag(values),
  };
}

/**
 * The decoder's guidance for a log line: "guidance 2", or "guidance 2 over t/T 0.4-1" when it
 * applies only over part of the schedule.
 *
 * @example
 * ```ts
 * guidanceText(2, [0.4, 1]); // "guidance 2 over t/T 0.4-1"
 * guidanceText(2, [0, 1]); // "guidance 2" (every step)
 * ```
 */
export function guidanceText(guidance: number, interval?: GuidanceInterval): string {
  const partial = interval !== undefined && (interval[0] > 0 || interval[1] < 1);
  return `guidance ${guidance}` + (partial ? ` over t/T ${interval.join("-")}` : "");
}

/** The flags of a cascade's upsampler (`sample`, `eval pipeline`). */
export const UPSAMPLER_FLAGS: Record<string, FlagSpec> = {
  "upsampler-steps": { type: "string" },
  "upsampler-augment": { type: "string" },
};

/** Help lines of `UPSAMPLER_FLAGS`. */
export const UPSAMPLER_HELP =
  `  --upsampler-steps N  a cascade's upsampler: reverse-process steps (respaced; default: --steps)
  --upsampler-augment L  a cascade's upsampler: the noise level of its low-resolution condition,
                     0 to the augmentMax it trained with (DALL-E 2's conditioning
                     augmentation; default: the level its config samples with, sampleAugment)`;

/**
 * `--upsampler-steps` and `--upsampler-augment`, each undefined when absent.
 *
 * @example
 * ```ts
 * upsamplerFlags({ "upsampler-augment": "0.2" }); // { upsamplerSteps: undefined, upsamplerAugment: 0.2 }
 * ```
 */
export function upsamplerFlags(values: ParsedFlags["values"]): {
  upsamplerSteps: number | undefined;
  upsamplerAugment: number | undefined;
} {
  return {
    upsamplerSteps: numberFlag(values, "upsampler-steps", { integer: true, min: 1 }),
    upsamplerAugment: numberFlag(values, "upsampler-augment", { min: 0, max: 1 }),
  };
}

/**
 * A one-line error when upsampler flags (as `upsamplerFlags` read them) are given for a run
 * without an upsampler, or with it switched off: they would be silently ignored.
 */
export function checkUpsamplerFlags(
  flags: ReturnType<typeof upsamplerFlags>,
  hasUpsampler: boolean,
  why: string,
): void {
  if (hasUpsampler) return;
  const given = flags.upsamplerSteps !== undefined
    ? "--upsampler-steps"
    : flags.upsamplerAugment !== undefined
    ? "--upsampler-augment"
    : undefined;
  if (given) throw new UsageError(`${given}: ${why}; drop the flag`);
}

/** Help line of `--guidance-interval` (sample, eval). */
export const GUIDANCE_INTERVAL_HELP =
  `  --guidance-interval LO,HI  guide only where t / T of the decoder's schedule is from LO to
                     HI (1 = pure noise); elsewhere one conditional pass, half the work
                     (default 0,1: every step)`;

/**
 * `--guidance-interval LO,HI`: two fractions 0 <= LO < HI <= 1, or undefined when absent.
 *
 * @example
 * ```ts
 * guidanceIntervalFlag({ "guidance-interval": "0.4,1" }); // [0.4, 1]
 * ```
 */
export function guidanceIntervalFlag(
  values: ParsedFlags["values"],
): GuidanceInterval | undefined {
  const raw = values["guidance-interval"];
  if (raw === undefined) return undefined;
  const parts = String(raw).split(",").map((v) => v.trim());
  const numbers = parts.map((v) => (v === "" ? NaN : Number(v)));
  try {
    return checkGuidanceInterval(numbers, "--guidance-interval");
  } catch {
    throw new UsageError(
      `--guidance-interval "${raw}" must be two fractions LO,HI from 0 to 1 with LO < HI ` +
        `(e.g. 0.4,1)`,
    );
  }
}

/** Help lines of the prior's sampling flags (in every task that samples the prior). */
export const PRIOR_SAMPLING_HELP =
  `  --prior-sampler NAME  the prior's sampler: ddpm (default: thesis Algorithm 5), ddim,
                     dpm-solver++ or dpm-solver++-sde
  --prior-steps N    prior reverse-process steps (respaced; default: the prior sampler's, else
                     every step of the prior's schedule)
  --prior-guidance S classifier-free guidance of the prior (default 1 = off; needs a prior
                     trained with textDropRate > 0)
  --prior-candidates K  prior samples per caption, the one nearest the caption's CLIP text
                     embedding kept (default 2: DALL-E 2 section 2.2, thesis Algorithm 5)`;

/**
 * `--sampler-options KEY=VALUE,...`: options of the decoder's sampler plugin over the config's
 * (`true`/`false` are booleans, numbers numbers, anything else a string), or undefined when absent.
 * The plugin checks names and values when the pipeline loads.
 *
 * @example
 * ```ts
 * samplerOptionsFlag({ "sampler-options": "eta=0.5,spacing=uniform" }); // { eta: 0.5, spacing: "uniform" }
 * ```
 */
export function samplerOptionsFlag(
  values: ParsedFlags["values"],
): Record<string, unknown> | undefined {
  const raw = values["sampler-options"];
  if (raw === undefined) return undefined;
  const options: Record<string, unknown> = {};
  for (const item of String(raw).split(",")) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(\S(?:.*\S)?)\s*$/.exec(item);
    if (!m) {
      throw new UsageError(
        `--sampler-options: "${item}" is not KEY=VALUE (e.g. --sampler-options eta=0.5,spacing=uniform)`,
      );
    }
    const [, key, text] = m;
    if (key in options) throw new UsageError(`--sampler-options: "${key}" is given twice`);
    options[key] = optionValue(text);
  }
  return options;
}

/** A `--sampler-options` value: `true`/`false` as booleans, a finite number as a number, else the text. */
function optionValue(text: string): unknown {
  if (text === "true" || text === "false") return text === "true";
  const n = Number(text);
  return Number.isFinite(n) ? n : text;
}

/** `--sampler-options` as given, for a log line: "eta=0.5,spacing=uniform". */
export function samplerOptionsText(options: Record<string, unknown>): string {
  return Object.entries(options).map(([k, v]) => `${k}=${v}`).join(",");
}

/** Help line of `--sampler-options` (in every task that samples a trained run). */
export const SAMPLER_OPTIONS_HELP =
  `  --sampler-options KEY=VALUE,...  options of the decoder's sampler over the config's, e.g.
                     eta=1 (ddim), spacing=uniform (dpm-solver++), clipDenoised=false`;

/** Help line of `--raw-decoder` (in every task that samples a trained run). */
export const RAW_DECODER_HELP =
  `  --raw-decoder      the decoder's raw weights instead of their EMA (a run's checkpoint,
                     not an exported model)`;

/** Help lines of `--late-decoder` and `--late-below` (in every task that samples a trained run). */
export const LATE_DECODER_HELP =
  `  --late-decoder DIR another run's decoder (same CLIP and schedule) predicts the low-noise steps:
                     eDiff-I's expert denoisers (docs/training.md, "Two decoders in one reverse
                     process")
  --late-below F     where it takes over: the steps with t/T < F, in (0, 1] (default 0.5)`;

/** Help line of `--no-reranker` (in every task that samples text to image from a trained run). */
export const NO_RERANKER_HELP =
  `  --no-reranker      rerank with the pipeline's CLIP even when the run has a reranker/ CLIP`;

/** The switch point `--late-below` gives without a value. */
export const DEFAULT_LATE_BELOW = 0.5;

/**
 * `--late-decoder DIR` and `--late-below F` as `LoadPipelineOptions.lateDecoder` (absent without
 * `--late-decoder`; `--late-below` alone is an error).
 *
 * @example
 * ```ts
 * lateDecoderFlags({ "late-decoder": "runs/a", "late-below": "0.8" }); // { lateDecoder: { dir: "runs/a", below: 0.8 } }
 * ```
 */
export function lateDecoderFlags(
  values: ParsedFlags["values"],
): Pick<LoadPipelineOptions, "lateDecoder"> {
  const dir = values["late-decoder"] as string | undefined;
  const below = numberFlag(values, "late-below", { positive: true, max: 1 });
  if (dir === undefined) {
    if (below !== undefined) throw new UsageError(`--late-below needs --late-decoder DIR`);
    return {};
  }
  if (dir === "") throw new UsageError(`--late-decoder needs a run folder`);
  return { lateDecoder: { dir, below: below ?? DEFAULT_LATE_BELOW } };
}

/**
 * The builtin registry with `--sampler` and `--prior-sampler` checked against it, the prior's
 * flags read, then the backend started and printed. `load` is what `loadPipeline` takes.
 *
 * @example
 * ```ts
 * async function open(values: ParsedFlags["values"]) {
 *   const { registry, load } = await openSampling(values, console.log);
 *   return { registry, load }; // load: what loadPipeline takes
 * }
 * ```
 */
export async function openSampling(
  values: ParsedFlags["values"],
  print: (line: string) => void,
): Promise<{ registry: Registry; load: LoadPipelineOptions }> {
  const registry = builtins();
  const sampler = values.sampler as string | undefined;
  const priorSampler = values["prior-sampler"] as string | undefined;
  for (const name of [sampler, priorSampler]) {
    if (name !== undefined && !registry.has("sampler", name)) {
      throw new UsageError(registry.unknownPluginMessage("sampler", name));
    }
  }
  const load: LoadPipelineOptions = {
    sampler,
    priorSampler,
    priorSteps: numberFlag(values, "prior-steps", { integer: true, min: 1 }),
    priorGuidance: numberFlag(values, "prior-guidance", { min: 0 }),
    priorCandidates: numberFlag(values, "prior-candidates", { integer: true, min: 1, max: 64 }),
    rawDecoder: values["raw-decoder"] === true,
    reranker: values["no-reranker"] !== true,
    samplerOptions: samplerOptionsFlag(values),
    ...lateDecoderFlags(values),
  };
  await startBackend(values, print);
  return { registry, load };
}

/**
 * One line for any error: ConfigError problems joined with "; ", everything else its first
 * line, prefixed with "Error: ".
 *
 * @example
 * ```ts
 * errorLine(new Error("Boom\nmore")); // "Error: Boom"
 * ```
 */
export function errorLine(e: unknown): string {
  const problems = (e as { problems?: unknown })?.problems;
  let msg: string;
  if (Array.isArray(problems) && problems.length > 0) {
    msg = problems.length > 3
      ? `${problems.slice(0, 3).join("; ")} (and ${problems.length - 3} more problems)`
      : problems.join("; ");
  } else {
    msg = e instanceof Error ? e.message : String(e);
  }
  msg = msg.split("\n").map((l) => l.trim()).filter(Boolean).join("; ");
  return `Error: ${msg || (e instanceof Error ? e.name : "unknown error")}`;
}

/**
 * Runs a task's main function as a CLI: its return value is the exit code (default 0); any
 * thrown error prints one line to stderr and exits 1 (`--debug` adds the stack).
 *
 * @example
 * ```ts
 * async function main(run: (args: string[]) => Promise<unknown>): Promise<void> {
 *   await runMain(run); // in a task file: if (import.meta.main) await main(runTrain)
 * }
 * ```
 */
export async function runMain(
  main: (args: string[]) => Promise<unknown>,
  args: string[] = Deno.args,
): Promise<never> {
  let code = 0;
  try {
    const r = await main(args);
    if (typeof r === "number") code = r;
  } catch (e) {
    console.error(errorLine(e));
    if (args.includes("--debug") && e instanceof Error && e.stack) console.error(e.stack);
    code = 1;
  }
  // Let the device finish and release it first: exiting with GPU work queued (after an error
  // thrown mid-task) can crash in the driver and turn exit code 1 into 139.
  await closeBackend();
  Deno.exit(code);
}
