/**
 * Reverse-process samplers: DDPM (thesis Algorithm 3), DDIM (Song et al. 2021),
 * DPM-Solver++(2M) and its SDE form (Lu et al. 2022). Classifier-free guidance is in
 * core/diffusion/guidance.ts.
 *
 * @module
 */
import type { PluginDefinition } from "../../core/registry.ts";
import { ddimSampler } from "./ddim.ts";
import { ddpmSampler } from "./ddpm.ts";
import { dpmSolverSampler, dpmSolverSdeSampler } from "./dpm_solver.ts";

export {
  checkStep,
  ddpmOptions,
  DdpmSampler,
  ddpmSampler,
  ddpmStep,
  type DdpmStepOptions,
  predictX0,
  runReverse,
  scheduleFor,
} from "./ddpm.ts";
export {
  ddimOptions,
  DdimSampler,
  ddimSampler,
  ddimSigma,
  ddimStep,
  type DdimStepOptions,
} from "./ddim.ts";
export {
  dpmSolver2mSdeStep,
  dpmSolver2mStep,
  dpmSolverOptions,
  DpmSolverSampler,
  dpmSolverSampler,
  dpmSolverSdeOptions,
  dpmSolverSdeSampler,
  halfLogSnr,
  logSnrSteps,
} from "./dpm_solver.ts";

// Moved to core/diffusion/guidance.ts; re-exported for code that imported them from here.
export {
  combineGuidance,
  conditionalPredictor,
  doubleConditioning,
  guidedNoise,
  guidedPredictor,
} from "../../core/diffusion/guidance.ts";

/** The sampler plugins shipped with the project. */
export const SAMPLER_PLUGINS: PluginDefinition[] = [
  ddpmSampler,
  ddimSampler,
  dpmSolverSampler,
  dpmSolverSdeSampler,
];
