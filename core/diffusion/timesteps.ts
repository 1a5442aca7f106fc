/**
 * Which diffusion timestep each training sample gets. The thesis draws t uniformly (Algorithm 2;
 * Ho et al. 2020); Esser et al. 2024 ("Scaling Rectified Flow Transformers for High-Resolution
 * Image Synthesis", section 3.1) draw it logit-normally, spending more of the training on the
 * middle noise levels, where the image's layout is decided, and less on nearly clean or nearly
 * pure-noise inputs. Their density is over the rectified-flow time t_rf (z = (1 - t_rf) x_0 +
 * t_rf eps), whose log-SNR is lambda = 2 log((1 - t_rf) / t_rf) = -2 logit(t_rf); so
 * logit(t_rf) ~ N(m, s^2) is lambda ~ N(-2m, (2s)^2), which carries over to any schedule: step i
 * gets the probability of the lambda interval around its own log-SNR.
 *
 * @module
 */
import {
  erfApprox,
  greaterEqual,
  rand,
  reshape,
  sum,
  type Tensor,
  unsqueeze,
} from "../tensor/mod.ts";
import { derivedTable, randomSteps } from "./process.ts";
import type { NoiseSchedule } from "./schedule.ts";

/** The logit-normal distribution of Esser et al. 2024: logit(t_rf) ~ N(mean, std^2). */
export interface LogitNormal {
  /** m: 0 in their best setting; positive values favour noisier steps. */
  mean: number;
  /** s > 0: 1 in their best setting; larger values approach their heavier-tailed variants. */
  std: number;
}

/** Standard normal CDF, with the infinities of the outermost steps' intervals. */
function normalCdf(x: number): number {
  if (x === Infinity) return 1;
  if (x === -Infinity) return 0;
  return 0.5 * (1 + erfApprox(x / Math.SQRT2));
}

/**
 * The probability of each of `schedule`'s steps under `dist`: the log-SNR lambda_i =
 * log(abar_i / (1 - abar_i)) falls with i, and step i takes the lambda ~ N(-2m, (2s)^2) mass
 * between the midpoints to its neighbours (the first and last steps take the tails).
 *
 * @example
 * ```ts
 * import { NoiseSchedule } from "./schedule.ts";
 * const schedule = new NoiseSchedule(new Float64Array(100).fill(0.02));
 * logitNormalStepProbabilities(schedule, { mean: 0, std: 1 }).reduce((a, b) => a + b); // 1
 * ```
 */
export function logitNormalStepProbabilities(
  schedule: NoiseSchedule,
  dist: LogitNormal,
): Float64Array {
  checkLogitNormal(dist);
  const T = schedule.numSteps;
  const lambda = Array.from(schedule.alphaBar, (a) => Math.log(a / (1 - a)));
  const mu = -2 * dist.mean, sigma = 2 * dist.std;
  // Upper edge of step i's lambda interval, as a CDF value (P(lambda < edge)).
  const upper = (i: number) =>
    i === 0 ? 1 : normalCdf(((lambda[i - 1] + lambda[i]) / 2 - mu) / sigma);
  const p = new Float64Array(T);
  for (let i = 0; i < T; i++) p[i] = Math.max(0, upper(i) - (i === T - 1 ? 0 : upper(i + 1)));
  const total = p.reduce((a, b) => a + b, 0);
  return p.map((x) => x / total);
}

/** Throws a RangeError unless `dist` has a finite mean and a finite positive std. */
export function checkLogitNormal(dist: LogitNormal): void {
  if (!Number.isFinite(dist.mean) || !Number.isFinite(dist.std) || dist.std <= 0) {
    throw new RangeError(
      `A logit-normal timestep distribution needs a finite mean and a positive std ` +
        `(got mean ${dist.mean}, std ${dist.std})`,
    );
  }
}

/**
 * Step indices f32 [B] for a training batch: uniform over 0..T-1 (`randomSteps`, thesis
 * Algorithm 2) when `dist` is null, else logit-normal (Esser et al. 2024) by inverse CDF on the
 * device: t = the number of steps k whose cumulative probability P(t <= k) is at most u, for
 * u ~ U[0, 1) from the engine's seeded generator (the CDF table is uploaded once per schedule).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function steps(schedule: NoiseSchedule): Tensor {
 *   return drawTimesteps(32, schedule, { mean: 0, std: 1 }); // f32 [32]
 * }
 * ```
 */
export function drawTimesteps(
  batch: number,
  schedule: NoiseSchedule,
  dist: LogitNormal | null,
): Tensor {
  if (dist === null) return randomSteps(batch, schedule.numSteps);
  const cdf = derivedTable(schedule, `logitNormalCdf${dist.mean},${dist.std}`, () => {
    const p = logitNormalStepProbabilities(schedule, dist);
    const c = new Float32Array(p.length);
    let run = 0;
    for (let i = 0; i < p.length; i++) c[i] = run += p[i];
    c[p.length - 1] = 2; // never reached by u < 1, whatever the rounding of the sum
    return c;
  });
  const u = unsqueeze(rand([batch]), 1); // [B, 1]
  return sum(greaterEqual(u, reshape(cdf, [1, schedule.numSteps])), 1);
}
