/**
 * A stage's learning-rate cycles: its own `steps` at `lr`, then each of its `restarts` (warm
 * restarts, SGDR: Loshchilov & Hutter 2017, section 3). Steps are counted over all cycles (a
 * checkpoint's step, the metrics, --max-steps); within a cycle, the learning rate, the batch order
 * and the step-seeded randomness start again from 0, so a run with restarts trains exactly as a
 * finished run continued by `train --init-from` once per restart, in one resumable command.
 *
 * @module
 */
import type { TrainStageConfig } from "../config.ts";
import { learningRateAt } from "../optim/mod.ts";

/** One learning-rate cycle of a stage. */
export interface TrainCycle {
  /** 0 for the stage's own cycle, k for its k-th restart. */
  index: number;
  /** The first step of the cycle, counted over all cycles. */
  start: number;
  steps: number;
  lr: number;
  warmupSteps: number;
}

/**
 * The stage's cycles in order: its own, then one per restart (its `lr` and `warmupSteps` the
 * stage's unless the restart sets them).
 *
 * @example
 * ```ts
 * import { TRAIN_DEFAULTS } from "../config.ts";
 * const train = { ...TRAIN_DEFAULTS.decoder, steps: 7000, restarts: [{ steps: 3000, lr: 5e-4 }] };
 * trainCycles(train).map((c) => c.start); // [0, 7000]
 * ```
 */
export function trainCycles(train: TrainStageConfig): TrainCycle[] {
  const cycles: TrainCycle[] = [{
    index: 0,
    start: 0,
    steps: train.steps,
    lr: train.lr,
    warmupSteps: train.warmupSteps,
  }];
  let start = train.steps;
  (train.restarts ?? []).forEach((r, i) => {
    cycles.push({
      index: i + 1,
      start,
      steps: r.steps,
      lr: r.lr ?? train.lr,
      warmupSteps: r.warmupSteps ?? train.warmupSteps,
    });
    start += r.steps;
  });
  return cycles;
}

/**
 * The steps of all the stage's cycles together: where its training is done.
 *
 * @example
 * ```ts
 * import { TRAIN_DEFAULTS } from "../config.ts";
 * totalSteps({ ...TRAIN_DEFAULTS.decoder, steps: 7000, restarts: [{ steps: 3000 }] }); // 10000
 * ```
 */
export function totalSteps(train: TrainStageConfig): number {
  const last = trainCycles(train).at(-1)!;
  return last.start + last.steps;
}

/**
 * The cycle that holds 0-based `step` (the last one for a step past the end).
 *
 * @example
 * ```ts
 * import { TRAIN_DEFAULTS } from "../config.ts";
 * const cycles = trainCycles({ ...TRAIN_DEFAULTS.decoder, steps: 10, restarts: [{ steps: 5 }] });
 * cycleAt(cycles, 9).index; // 0
 * cycleAt(cycles, 10).index; // 1: the restart's first step
 * ```
 */
export function cycleAt(cycles: readonly TrainCycle[], step: number): TrainCycle {
  let found = cycles[0];
  for (const c of cycles) if (c.start <= step) found = c;
  return found;
}

/**
 * The learning rate of 0-based `step` counted over all cycles: the stage's schedule (`lrSchedule`)
 * over the cycle that holds it, from that cycle's start.
 *
 * @example
 * ```ts
 * import { TRAIN_DEFAULTS } from "../config.ts";
 * const train = {
 *   ...TRAIN_DEFAULTS.decoder, steps: 100, lr: 1e-3, lrSchedule: "cosine" as const,
 *   restarts: [{ steps: 50, lr: 5e-4 }],
 * };
 * cycleLearningRate(trainCycles(train), train.lrSchedule, 100); // 5e-4: the restart's peak
 * ```
 */
export function cycleLearningRate(
  cycles: readonly TrainCycle[],
  schedule: TrainStageConfig["lrSchedule"],
  step: number,
): number {
  const c = cycleAt(cycles, step);
  return learningRateAt(step - c.start, {
    lr: c.lr,
    warmupSteps: c.warmupSteps,
    totalSteps: c.steps,
    schedule,
  });
}

/**
 * Why a checkpoint at `step`, trained with the cycles of `stored`, cannot go on with those of
 * `current` (a one-line reason), or null when it can. The cycles already trained must stay as
 * they were: every cycle before the one holding the checkpoint's last step keeps its length, peak
 * and warmup, and that cycle keeps its start, peak and warmup and may be lengthened, or shortened
 * down to `step`; later restarts may be changed, added or removed. (So `steps` may still change
 * while the run is in its first cycle, as it could before restarts existed.)
 *
 * @example
 * ```ts
 * import { TRAIN_DEFAULTS } from "../config.ts";
 * const was = { ...TRAIN_DEFAULTS.decoder, steps: 7000 };
 * const now = { ...was, restarts: [{ steps: 3000 }] };
 * resumeCyclesProblem("decoder", was, now, 7000); // null: a finished run goes on with a restart
 * resumeCyclesProblem("decoder", was, { ...now, steps: 6000 }, 7000); // its first cycle ended at
 * //   step 7000, this config ends it at 6000 ...
 * ```
 */
export function resumeCyclesProblem(
  stage: string,
  stored: TrainStageConfig,
  current: TrainStageConfig,
  step: number,
): string | null {
  const was = trainCycles(stored);
  const now = trainCycles(current);
  // The cycle of the last completed step: a checkpoint at a cycle's start is the end of the one
  // before it.
  const k = step > 0 ? cycleAt(was, step - 1).index : 0;
  const name = (i: number): string =>
    i === 0 ? `its first cycle (train.${stage}.steps)` : `warm restart ${i} (restarts[${i - 1}])`;
  const fix = "keep the cycles it has trained as they were, or start a new run with --init-from";
  if (now.length <= k) {
    return `${stage}: the checkpoint's step ${step} lies in ${name(k)}, which this config no ` +
      `longer has; ${fix}`;
  }
  for (let i = 0; i <= k; i++) {
    const [a, b] = [was[i], now[i]];
    const changed = (["start", "lr", "warmupSteps"] as const).find((f) => a[f] !== b[f]) ??
      (i < k && a.steps !== b.steps ? "steps" : undefined);
    if (changed) {
      return `${stage}: the checkpoint's step ${step} comes after ${name(i)}, whose ${changed} ` +
        `this config changes from ${a[changed]} to ${b[changed]}; ${fix}`;
    }
  }
  if (now[k].start + now[k].steps < step) {
    return `${stage}: ${name(k)} ended at step ${step} or later in the checkpoint, this config ` +
      `ends it at ${now[k].start + now[k].steps}; ${fix}`;
  }
  return null;
}
