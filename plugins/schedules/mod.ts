/**
 * Noise schedule plugins: "cosine" and "linear". Each builds a `NoiseSchedule` (core/diffusion/)
 * from its betas.
 *
 * @module
 */
import type { PluginDefinition } from "../../core/registry.ts";
import { cosineSchedule } from "./cosine.ts";
import { linearSchedule } from "./linear.ts";

export { cosineAlphaBar, cosineBetas, cosineOptions, cosineSchedule } from "./cosine.ts";
export { linearBetas, linearOptions, linearSchedule } from "./linear.ts";
// Moved to core/diffusion/; re-exported so that plugin modules importing them from here keep working.
export {
  gatherSteps,
  NoiseSchedule,
  oneHotSteps,
  type Posterior,
  posteriorMeanVariance,
  qSample,
  randomSteps,
  type ScheduleArray,
  scheduleTable,
  type StepTable,
} from "../../core/diffusion/mod.ts";

/** The schedule plugins shipped with the project. */
export const SCHEDULE_PLUGINS: PluginDefinition[] = [cosineSchedule, linearSchedule];
