/**
 * Learning-rate schedules: linear warmup (Goyal et al. 2017) followed by a constant rate or a
 * cosine decay to `minLr` (Loshchilov & Hutter 2017, SGDR without restarts).
 */

/** Schedule settings for `learningRateAt`. */
export interface LrScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  /** Steps of linear warmup (0 = none). */
  warmupSteps?: number;
  /** Total training steps (the cosine reaches `minLr` here). */
  totalSteps?: number;
  /** After warmup: keep `lr`, or decay along a half cosine. Default "constant". */
  schedule?: "constant" | "cosine";
  /** Floor of the cosine decay (default 0). */
  minLr?: number;
}

/**
 * The learning rate for 0-based `step`. Warmup ramps linearly: lr * (step + 1) / warmupSteps, so
 * the first step already moves and step warmupSteps - 1 uses the full rate. Cosine decay then
 * follows minLr + (lr - minLr) * (1 + cos(pi * p)) / 2 with p = (step - warmupSteps) /
 * (totalSteps - warmupSteps), clamped to [0, 1].
 *
 * @example
 * ```ts
 * const opts = { lr: 3e-4, warmupSteps: 100, totalSteps: 10000, schedule: "cosine" } as const;
 * learningRateAt(0, opts); // 3e-6: the first warmup step already moves
 * learningRateAt(99, opts); // 3e-4: the full rate at the end of the warmup
 * learningRateAt(10000, opts); // 0: the cosine has reached minLr
 * ```
 *
 * With an optimizer, each step's rate is passed to `step`:
 *
 * ```ts
 * import type { Adam } from "./adam.ts";
 * function scheduledStep(opt: Adam, step: number): void {
 *   opt.step(learningRateAt(step, { lr: 3e-4, warmupSteps: 100 }));
 * }
 * ```
 */
export function learningRateAt(step: number, opts: LrScheduleOptions): number {
  const { lr, warmupSteps = 0, schedule = "constant", minLr = 0 } = opts;
  if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
  if (schedule === "constant") return lr;
  if (schedule !== "cosine") throw new Error(`learningRateAt: unknown schedule "${schedule}".`);
  const total = opts.totalSteps;
  if (total === undefined || total <= warmupSteps) {
    throw new Error(
      `learningRateAt: the cosine schedule needs totalSteps > warmupSteps (got ${total} and ${warmupSteps}).`,
    );
  }
  const p = Math.min(1, Math.max(0, (step - warmupSteps) / (total - warmupSteps)));
  return minLr + ((lr - minLr) * (1 + Math.cos(Math.PI * p))) / 2;
}
