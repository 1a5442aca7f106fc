/**
 * Training plumbing: checkpoints, the training loop and its learning-rate cycles, the stage
 * definitions, JSONL metrics and progress lines.
 *
 * @module
 */
export * from "./checkpoint.ts";
export * from "./cycles.ts";
export * from "./loop.ts";
export * from "./metrics.ts";
export * from "./progress.ts";
export * from "./stages.ts";
