/**
 * Human-readable progress lines: step, loss, steps per second and time left.
 *
 * @module
 */

/**
 * Formats seconds as "1h02m", "3m05s" or "12s".
 *
 * @example
 * ```ts
 * formatDuration(185); // "3m05s"
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const two = (n: number): string => String(n).padStart(2, "0");
  if (h > 0) return `${h}h${two(m)}m`;
  if (m > 0) return `${m}m${two(r)}s`;
  return `${r}s`;
}

/** What one progress line shows. */
export interface ProgressInfo {
  stage: string;
  /** Steps completed. */
  step: number;
  /** The step the run stops at. */
  target: number;
  loss: number;
  lr: number;
  stepsPerSecond: number;
}

/**
 * One progress line: `clip  step 120/2200  loss 1.2345  lr 3.0e-4  3.21 steps/s  ETA 10m48s`.
 *
 * @example
 * ```ts
 * progressLine({ stage: "clip", step: 10, target: 20, loss: 1, lr: 3e-4, stepsPerSecond: 2 });
 * ```
 */
export function progressLine(p: ProgressInfo): string {
  const width = String(p.target).length;
  const eta = p.stepsPerSecond > 0 ? (p.target - p.step) / p.stepsPerSecond : Infinity;
  const rate = p.stepsPerSecond >= 10 ? p.stepsPerSecond.toFixed(1) : p.stepsPerSecond.toFixed(2);
  return `${p.stage.padEnd(7)} step ${String(p.step).padStart(width)}/${p.target}  ` +
    `loss ${p.loss.toPrecision(5)}  lr ${p.lr.toExponential(1)}  ${rate} steps/s  ` +
    `ETA ${formatDuration(eta)}`;
}

/**
 * Measures the step rate over the window since the last `lap()`.
 *
 * @example
 * ```ts
 * const meter = new RateMeter(0);
 * // ... 10 steps later
 * meter.lap(10); // steps per second over the window
 * ```
 */
export class RateMeter {
  #step: number;
  #time: number;

  /** Starts measuring at `step`. */
  constructor(step: number, now: number = performance.now()) {
    this.#step = step;
    this.#time = now;
  }

  /**
   * Steps per second since the previous lap; starts a new window.
   *
   * @example
   * ```ts
   * const meter = new RateMeter(0);
   * meter.lap(20); // steps per second since step 0
   * ```
   */
  lap(step: number, now: number = performance.now()): number {
    const dt = (now - this.#time) / 1000;
    const rate = dt > 0 ? (step - this.#step) / dt : 0;
    this.reset(step, now);
    return rate;
  }

  /**
   * Starts a new window at `step` without reporting a rate: the time since the previous lap
   * (writing a checkpoint, say) is left out of the next one.
   */
  reset(step: number, now: number = performance.now()): void {
    this.#step = step;
    this.#time = now;
  }
}
