/**
 * The linear noise schedule of Ho et al. 2020 (section 4: beta from 1e-4 to 0.02 over T = 1000),
 * scaled by 1000 / T as in Nichol & Dhariwal's reference code so other T give a similar chain.
 *
 * @module
 */
import { z } from "../../core/deps.ts";
import { definePlugin, type PluginDefinition } from "../../core/registry.ts";
import { NoiseSchedule } from "../../core/diffusion/schedule.ts";

/**
 * Betas evenly spaced from `start * 1000 / T` to `end * 1000 / T` (Ho et al. 2020, section 4).
 *
 * @example
 * ```ts
 * const betas = linearBetas(1000); // betas[0] = 1e-4, betas[999] = 0.02
 * ```
 */
export function linearBetas(steps: number, start = 1e-4, end = 0.02): Float64Array {
  const scale = 1000 / steps;
  const a = start * scale, b = end * scale;
  const betas = new Float64Array(steps);
  for (let i = 0; i < steps; i++) betas[i] = steps === 1 ? a : a + (b - a) * i / (steps - 1);
  return betas;
}

/** Options of the "linear" schedule plugin. */
export const linearOptions = z.object({
  steps: z.number().int().positive().default(1000).describe("Number of diffusion steps T"),
  betaStart: z.number().gt(0).lt(1).default(1e-4).describe("First beta at T = 1000"),
  betaEnd: z.number().gt(0).lt(1).default(0.02).describe("Last beta at T = 1000"),
}).strict().superRefine((o, ctx) => {
  // Scaled by 1000 / T, a short schedule's betas reach 1, where a step keeps no signal.
  for (const key of ["betaStart", "betaEnd"] as const) {
    const scaled = o[key] * 1000 / o.steps;
    if (scaled >= 1) {
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: `${o[key]} x 1000 / ${o.steps} steps = ${scaled} is not below 1; use more ` +
          `steps (above ${Math.floor(o[key] * 1000)}) or a smaller ${key}`,
      });
    }
  }
});

/** The "linear" schedule plugin. */
export const linearSchedule: PluginDefinition<"schedule", typeof linearOptions, NoiseSchedule> =
  definePlugin({
    kind: "schedule",
    name: "linear",
    description: "Linear betas (Ho et al. 2020), scaled by 1000/T",
    options: linearOptions,
    create: (o) => new NoiseSchedule(linearBetas(o.steps, o.betaStart, o.betaEnd)),
  });
