/**
 * Training checkpoints (layout in docs/tasks.md, "Checkpoint layout").
 *
 * Layout of one stage folder (`<out>/clip`, `<out>/prior`, `<out>/decoder`):
 *
 * ```
 * latest                                  text: the name of the newest complete step folder
 * step-00000500/
 *   model.safetensors.index.json          Hugging Face style index (+ metadata below)
 *   model-00001-of-0000N.safetensors      weights, shards of at most 16 MB
 *   training.safetensors                  Adam moments (adam.m.* / adam.v.*) and EMA (ema.*)
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
 * folders beyond `keepLast` are removed last.
 *
 * @module
 */
import { diffConfigs, type ResolvedConfig, type TrainStage } from "../config.ts";
import {
  f16ToF32,
  f32ToF16,
  joinPath as join,
  NotFoundError,
  readerFor,
  readSafetensors,
  readShardedSafetensors,
  type TensorEntry,
  type TensorMap,
  type WeightReader,
  writeSafetensors,
  writeShardedSafetensors,
  writeTextAtomic,
} from "../io/mod.ts";
import { Sha256 } from "../io/sha256.ts";
import type { Module } from "../nn/module.ts";
import type { Adam } from "../optim/adam.ts";
import type { Ema } from "../optim/ema.ts";
import { readMany, type RngState, type Tensor } from "../tensor/mod.ts";

/** Bumped whenever the checkpoint layout or metadata changes incompatibly. */
export const CHECKPOINT_FORMAT_VERSION = 1;

/** Largest weight shard (shards of at most 16 MB keep each file small enough to write atomically and to fetch). */
export const MAX_SHARD_BYTES = 16 * 1024 * 1024;

/** A checkpoint a user pointed at is missing, corrupt or does not fit: one line, no stack. */
export class CheckpointError extends Error {
  /**
   * @example
   * ```ts
   * throw new CheckpointError(`No checkpoint in "runs/tiny/clip"`);
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
  /** The next data-loader step (batches are a pure function of (seed, step)). */
  loaderStep: number;
  /**
   * Host-side randomness: every host draw is derived from (seed, stage, step) (datasets/rng.ts
   * `deriveSeed`), so the seed is the whole state.
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
  resume: ResumeState;
  /** Step folders to keep (the newest). */
  keepLast: number;
  /** Shard limit in bytes (default 16 MB). */
  maxShardBytes?: number;
}

const STEP_DIR = /^step-(\d+)$/;
const LATEST = "latest";
const MODEL = "model";
const TRAINING_FILE = "training.safetensors";
const RESUME_FILE = "resume.json";

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

/**
 * Reads many GPU tensors with one readback (copies into one staging buffer first): reading each
 * tensor alone costs ~10 ms of polling on Deno, which adds up over hundreds of parameters.
 *
 * @example
 * ```ts
 * const [w, b] = await readTensors([layer.weight, layer.bias]);
 * ```
 */
export function readTensors(tensors: readonly Tensor[]): Promise<ArrayBuffer[]> {
  return readMany(tensors);
}

function entryOf(t: Tensor, data: ArrayBuffer): TensorEntry {
  return t.dtype === "f32"
    ? { dtype: "F32", shape: [...t.shape], data: new Float32Array(data) }
    : t.dtype === "i32"
    ? { dtype: "I32", shape: [...t.shape], data: new Int32Array(data) }
    : { dtype: "U32", shape: [...t.shape], data: new Uint32Array(data) };
}

async function tensorMap(named: readonly [string, Tensor][]): Promise<TensorMap> {
  const data = await readTensors(named.map(([, t]) => t));
  const map: TensorMap = {};
  named.forEach(([name, t], i) => map[name] = entryOf(t, data[i]));
  return map;
}

/**
 * SHA-256 (hex) of a weight map: names, dtypes, shapes and bytes, in name order. The identity of
 * a saved CLIP (`ClipIdentity.id`).
 *
 * @example
 * ```ts
 * weightsHash({ w: { dtype: "F32", shape: [1], data: new Float32Array([1]) } }); // "4f1c..."
 * ```
 */
export function weightsHash(weights: TensorMap): string {
  const h = new Sha256();
  const utf8 = new TextEncoder();
  for (const name of Object.keys(weights).sort()) {
    const { dtype, shape, data } = weights[name];
    h.update(utf8.encode(`${name}\0${dtype}\0${shape.join(",")}\0`));
    h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return h.hex();
}

async function exists(path: string): Promise<boolean> {
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
 * await listSteps("runs/tiny/clip"); // [100, 200]
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

/**
 * Saves weights, optimizer/EMA state and the resume state as a new step folder, points `latest`
 * at it, and prunes old step folders. Returns the step folder's path.
 *
 * @example
 * ```ts
 * await saveCheckpoint({ stageDir: "runs/tiny/clip", meta, model, optimizer, resume, keepLast: 3 });
 * ```
 */
export async function saveCheckpoint(options: SaveCheckpointOptions): Promise<string> {
  const { stageDir, meta, model, optimizer, ema, resume } = options;
  await Deno.mkdir(stageDir, { recursive: true });
  const names = model.namedParameters().map(([n]) => n);
  // Read everything back before touching the disk.
  const weights = await tensorMap([...model.stateDict()]);
  const trainingNamed: [string, Tensor][] = [];
  const trainingMeta: Record<string, string> = { format_version: String(meta.formatVersion) };
  if (optimizer) {
    const s = optimizer.stateDict();
    s.m.forEach((t, i) => trainingNamed.push([`adam.m.${names[i]}`, t]));
    s.v.forEach((t, i) => trainingNamed.push([`adam.v.${names[i]}`, t]));
    trainingMeta.adam_step = String(s.step);
  }
  if (ema) {
    const s = ema.stateDict();
    s.shadow.forEach((t, i) => trainingNamed.push([`ema.${names[i]}`, t]));
    trainingMeta.ema_updates = String(s.updates);
  }
  const training = await tensorMap(trainingNamed);
  // A CLIP's identity is its step and the hash of what is saved; a prior or decoder records the
  // identity of the CLIP it trains with (passed in `meta.clip` by the training loop).
  const clip = meta.stage === "clip" ? { step: meta.step, id: weightsHash(weights) } : meta.clip;

  const final = join(stageDir, stepDirName(meta.step));
  const rand = crypto.getRandomValues(new Uint32Array(1))[0].toString(16);
  const tmp = join(stageDir, `.${stepDirName(meta.step)}.tmp-${rand}`);
  await Deno.mkdir(tmp);
  try {
    await writeShardedSafetensors(tmp, MODEL, weights, {
      format_version: String(meta.formatVersion),
      stage: meta.stage,
      step: String(meta.step),
      config: JSON.stringify(meta.config),
      tokenizer: JSON.stringify(meta.tokenizer),
      ...(clip ? { clip: JSON.stringify(clip) } : {}),
    }, { maxShardBytes: options.maxShardBytes ?? MAX_SHARD_BYTES });
    if (trainingNamed.length > 0) {
      await writeSafetensors(join(tmp, TRAINING_FILE), training, trainingMeta);
    }
    await writeTextAtomic(join(tmp, RESUME_FILE), JSON.stringify(resume, null, 2) + "\n");
    // Re-saving a step (e.g. interrupted right after a resume) replaces the old folder; until
    // the new one is renamed in, `latest` may point at a missing folder only if it named this step.
    if (await exists(final)) {
      const old = `${tmp}-old`;
      await Deno.rename(final, old);
      await Deno.rename(tmp, final);
      await Deno.remove(old, { recursive: true });
    } else {
      await Deno.rename(tmp, final);
    }
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  await writeTextAtomic(join(stageDir, LATEST), stepDirName(meta.step) + "\n");
  const steps = await listSteps(stageDir);
  const stale = steps.filter((s) => s !== meta.step).slice(
    0,
    Math.max(0, steps.length - options.keepLast),
  );
  for (const s of stale) {
    await Deno.remove(join(stageDir, stepDirName(s)), { recursive: true }).catch(() => {});
  }
  return final;
}

/**
 * The step folder a path names: a step folder itself, or a stage folder through its `latest`
 * file. Throws a `CheckpointError` when there is none.
 *
 * @example
 * ```ts
 * await resolveStepDir("runs/tiny/clip"); // "runs/tiny/clip/step-00000300"
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

function oneLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

/**
 * Reads a checkpoint (a stage folder or a step folder) to the host, checking its format version
 * and, when `stage` is given, that it belongs to that stage. Every problem is a one-line
 * `CheckpointError`.
 *
 * @example
 * ```ts
 * const ckpt = await loadCheckpoint("runs/tiny/clip", "clip");
 * ckpt.meta.step; // 300
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

function asF32(entry: TensorEntry, name: string, dir: string): Float32Array {
  // Exported inference weights may be half precision (see `exportInferenceCheckpoint`).
  if (entry.dtype === "F16" && entry.data instanceof Uint16Array) return f16ToF32(entry.data);
  if (!(entry.data instanceof Float32Array)) {
    throw new CheckpointError(
      `Checkpoint "${dir}": tensor "${name}" is ${entry.dtype}, not F32 or F16`,
    );
  }
  return entry.data;
}

function writeTensor(t: Tensor, data: Float32Array): void {
  t.write(data);
}

/**
 * Copies checkpoint weights into a module (every name and shape must match). With `ema: true`
 * the EMA shadow weights replace the trained parameters where the checkpoint has them (for
 * sampling).
 *
 * @example
 * ```ts
 * loadModuleWeights(decoder, ckpt, { ema: true });
 * ```
 */
export function loadModuleWeights(
  module: Module,
  ckpt: LoadedCheckpoint,
  options: { ema?: boolean } = {},
): void {
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
    module.loadStateDict(values, writeTensor);
  } catch (e) {
    throw new CheckpointError(`Checkpoint "${ckpt.dir}" does not fit the model: ${oneLine(e)}`);
  }
}

/**
 * Checks that a checkpoint holds the training state `--resume` needs (Adam moments, and the EMA
 * when the stage keeps one), without touching the device: exported inference weights (such as
 * weights/default) have none, and finding that out only in the training loop left GPU work queued
 * at exit.
 *
 * @throws CheckpointError naming the checkpoint.
 * @example
 * ```ts
 * assertResumable(await loadCheckpoint("runs/tiny/clip", "clip"), config.train.clip.ema !== null);
 * ```
 */
export function assertResumable(ckpt: LoadedCheckpoint, withEma: boolean): void {
  const md = ckpt.training?.metadata;
  const missing = md?.adam_step === undefined
    ? "optimizer"
    : withEma && md.ema_updates === undefined
    ? "EMA"
    : null;
  if (missing) {
    throw new CheckpointError(
      `Checkpoint "${ckpt.dir}" holds no ${missing} state (exported weights keep none), so ` +
        `--resume cannot continue it; train without --resume into another --out`,
    );
  }
}

/**
 * Restores Adam moments and EMA shadow weights saved by `saveCheckpoint`.
 *
 * @example
 * ```ts
 * loadTrainingState(ckpt, model, optimizer, ema);
 * ```
 */
export function loadTrainingState(
  ckpt: LoadedCheckpoint,
  model: Module,
  optimizer: Adam | null,
  ema: Ema | null,
): void {
  const names = model.namedParameters().map(([n]) => n);
  const t = ckpt.training;
  const get = (key: string): Float32Array => {
    const entry = t?.tensors[key];
    if (!entry) throw new CheckpointError(`Checkpoint "${ckpt.dir}" has no "${key}" to resume`);
    return asF32(entry, key, ckpt.dir);
  };
  try {
    if (optimizer) {
      optimizer.loadStateDict({
        step: Number(t?.metadata.adam_step ?? NaN),
        m: names.map((n) => get(`adam.m.${n}`)),
        v: names.map((n) => get(`adam.v.${n}`)),
      });
    }
    if (ema) {
      ema.loadStateDict({
        updates: Number(t?.metadata.ema_updates ?? NaN),
        shadow: names.map((n) => get(`ema.${n}`)),
      });
    }
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`Checkpoint "${ckpt.dir}" does not fit the optimizer: ${oneLine(e)}`);
  }
}

/**
 * Train settings that may change between runs without changing the model or its loss curve so
 * far. `steps` is one: a resumed run may be extended or shortened (the learning-rate schedule
 * then follows the new total from the resumed step on; `train` says so when it changed).
 */
const HARMLESS_TRAIN_KEYS = new Set(["logEvery", "checkpointEvery", "keepLast", "steps"]);

/**
 * Config paths at which a checkpoint's stored config and the current one differ, restricted to
 * what a stage depends on: the given component slots, and (when `trainStage` is
 * given, for resuming) that stage's train settings other than logging and checkpoint cadence.
 *
 * @example
 * ```ts
 * configMismatch(ckpt.meta.config, config, ["tokenizer", "textEncoder"], "clip");
 * // ["components.textEncoder.options.width"]
 * ```
 */
export function configMismatch(
  stored: ResolvedConfig,
  current: ResolvedConfig,
  slots: readonly string[],
  trainStage?: TrainStage,
): string[] {
  const pick = (c: ResolvedConfig): Record<string, unknown> => {
    const components: Record<string, unknown> = {};
    for (const s of slots) components[s] = (c.components as Record<string, unknown>)?.[s];
    // `plugins` is not compared: the slots name the plugins actually used, and a module's path
    // may legitimately differ between machines.
    const out: Record<string, unknown> = { components };
    if (trainStage) {
      const t = { ...(c.train?.[trainStage] ?? {}) } as Record<string, unknown>;
      for (const k of HARMLESS_TRAIN_KEYS) delete t[k];
      out.train = { [trainStage]: t };
    }
    return out;
  };
  return diffConfigs(pick(stored), pick(current));
}

/**
 * Throws a one-line `CheckpointError` listing the differing fields when a checkpoint was
 * trained with another config (see `configMismatch`).
 *
 * @example
 * ```ts
 * assertConfigMatches(ckpt, config, ["tokenizer", "textEncoder", "imageEncoder"]);
 * ```
 */
export function assertConfigMatches(
  ckpt: LoadedCheckpoint,
  current: ResolvedConfig,
  slots: readonly string[],
  trainStage?: TrainStage,
): void {
  const diff = configMismatch(ckpt.meta.config, current, slots, trainStage);
  if (diff.length === 0) return;
  const shown = diff.slice(0, 6).join(", ") +
    (diff.length > 6 ? ` (+${diff.length - 6} more)` : "");
  throw new CheckpointError(
    `Checkpoint "${ckpt.dir}" was trained with another config; differing fields: ${shown}. ` +
      `Use the same config, or another --out folder`,
  );
}

/**
 * The identity of a clip checkpoint: the one it recorded, or only its step for a CLIP saved
 * before identities were recorded.
 *
 * @example
 * ```ts
 * clipIdentity(await loadCheckpoint("runs/tiny/clip", "clip")); // { step: 300, id: "9f2c..." }
 * ```
 */
export function clipIdentity(clip: LoadedCheckpoint): ClipIdentity {
  return clip.meta.clip ?? { step: clip.meta.step };
}

/** Whether a recorded CLIP identity names `current` (ids compared when both are known). */
function sameClip(recorded: ClipIdentity, current: ClipIdentity): boolean {
  if (recorded.step !== current.step) return false;
  return recorded.id === undefined || current.id === undefined || recorded.id === current.id;
}

function describeClip(c: ClipIdentity): string {
  return `step ${c.step}${c.id ? ` (id ${c.id.slice(0, 12)})` : ""}`;
}

/**
 * Throws a one-line `CheckpointError` when a prior or decoder checkpoint of the run `runDir` was
 * trained with another CLIP than `clip` (e.g. CLIP was resumed or retrained since): the prior
 * would resume on another CLIP's embeddings, and sampling would feed the decoder embeddings it
 * never saw. The message says which stages to retrain and how. Checkpoints without a recorded
 * identity (saved before it was recorded) cannot be checked and pass.
 *
 * @example
 * ```ts
 * assertSameClip([priorCkpt, decoderCkpt], clipCkpt, "runs/tiny");
 * // CheckpointError: decoder in runs/tiny was trained with CLIP step 1500 (id ab12...) but
 * // runs/tiny/clip is now step 2500 (id cd34...); retrain the decoder (...)
 * ```
 */
export function assertSameClip(
  checkpoints: readonly LoadedCheckpoint[],
  clip: LoadedCheckpoint,
  runDir: string,
  configPath = "FILE",
): void {
  const current = clipIdentity(clip);
  const stale = checkpoints.filter((c) => c.meta.clip && !sameClip(c.meta.clip, current));
  if (stale.length === 0) return;
  const stages = stale.map((c) => c.meta.stage);
  const trainedWith = [...new Set(stale.map((c) => describeClip(c.meta.clip!)))].join(" and ");
  const train = stages.map((s) => `deno task train ${s} --config ${configPath} --out ${runDir}`);
  throw new CheckpointError(
    `${stages.join(" and ")} in ${runDir} ${stale.length > 1 ? "were" : "was"} trained with ` +
      `CLIP ${trainedWith} but ${join(runDir, "clip")} is now ${describeClip(current)}; ` +
      `retrain the ${stages.join(" and the ")} (move ${
        stages.map((s) => join(runDir, s)).join(" and ")
      } away, then: ${train.join(" && ")})`,
  );
}

/** Options of `exportInferenceCheckpoint`. */
export interface ExportOptions {
  /** Store weights as IEEE half precision (F16), halving the size. */
  half?: boolean;
  /** Shard size limit in bytes (default 16 MB). */
  maxShardBytes?: number;
}

/**
 * Writes the weights a checkpoint samples with (EMA weights where it has them) as a stand-alone
 * step folder in `outStageDir`, without optimizer state: what gets shipped. Metadata (config,
 * tokenizer, format version, step) is kept, so the result loads like any checkpoint.
 *
 * @example
 * ```ts
 * await exportInferenceCheckpoint("runs/demo/decoder", "weights/default/decoder", { half: true });
 * ```
 */
export async function exportInferenceCheckpoint(
  stageDir: string,
  outStageDir: string,
  options: ExportOptions = {},
): Promise<string> {
  const ckpt = await loadCheckpoint(stageDir);
  // CLIP samples (and the prior and decoder trained) with its trained weights, not an EMA of
  // them (`loadClip`): exporting its EMA would ship a CLIP they never saw under the same id.
  const useEma = ckpt.meta.stage !== "clip";
  const tensors: TensorMap = {};
  for (const [name, entry] of Object.entries(ckpt.weights)) {
    const ema = useEma ? ckpt.training?.tensors[`ema.${name}`] : undefined;
    const data = asF32(ema ?? entry, name, ckpt.dir);
    tensors[name] = options.half
      ? { dtype: "F16", shape: [...entry.shape], data: f32ToF16(data) }
      : { dtype: "F32", shape: [...entry.shape], data };
  }
  const name = stepDirName(ckpt.meta.step);
  const final = join(outStageDir, name);
  if (await exists(final)) {
    throw new CheckpointError(`"${final}" already exists; choose another output folder`);
  }
  await Deno.mkdir(outStageDir, { recursive: true });
  const tmp = join(outStageDir, `.${name}.tmp-export`);
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp);
  await writeShardedSafetensors(tmp, MODEL, tensors, {
    format_version: String(ckpt.meta.formatVersion),
    stage: ckpt.meta.stage,
    step: String(ckpt.meta.step),
    config: JSON.stringify(ckpt.meta.config),
    tokenizer: JSON.stringify(ckpt.meta.tokenizer),
    // The CLIP identity travels with the weights, so exported stages are checked like the run's.
    ...(ckpt.meta.clip ? { clip: JSON.stringify(ckpt.meta.clip) } : {}),
    weights: useEma && ckpt.training ? "ema" : "trained",
  }, { maxShardBytes: options.maxShardBytes ?? MAX_SHARD_BYTES });
  await writeTextAtomic(join(tmp, RESUME_FILE), JSON.stringify(ckpt.resume, null, 2) + "\n");
  await Deno.rename(tmp, final);
  await writeTextAtomic(join(outStageDir, LATEST), name + "\n");
  return final;
}
