/**
 * Resuming training from a checkpoint: checking it holds the training state, and restoring the
 * optimizer, EMA and generator state.
 *
 * @module
 */
import type { Module } from "../../nn/module.ts";
import type { Adam } from "../../optim/adam.ts";
import type { Ema } from "../../optim/ema.ts";
import {
  CheckpointError,
  EXTRA_EMA_UPDATES,
  extraEmaKey,
  type LoadedCheckpoint,
} from "./format.ts";
import { asF32, oneLine } from "./load.ts";

/**
 * Checks that a checkpoint holds the training state `--resume` needs (Adam moments, and the EMA
 * when the stage keeps one), without touching the device: exported inference weights (such as
 * weights/default) have none, and finding that out only in the training loop left GPU work queued
 * at exit.
 *
 * @throws CheckpointError naming the checkpoint.
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../../config.ts";
 * import type { LoadedCheckpoint } from "./format.ts";
 * function check(ckpt: LoadedCheckpoint, config: ResolvedConfig): void {
 *   assertResumable(ckpt, config.train.clip.ema !== null);
 * }
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
 * Restores Adam moments and EMA shadow weights saved by `saveCheckpoint`. A further EMA
 * (`extraEmas`) the checkpoint does not hold, one added to the config since, starts afresh from the
 * module's current (just restored) weights with its decay warm-up; its decay is returned.
 *
 * @example
 * ```ts
 * import type { Module } from "../../nn/module.ts";
 * import type { Adam } from "../../optim/adam.ts";
 * import type { Ema } from "../../optim/ema.ts";
 * import type { LoadedCheckpoint } from "./format.ts";
 * function restore(ckpt: LoadedCheckpoint, model: Module, optimizer: Adam, ema: Ema | null) {
 *   loadTrainingState(ckpt, model, optimizer, ema);
 * }
 * ```
 */
export function loadTrainingState(
  ckpt: LoadedCheckpoint,
  model: Module,
  optimizer: Adam | null,
  ema: Ema | null,
  extraEmas: readonly Ema[] = [],
): number[] {
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
    const started: number[] = [];
    const counts = extraEmas.length > 0 ? extraEmaUpdates(ckpt) : {};
    for (const extra of extraEmas) {
      const updates = counts[String(extra.decay)];
      if (updates === undefined) {
        extra.loadStateDict({ updates: 0, shadow: extra.params });
        started.push(extra.decay);
      } else {
        extra.loadStateDict({
          updates,
          shadow: names.map((n) => get(extraEmaKey(extra.decay, n))),
        });
      }
    }
    return started;
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`Checkpoint "${ckpt.dir}" does not fit the optimizer: ${oneLine(e)}`);
  }
}

/** The further EMAs' update counts by decay (`EXTRA_EMA_UPDATES`), `{}` when there are none. */
function extraEmaUpdates(ckpt: LoadedCheckpoint): Record<string, number> {
  const text = ckpt.training?.metadata[EXTRA_EMA_UPDATES];
  if (text === undefined) return {};
  let counts: unknown;
  try {
    counts = JSON.parse(text);
  } catch {
    counts = null;
  }
  const valid = typeof counts === "object" && counts !== null && !Array.isArray(counts) &&
    Object.values(counts).every((n) => Number.isInteger(n) && (n as number) >= 0);
  if (!valid) {
    throw new CheckpointError(
      `Checkpoint "${ckpt.dir}" is corrupt: ${EXTRA_EMA_UPDATES} is not a JSON object of counts`,
    );
  }
  return counts as Record<string, number>;
}
