/**
 * Exporting the weights a checkpoint samples with (EMA, optionally float16), without training
 * state.
 *
 * @module
 */
import { isClipStage } from "../../config/schema.ts";
import {
  f32ToF16,
  joinPath as join,
  type TensorMap,
  writeShardedSafetensors,
  writeTextAtomic,
} from "../../io/mod.ts";
import {
  CheckpointError,
  exists,
  extraEmaKey,
  LATEST,
  MAX_SHARD_BYTES,
  MODEL,
  RESUME_FILE,
  stepDirName,
} from "./format.ts";
import { asF32, loadCheckpoint } from "./load.ts";

/** Options of `exportInferenceCheckpoint`. */
export interface ExportOptions {
  /** Store weights as IEEE half precision (F16), halving the size. */
  half?: boolean;
  /** Shard size limit in bytes (default 16 MB). */
  maxShardBytes?: number;
  /**
   * Which EMA to write: the config's `ema` (the default) or one of its `extraEma` decays. A stage
   * that did not keep this decay writes its default EMA (see `ExportedStage.emaDecay`).
   */
  emaDecay?: number;
}

/** What `exportInferenceCheckpoint` wrote. */
export interface ExportedStage {
  /** The new step folder. */
  dir: string;
  /** EMA shadow weights or the trained weights. */
  weights: "ema" | "trained";
  /** The decay of the EMA written, or null for trained weights or an unrecorded decay. */
  emaDecay: number | null;
  /** The EMA decays the stage could have written, ascending (none for CLIP: it ships trained weights). */
  keptDecays: number[];
}

/**
 * Writes the weights a checkpoint samples with (EMA weights where it has them; `emaDecay` picks
 * one of the further EMAs instead) as a stand-alone step folder in `outStageDir`, without
 * optimizer state: what gets shipped. Metadata (config, tokenizer, format version, step) is kept,
 * so the result loads like any checkpoint.
 *
 * @example
 * ```ts
 * async function ship() {
 *   await exportInferenceCheckpoint("runs/demo/decoder", "out/weights/decoder", { half: true });
 * }
 * ```
 */
export async function exportInferenceCheckpoint(
  stageDir: string,
  outStageDir: string,
  options: ExportOptions = {},
): Promise<ExportedStage> {
  const ckpt = await loadCheckpoint(stageDir);
  // CLIP samples (and the prior and decoder trained) with its trained weights, not an EMA of
  // them (`loadClip`): exporting its EMA would ship a CLIP they never saw under the same id.
  const useEma = !isClipStage(ckpt.meta.stage);
  const training = ckpt.training?.tensors ?? {};
  // The config's EMA is stored as ema.<name>, a further one as ema[<decay>].<name>.
  const primaryDecay = ckpt.meta.config.train[ckpt.meta.stage]?.ema ?? null;
  const wanted = options.emaDecay;
  const extra = wanted !== undefined && wanted !== primaryDecay &&
    Object.keys(training).some((key) => key.startsWith(extraEmaKey(wanted, "")));
  const emaName = (name: string): string => extra ? extraEmaKey(wanted!, name) : `ema.${name}`;
  const tensors: TensorMap = {};
  // The label says what was written: EMA shadows taken from the training state, or the weights of
  // an earlier export that were EMA shadows already.
  let wroteEma = useEma && ckpt.meta.exportedWeights === "ema";
  // Exports made before decays were recorded could only hold the config's EMA.
  const exportedDecay = wroteEma ? ckpt.meta.exportedEmaDecay ?? primaryDecay : null;
  let emaDecay = exportedDecay;
  for (const [name, entry] of Object.entries(ckpt.weights)) {
    const ema = useEma ? training[emaName(name)] : undefined;
    if (ema) {
      wroteEma = true;
      emaDecay = extra ? wanted! : primaryDecay;
    }
    const data = asF32(ema ?? entry, name, ckpt.dir);
    tensors[name] = options.half
      ? { dtype: "F16", shape: [...entry.shape], data: f32ToF16(data) }
      : { dtype: "F32", shape: [...entry.shape], data };
  }
  // The decays the stage holds: an export's own, the config's (ema.*), the further ones (ema[d].*).
  const kept = new Set<number>(exportedDecay === null ? [] : [exportedDecay]);
  for (const key of useEma ? Object.keys(training) : []) {
    if (key.startsWith("ema.") && primaryDecay !== null) kept.add(primaryDecay);
    const further = /^ema\[([^\]]+)\]\./.exec(key);
    if (further) kept.add(Number(further[1]));
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
    ...(ckpt.meta.initFrom ? { init_from: JSON.stringify(ckpt.meta.initFrom) } : {}),
    weights: wroteEma ? "ema" : "trained",
    ...(wroteEma && emaDecay !== null ? { ema_decay: String(emaDecay) } : {}),
  }, { maxShardBytes: options.maxShardBytes ?? MAX_SHARD_BYTES });
  await writeTextAtomic(join(tmp, RESUME_FILE), JSON.stringify(ckpt.resume, null, 2) + "\n");
  await Deno.rename(tmp, final);
  await writeTextAtomic(join(outStageDir, LATEST), name + "\n");
  const keptDecays = [...kept].sort((a, b) => a - b);
  return { dir: final, weights: wroteEma ? "ema" : "trained", emaDecay, keptDecays };
}
