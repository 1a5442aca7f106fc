/**
 * The training loop shared by every stage: Adam with the config's learning-rate schedule (and its
 * warm restarts, `cycles.ts`), global gradient clipping, EMA, one `scope` per step (flat GPU
 * memory, no readback inside a step), the loss read back only every `logEvery` steps, JSONL
 * metrics, periodic atomic checkpoints, exact resume, and graceful stops (Ctrl-C, --max-minutes).
 *
 * @module
 */
import { join } from "node:path";
import { type ResolvedConfig, stageTrain, type TrainStage } from "../config.ts";
import { Adam, Ema, emaWarmupNote, gradNorm } from "../optim/mod.ts";
import {
  add,
  getRngState,
  noGrad,
  reshape,
  scope,
  setRngState,
  type Tensor,
  zeros,
} from "../tensor/mod.ts";
import { deriveSeed } from "../data/rng.ts";
import {
  CHECKPOINT_FORMAT_VERSION,
  type LoadedCheckpoint,
  loadModuleWeights,
  loadTrainingState,
  type ResumeState,
  saveCheckpoint,
} from "./checkpoint.ts";
import { cycleAt, cycleLearningRate, totalSteps, trainCycles } from "./cycles.ts";
import { MetricsLog } from "./metrics.ts";
import { progressLine, RateMeter } from "./progress.ts";
import type { StageSetup } from "./stages.ts";

/** Why a training run stopped. */
export type StopReason = "done" | "max-steps" | "max-minutes" | "interrupted";

/** Options of `trainLoop`. */
export interface TrainLoopOptions {
  stage: TrainStage;
  config: ResolvedConfig;
  setup: StageSetup;
  /** The stage folder (`<out>/<stage>`). */
  stageDir: string;
  /** The checkpoint to continue from (weights, optimizer, EMA, RNG, step). */
  resumeFrom?: LoadedCheckpoint | null;
  /** Stop once this many steps are done (counted from 0, resumed steps included). */
  maxSteps?: number;
  /** Stop (and save) after this many minutes of this run. */
  maxMinutes?: number;
  /** Where progress lines go (default console.log). */
  print?: (line: string) => void;
  /** Set `.stop = true` to finish the current step, save and return (Ctrl-C does this). */
  stopFlag?: { stop: boolean };
  /** Called after every step (and its logging and checkpointing), e.g. for diagnostics. */
  onStep?: (step: number) => void;
}

/** What `trainLoop` did. */
export interface TrainLoopResult {
  stage: TrainStage;
  /** Steps completed. */
  step: number;
  reason: StopReason;
  /** The step folder saved last. */
  checkpoint: string | null;
  /** The mean loss of the last logged window (NaN when nothing was logged). */
  lastLoss: number;
}

/**
 * Trains one stage to `config.train[stage].steps` plus its restarts' (or `maxSteps`), saving
 * checkpoints every `checkpointEvery` steps and at the end. The learning rate follows
 * `learningRateAt` over each cycle's full step count, so a run stopped early and resumed follows
 * the same curve. A restart's first step starts from the EMA weights with a fresh optimizer and
 * EMA, the random state as right after the model was built, and the batches from the first.
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../config.ts";
 * import type { Registry } from "../registry.ts";
 * import { setupStage } from "./stages.ts";
 * async function trainClip(config: ResolvedConfig, registry: Registry, outDir: string) {
 *   const setup = await setupStage("clip", { config, registry, outDir });
 *   return await trainLoop({ stage: "clip", config, setup, stageDir: `${outDir}/clip` });
 * }
 * ```
 */
export async function trainLoop(options: TrainLoopOptions): Promise<TrainLoopResult> {
  const { stage, config, setup, stageDir } = options;
  const print = options.print ?? ((line: string) => console.log(line));
  const train = stageTrain(config, stage);
  const cycles = trainCycles(train);
  const total = totalSteps(train);
  const target = Math.min(total, options.maxSteps ?? Infinity);
  const model = setup.model;
  const params = model.parameters();
  model.train();
  // The random state right after the model was built: where each restart's draws start again,
  // as those of a run started by `train --init-from`.
  const rngAtBuild = getRngState();
  const newOptimizer = (): Adam =>
    new Adam(params, {
      lr: train.lr,
      beta1: train.beta1,
      beta2: train.beta2,
      eps: train.eps,
      weightDecay: train.weightDecay,
      // AdamW (Loshchilov & Hutter 2019): decay applied to the weights, not added to the gradient.
      decoupled: true,
    });
  // Warmup (`emaWarmup`, default on), decay_n = min(decay, (1 + n) / (10 + n)): without it a
  // 0.9999 average of a 10K-step run would still hold 37% of the random initialisation ("only
  // noise after training"). With it a decay d takes effect only after (10d - 1) / (1 - d) updates.
  const warmup = train.emaWarmup;
  const newEma = (): Ema | null =>
    train.ema !== null ? new Ema(params, train.ema, { warmup }) : null;
  // Further decays to compare from this one run (`extraEma`); saved, never sampled with.
  const newExtraEmas = (): Ema[] =>
    train.extraEma.map((decay) => new Ema(params, decay, { warmup }));
  let optimizer = newOptimizer();
  let ema = newEma();
  let extraEmas = newExtraEmas();
  let step = 0;
  let elapsedBefore = 0;
  const resume = options.resumeFrom;
  if (resume) {
    loadModuleWeights(model, resume);
    const extras = loadTrainingState(resume, model, optimizer, ema, extraEmas);
    // At a restart's first step every EMA starts afresh anyway (with its warm-up).
    const next = cycleAt(cycles, resume.resume.step);
    const restarting = next.index > 0 && next.start === resume.resume.step;
    for (const decay of restarting ? [] : extras.started) {
      print(
        `${stage}: EMA ${decay} is not in the checkpoint; it starts at step ` +
          `${resume.resume.step}, from these weights, without warm-up`,
      );
    }
    for (const decay of extras.dropped) {
      print(`${stage}: EMA ${decay} is in the checkpoint but not in extraEma; no longer kept`);
    }
    setRngState(resume.resume.rng);
    step = resume.resume.step;
    elapsedBefore = resume.resume.elapsedSeconds ?? 0;
    print(`${stage}: resuming from step ${step} (${resume.dir})`);
  }
  // Decays the warm-up never hands over to: each such EMA is the warm-up's own average, so several
  // of them (extraEma from a fresh start) would all be the same one. One started on resume has no
  // warm-up (its flag, restored above, says so) and is not named.
  // Each cycle's EMAs start afresh: a decay the longest cycle never reaches, none reaches.
  const longest = Math.max(...cycles.map((c) => c.steps));
  const warmupNote = emaWarmupNote(
    stage,
    [...(ema ? [ema] : []), ...extraEmas],
    longest,
    cycles.length,
  );
  if (warmupNote) print(warmupNote);
  await Deno.mkdir(stageDir, { recursive: true });
  const metrics = await MetricsLog.open(join(stageDir, "metrics.jsonl"), { truncateAfter: step });

  const stopFlag = options.stopFlag ?? { stop: false };
  const start = performance.now();
  const elapsed = (): number => elapsedBefore + (performance.now() - start) / 1000;
  const lrAt = (s: number): number => cycleLearningRate(cycles, train.lrSchedule, s);

  // A warm restart (SGDR): the EMA weights (the raw ones without an EMA) become the weights, and
  // the optimizer, the EMAs and the random state start afresh, as in a run started from this one
  // by `train --init-from` (core/train/stages.ts, setupStage).
  const restart = (index: number): void => {
    ema?.copyTo();
    optimizer.dispose();
    ema?.dispose();
    for (const extra of extraEmas) extra.dispose();
    optimizer = newOptimizer();
    ema = newEma();
    extraEmas = newExtraEmas();
    setRngState(rngAtBuild);
    const c = cycles[index];
    print(
      `${stage}: warm restart ${index} of ${cycles.length - 1} at step ${step}: ` +
        `${ema ? "from the EMA weights, " : ""}${c.steps} steps at lr ${c.lr}` +
        `${c.warmupSteps ? ` after ${c.warmupSteps} warmup steps` : ""}; a fresh optimizer` +
        `${ema ? " and EMA" : ""}`,
    );
  };

  let lossSum: Tensor = zeros([1]).keep();
  let windowSteps = 0;
  let lastLoss = NaN;
  let lastSaved: string | null = null;
  // A resumed checkpoint is already saved: stopping right away must not rewrite it.
  let savedStep = resume ? step : -1;
  const meter = new RateMeter(step);

  const save = async (): Promise<void> => {
    // Check the loss first: a diverged model must never become the latest checkpoint.
    await flushLog();
    const state: ResumeState = {
      step,
      rng: getRngState(),
      // Cycle-relative: at a cycle's end, the next cycle's first batch.
      loaderStep: step - cycleAt(cycles, step).start,
      hostSeed: deriveSeed(train.seed, stage),
      elapsedSeconds: elapsed(),
    };
    lastSaved = await saveCheckpoint({
      stageDir,
      meta: {
        formatVersion: CHECKPOINT_FORMAT_VERSION,
        stage,
        step,
        config,
        tokenizer: setup.tokenizer?.toJSON() ?? null,
        clip: setup.clip,
        ...(setup.initFrom ? { initFrom: setup.initFrom } : {}),
      },
      model,
      optimizer,
      ema,
      extraEmas,
      resume: state,
      keepLast: train.keepLast,
      // Each cycle's last step is kept, as the runs of a three-command recipe would be.
      keepSteps: cycles.slice(1).map((c) => c.start),
    });
    savedStep = step;
    // flushLog has just closed the rate window: the time spent writing is not training.
    meter.reset(step);
  };

  const flushLog = async (): Promise<void> => {
    if (windowSteps === 0) return;
    const sum = (await lossSum.read() as Float32Array)[0];
    lastLoss = sum / windowSteps;
    lossSum.dispose();
    lossSum = zeros([1]).keep();
    windowSteps = 0;
    const rate = meter.lap(step);
    const lr = lrAt(step - 1);
    print(progressLine({ stage, step, target, loss: lastLoss, lr, stepsPerSecond: rate }));
    await metrics.append({
      stage,
      step,
      loss: lastLoss,
      lr,
      stepsPerSecond: rate,
      elapsedSeconds: elapsed(),
      time: new Date().toISOString(),
    });
    if (!Number.isFinite(lastLoss)) {
      throw new Error(
        `The ${stage} loss became "${lastLoss}" at step ${step}; lower the learning rate ` +
          `(train.${stage}.lr = ${train.lr}) or resume from an earlier checkpoint`,
      );
    }
  };

  let lastYield = performance.now();
  let reason: StopReason = target >= total ? "done" : "max-steps";
  try {
    while (step < target) {
      const cycle = cycleAt(cycles, step);
      // A checkpoint at a cycle's first step holds the end of the cycle before: restart here.
      if (cycle.index > 0 && step === cycle.start) restart(cycle.index);
      // Batches and step-seeded draws count from the cycle's start, as in a run of its own.
      const index = step - cycle.start;
      const batch = setup.loader.batch(index);
      const lr = lrAt(step);
      const next = scope(() => {
        const loss = setup.loss(batch, index);
        loss.backward();
        // Clipping by the global norm, folded into the update (Adam.step): no launches of its own.
        const clip = train.gradClip === null
          ? undefined
          : { norm: gradNorm(params), maxNorm: train.gradClip };
        optimizer.step(lr, clip);
        optimizer.zeroGrad();
        setup.afterStep?.();
        ema?.update();
        for (const extra of extraEmas) extra.update();
        return noGrad(() => add(lossSum, reshape(loss, [1])));
      }).keep();
      lossSum.dispose();
      lossSum = next;
      windowSteps++;
      step++;
      // Steps run synchronously; yield to the event loop now and then so that a Ctrl-C (a
      // signal event) is seen after the current step rather than at the next log line.
      if (performance.now() - lastYield > 100) {
        await new Promise((resolve) => setTimeout(resolve, 0));
        lastYield = performance.now();
      }
      // Logs and checkpoints follow each cycle's own count, and every cycle's end is saved.
      const done = step - cycle.start;
      const cycleEnd = done === cycle.steps;
      if (done % train.logEvery === 0 || step === target || cycleEnd) await flushLog();
      if ((done % train.checkpointEvery === 0 || cycleEnd) && step < target) await save();
      options.onStep?.(step);
      if (stopFlag.stop) {
        reason = "interrupted";
        break;
      }
      if (
        options.maxMinutes !== undefined &&
        (performance.now() - start) / 60000 >= options.maxMinutes
      ) {
        reason = "max-minutes";
        break;
      }
    }
    await flushLog();
    if (savedStep !== step) await save();
  } finally {
    lossSum.dispose();
    optimizer.dispose();
    ema?.dispose();
    for (const extra of extraEmas) extra.dispose();
  }
  return { stage, step, reason, checkpoint: lastSaved, lastLoss };
}
