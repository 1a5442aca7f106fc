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

/** `guidedNoise` given the doubled conditioning (raw or encoded once by the decoder). */
function guidedFromDoubled(
  decoder: Decoder,
  xt: Tensor,
  timestep: number,
  doubled: DecoderConditioning | EncodedConditioning,
  scale: number,
): Tensor {
  const B = xt.shape[0];
  const eps = decoder.predictNoise(concat([xt, xt], 0), full([2 * B], timestep), doubled);
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
): NoisePredictor {
  const doubled = encodeOnce(decoder, doubleConditioning(cond));
  return (xt, timestep) => {
    if (2 * xt.shape[0] !== rowsOf(doubled)) {
      throw new RangeError(
        `Conditioning has ${rowsOf(doubled) / 2} rows for a batch of ${xt.shape[0]} images`,
      );
    }
    return guidedFromDoubled(decoder, xt, timestep, doubled, scale);
  };
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
  const encoded = encodeOnce(decoder, cond);
  return (xt, timestep) => decoder.predictNoise(xt, full([xt.shape[0]], timestep), encoded);
}
