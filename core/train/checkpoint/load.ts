/**
 * Loading a checkpoint: finding its step folder, reading and checking its files, and copying
 * weights into a module.
 *
 * @module
 */
import type { ResolvedConfig, TrainStage } from "../../config.ts";
import {
  f16ToF32,
  joinPath as join,
  NotFoundError,
  readerFor,
  readSafetensors,
  readShardedSafetensors,
  type TensorEntry,
  type WeightReader,
} from "../../io/mod.ts";
import type { Module } from "../../nn/module.ts";
import type { Tensor } from "../../tensor/mod.ts";
import {
  CHECKPOINT_FORMAT_VERSION,
  CheckpointError,
  type CheckpointMeta,
  type ClipIdentity,
  type InitSource,
  LATEST,
  type LoadedCheckpoint,
  MODEL,
  RESUME_FILE,
  type ResumeState,
  STEP_DIR,
  TRAINING_FILE,
} from "./format.ts";

/**
 * The step folder a path names: a step folder itself, or a stage folder through its `latest`
 * file. Throws a `CheckpointError` when there is none.
 *
 * @example
 * ```ts
 * async function latest() {
 *   return await resolveStepDir("runs/tiny/clip"); // e.g. "runs/tiny/clip/step-00000300"
 * }
 * ```
 */
export async function resolveStepDir(
  path: string,
  reader: WeightReader = readerFor(path),
): Promise<string> {
  if (await reader.exists(join(path, RESUME_FILE))) return path;
  const latest = join(path, LATEST);
  // Over HTTP a folder cannot be asked about, only files: say which URL was missing.
  const remote = !reader.list;
  let name: string;
  try {
    name = (await reader.readText(latest)).trim();
  } catch (e) {
    if (e instanceof NotFoundError && remote) {
      throw new CheckpointError(`No checkpoint at "${path}": ${e.message}; check the URL`);
    }
    if (e instanceof NotFoundError) {
      throw new CheckpointError(
        (await reader.exists(path))
          ? `No checkpoint in "${path}": it has no "latest" file; train first or check the path`
          : `Checkpoint folder "${path}" does not exist; check the path or train first`,
      );
    }
    throw new CheckpointError(`Cannot read "${latest}": ${(e as Error).message}`);
  }
  if (!STEP_DIR.test(name)) {
    throw new CheckpointError(`Checkpoint pointer "${latest}" is corrupt: "${name.slice(0, 40)}"`);
  }
  const dir = join(path, name);
  if (reader.list && !(await reader.exists(dir))) {
    // A crash while re-saving this step, between its two renames, leaves the complete previous
    // copy as ".<name>.tmp-<id>-old": use it (only where folders can be listed).
    for (const entry of await reader.list(path)) {
      if (
        entry.isDirectory && entry.name.startsWith(`.${name}.tmp-`) && entry.name.endsWith("-old")
      ) {
        const old = join(path, entry.name);
        if (await reader.exists(join(old, RESUME_FILE))) return old;
      }
    }
    throw new CheckpointError(`Checkpoint "${latest}" names "${name}", which does not exist`);
  }
  return dir;
}

function parseJsonField(value: string | undefined, what: string, dir: string): unknown {
  if (value === undefined) throw new CheckpointError(`Checkpoint "${dir}" is corrupt: no ${what}`);
  try {
    return JSON.parse(value);
  } catch {
    throw new CheckpointError(`Checkpoint "${dir}" is corrupt: its ${what} is not valid JSON`);
  }
}

function parseClipIdentity(value: string, dir: string): ClipIdentity {
  const c = parseJsonField(value, "CLIP identity", dir) as Partial<ClipIdentity> | null;
  if (
    typeof c?.step !== "number" || !Number.isInteger(c.step) ||
    (c.id !== undefined && typeof c.id !== "string")
  ) {
    throw new CheckpointError(`Checkpoint "${dir}" is corrupt: its CLIP identity is malformed`);
  }
  return c.id === undefined ? { step: c.step } : { step: c.step, id: c.id };
}

function parseInitSource(value: string, dir: string): InitSource {
  const c = parseJsonField(value, "init_from", dir) as Partial<InitSource> | null;
  if (typeof c?.dir !== "string" || typeof c.step !== "number" || !Number.isInteger(c.step)) {
    throw new CheckpointError(`Checkpoint "${dir}" is corrupt: its init_from is malformed`);
  }
  return { dir: c.dir, step: c.step };
}

/**
 * Whether a run folder holds an optional stage (`<run>/upsampler`, `<run>/reranker`): on a file
 * system the folder tells; over HTTP, where folders cannot be asked about, its `latest` file (a
 * 404 means none).
 *
 * @example
 * ```ts
 * import { readerFor } from "../../io/mod.ts";
 * async function cascade(): Promise<boolean> {
 *   return await hasStage(readerFor("runs/up"), "runs/up/upsampler");
 * }
 * ```
 */
export async function hasStage(reader: WeightReader, stageDir: string): Promise<boolean> {
  return reader.list ? await reader.exists(stageDir) : await reader.exists(join(stageDir, LATEST));
}

export function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

/**
 * Reads a checkpoint (a stage folder or a step folder) to the host, checking its format version
 * and, when `stage` is given, that it belongs to that stage. Every problem is a one-line
 * `CheckpointError`.
 *
 * @example
 * ```ts
 * async function steps() {
 *   const ckpt = await loadCheckpoint("runs/tiny/clip", "clip");
 *   return ckpt.meta.step; // e.g. 300
 * }
 * ```
 */
export async function loadCheckpoint(
  path: string,
  stage?: TrainStage,
  reader: WeightReader = readerFor(path),
): Promise<LoadedCheckpoint> {
  const dir = await resolveStepDir(path, reader);
  let model;
  try {
    model = await readShardedSafetensors(dir, MODEL, reader);
  } catch (e) {
    throw new CheckpointError(`Checkpoint "${dir}" is corrupt: ${oneLine(e)}`);
  }
  const md = model.metadata;
  const version = Number(md.format_version);
  if (md.format_version === undefined || !Number.isFinite(version)) {
    throw new CheckpointError(`Checkpoint "${dir}" is corrupt: no format version`);
  }
  if (version !== CHECKPOINT_FORMAT_VERSION) {
    throw new CheckpointError(
      `Checkpoint "${dir}" has format version ${version}; this version reads ` +
        `${CHECKPOINT_FORMAT_VERSION}. Retrain or use the matching release`,
    );
  }
  const meta: CheckpointMeta = {
    formatVersion: version,
    stage: md.stage as TrainStage,
    step: Number(md.step),
    config: parseJsonField(md.config, "config", dir) as ResolvedConfig,
    tokenizer: parseJsonField(md.tokenizer, "tokenizer", dir),
  };
  if (md.clip !== undefined) meta.clip = parseClipIdentity(md.clip, dir);
  if (md.init_from !== undefined) meta.initFrom = parseInitSource(md.init_from, dir);
  if (md.weights === "ema" || md.weights === "trained") meta.exportedWeights = md.weights;
  const emaDecay = Number(md.ema_decay);
  if (md.ema_decay !== undefined && emaDecay > 0 && emaDecay < 1) meta.exportedEmaDecay = emaDecay;
  if (stage !== undefined && meta.stage !== stage) {
    throw new CheckpointError(
      `Checkpoint "${dir}" is a "${meta.stage}" checkpoint, expected "${stage}"`,
    );
  }
  let resume: ResumeState;
  try {
    resume = JSON.parse(await reader.readText(join(dir, RESUME_FILE)));
  } catch (e) {
    throw new CheckpointError(`Checkpoint "${dir}" is corrupt: ${RESUME_FILE}: ${oneLine(e)}`);
  }
  if (typeof resume?.step !== "number" || resume.step !== meta.step) {
    throw new CheckpointError(
      `Checkpoint "${dir}" is corrupt: ${RESUME_FILE} has no matching step`,
    );
  }
  let training: LoadedCheckpoint["training"] = null;
  if (await reader.exists(join(dir, TRAINING_FILE))) {
    try {
      training = await readSafetensors(join(dir, TRAINING_FILE), reader);
    } catch (e) {
      throw new CheckpointError(`Checkpoint "${dir}" is corrupt: ${oneLine(e)}`);
    }
  }
  return { dir, meta, weights: model.tensors, training, resume };
}

export function asF32(entry: TensorEntry, name: string, dir: string): Float32Array {
  // Exported inference weights may be half precision (see `exportInferenceCheckpoint`).
  if (entry.dtype === "F16" && entry.data instanceof Uint16Array) return f16ToF32(entry.data);
  if (!(entry.data instanceof Float32Array)) {
    throw new CheckpointError(
      `Checkpoint "${dir}": tensor "${name}" is ${entry.dtype}, not F32 or F16`,
    );
  }
  return entry.data;
}

/**
 * Which weights `loadModuleWeights(module, ckpt, { ema: true })` loads: the EMA shadow weights
 * where the checkpoint has them, else the trained ones. An exported checkpoint has no training
 * state; its `weights` label says what the export wrote (one without the label wrote the EMA).
 *
 * @example
 * ```ts
 * import type { LoadedCheckpoint } from "./format.ts";
 * function describe(ckpt: LoadedCheckpoint): string {
 *   return preferredWeights(ckpt) === "ema" ? "EMA weights" : "weights";
 * }
 * ```
 */
export function preferredWeights(ckpt: LoadedCheckpoint): "ema" | "raw" {
  if (!ckpt.training) return ckpt.meta.exportedWeights === "trained" ? "raw" : "ema";
  return Object.keys(ckpt.training.tensors).some((n) => n.startsWith("ema.")) ? "ema" : "raw";
}

function writeTensor(t: Tensor, data: Float32Array): void {
  t.write(data);
}

/**
 * Copies checkpoint weights into a module (every name and shape must match). With `ema: true`
 * the EMA shadow weights replace the trained parameters where the checkpoint has them (for
 * sampling). With `allowMissing` the module's parameters the checkpoint lacks keep their values
 * (`train --init-from` a model without a module this one adds); their names are returned.
 *
 * @example
 * ```ts
 * import type { Module } from "../../nn/module.ts";
 * import type { LoadedCheckpoint } from "./format.ts";
 * function restore(decoder: Module, ckpt: LoadedCheckpoint): void {
 *   loadModuleWeights(decoder, ckpt, { ema: true });
 * }
 * ```
 */
export function loadModuleWeights(
  module: Module,
  ckpt: LoadedCheckpoint,
  options: { ema?: boolean; allowMissing?: boolean } = {},
): string[] {
  const values = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [name, entry] of Object.entries(ckpt.weights)) {
    values.set(name, { shape: entry.shape, data: asF32(entry, name, ckpt.dir) });
  }
  if (options.ema && ckpt.training) {
    for (const [name, entry] of Object.entries(ckpt.training.tensors)) {
      if (!name.startsWith("ema.")) continue;
      const target = name.slice(4);
      if (values.has(target)) {
        values.set(target, { shape: entry.shape, data: asF32(entry, name, ckpt.dir) });
      }
    }
  }
  try {
    return module.loadStateDict(values, writeTensor, { allowMissing: options.allowMissing });
  } catch (e) {
    throw new CheckpointError(`Checkpoint "${ckpt.dir}" does not fit the model: ${oneLine(e)}`);
  }
}
