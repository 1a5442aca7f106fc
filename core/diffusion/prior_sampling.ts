/**
 * Sampling the diffusion prior with any sampler (thesis Algorithm 5): the prior supplies its
 * x_0-predicting denoiser (candidates and guidance applied), the sampler runs the reverse
 * process, and the best candidate per caption is kept. With the default ancestral sampler over
 * all steps this is Algorithm 5 with the posterior-mean step (thesis eq. 2.8).
 *
 * @module
 */
import type { ClipConditioning, Prior, PriorSampleOptions, Sampler } from "../components.ts";
import { noGrad, type Tensor } from "../tensor/mod.ts";
import { ancestralSample } from "./reverse.ts";
import type { NoiseSchedule } from "./schedule.ts";

/** Options of `samplePrior`. */
export interface SamplePriorOptions extends PriorSampleOptions {
  /** The reverse process (a sampler plugin); default ancestral DDPM (Algorithm 5). */
  sampler?: Sampler;
  /** Steps (respaced); default the sampler's, else every step of the schedule. */
  steps?: number;
}

/**
 * [B, E] image embeddings for the captions of `cond`, in unit scale and not normalised.
 *
 * @example
 * ```ts
 * import type { ClipConditioning, Prior, Sampler } from "../components.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function embeddings(prior: Prior, cond: ClipConditioning, schedule: NoiseSchedule, ddim: Sampler) {
 *   return samplePrior(prior, cond, schedule, { sampler: ddim, steps: 25, candidates: 2 });
 * }
 * ```
 */
export function samplePrior(
  prior: Prior,
  cond: ClipConditioning,
  schedule: NoiseSchedule,
  options: SamplePriorOptions = {},
): Tensor {
  const denoiser = noGrad(() => prior.denoiser(cond, options));
  const wasTraining = prior.training;
  prior.eval();
  try {
    return noGrad(() => {
      const run = {
        steps: options.steps,
        prediction: denoiser.prediction,
        clipDenoised: denoiser.clipDenoised,
      };
      const x = options.sampler
        ? options.sampler.sample(denoiser.predict, denoiser.shape, schedule, run)
        : ancestralSample(denoiser.predict, denoiser.shape, schedule, run);
      const embeddings = denoiser.finish(x);
      x.dispose();
      return embeddings;
    });
  } finally {
    denoiser.dispose();
    prior.train(wasTraining);
  }
}
