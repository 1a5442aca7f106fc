/**
 * DDIM sampling (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12) over a
 * respaced schedule, and the "ddim" sampler plugin.
 *
 * @module
 */
import { z } from "../../core/deps.ts";
import { definePlugin, type PluginDefinition } from "../../core/registry.ts";
import { add, affine, randn, type Tensor } from "../../core/tensor/mod.ts";
import type {
  NoisePredictor,
  PredictionType,
  Sampler,
  SamplerRunOptions,
} from "../../core/components.ts";
import {
  epsFromX0,
  type NoiseSchedule,
  predictX0,
  runReverse,
  scheduleFor,
} from "../../core/diffusion/mod.ts";

/** Options of one DDIM step. */
export interface DdimStepOptions {
  /** eta: 0 is deterministic DDIM, 1 matches DDPM's posterior (Song et al. 2021, eq. 16). */
  eta?: number;
  /** Clamp the predicted x_0 to [-1, 1] (default true). */
  clipDenoised?: boolean;
  /** What the network output is: "eps" (default) or "x0". */
  prediction?: PredictionType;
}

/**
 * sigma_t(eta) = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)
 * (Song et al. 2021, eq. 16) at step `i` of `schedule`.
 *
 * @example
 * ```ts
 * import { NoiseSchedule } from "../../core/diffusion/mod.ts";
 * import { cosineBetas } from "../schedules/cosine.ts";
 * const schedule = new NoiseSchedule(cosineBetas(10));
 * ddimSigma(schedule, 5, 1); // sqrt(schedule.posteriorVariance[5])
 * ```
 */
export function ddimSigma(schedule: NoiseSchedule, i: number, eta: number): number {
  const ab = schedule.alphaBar[i], prev = schedule.alphaBarPrev[i];
  return eta * Math.sqrt((1 - prev) / (1 - ab)) * Math.sqrt(1 - ab / prev);
}

/**
 * One DDIM step (Song et al. 2021, eq. 12): x_{t-1} = sqrt(abar_prev) x_0 +
 * sqrt(1 - abar_prev - sigma^2) eps + sigma z. When x_0 is clamped or is what the network
 * predicts, eps is computed from it (eq. 4 solved for eps) so the update stays consistent.
 * `noise` = null drops sigma z.
 *
 * @example
 * ```ts
 * import type { NoiseSchedule } from "../../core/diffusion/mod.ts";
 * import type { Tensor } from "../../core/tensor/mod.ts";
 * function next(x: Tensor, eps: Tensor, schedule: NoiseSchedule, i: number): Tensor {
 *   return ddimStep(x, eps, schedule, i, null, { eta: 0 });
 * }
 * ```
 */
export function ddimStep(
  xt: Tensor,
  output: Tensor,
  schedule: NoiseSchedule,
  i: number,
  noise: Tensor | null,
  options: DdimStepOptions = {},
): Tensor {
  const eta = options.eta ?? 0;
  const clip = options.clipDenoised ?? true;
  const prediction = options.prediction ?? "eps";
  const x0 = predictX0(xt, output, schedule, i, clip, prediction);
  const e = clip || prediction !== "eps" ? epsFromX0(xt, x0, schedule, i) : output;
  const prev = schedule.alphaBarPrev[i];
  const sigma = ddimSigma(schedule, i, eta);
  let x = add(
    affine(x0, Math.sqrt(prev), 0),
    affine(e, Math.sqrt(Math.max(0, 1 - prev - sigma * sigma)), 0),
  );
  if (i > 0 && noise && sigma > 0) x = add(x, affine(noise, sigma, 0));
  return x;
}

/** Options of the "ddim" sampler plugin. */
export const ddimOptions = z.object({
  steps: z.number().int().positive().optional()
    .describe("Respace to this many steps (default: all of the schedule's)"),
  eta: z.number().min(0).default(0).describe("0 = deterministic DDIM, 1 = DDPM-like noise"),
  clipDenoised: z.boolean().default(true).describe("Clamp the predicted x_0 to [-1, 1]"),
}).strict();

/**
 * DDIM sampler over `schedule.respace(steps)`; the predictor receives the ORIGINAL timestep
 * indices.
 */
export class DdimSampler implements Sampler {
  /** Plugin name. */
  readonly name = "ddim";
  /** Validated options. */
  readonly options: z.output<typeof ddimOptions>;

  /**
   * Creates the sampler; options are validated against `ddimOptions`.
   *
   * @example
   * ```ts
   * const sampler = new DdimSampler({ steps: 50, eta: 0 });
   * sampler.name; // "ddim"
   * ```
   */
  constructor(options: z.input<typeof ddimOptions> = {}) {
    this.options = ddimOptions.parse(options);
  }

  /**
   * Samples x_0 of `shape` (seed the global generator with `manualSeed` first).
   *
   * @example
   * ```ts
   * import type { NoisePredictor } from "../../core/components.ts";
   * import type { NoiseSchedule } from "../../core/diffusion/mod.ts";
   * function images(sampler: DdimSampler, predict: NoisePredictor, schedule: NoiseSchedule) {
   *   return sampler.sample(predict, [4, 3, 32, 32], schedule, { steps: 50 });
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
      eta: this.options.eta,
      clipDenoised: options.clipDenoised ?? this.options.clipDenoised,
      prediction: options.prediction,
    };
    return runReverse(
      shape,
      s.numSteps,
      (x, i) => {
        const noisy = i > 0 && opts.eta > 0;
        return ddimStep(x, predict(x, s.timesteps[i]), s, i, noisy ? randn(shape) : null, opts);
      },
      options.onStep,
    );
  }
}

/** The "ddim" sampler plugin. */
export const ddimSampler: PluginDefinition<"sampler", typeof ddimOptions, DdimSampler> =
  definePlugin({
    kind: "sampler",
    name: "ddim",
    description: "DDIM (Song et al. 2021, eq. 12) with eta and respacing",
    options: ddimOptions,
    create: (o) => new DdimSampler(o),
  });
