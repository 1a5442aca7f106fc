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

/** The schedule plugins shipped with the project. */
export const SCHEDULE_PLUGINS: PluginDefinition[] = [cosineSchedule, linearSchedule];
