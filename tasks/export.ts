/**
 * `deno task export --checkpoint DIR --out DIR [--half]`: the sampling weights of a trained run
 * (EMA weights where kept, no optimizer state), optionally in half precision, in the same layout,
 * plus the run's evaluation JSON files. This is how `weights/default` is made.
 *
 * @module
 */
import { basename, join } from "node:path";
import { exportInferenceCheckpoint } from "../core/train/checkpoint.ts";
import { parseFlags, runMain, UsageError } from "./_cli.ts";

const USAGE = `Usage: deno task export --checkpoint DIR --out DIR [--half]

Copies what sampling needs from a trained run (clip/, prior/, decoder/): the EMA weights where the
run kept them, the config and the tokenizer vocabulary, without optimizer state. The run's
eval_*.json files are copied too.

Options:
  --checkpoint DIR   trained run folder
  --out DIR          new folder (must not hold these stages yet), e.g. weights/default
  --half             store weights as float16 (half the size)
  -h, --help         show this help`;

/**
 * Runs the export task; returns the written step folders.
 *
 * @example
 * ```ts
 * await runExport(["--checkpoint", "runs/demo", "--out", "weights/default", "--half"]);
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
  const written: string[] = [];
  for (const stage of ["clip", "prior", "decoder"]) {
    const dir = await exportInferenceCheckpoint(join(from, stage), join(to, stage), {
      half: values.half === true,
    });
    print(`${stage}: wrote ${dir}`);
    written.push(dir);
  }
  for await (const entry of Deno.readDir(from)) {
    if (entry.isFile && /^eval_.*\.json$/.test(entry.name)) {
      await Deno.copyFile(join(from, entry.name), join(to, basename(entry.name)));
      print(`copied ${entry.name}`);
    }
  }
  return written;
}

if (import.meta.main) await runMain(runExport);
