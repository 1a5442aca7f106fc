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
  EXTRA_EMAS,
  extraEmaKey,
  type ExtraEmaState,
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

/** What `loadTrainingState` did with the further EMAs (decays). */
export interface ExtraEmaResume {
  /** Configured but not in the checkpoint: started afresh from the restored weights. */
  started: number[];
  /** In the checkpoint but no longer configured: dropped (and no longer saved). */
  dropped: number[];
}

/**
 * Restores Adam moments and EMA shadow weights saved by `saveCheckpoint`. A further EMA
 * (`extraEmas`) the checkpoint does not hold, one added to the config since, starts afresh from the
 * module's current (just restored) weights, at its constant decay: the decay warm-up exists to
 * forget a random initialisation, and these weights are trained.
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
): ExtraEmaResume {
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
    const saved = savedExtraEmas(ckpt);
    const started: number[] = [];
    for (const extra of extraEmas) {
      const state = saved.find((s) => s.decay === extra.decay);
      if (state === undefined) {
        extra.loadStateDict({ updates: 0, warmup: false, shadow: extra.params });
        started.push(extra.decay);
      } else {
        extra.loadStateDict({
          updates: state.updates,
          warmup: state.warmup,
          shadow: names.map((n) => get(extraEmaKey(extra.decay, n))),
        });
      }
    }
    const dropped = saved.map((s) => s.decay).filter((d) => !extraEmas.some((e) => e.decay === d));
    return { started, dropped };
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(`Checkpoint "${ckpt.dir}" does not fit the optimizer: ${oneLine(e)}`);
  }
}

/** The further EMAs a checkpoint holds (`EXTRA_EMAS`), none when it has no such entry. */
function savedExtraEmas(ckpt: LoadedCheckpoint): ExtraEmaState[] {
  const text = ckpt.training?.metadata[EXTRA_EMAS];
  if (text === undefined) return [];
  let states: unknown;
  try {
    states = JSON.parse(text);
  } catch {
    states = null;
  }
  const valid = Array.isArray(states) &&
    states.every((s) =>
      typeof s?.decay === "number" && s.decay > 0 && s.decay < 1 &&
      Number.isInteger(s.updates) && s.updates >= 0 && typeof s.warmup === "boolean"
    );
  if (!valid) {
    throw new CheckpointError(
      `Checkpoint "${ckpt.dir}" is corrupt: ${EXTRA_EMAS} is not a list of { decay, updates, ` +
        `warmup }; resume an earlier step folder (or point "latest" at one)`,
    );
  }
  return states as ExtraEmaState[];
}
