/**
 * The checkpoint format: its layout, metadata, version and errors (layout also in docs/tasks.md,
 * "Checkpoint layout").
 *
 * Layout of one stage folder (`<out>/clip`, `<out>/prior`, `<out>/decoder`):
 *
 * ```
 * latest                                  text: the name of the newest complete step folder
 * step-00000500/
 *   model.safetensors.index.json          Hugging Face style index (+ metadata below)
 *   model-00001-of-0000N.safetensors      weights, shards of at most 16 MB
 *   training.safetensors                  Adam moments (adam.m.* / adam.v.*), EMA (ema.*) and
 *                                         the further EMAs of `extraEma` (ema[<decay>].*)
 *   resume.json                           step, GPU RNG state, data-loader step, elapsed time
 * metrics.jsonl                           one JSON line per logged step (core/train/metrics.ts)
 * ```
 *
 * The model metadata holds `format_version`, `stage`, `step`, the full resolved `config` (JSON),
 * the `tokenizer` vocabulary (JSON) and `clip` (JSON `{ step, id }`): for a clip checkpoint its
 * own identity, for a prior or decoder the CLIP it was trained with (see `ClipIdentity`).
 *
 * A save writes a hidden temporary folder, renames it to `step-N` and only then replaces `latest`
 * atomically, so a crash at any point leaves the previous checkpoint as the latest. Older step
 * folders beyond `keepLast` (other than those of `keepSteps`) are removed last.
 *
 * @module
 */
import type { ResolvedConfig, TrainStage } from "../../config.ts";
import type { TensorMap } from "../../io/mod.ts";
import type { Module } from "../../nn/module.ts";
import type { Adam } from "../../optim/adam.ts";
import type { Ema } from "../../optim/ema.ts";
import type { RngState } from "../../tensor/mod.ts";

/** Bumped whenever the checkpoint layout or metadata changes incompatibly. */
export const CHECKPOINT_FORMAT_VERSION = 1;

/** Largest weight shard (shards of at most 16 MB keep each file small enough to write atomically and to fetch). */
export const MAX_SHARD_BYTES = 16 * 1024 * 1024;

/** A checkpoint a user pointed at is missing, corrupt or does not fit: one line, no stack. */
export class CheckpointError extends Error {
  /**
   * @example
   * ```ts
   * const error = new CheckpointError(`No checkpoint in "runs/tiny/clip"`);
   * error.name; // "CheckpointError"
   * ```
   */
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

/** What `--resume` needs besides weights and optimizer state. */
export interface ResumeState {
  /** Steps completed. */
  step: number;
  /** The GPU generator state after the last completed step (`getRngState()`). */
  rng: RngState;
  /**
   * The next data-loader step (batches are a pure function of (seed, step)); with warm restarts,
   * counted from the cycle's start (core/train/cycles.ts).
   */
  loaderStep: number;
  /**
   * Host-side randomness: every host draw is derived from (seed, stage, step) (core/data/rng.ts
   * `deriveSeed`; the step within the cycle with warm restarts), so the seed is the whole state.
   */
  hostSeed: number;
  /** Wall-clock seconds of training so far (for logs). */
  elapsedSeconds: number;
}

/**
 * Which trained CLIP a checkpoint belongs to. The prior learns the embeddings of one CLIP and the
 * decoder is conditioned on them, so a prior or decoder is only valid with the CLIP it was
 * trained with (not with that CLIP resumed further or retrained).
 */
export interface ClipIdentity {
  /** Steps the CLIP was trained for. */
  step: number;
  /**
   * SHA-256 (hex) of the CLIP's weights as saved (`weightsHash`): a re-save or a deterministic
   * retrain of the same weights keeps it, and exports copy it. Absent only for a CLIP saved
   * before identities were recorded (then only the step is known).
   */
  id?: string;
}

/**
 * The checkpoint a run's weights started from (`train --init-from`): its step folder and step. A
 * run initialised this way counts its own steps from 0, so the source is recorded beside them.
 */
export interface InitSource {
  dir: string;
  step: number;
}

/** Metadata stored with every checkpoint. */
export interface CheckpointMeta {
  formatVersion: number;
  stage: TrainStage;
  step: number;
  config: ResolvedConfig;
  /** The tokenizer's JSON form (`Tokenizer.toJSON()`). */
  tokenizer: unknown;
  /**
   * A clip checkpoint's own identity (`saveCheckpoint` computes it; what is passed is ignored), or
   * the CLIP a prior/decoder was trained with. Absent in checkpoints written before it was
   * recorded: those load and resume as before, unchecked.
   */
  clip?: ClipIdentity;
  /**
   * What an exported checkpoint's weights are (`exportInferenceCheckpoint`): the EMA shadow
   * weights or the trained ones. Absent in training checkpoints.
   */
  exportedWeights?: "ema" | "trained";
  /** The decay of the EMA an exported checkpoint's weights are (absent when not recorded). */
  exportedEmaDecay?: number;
  /** Where the run's weights started, when not from its seed (`train --init-from`). */
  initFrom?: InitSource;
}

/** A checkpoint read from disk (weights on the host). */
export interface LoadedCheckpoint {
  /** The step folder. */
  dir: string;
  meta: CheckpointMeta;
  /** Model weights by parameter/buffer name. */
  weights: TensorMap;
  /** Adam moments and EMA shadow weights, when the file exists. */
  training: { tensors: TensorMap; metadata: Record<string, string> } | null;
  /** Resume state. */
  resume: ResumeState;
}

/** Options of `saveCheckpoint`. */
export interface SaveCheckpointOptions {
  /** The stage folder (`<out>/<stage>`). */
  stageDir: string;
  meta: CheckpointMeta;
  /** The model whose parameters and buffers are saved. */
  model: Module;
  /** Optimizer whose moments are saved (in `model.parameters()` order). */
  optimizer?: Adam | null;
  /** EMA whose shadow weights are saved (in `model.parameters()` order). */
  ema?: Ema | null;
  /** The further EMAs of `train.<stage>.extraEma`, saved beside `ema` (see `extraEmaKey`). */
  extraEmas?: readonly Ema[];
  resume: ResumeState;
  /** Step folders to keep (the newest), besides those of `keepSteps`. */
  keepLast: number;
  /** Steps whose folders are never removed (each warm-restart cycle's last; core/train/cycles.ts). */
  keepSteps?: readonly number[];
  /** Shard limit in bytes (default 16 MB). */
  maxShardBytes?: number;
}

export const STEP_DIR = /^step-(\d+)$/;
export const LATEST = "latest";
export const MODEL = "model";
export const TRAINING_FILE = "training.safetensors";
export const RESUME_FILE = "resume.json";

/**
 * Training-file metadata: the further EMAs' states, as a JSON array of `{ decay, updates,
 * warmup }` (see `ExtraEmaState`).
 */
export const EXTRA_EMAS = "extra_emas";

/** What `EXTRA_EMAS` records of one further EMA (its shadow weights are tensors). */
export interface ExtraEmaState {
  decay: number;
  updates: number;
  warmup: boolean;
}

/**
 * The training-file name of a further EMA's shadow of parameter `name` (`train.<stage>.extraEma`);
 * the decay is written as JavaScript prints it, in brackets so it cannot be read as part of the
 * parameter name.
 *
 * @example
 * ```ts
 * extraEmaKey(0.9999, "out.weight"); // "ema[0.9999].out.weight"
 * ```
 */
export function extraEmaKey(decay: number, name: string): string {
  return `ema[${decay}].${name}`;
}

/**
 * The folder name of a step: `step-00000500`.
 *
 * @example
 * ```ts
 * stepDirName(500); // "step-00000500"
 * ```
 */
export function stepDirName(step: number): string {
  return `step-${String(step).padStart(8, "0")}`;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Step numbers of the complete step folders in a stage folder, ascending.
 *
 * @example
 * ```ts
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/step-00000100`);
 * await Deno.mkdir(`${dir}/step-00000200`);
 * await listSteps(dir); // [100, 200]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function listSteps(stageDir: string): Promise<number[]> {
  const steps: number[] = [];
  try {
    for await (const e of Deno.readDir(stageDir)) {
      const m = e.isDirectory ? STEP_DIR.exec(e.name) : null;
      if (m) steps.push(Number(m[1]));
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return steps.sort((a, b) => a - b);
}
