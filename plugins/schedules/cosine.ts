/**
 * The cosine noise schedule (Nichol & Dhariwal 2021, "Improved DDPM", section 3.2, eq. 17), with an
 * optional shift of its log-SNR (Hoogeboom et al. 2023, "simple diffusion", section 3.1).
 *
 * @module
 */
import { z } from "../../core/deps.ts";
import { definePlugin, type PluginDefinition } from "../../core/registry.ts";
import { NoiseSchedule } from "../../core/diffusion/schedule.ts";

/**
 * alphaBar(t) = f(t) / f(0), f(t) = cos(((t / T) + s) / (1 + s) * pi / 2)^2 (Nichol & Dhariwal
 * 2021, eq. 17), for t in 0..T (continuous t allowed).
 *
 * With `logSnrShift` = k != 0 the log signal-to-noise ratio log(alphaBar / (1 - alphaBar)) of every
 * step moves by k: alphaBar' = sigmoid(logit(alphaBar) + k) (Hoogeboom et al. 2023, section 3.1).
 * A negative k adds noise at every step. Their argument: averaging an n x n image down to its
 * coarse structure divides the noise variance by the number of pixels averaged, so a schedule
 * designed for resolution b leaves the layout of a d x d image (d > b) legible for longer; the shift
 * 2 log(b / d) gives the d x d image's coarse structure the b x b image's SNR at every t (-1.386 for
 * 32x32 against 16x16).
 *
 * @example
 * ```ts
 * cosineAlphaBar(0, 1000); // 1
 * cosineAlphaBar(500, 1000, 0.008, 2 * Math.log(16 / 32)); // noisier than cosineAlphaBar(500, 1000)
 * ```
 */
export function cosineAlphaBar(t: number, steps: number, s = 0.008, logSnrShift = 0): number {
  const f = (u: number): number => Math.cos((u / steps + s) / (1 + s) * Math.PI / 2) ** 2;
  const alphaBar = f(t) / f(0);
  if (logSnrShift === 0) return alphaBar;
  // sigmoid(logit(a) + k) = a / (a + (1 - a) e^-k); exact at a = 0 and a = 1.
  return alphaBar / (alphaBar + (1 - alphaBar) * Math.exp(-logSnrShift));
}

/**
 * Cosine-schedule betas: beta_t = min(1 - alphaBar(t + 1) / alphaBar(t), maxBeta); the clip
 * (0.999 in the paper) avoids a singularity at the end of the chain (Nichol & Dhariwal 2021,
 * section 3.2). `logSnrShift` shifts alphaBar's log-SNR as in `cosineAlphaBar`.
 *
 * @example
 * ```ts
 * const betas = cosineBetas(300); // Float64Array(300)
 * ```
 */
export function cosineBetas(
  steps: number,
  s = 0.008,
  maxBeta = 0.999,
  logSnrShift = 0,
): Float64Array {
  const betas = new Float64Array(steps);
  const alphaBar = (t: number): number => cosineAlphaBar(t, steps, s, logSnrShift);
  for (let i = 0; i < steps; i++) {
    betas[i] = Math.min(1 - alphaBar(i + 1) / alphaBar(i), maxBeta);
  }
  return betas;
}

/** Options of the "cosine" schedule plugin. */
export const cosineOptions = z.object({
  steps: z.number().int().positive().default(1000).describe("Number of diffusion steps T"),
  s: z.number().nonnegative().default(0.008).describe("Offset s that keeps beta_0 from being tiny"),
  maxBeta: z.number().gt(0).lt(1).default(0.999)
    .describe("Upper clip for every beta, below 1 (at 1 the last step keeps no signal: x_0 = NaN)"),
  logSnrShift: z.number().finite().default(0).describe(
    "Added to every step's log-SNR (simple diffusion's shift; 2 log(16/32) = -1.386 gives a 32x32 " +
      "image's layout the noise a 16x16 image gets)",
  ),
}).strict();

/** The "cosine" schedule plugin (the thesis uses it for both prior and decoder). */
export const cosineSchedule: PluginDefinition<"schedule", typeof cosineOptions, NoiseSchedule> =
  definePlugin({
    kind: "schedule",
    name: "cosine",
    description: "Cosine schedule (Nichol & Dhariwal 2021, eq. 17), optionally log-SNR shifted",
    options: cosineOptions,
    create: (o) => new NoiseSchedule(cosineBetas(o.steps, o.s, o.maxBeta, o.logSnrShift)),
  });
