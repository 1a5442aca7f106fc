/**
 * Whether a checkpoint fits the current run: the config it was trained with, and the CLIP a
 * prior or decoder was trained against.
 *
 * @module
 */
import { diffConfigs, type ResolvedConfig, TRAIN_DEFAULTS, type TrainStage } from "../../config.ts";
import { joinPath as join } from "../../io/mod.ts";
import { CheckpointError, type ClipIdentity, type LoadedCheckpoint } from "./format.ts";

/**
 * Train settings that may change between runs without changing the model or its loss curve so
 * far. `steps` is one: a resumed run may be extended or shortened (the learning-rate schedule
 * then follows the new total from the resumed step on; `train` says so when it changed), and so
 * may its `restarts` (a finished run given more warm restarts continues with them). `extraEma`
 * is another: the further EMAs only watch the weights (one added on resume starts
 * then; one removed is no longer saved).
 */
const HARMLESS_TRAIN_KEYS = new Set([
  "logEvery",
  "checkpointEvery",
  "keepLast",
  "steps",
  "restarts",
  "extraEma",
]);

/**
 * Config paths at which a checkpoint's stored config and the current one differ, restricted to
 * what a stage depends on: the given component slots, and (when `trainStage` is
 * given, for resuming) that stage's train settings other than logging and checkpoint cadence.
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../../config.ts";
 * import type { LoadedCheckpoint } from "./format.ts";
 * function changed(ckpt: LoadedCheckpoint, config: ResolvedConfig): string[] {
 *   return configMismatch(ckpt.meta.config, config, ["tokenizer", "textEncoder"], "clip");
 *   // e.g. ["components.textEncoder.options.width"]
 * }
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
      // A train setting added after the checkpoint was written is absent from its config and
      // counts as its default, which is how the checkpoint was trained.
      const t = { ...TRAIN_DEFAULTS[trainStage], ...(c.train?.[trainStage] ?? {}) } as Record<
        string,
        unknown
      >;
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
 * import type { ResolvedConfig } from "../../config.ts";
 * import type { LoadedCheckpoint } from "./format.ts";
 * function check(ckpt: LoadedCheckpoint, config: ResolvedConfig): void {
 *   assertConfigMatches(ckpt, config, ["tokenizer", "textEncoder", "imageEncoder"]);
 * }
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
 * import type { LoadedCheckpoint } from "./format.ts";
 * function identity(clipCheckpoint: LoadedCheckpoint) {
 *   return clipIdentity(clipCheckpoint); // e.g. { step: 300, id: "9f2c..." }
 * }
 * ```
 */
export function clipIdentity(clip: LoadedCheckpoint): ClipIdentity {
  return clip.meta.clip ?? { step: clip.meta.step };
}

/** Whether a recorded CLIP identity names `current` (ids compared when both are known). */
export function sameClip(recorded: ClipIdentity, current: ClipIdentity): boolean {
  if (recorded.step !== current.step) return false;
  return recorded.id === undefined || current.id === undefined || recorded.id === current.id;
}

/** A CLIP identity in words, e.g. "step 1500 (id ab12cd34ef56)". */
export function describeClip(c: ClipIdentity): string {
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
 * import type { LoadedCheckpoint } from "./format.ts";
 * function check(priorCkpt: LoadedCheckpoint, decoderCkpt: LoadedCheckpoint, clipCkpt: LoadedCheckpoint) {
 *   assertSameClip([priorCkpt, decoderCkpt], clipCkpt, "runs/tiny");
 *   // CheckpointError: decoder in runs/tiny was trained with CLIP step 1500 (id ab12...) but
 *   // runs/tiny/clip is now step 2500 (id cd34...); retrain the decoder (...)
 * }
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
