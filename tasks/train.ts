/**
 * `deno task train <clip|reranker|prior|decoder|upsampler|all> --config FILE [...]`: trains the
 * unCLIP stages.
 *
 * @module
 */
import { dirname, isAbsolute, join, resolve } from "node:path";
import { builtins } from "../plugins/mod.ts";
import {
  describePlugins,
  isClipStage,
  resolvedConfigJson,
  stageTrain,
  TRAIN_DEFAULTS,
  type TrainStage,
  type TrainStageConfig,
} from "../core/config.ts";
import { loadConfig } from "../core/config_file.ts";
import { loadResolvedCheckpoint, STAGE_SLOTS } from "../core/pipeline.ts";
import {
  assertConfigMatches,
  assertResumable,
  assertSameClip,
  CheckpointError,
  loadCheckpoint,
  type LoadedCheckpoint,
  resolveStepDir,
} from "../core/train/checkpoint.ts";
import { trainLoop, type TrainLoopResult } from "../core/train/loop.ts";
import { resumeCyclesProblem, totalSteps, trainCycles } from "../core/train/cycles.ts";
import { acquireRunLock } from "../core/train/lock.ts";
import { exists } from "../core/io/mod.ts";
import { setupStage } from "../core/train/stages.ts";
import {
  BACKEND_FLAG,
  BACKEND_HELP,
  backendChoice,
  numberFlag,
  parseFlags,
  runMain,
  startBackend,
  UsageError,
} from "./_cli.ts";

const USAGE =
  `Usage: deno task train <clip|reranker|prior|decoder|upsampler|all> --config FILE [options]

Trains CLIP, the diffusion prior, the decoder and/or (configs with components.upsampler) the
diffusion upsampler, and (configs with train.reranker) a second CLIP that only reranks the
decoder's candidates. The prior and decoder read the trained CLIP from <out>/clip, so train
"clip" first (or "all"); the upsampler and reranker need no CLIP. "all" includes the reranker
and the upsampler when the config has them.

Options:
  --config FILE      JSON/JSONC config (e.g. presets/tiny.jsonc, presets/thesis.jsonc)
  --out DIR          run folder holding DIR/clip, DIR/prior, DIR/decoder (and DIR/reranker,
                     DIR/upsampler) (default runs/<name>)
  --resume           continue from the latest checkpoint of each stage (same loss curve)
  --init-from PATH   start each stage from another run's weights instead of its seed: PATH is a
                     run folder (PATH/<stage>) or, for one stage, a stage or step folder; the
                     EMA weights where it has them. Optimizer, EMA, step count and learning-rate
                     schedule start afresh (fine-tuning, e.g. with a changed loss); a stage that
                     already has a checkpoint under --out resumes it instead (with --resume)
  --max-steps N      stop once a stage has done N steps (resumed steps and those of earlier
                     warm restarts included), and save
  --max-minutes M    stop once a stage has run M minutes, and save (later stages do not start)
  --print-config     print the resolved config (all defaults filled in) and exit
  --list-plugins     list every plugin with its options and defaults, and exit
${BACKEND_HELP}
  --debug            print stack traces of errors
  -h, --help         show this help

Ctrl-C finishes the current step, saves a checkpoint and exits; continue with --resume.
Config "plugins" may name third-party plugin modules by path or URL (paths, like the folder
dataset's folders, are relative to the config file). URLs need Deno's import permission, which
"deno task train" (-A) has; with narrower permissions name the host, e.g.
deno run --allow-read --allow-write --allow-env --allow-import=example.com tasks/train.ts ...`;

const STAGES: readonly TrainStage[] = ["clip", "reranker", "prior", "decoder", "upsampler"];
const STAGE_CHOICES = "clip, reranker, prior, decoder, upsampler or all";

/** Test hooks of `runTrain`. */
export interface TrainHooks {
  /** Where progress lines go (default console.log). */
  print?: (line: string) => void;
  /** Set `.stop` to request a graceful stop (as Ctrl-C does). */
  stopFlag?: { stop: boolean };
}

/** What `runTrain` did: one result per stage trained. */
export interface TrainRunResult {
  outDir: string;
  results: TrainLoopResult[];
}

/**
 * A note when a stage's steps end inside its warmup (allowed: a short test run of a preset), so
 * the learning rate never reaches its peak; null otherwise.
 *
 * @example
 * ```ts
 * warmupNote("decoder", { steps: 5, warmupSteps: 200, lr: 1e-3, lrSchedule: "cosine" });
 * // "decoder: note: the 5 steps end inside the 200 warmup steps, so the learning rate stays ..."
 * ```
 */
export function warmupNote(
  stage: string,
  t: { steps: number; warmupSteps: number; lr: number; lrSchedule: string },
): string | null {
  if (t.warmupSteps < t.steps) return null;
  return `${stage}: note: the ${t.steps} steps end inside the ${t.warmupSteps} warmup steps, so ` +
    `the learning rate stays below ${t.lr}` +
    (t.lrSchedule === "cosine" ? " and the cosine decay never starts" : "");
}

/**
 * The stage's warm restarts for its settings line: "" without any, else e.g. ", then 2 warm
 * restarts (3000 at lr 0.0005 (100 warmup), 3000 at lr 0.0005 (100 warmup); 13000 steps in all)".
 */
function restartsNote(train: TrainStageConfig): string {
  const restarts = trainCycles(train).slice(1);
  if (restarts.length === 0) return "";
  const each = restarts.map((c) =>
    `${c.steps} at lr ${c.lr}${c.warmupSteps ? ` (${c.warmupSteps} warmup)` : ""}`
  );
  return `, then ${restarts.length} warm restart${restarts.length > 1 ? "s" : ""} ` +
    `(${each.join(", ")}; ${totalSteps(train)} steps in all)`;
}

async function hasCheckpoint(dir: string): Promise<boolean> {
  try {
    await resolveStepDir(dir);
    return true;
  } catch (e) {
    if (e instanceof CheckpointError && /does not exist|no "latest"/.test(e.message)) return false;
    throw e;
  }
}

/**
 * The checkpoint `--init-from PATH` names for `stage`: PATH/<stage> of a run folder or, when one
 * stage is trained, PATH itself (a stage or step folder).
 */
async function initSource(path: string, stage: TrainStage, single: boolean): Promise<string> {
  const staged = join(path, stage);
  if (await hasCheckpoint(staged)) return staged;
  if (single && await hasCheckpoint(path)) return path;
  throw new CheckpointError(
    `--init-from "${path}" holds no ${stage} checkpoint (looked for ${staged}` +
      `${single ? ` and ${path} itself` : ""}); name a run folder that trained the ${stage}`,
  );
}

/**
 * The train task, callable in-process (tests) and from the CLI. Returns what was trained;
 * throws one-line errors for user mistakes.
 *
 * @example
 * ```ts
 * async function fiveSteps() {
 *   return await runTrain(["all", "--config", "presets/tiny.jsonc", "--max-steps", "5", "--out", "/tmp/run"]);
 * }
 * ```
 */
export async function runTrain(
  args: string[],
  hooks: TrainHooks = {},
): Promise<TrainRunResult | null> {
  const print = hooks.print ?? ((line: string) => console.log(line));
  const { values, positionals } = parseFlags(args, {
    config: { type: "string" },
    out: { type: "string" },
    resume: { type: "boolean" },
    "init-from": { type: "string" },
    "max-steps": { type: "string" },
    "max-minutes": { type: "string" },
    "print-config": { type: "boolean" },
    "list-plugins": { type: "boolean" },
    ...BACKEND_FLAG,
  }, "train");
  if (values.help) {
    print(USAGE);
    return null;
  }
  backendChoice(values); // a bad --backend fails before any work
  const printing = ["print-config", "list-plugins"].find((f) => values[f] === true);
  if (printing) {
    // Only print: a training flag or a misspelt stage beside it would pass unchecked.
    for (const flag of ["out", "resume", "init-from", "max-steps", "max-minutes"]) {
      if (values[flag] !== undefined) {
        throw new UsageError(`--${printing} only prints and trains nothing; drop --${flag}`);
      }
    }
    const stage = positionals.find((p) =>
      p !== "all" && !(STAGES as readonly string[]).includes(p)
    );
    if (stage !== undefined) {
      throw new UsageError(
        `Unknown stage "${stage}"; choose ${STAGE_CHOICES}`,
      );
    }
  }
  const registry = builtins();
  const configPath = values.config as string | undefined;
  if (values["list-plugins"]) {
    if (configPath) await loadConfig(configPath, registry); // registers its third-party plugins
    print(describePlugins(registry));
    return null;
  }
  if (!configPath) throw new UsageError(`Missing --config FILE; see "deno task train --help"`);
  const config = await loadConfig(configPath, registry);
  // Store plugin module paths absolute, so that sample/eval find them from any folder.
  config.plugins = config.plugins.map((spec) =>
    /^[a-z][a-z0-9+.-]+:/i.test(spec) || isAbsolute(spec)
      ? spec
      : resolve(dirname(configPath), spec)
  );
  if (values["print-config"]) {
    print(resolvedConfigJson(config).trimEnd());
    return null;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? `Missing the stage to train: ${STAGE_CHOICES}; see "deno task train --help"`
        : `Expected one stage, got "${positionals.join(" ")}"; see "deno task train --help"`,
    );
  }
  const which = positionals[0];
  if (which !== "all" && !(STAGES as readonly string[]).includes(which)) {
    throw new UsageError(
      `Unknown stage "${which}"; choose ${STAGE_CHOICES}`,
    );
  }
  const hasStage = (s: TrainStage) => config.train[s] !== undefined;
  if (which === "upsampler" && !hasStage("upsampler")) {
    throw new UsageError(
      `${configPath} has no components.upsampler, so there is no upsampler stage to train`,
    );
  }
  if (which === "reranker" && !hasStage("reranker")) {
    throw new UsageError(
      `${configPath} has no train.reranker, so there is no reranker stage to train; add ` +
        `"reranker": { "grain": 0.1 } to its train section (docs/tasks.md)`,
    );
  }
  const stages = which === "all" ? STAGES.filter(hasStage) : [which as TrainStage];
  const maxSteps = numberFlag(values, "max-steps", { integer: true, min: 1 });
  const maxMinutes = numberFlag(values, "max-minutes", { positive: true });
  const outDir = (values.out as string | undefined) ?? join("runs", config.name);
  const resume = values.resume === true;
  const initPath = values["init-from"] as string | undefined;
  if (initPath !== undefined && resolve(initPath) === resolve(outDir)) {
    throw new UsageError(
      `--init-from names the --out folder itself; to continue a run use --resume`,
    );
  }

  // One train run per run folder: a lock file with our pid, removed on every way out.
  const created = !(await exists(outDir));
  await Deno.mkdir(outDir, { recursive: true });
  let lock;
  try {
    lock = acquireRunLock(outDir, print);
  } catch (e) {
    if (created) await Deno.remove(outDir).catch(() => {});
    throw e;
  }
  try {
    // Check every stage's folder before any work, so that nothing is overwritten by mistake.
    const resumeFrom = new Map<TrainStage, LoadedCheckpoint | null>();
    const initFrom = new Map<TrainStage, LoadedCheckpoint>();
    for (const stage of stages) {
      const dir = join(outDir, stage);
      const present = await hasCheckpoint(dir);
      if (present && !resume) {
        throw new CheckpointError(
          `"${dir}" already holds a checkpoint; pass --resume to continue it, or choose another --out`,
        );
      }
      if (present) {
        const ckpt = await loadResolvedCheckpoint(dir, stage, registry);
        assertConfigMatches(ckpt, config, STAGE_SLOTS[stage], stage);
        const train = stageTrain(config, stage);
        assertResumable(ckpt, train.ema !== null); // before the backend starts
        const stored = ckpt.meta.config.train?.[stage];
        const before = stored?.steps;
        if (before !== undefined && before !== train.steps) {
          print(
            `${stage}: steps changed from ${before} to ${train.steps}; the ` +
              `learning-rate schedule follows the new total from step ${ckpt.meta.step} on`,
          );
        }
        const cyclesProblem = resumeCyclesProblem(
          stage,
          { ...TRAIN_DEFAULTS[stage], ...(stored ?? {}) },
          train,
          ckpt.meta.step,
        );
        if (cyclesProblem) throw new CheckpointError(cyclesProblem);
        const restartsBefore = JSON.stringify(stored?.restarts ?? []);
        if (stored && restartsBefore !== JSON.stringify(train.restarts)) {
          print(
            `${stage}: restarts changed from ${restartsBefore} to ${
              JSON.stringify(train.restarts)
            }; training now ends at step ${totalSteps(train)}`,
          );
        }
        resumeFrom.set(stage, ckpt);
        if (initPath !== undefined) {
          print(`${stage}: ${dir} holds a checkpoint, so it resumes; --init-from is not used`);
        }
      } else {
        resumeFrom.set(stage, null);
        // A run trained before its config had a reranker has none to start it from: the
        // reranker of `train all --init-from` such a run starts from its seed.
        const noReranker = stage === "reranker" && stages.length > 1 && initPath !== undefined &&
          !(await hasCheckpoint(join(initPath, stage)));
        if (noReranker) {
          print(`reranker: ${initPath} has no reranker checkpoint; it starts from its seed`);
        } else if (initPath !== undefined) {
          const source = await initSource(initPath, stage, stages.length === 1);
          initFrom.set(stage, await loadCheckpoint(source, stage));
        }
      }
    }
    // A prior or decoder resumes only on the CLIP it was trained with.
    const resumed = [...resumeFrom.values()].filter((c) =>
      c !== null && !isClipStage(c.meta.stage) && c.meta.stage !== "upsampler"
    );
    if (resumed.length > 0 && await hasCheckpoint(join(outDir, "clip"))) {
      const clip = await loadCheckpoint(join(outDir, "clip"), "clip");
      assertSameClip(resumed as LoadedCheckpoint[], clip, outDir, configPath);
    }

    await startBackend(values, print);
    print(`Config: ${configPath} ("${config.name}"); output: ${outDir}`);

    const stopFlag = hooks.stopFlag ?? { stop: false };
    let interrupts = 0;
    const onSigint = (): void => {
      interrupts++;
      if (interrupts > 1) {
        console.error("Error: interrupted twice; exiting without saving");
        Deno.exit(130);
      }
      stopFlag.stop = true;
      print(
        "Interrupt received: finishing this step and saving a checkpoint (Ctrl-C again to quit now)",
      );
    };
    let listening = false;
    try {
      Deno.addSignalListener("SIGINT", onSigint);
      listening = true;
    } catch { /* signals are unavailable on this platform */ }

    const results: TrainLoopResult[] = [];
    try {
      for (const stage of stages) {
        const from = resumeFrom.get(stage) ?? null;
        if (resume && !from) {
          print(`${stage}: nothing to resume in ${join(outDir, stage)}; starting at step 0`);
        }
        const setup = await setupStage(stage, {
          config,
          registry,
          outDir,
          resumeFrom: from,
          initFrom: initFrom.get(stage) ?? null,
          configPath,
          log: print,
        });
        for (const line of setup.summary) print(line);
        const t = stageTrain(config, stage);
        print(
          `${stage}: batch ${t.batchSize}, ${t.steps} steps, Adam lr ${t.lr} (${t.lrSchedule}` +
            `${t.warmupSteps ? `, ${t.warmupSteps} warmup` : ""})${restartsNote(t)}, grad clip ${
              t.gradClip ?? "off"
            }, ` +
            `EMA ${[t.ema ?? "off", ...t.extraEma].join(" + ")}, ` +
            `checkpoint every ${t.checkpointEvery}`,
        );
        const note = warmupNote(stage, t);
        if (note) print(note);
        let result: TrainLoopResult;
        try {
          result = await trainLoop({
            stage,
            config,
            setup,
            stageDir: join(outDir, stage),
            resumeFrom: from,
            maxSteps,
            maxMinutes,
            print,
            stopFlag,
          });
        } finally {
          setup.dispose();
        }
        results.push(result);
        const where = result.checkpoint ?? join(outDir, stage);
        if (result.reason === "interrupted" || result.reason === "max-minutes") {
          const why = result.reason === "interrupted"
            ? "Interrupted"
            : `Stopped after ${maxMinutes} min`;
          print(
            `${why}: ${stage} saved at step ${result.step} in ${where}; continue with --resume`,
          );
          break;
        }
        print(
          `${stage}: ${
            result.reason === "done" ? "finished" : "stopped"
          } at step ${result.step}; saved ${where}`,
        );
      }
    } finally {
      if (listening) Deno.removeSignalListener("SIGINT", onSigint);
    }
    return { outDir, results };
  } finally {
    lock.release();
    // A run that failed before writing anything leaves no empty folder behind.
    if (created) await Deno.remove(outDir).catch(() => {});
  }
}

if (import.meta.main) await runMain(runTrain);
