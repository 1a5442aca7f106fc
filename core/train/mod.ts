/**
 * Training plumbing: checkpoints, the training loop, the stage definitions, JSONL metrics and
 * progress lines.
 *
 * @module
 */
export * from "./checkpoint.ts";
export * from "./loop.ts";
export * from "./metrics.ts";
export * from "./progress.ts";
export * from "./stages.ts";
