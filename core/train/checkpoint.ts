/**
 * Training checkpoints (layout in docs/tasks.md, "Checkpoint layout"), one file per job under
 * checkpoint/: the format and its metadata (format.ts), saving (save.ts), loading and weights
 * (load.ts), resume state (resume.ts), whether a checkpoint fits the run (compat.ts) and exporting
 * sampling weights (export.ts). This module re-exports their public API.
 *
 * The layout of a stage folder is described in checkpoint/format.ts.
 *
 * @module
 */
export {
  CHECKPOINT_FORMAT_VERSION,
  CheckpointError,
  type CheckpointMeta,
  type ClipIdentity,
  type InitSource,
  listSteps,
  type LoadedCheckpoint,
  MAX_SHARD_BYTES,
  type ResumeState,
  type SaveCheckpointOptions,
  stepDirName,
} from "./checkpoint/format.ts";
export { readTensors, saveCheckpoint, weightsHash } from "./checkpoint/save.ts";
export {
  hasStage,
  loadCheckpoint,
  loadModuleWeights,
  preferredWeights,
  resolveStepDir,
} from "./checkpoint/load.ts";
export { assertResumable, type ExtraEmaResume, loadTrainingState } from "./checkpoint/resume.ts";
export {
  assertConfigMatches,
  assertSameClip,
  clipIdentity,
  configMismatch,
  describeClip,
  sameClip,
} from "./checkpoint/compat.ts";
export {
  type ExportedStage,
  exportInferenceCheckpoint,
  type ExportOptions,
} from "./checkpoint/export.ts";
