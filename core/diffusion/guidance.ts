/**
 * Classifier-free guidance (Ho & Salimans 2022; thesis section 2.1.3 and Algorithm 3, lines
 * 4-6): eps = eps_uncond + s (eps_cond - eps_uncond), with both passes run as one batch of 2B.
 *
 * @module
 */
import { add, affine, concat, full, noGrad, slice, sub, type Tensor } from "../tensor/mod.ts";
import type {
  Decoder,
  DecoderConditioning,
  EncodedConditioning,
  NoisePredictor,
} from "../components.ts";
import type { SelfConditionedPrediction } from "./self_condition.ts";

/**
 * eps_u + s (eps_c - eps_u) (thesis Algorithm 3, line 6).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function guided(epsCond: Tensor, epsUncond: Tensor): Tensor {
 *   return combineGuidance(epsCond, epsUncond, 2);
 * }
 * ```
 */
export function combineGuidance(epsCond: Tensor, epsUncond: Tensor, scale: number): Tensor {
  return add(epsUncond, affine(sub(epsCond, epsUncond), scale, 0));
}

/**
 * The conditioning of a guided batch: the rows of `cond` followed by the same rows with keep = 0
 * (the null condition), so one forward pass gives both predictions.
 *
 * @example
 * ```ts
 * import type { DecoderConditioning } from "../components.ts";
 * function both(cond: DecoderConditioning): DecoderConditioning {
 *   return doubleConditioning(cond); // batch 2B
 * }
 * ```
 */
export function doubleConditioning(cond: DecoderConditioning): DecoderConditioning {
  const B = cond.keep.size;
  return {
    tokens: {
      ids: concat([cond.tokens.ids, cond.tokens.ids], 0),
      endIndex: concat([cond.tokens.endIndex, cond.tokens.endIndex], 0),
    },
    imageEmbedding: concat([cond.imageEmbedding, cond.imageEmbedding], 0),
    keep: concat([cond.keep, full([B], 0)], 0),
  };
}

/**
 * Guided noise prediction for x_t [B, C, H, W] at original timestep index `timestep`: the
 * conditional and unconditional passes as ONE batch of 2B, then `combineGuidance`.
 *
 * @example
 * ```ts
 * import type { Decoder, DecoderConditioning } from "../components.ts";
 * import type { Tensor } from "../tensor/mod.ts";
 * function eps(unet: Decoder, xt: Tensor, cond: DecoderConditioning): Tensor {
 *   return guidedNoise(unet, xt, 120, cond, 2.0);
 * }
 * ```
 */
export function guidedNoise(
  decoder: Decoder,
  xt: Tensor,
  timestep: number,
  cond: DecoderConditioning,
  scale: number,
): Tensor {
  const B = xt.shape[0];
  if (cond.keep.size !== B) {
    throw new RangeError(`Conditioning has ${cond.keep.size} rows for a batch of ${B} images`);
  }
  return guidedFromDoubled(decoder, xt, timestep, doubleConditioning(cond), scale);
}

/**
 * `guidedNoise` given the doubled conditioning (raw or encoded once by the decoder); both halves
 * read the same x_0 estimate when there is one (self-conditioning).
 */
function guidedFromDoubled(
  decoder: Decoder,
  xt: Tensor,
  timestep: number,
  doubled: DecoderConditioning | EncodedConditioning,
  scale: number,
  estimate?: Tensor | null,
): Tensor {
  const B = xt.shape[0];
  const eps = decoder.predictNoise(
    concat([xt, xt], 0),
    full([2 * B], timestep),
    doubled,
    estimate ? concat([estimate, estimate], 0) : undefined,
  );
  return combineGuidance(slice(eps, 0, 0, B), slice(eps, 0, B, 2 * B), scale);
}

/**
 * The conditioning a sampler reuses at every step: encoded once when the decoder can (the
 * caption and CLIP embedding are the same at every step; issue 11 measured ~7% of a step spent
 * re-encoding them), else as given.
 */
function encodeOnce(
  decoder: Decoder,
  cond: DecoderConditioning,
): DecoderConditioning | EncodedConditioning {
  return decoder.encodeConditioning ? noGrad(() => decoder.encodeConditioning!(cond)) : cond;
}

function rowsOf(cond: DecoderConditioning | EncodedConditioning): number {
  return "encoded" in cond ? cond.batch : cond.keep.size;
}

/**
 * A `NoisePredictor` for samplers that applies classifier-free guidance with scale `scale`.
 * With `limit`, only at the timesteps inside its interval; elsewhere the conditional prediction
 * alone, one pass instead of two (guidance in a limited interval, Kynkäänniemi et al. 2024).
 *
 * @example
 * ```ts
 * import type { Decoder, DecoderConditioning, Sampler } from "../components.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function sample(sampler: Sampler, unet: Decoder, cond: DecoderConditioning, schedule: NoiseSchedule) {
 *   const shape = [cond.keep.shape[0], unet.channels, unet.imageSize, unet.imageSize];
 *   return sampler.sample(guidedPredictor(unet, cond, 2), shape, schedule);
 * }
 * ```
 */
export function guidedPredictor(
  decoder: Decoder,
  cond: DecoderConditioning,
  scale: number,
  limit?: GuidanceLimit,
): NoisePredictor {
  refuseSelfConditioned(decoder);
  const predict = guidedPrediction(decoder, cond, scale, limit);
  return (xt, timestep) => predict(xt, timestep, null);
}

/**
 * `guidedPredictor` that also takes the previous step's x_0 estimate, for a self-conditioned
 * decoder (wrap it with `selfConditionedPredictor`, core/diffusion/self_condition.ts).
 *
 * @example
 * ```ts
 * import type { Decoder, DecoderConditioning } from "../components.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * import { selfConditionedPredictor } from "./self_condition.ts";
 * function predictor(unet: Decoder, cond: DecoderConditioning, schedule: NoiseSchedule) {
 *   return selfConditionedPredictor(guidedPrediction(unet, cond, 2), schedule, "eps");
 * }
 * ```
 */
export function guidedPrediction(
  decoder: Decoder,
  cond: DecoderConditioning,
  scale: number,
  limit?: GuidanceLimit,
): SelfConditionedPrediction {
  const doubled = encodeOnce(decoder, doubleConditioning(cond));
  // Outside a partial interval: the conditional pass alone.
  const unguided = limit && !coversSchedule(limit.interval)
    ? { limit, predict: conditionalPrediction(decoder, cond) }
    : null;
  return (xt, timestep, estimate) => {
    if (unguided && !inInterval(unguided.limit, timestep)) {
      return unguided.predict(xt, timestep, estimate);
    }
    if (2 * xt.shape[0] !== rowsOf(doubled)) {
      throw new RangeError(
        `Conditioning has ${rowsOf(doubled) / 2} rows for a batch of ${xt.shape[0]} images`,
      );
    }
    return guidedFromDoubled(decoder, xt, timestep, doubled, scale, estimate);
  };
}

/**
 * Samplers call a plain `NoisePredictor` with no estimate; a self-conditioned decoder would then
 * read zeros at every step, not what it learnt, so it must be sampled through
 * `selfConditionedPredictor` instead.
 */
function refuseSelfConditioned(decoder: Decoder): void {
  if ((decoder.selfCondition ?? 0) > 0) {
    throw new RangeError(
      "The decoder is self-conditioned: sample it through selfConditionedPredictor(" +
        "guidedPrediction(...) or conditionalPrediction(...), schedule, prediction)",
    );
  }
}

/**
 * The part of the reverse process where guidance applies, as fractions t / T of the training
 * schedule's T steps (0 = the last denoising step, 1 = pure noise): [lo, hi].
 */
export type GuidanceInterval = readonly [lo: number, hi: number];

/** A guidance interval with the length T of the schedule its fractions refer to. */
export interface GuidanceLimit {
  interval: GuidanceInterval;
  /** T, the training schedule's number of steps (`NoiseSchedule.numSteps`). */
  timesteps: number;
}

/** Guidance at every step: the thesis's Algorithm 3. */
export const FULL_GUIDANCE_INTERVAL: GuidanceInterval = [0, 1];

function coversSchedule([lo, hi]: GuidanceInterval): boolean {
  return lo <= 0 && hi >= 1;
}

function inInterval({ interval: [lo, hi], timesteps }: GuidanceLimit, timestep: number): boolean {
  const f = timestep / timesteps;
  return f >= lo && f <= hi;
}

/**
 * Checks a guidance interval: two finite fractions 0 <= lo < hi <= 1. Throws a RangeError
 * naming `what` otherwise.
 *
 * @example
 * ```ts
 * checkGuidanceInterval([0.4, 1], "guidanceInterval"); // fine
 * ```
 */
export function checkGuidanceInterval(interval: unknown, what: string): GuidanceInterval {
  const ok = Array.isArray(interval) && interval.length === 2 &&
    interval.every((v) => typeof v === "number" && Number.isFinite(v) && v >= 0 && v <= 1) &&
    interval[0] < interval[1];
  if (!ok) {
    throw new RangeError(
      `${what} must be two fractions lo < hi from 0 to 1 (e.g. [0.4, 1]), got ${
        JSON.stringify(interval)
      }`,
    );
  }
  return interval as unknown as GuidanceInterval;
}

/**
 * A `NoisePredictor` without guidance: one conditional pass per step (what s = 1 computes, at
 * half the cost of `guidedPredictor`).
 *
 * @example
 * ```ts
 * import type { Decoder, DecoderConditioning, Sampler } from "../components.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * function sample(sampler: Sampler, unet: Decoder, cond: DecoderConditioning, schedule: NoiseSchedule) {
 *   const shape = [cond.keep.shape[0], unet.channels, unet.imageSize, unet.imageSize];
 *   return sampler.sample(conditionalPredictor(unet, cond), shape, schedule, { steps: 50 });
 * }
 * ```
 */
export function conditionalPredictor(decoder: Decoder, cond: DecoderConditioning): NoisePredictor {
  refuseSelfConditioned(decoder);
  const predict = conditionalPrediction(decoder, cond);
  return (xt, timestep) => predict(xt, timestep, null);
}

/**
 * `conditionalPredictor` that also takes the previous step's x_0 estimate (for a
 * self-conditioned decoder; see `guidedPrediction`).
 *
 * @example
 * ```ts
 * import type { Decoder, DecoderConditioning } from "../components.ts";
 * import type { NoiseSchedule } from "./schedule.ts";
 * import { selfConditionedPredictor } from "./self_condition.ts";
 * function predictor(unet: Decoder, cond: DecoderConditioning, schedule: NoiseSchedule) {
 *   return selfConditionedPredictor(conditionalPrediction(unet, cond), schedule, "eps");
 * }
 * ```
 */
export function conditionalPrediction(
  decoder: Decoder,
  cond: DecoderConditioning,
): SelfConditionedPrediction {
  const encoded = encodeOnce(decoder, cond);
  return (xt, timestep, estimate) =>
    decoder.predictNoise(xt, full([xt.shape[0]], timestep), encoded, estimate ?? undefined);
}
