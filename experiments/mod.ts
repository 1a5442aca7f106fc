/**
 * The experiments of `deno task experiment` (thesis chapter 4), by name.
 *
 * @module
 */
import type { Experiment } from "./common.ts";
import { guidanceExperiment } from "./guidance.ts";
import { interpolateExperiment } from "./interpolate.ts";
import { knnExperiment } from "./knn.ts";
import { pcaExperiment } from "./pca.ts";
import { textdiffExperiment } from "./textdiff.ts";
import { arithmeticExperiment } from "./arithmetic.ts";
import { bindingExperiment } from "./binding.ts";
import { zeroshotExperiment } from "./zeroshot.ts";

export * from "./common.ts";

/** Every experiment, in the order of the report. */
export const EXPERIMENTS: readonly Experiment[] = [
  guidanceExperiment,
  pcaExperiment,
  interpolateExperiment,
  arithmeticExperiment,
  textdiffExperiment,
  bindingExperiment,
  knnExperiment,
  zeroshotExperiment,
];

/** The experiment called `name`, or undefined. */
export function experimentByName(name: string): Experiment | undefined {
  return EXPERIMENTS.find((e) => e.name === name);
}
