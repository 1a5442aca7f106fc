/**
 * Noise schedules: the `NoiseSchedule` class and the "cosine" and "linear" plugins.
 *
 * @module
 */
import type { PluginDefinition } from "../../core/registry.ts";
import { cosineSchedule } from "./cosine.ts";
import { linearSchedule } from "./linear.ts";

export { NoiseSchedule, type ScheduleArray } from "./schedule.ts";
export { cosineAlphaBar, cosineBetas, cosineOptions, cosineSchedule } from "./cosine.ts";
export { linearBetas, linearOptions, linearSchedule } from "./linear.ts";
export {
  gatherSteps,
  oneHotSteps,
  type Posterior,
  posteriorMeanVariance,
  qSample,
  randomSteps,
  scheduleTable,
  type StepTable,
} from "./diffusion.ts";

/** The schedule plugins shipped with the project. */
export const SCHEDULE_PLUGINS: PluginDefinition[] = [cosineSchedule, linearSchedule];
