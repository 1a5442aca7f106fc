/**
 * The cosine noise schedule (Nichol & Dhariwal 2021, "Improved DDPM", section 3.2, eq. 17).
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
 * @example
 * ```ts
 * cosineAlphaBar(0, 1000); // 1
 * ```
 */
export function cosineAlphaBar(t: number, steps: number, s = 0.008): number {
  const f = (u: number): number => Math.cos((u / steps + s) / (1 + s) * Math.PI / 2) ** 2;
  return f(t) / f(0);
}

/**
 * Cosine-schedule betas: beta_t = min(1 - alphaBar(t + 1) / alphaBar(t), maxBeta); the clip
 * (0.999 in the paper) avoids a singularity at the end of the chain (Nichol & Dhariwal 2021,
 * section 3.2).
 *
 * @example
 * ```ts
 * const betas = cosineBetas(300); // Float64Array(300)
 * ```
 */
export function cosineBetas(steps: number, s = 0.008, maxBeta = 0.999): Float64Array {
  const betas = new Float64Array(steps);
  for (let i = 0; i < steps; i++) {
    betas[i] = Math.min(1 - cosineAlphaBar(i + 1, steps, s) / cosineAlphaBar(i, steps, s), maxBeta);
  }
  return betas;
}

/** Options of the "cosine" schedule plugin. */
export const cosineOptions = z.object({
  steps: z.number().int().positive().default(1000).describe("Number of diffusion steps T"),
  s: z.number().nonnegative().default(0.008).describe("Offset s that keeps beta_0 from being tiny"),
  maxBeta: z.number().gt(0).lte(1).default(0.999).describe("Upper clip for every beta"),
}).strict();

/** The "cosine" schedule plugin (the thesis uses it for both prior and decoder). */
export const cosineSchedule: PluginDefinition<"schedule", typeof cosineOptions, NoiseSchedule> =
  definePlugin({
    kind: "schedule",
    name: "cosine",
    description: "Cosine schedule (Nichol & Dhariwal 2021, eq. 17)",
    options: cosineOptions,
    create: (o) => new NoiseSchedule(cosineBetas(o.steps, o.s, o.maxBeta)),
  });
