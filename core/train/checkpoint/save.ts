/**
 * Saving a checkpoint: reading the weights back from the device in few transfers, hashing them,
 * and writing a step folder atomically (see format.ts for the layout).
 *
 * @module
 */
import { isClipStage } from "../../config/schema.ts";
import {
  joinPath as join,
  type TensorEntry,
  type TensorMap,
  writeSafetensors,
  writeShardedSafetensors,
  writeTextAtomic,
} from "../../io/mod.ts";
import { Sha256 } from "../../io/sha256.ts";
import { readMany, type Tensor } from "../../tensor/mod.ts";
import {
  exists,
  EXTRA_EMAS,
  extraEmaKey,
  type ExtraEmaState,
  LATEST,
  listSteps,
  MAX_SHARD_BYTES,
  MODEL,
  RESUME_FILE,
  type SaveCheckpointOptions,
  stepDirName,
  TRAINING_FILE,
} from "./format.ts";

/**
 * Reads many GPU tensors with one readback (copies into one staging buffer first): reading each
 * tensor alone costs ~10 ms of polling on Deno, which adds up over hundreds of parameters.
 *
 * @example
 * ```ts
 * import type { Linear } from "../../nn/linear.ts";
 * async function read(layer: Linear) {
 *   const [w, b] = await readTensors([layer.weight, layer.bias!]);
 *   return { w, b }; // ArrayBuffers
 * }
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

/**
 * Saves weights, optimizer/EMA state and the resume state as a new step folder, points `latest`
 * at it, and prunes old step folders. Returns the step folder's path.
 *
 * @example
 * ```ts
 * import type { SaveCheckpointOptions } from "./format.ts";
 * async function save(options: Omit<SaveCheckpointOptions, "stageDir" | "keepLast">) {
 *   return await saveCheckpoint({ ...options, stageDir: "runs/tiny/clip", keepLast: 3 });
 * }
 * ```
 */
export async function saveCheckpoint(options: SaveCheckpointOptions): Promise<string> {
  const { stageDir, meta, model, optimizer, ema, extraEmas = [], resume } = options;
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
  if (extraEmas.length > 0) {
    const states: ExtraEmaState[] = [];
    for (const extra of extraEmas) {
      const s = extra.stateDict();
      s.shadow.forEach((t, i) => trainingNamed.push([extraEmaKey(extra.decay, names[i]), t]));
      states.push({ decay: extra.decay, updates: s.updates, warmup: s.warmup });
    }
    trainingMeta[EXTRA_EMAS] = JSON.stringify(states);
  }
  const training = await tensorMap(trainingNamed);
  // A CLIP's identity (the pipeline's or the reranking one's) is its step and the hash of what is
  // saved; a prior or decoder records the identity of the CLIP it trains with (passed in
  // `meta.clip` by the training loop).
  const clip = isClipStage(meta.stage) ? { step: meta.step, id: weightsHash(weights) } : meta.clip;

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
      ...(meta.initFrom ? { init_from: JSON.stringify(meta.initFrom) } : {}),
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
  const kept = new Set(options.keepSteps ?? []);
  const steps = (await listSteps(stageDir)).filter((s) => !kept.has(s));
  const stale = steps.filter((s) => s !== meta.step).slice(
    0,
    Math.max(0, steps.length - options.keepLast),
  );
  for (const s of stale) {
    await Deno.remove(join(stageDir, stepDirName(s)), { recursive: true }).catch(() => {});
  }
  return final;
}
