/**
 * `deno task export --checkpoint DIR --out DIR [--half]`: the sampling weights of a trained run
 * (EMA weights where kept, no optimizer state), optionally in half precision, in the same layout,
 * plus the run's evaluation JSON files and cached ground-truth probe. This is how `weights/default`
 * is made.
 *
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { exists } from "../core/io/mod.ts";
import { type ExportedStage, exportInferenceCheckpoint } from "../core/train/checkpoint.ts";
import { parseFlags, runMain, UsageError } from "./_cli.ts";

const STAGES = ["clip", "prior", "decoder"];
const PROBE_DIR = "probe";
const PROBE_FILES = ["probe.json", "probe.safetensors"];

const USAGE = `Usage: deno task export --checkpoint DIR --out DIR [--half] [--ema DECAY]

Copies what sampling needs from a trained run (clip/, prior/, decoder/, and reranker/ and
upsampler/ when it has them): the EMA weights where the run kept them (a CLIP's trained weights),
the config and the tokenizer vocabulary, without optimizer state. The run's eval_*.json files and its cached ground-truth probe (probe/,
which "eval pipeline" would otherwise train again) are copied too.

Options:
  --checkpoint DIR   trained run folder
  --out DIR          new folder, or one that holds none of the stages and eval files to write
                     (its parent must exist); on any error nothing is written
  --half             store weights as float16 (half the size)
  --ema DECAY        write the EMA of this decay (one of train.<stage>.extraEma) for the stages
                     that kept it, their usual EMA for the others; at least one must have it
  --debug            print stack traces of errors
  -h, --help         show this help`;

/**
 * Runs the export task; returns the written step folders.
 *
 * @example
 * ```ts
 * async function shipDemo() {
 *   return await runExport(["--checkpoint", "runs/demo", "--out", "weights/default", "--half"]);
 * }
 * ```
 */
export async function runExport(
  args: string[],
  print: (line: string) => void = console.log,
): Promise<string[]> {
  const { values } = parseFlags(args, {
    checkpoint: { type: "string" },
    out: { type: "string" },
    half: { type: "boolean" },
    ema: { type: "string" },
  }, "export");
  if (values.help) {
    print(USAGE);
    return [];
  }
  const from = values.checkpoint as string | undefined;
  const to = values.out as string | undefined;
  if (!from || !to) {
    throw new UsageError('Both --checkpoint and --out are needed; see "deno task export --help"');
  }
  const half = values.half === true;
  const emaText = values.ema as string | undefined;
  const emaDecay = emaText === undefined ? undefined : Number(emaText);
  if (emaDecay !== undefined && !(emaText!.trim() !== "" && emaDecay > 0 && emaDecay < 1)) {
    throw new UsageError(
      `--ema must be an EMA decay between 0 and 1 (such as 0.9999), got "${emaText}"`,
    );
  }

  // Before any work: --out must not hold any stage or results file this export writes (the
  // shipped weights/default included), and its parent folder must exist.
  const evalFiles: string[] = [];
  try {
    for await (const entry of Deno.readDir(from)) {
      if (entry.isFile && /^eval_.*\.json$/.test(entry.name)) evalFiles.push(entry.name);
    }
  } catch (e) {
    throw new UsageError(
      e instanceof Deno.errors.NotFound
        ? `--checkpoint "${from}" does not exist`
        : `Cannot read --checkpoint "${from}": ${(e as Error).message.split("\n")[0]}`,
    );
  }
  evalFiles.sort();
  // The cascade's upsampler (DALL-E 2 section 2.1) and the reranking CLIP travel when the run
  // has them.
  const stages = [...STAGES];
  for (const optional of ["reranker", "upsampler"]) {
    if (await exists(join(from, optional))) stages.push(optional);
  }
  // The probe `eval pipeline` trains once and caches (datasets/probe_cache.ts): an export scored
  // with the same probe is comparable with its run, and skips the probe's training.
  const withProbe = (await Promise.all(PROBE_FILES.map((f) => exists(join(from, PROBE_DIR, f)))))
    .every(Boolean);
  const extras = withProbe ? [...evalFiles, PROBE_DIR] : evalFiles;
  const outInfo = await Deno.stat(to).catch(() => null);
  if (outInfo && !outInfo.isDirectory) throw new UsageError(`--out "${to}" is a file`);
  if (outInfo) {
    const clashes: string[] = [];
    for (const name of [...stages, ...extras]) {
      if (await exists(join(to, name))) clashes.push(name);
    }
    if (clashes.length > 0) {
      throw new UsageError(
        `--out "${to}" already holds ${clashes.join(", ")}; export into a new folder ` +
          `(nothing was written)`,
      );
    }
  }
  const parent = dirname(resolve(to));
  if (!(await exists(parent))) {
    throw new UsageError(`Folder "${parent}" (--out's parent) does not exist`);
  }

  // Everything is written into a hidden folder beside --out and moved into place at the end, so
  // a failed export leaves nothing behind.
  const tag = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  const tmp = join(parent, `.${basename(resolve(to))}.tmp-export-${tag}`);
  await Deno.mkdir(tmp);
  const written: string[] = [];
  try {
    const done: ExportedStage[] = [];
    for (const stage of stages) {
      done.push(
        await exportInferenceCheckpoint(join(from, stage), join(tmp, stage), {
          half,
          emaDecay,
        }),
      );
    }
    if (
      emaDecay !== undefined && !done.some((d) => d.weights === "ema" && d.emaDecay === emaDecay)
    ) {
      const kept = stages.map((stage, i) =>
        `${stage}: ${done[i].keptDecays.length > 0 ? done[i].keptDecays.join(", ") : "none"}`
      );
      throw new UsageError(
        `No stage of "${from}" kept an EMA of decay ${emaDecay} (${kept.join("; ")}); list it ` +
          `in train.<stage>.extraEma before training (nothing was written)`,
      );
    }
    const steps = stages.map((stage, i) => join(to, stage, basename(done[i].dir)));
    const what = done.map((d) =>
      d.weights === "trained"
        ? "trained weights"
        : `EMA${d.emaDecay === null ? "" : ` ${d.emaDecay}`}`
    );
    for (const name of evalFiles) await Deno.copyFile(join(from, name), join(tmp, name));
    if (withProbe) await copyProbe(join(from, PROBE_DIR), join(tmp, PROBE_DIR));
    if (outInfo) {
      // --out exists without these entries (e.g. only a README): move each one in atomically.
      for (const name of [...stages, ...extras]) {
        await Deno.rename(join(tmp, name), join(to, name));
      }
      await Deno.remove(tmp);
    } else {
      await Deno.rename(tmp, to);
    }
    stages.forEach((stage, i) => print(`${stage}: wrote ${steps[i]} (${what[i]})`));
    for (const name of extras) {
      print(`copied ${name === PROBE_DIR ? "probe/ (the ground-truth probe)" : name}`);
    }
    written.push(...steps);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  return written;
}

/** Copies a cached probe: its weights and the JSON that says how it was trained (probe_cache.ts). */
async function copyProbe(from: string, to: string): Promise<void> {
  await Deno.mkdir(to);
  for (const name of PROBE_FILES) await Deno.copyFile(join(from, name), join(to, name));
}

if (import.meta.main) await runMain(runExport);
