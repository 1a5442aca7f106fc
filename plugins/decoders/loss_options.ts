/**
 * The training-loss options that every noise-predicting network plugin (the U-Net decoder, the
 * upsampler) carries in its config, read by the trainer (core/train/stages.ts) and passed to
 * `decoderLoss` (core/diffusion/loss.ts).
 *
 * @module
 */
import { z } from "../../core/deps.ts";

/** Zod fields to spread into a plugin's options object. */
export const lossOptionFields = {
  minSnrGamma: z.number().positive().nullable().default(null)
    .describe("Min-SNR-gamma loss weighting (Hang et al. 2023; 5 is theirs); null = L_simple"),
  logitNormalTimesteps: z.object({
    mean: z.number().finite(),
    std: z.number().finite().positive(),
  }).strict().nullable().default(null)
    .describe(
      "Draw training timesteps logit-normally, logit(t) ~ N(mean, std^2) in rectified-flow time " +
        "(Esser et al. 2024; theirs: mean 0, std 1); null = uniform (thesis)",
    ),
};
