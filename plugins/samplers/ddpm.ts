/**
 * Ancestral DDPM sampling with the fixed posterior variance beta-tilde (thesis Algorithm 3;
 * Ho et al. 2020, Algorithm 2), optionally over a respaced schedule (Nichol & Dhariwal 2021,
 * section 4), and the "ddpm" sampler plugin.
 *
 * @module
 */
import { z } from "../../core/deps.ts";
import { definePlugin, type PluginDefinition } from "../../core/registry.ts";
import {
  add,
  affine,
  clamp,
  noGrad,
  randn,
  scope,
  sub,
  type Tensor,
} from "../../core/tensor/mod.ts";
import type { NoisePredictor, Sampler, SamplerRunOptions } from "../../core/components.ts";
import type { NoiseSchedule } from "../../core/diffusion/mod.ts";

/** Options of one DDPM step. */
export interface DdpmStepOptions {
  /** Clamp the predicted x_0 to [-1, 1] before the posterior mean (default true). */
  clipDenoised?: boolean;
  /** Clamp the new x_{t-1} to [-1, 1], as the thesis' Algorithm 3 does (default false). */
  clampXt?: boolean;
}

/**
 * x_0 predicted from x_t and eps at step `i` of `schedule`: x_0 = (x_t - sqrt(1 - abar_t) eps) /
 * sqrt(abar_t) (eq. 2.4 solved for x_0), optionally clamped to [-1, 1].
 *
 * @example
 * ```ts
 * import type { NoiseSchedule } from "../../core/diffusion/mod.ts";
 * import type { Tensor } from "../../core/tensor/mod.ts";
 * function x0(xt: Tensor, eps: Tensor, schedule: NoiseSchedule): Tensor {
 *   return predictX0(xt, eps, schedule, 10, true);
 * }
 * ```
 */
export function predictX0(
  xt: Tensor,
  eps: Tensor,
  schedule: NoiseSchedule,
  i: number,
  clip: boolean,
): Tensor {
  checkStep(schedule, i);
  const x0 = sub(
    affine(xt, schedule.sqrtRecipAlphaBar[i], 0),
    affine(eps, schedule.sqrtRecipM1AlphaBar[i], 0),
  );
  return clip ? clamp(x0, -1, 1) : x0;
}

/**
 * One reverse step x_t -> x_{t-1} at step `i` of `schedule`: the posterior mean mu-tilde(x_t, x_0)
 * = c1 x_0 + c2 x_t (thesis eq. 2.8) plus sqrt(beta-tilde_t) * noise (eq. 2.9; no noise at i = 0).
 * With no clamping this equals Algorithm 3's 1/sqrt(alpha_t) (x_t - beta_t / sqrt(1 - abar_t)
 * eps) (eq. 2.15). Pass `noise` = null for the mean alone.
 *
 * @example
 * ```ts
 * import type { NoiseSchedule } from "../../core/diffusion/mod.ts";
 * import { randn, type Tensor } from "../../core/tensor/mod.ts";
 * function next(x: Tensor, eps: Tensor, schedule: NoiseSchedule, i: number): Tensor {
 *   return ddpmStep(x, eps, schedule, i, randn(x.shape));
 * }
 * ```
 */
export function ddpmStep(
  xt: Tensor,
  eps: Tensor,
  schedule: NoiseSchedule,
  i: number,
  noise: Tensor | null,
  options: DdpmStepOptions = {},
): Tensor {
  const x0 = predictX0(xt, eps, schedule, i, options.clipDenoised ?? true);
  let x = add(
    affine(x0, schedule.posteriorMeanCoef1[i], 0),
    affine(xt, schedule.posteriorMeanCoef2[i], 0),
  );
  if (i > 0 && noise) x = add(x, affine(noise, Math.sqrt(schedule.posteriorVariance[i]), 0));
  return options.clampXt ? clamp(x, -1, 1) : x;
}

/** Throws unless `i` is a step of `schedule`. */
export function checkStep(schedule: NoiseSchedule, i: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= schedule.numSteps) {
    throw new RangeError(`Step "${i}" is out of range 0..${schedule.numSteps - 1}`);
  }
}

/**
 * Runs `step(x, i)` for i = n-1..0 from x_T ~ N(0, I): each step under `noGrad` in its own
 * `scope`, keeping only the new x (shared by the DDPM and DDIM samplers).
 *
 * @example
 * ```ts
 * function identity() {
 *   return runReverse([1, 3, 8, 8], 10, (x) => x); // the starting noise, after 10 steps
 * }
 * ```
 */
export function runReverse(
  shape: number[],
  steps: number,
  step: (x: Tensor, i: number) => Tensor,
  onStep?: (step: number, total: number) => void,
): Tensor {
  let x = noGrad(() => randn(shape)).keep();
  for (let i = steps - 1; i >= 0; i--) {
    const prev = x;
    x = scope(() => noGrad(() => step(prev, i))).keep();
    prev.dispose();
    onStep?.(steps - i, steps);
  }
  return x;
}

/** Resolves the run's step count to a schedule (respaced when fewer steps are asked for). */
export function scheduleFor(schedule: NoiseSchedule, steps?: number): NoiseSchedule {
  return steps === undefined || steps === schedule.numSteps ? schedule : schedule.respace(steps);
}

/** Options of the "ddpm" sampler plugin. */
export const ddpmOptions = z.object({
  steps: z.number().int().positive().optional()
    .describe("Respace to this many steps (default: all of the schedule's)"),
  clipDenoised: z.boolean().default(true).describe("Clamp the predicted x_0 to [-1, 1]"),
  clampXt: z.boolean().default(false).describe("Clamp x_{t-1} to [-1, 1] (the thesis' choice)"),
}).strict();

/**
 * The ancestral sampler of thesis Algorithm 3. The predictor receives the ORIGINAL timestep
 * index of each (possibly respaced) step.
 */
export class DdpmSampler implements Sampler {
  /** Plugin name. */
  readonly name = "ddpm";
  /** Validated options. */
  readonly options: z.output<typeof ddpmOptions>;

  /**
   * Creates the sampler; options are validated against `ddpmOptions`.
   *
   * @example
   * ```ts
   * const sampler = new DdpmSampler({ clipDenoised: true, clampXt: false });
   * sampler.name; // "ddpm"
   * ```
   */
  constructor(options: z.input<typeof ddpmOptions> = {}) {
    this.options = ddpmOptions.parse(options);
  }

  /**
   * Samples x_0 of `shape` (seed the global generator with `manualSeed` first).
   *
   * @example
   * ```ts
   * import type { Decoder, DecoderConditioning } from "../../core/components.ts";
   * import type { NoiseSchedule } from "../../core/diffusion/mod.ts";
   * import { full } from "../../core/tensor/mod.ts";
   * function images(unet: Decoder, cond: DecoderConditioning, schedule: NoiseSchedule) {
   *   const sampler = new DdpmSampler({ clipDenoised: true, clampXt: false });
   *   return sampler.sample((x, t) => unet.predictNoise(x, full([4], t), cond), [4, 3, 32, 32], schedule);
   * }
   * ```
   */
  sample(
    predict: NoisePredictor,
    shape: number[],
    schedule: NoiseSchedule,
    options: SamplerRunOptions = {},
  ): Tensor {
    const s = scheduleFor(schedule, options.steps ?? this.options.steps);
    const opts = {
      clipDenoised: options.clipDenoised ?? this.options.clipDenoised,
      clampXt: this.options.clampXt,
    };
    return runReverse(
      shape,
      s.numSteps,
      (x, i) => ddpmStep(x, predict(x, s.timesteps[i]), s, i, i > 0 ? randn(shape) : null, opts),
      options.onStep,
    );
  }
}

/** The "ddpm" sampler plugin. */
export const ddpmSampler: PluginDefinition<"sampler", typeof ddpmOptions, DdpmSampler> =
  definePlugin({
    kind: "sampler",
    name: "ddpm",
    description: "Ancestral DDPM sampling, fixed variance beta-tilde (thesis Algorithm 3)",
    options: ddpmOptions,
    create: (o) => new DdpmSampler(o),
  });
