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
  multiscaleLoss: z.array(z.number().int().positive()).max(4).nullable().default(null)
    .describe(
      "Also score the error area-averaged to these sides (the multiscale loss of Hoogeboom et al. " +
        "2023, simple diffusion), each term weighted as the full-size one; null = full size only",
    ),
};

/**
 * The problems of a plugin's `multiscaleLoss` sides for its `imageSize`: each must divide the
 * image side, be smaller and appear once. Called from the plugins' schema refinements, so a bad
 * config fails when it loads, not when the decoder stage starts.
 *
 * @example
 * ```ts
 * multiscaleLossProblems(32, [16, 12]); // [[1, "12 does not divide the image side 32"]]
 * ```
 */
export function multiscaleLossProblems(
  imageSize: number,
  sizes: number[] | null,
): [index: number, message: string][] {
  const problems: [number, string][] = [];
  (sizes ?? []).forEach((size, i) => {
    if (size >= imageSize) {
      problems.push([i, `${size} is not smaller than the image side ${imageSize}`]);
    } else if (imageSize % size !== 0) {
      problems.push([i, `${size} does not divide the image side ${imageSize}`]);
    } else if (sizes!.indexOf(size) !== i) {
      problems.push([i, `${size} is listed twice`]);
    }
  });
  return problems;
}
