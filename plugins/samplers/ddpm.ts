/**
 * The "ddpm" sampler plugin: ancestral DDPM sampling with the fixed posterior variance
 * beta-tilde (thesis Algorithm 3; Ho et al. 2020, Algorithm 2), optionally over a respaced
 * schedule (Nichol & Dhariwal 2021, section 4). The step maths is core/diffusion/reverse.ts,
 * re-exported here.
 *
 * @module
 */
import { z } from "../../core/deps.ts";
import { definePlugin, type PluginDefinition } from "../../core/registry.ts";
import type { Tensor } from "../../core/tensor/mod.ts";
import type { NoisePredictor, Sampler, SamplerRunOptions } from "../../core/components.ts";
import { ancestralSample, type NoiseSchedule } from "../../core/diffusion/mod.ts";

export {
  checkStep,
  ddpmStep,
  type DdpmStepOptions,
  predictX0,
  runReverse,
  scheduleFor,
} from "../../core/diffusion/mod.ts";

/** Options of the "ddpm" sampler plugin. */
export const ddpmOptions = z.object({
  steps: z.number().int().positive().optional()
    .describe("Respace to this many steps (default: all of the schedule's)"),
  clipDenoised: z.boolean().default(true).describe("Clamp the predicted x_0 to [-1, 1]"),
  clampXt: z.boolean().default(false).describe("Clamp x_{t-1} to [-1, 1] (the thesis' choice)"),
  variance: z.enum(["small", "large"]).default("small")
    .describe("Each step's fixed variance: small = beta-tilde_t (thesis eq. 2.9), large = beta_t"),
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
    return ancestralSample(predict, shape, schedule, {
      ...options,
      steps: options.steps ?? this.options.steps,
      clipDenoised: options.clipDenoised ?? this.options.clipDenoised,
      clampXt: this.options.clampXt,
      variance: this.options.variance,
    });
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
