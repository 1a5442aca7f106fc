/**
 * Gaussian diffusion maths shared by the prior and the decoder: the `NoiseSchedule` tables
 * (Ho et al. 2020; Nichol & Dhariwal 2021), the forward process q(x_t | x_0) and the posterior
 * q(x_{t-1} | x_t, x_0) on the GPU, the training timesteps (uniform or logit-normal), the reverse
 * process every sampler builds on (the x_0 estimate from an eps or x_0 prediction, the ancestral
 * step, respacing), self-conditioning (Chen et al. 2022), sampling the prior with
 * any sampler, classifier-free guidance (Ho & Salimans 2022), the decoder's training loss, and an
 * upsampler's low-resolution conditioning with its augmentation. Schedule plugins build a
 * `NoiseSchedule` from their betas; samplers, priors, decoders and upsamplers import these from
 * here rather than from each other.
 *
 * @module
 */
export { NoiseSchedule, type ScheduleArray } from "./schedule.ts";
export {
  derivedTable,
  gatherSteps,
  gatherTable,
  oneHotSteps,
  type Posterior,
  posteriorMeanVariance,
  qSample,
  randomSteps,
  scheduleTable,
  type StepTable,
  velocity,
} from "./process.ts";
export {
  checkGuidanceInterval,
  combineGuidance,
  conditionalPrediction,
  conditionalPredictor,
  doubleConditioning,
  FULL_GUIDANCE_INTERVAL,
  type GuidanceInterval,
  type GuidanceLimit,
  guidedNoise,
  guidedPrediction,
  guidedPredictor,
} from "./guidance.ts";
export {
  type AncestralOptions,
  ancestralSample,
  checkStep,
  ddpmStep,
  type DdpmStepOptions,
  epsFromX0,
  predictX0,
  type ReverseVariance,
  runReverse,
  scheduleFor,
} from "./reverse.ts";
export { samplePrior, type SamplePriorOptions } from "./prior_sampling.ts";
export {
  estimateX0,
  noEstimate,
  type SelfConditionedPrediction,
  selfConditionedPredictor,
  selfConditionedStep,
  type StatefulPredictor,
} from "./self_condition.ts";
export {
  decoderLoss,
  type DecoderLossOptions,
  minSnrWeights,
  multiscaleError,
  type NoisePredictingNetwork,
  upsamplerLoss,
} from "./loss.ts";
export {
  checkLogitNormal,
  drawTimesteps,
  type LogitNormal,
  logitNormalStepProbabilities,
} from "./timesteps.ts";
export {
  AUGMENT_KINDS,
  augmentLowRes,
  BLUR_SIGMA_AT_1,
  downsampleArea,
  drawLevels,
  trainedLevelMax,
  upsampleToSize,
} from "./augment.ts";
