/**
 * `deno task eval probe`: trains (or reuses, from DIR/probe/) the ground-truth probe that the
 * pipeline evaluation judges generated images with, and scores it on the split's real images:
 * its ceiling, reported before any generated-image number.
 * @module
 */
import { join } from "node:path";
import { imagesToNchw } from "../core/data/images.ts";
import { revalidateStoredConfig } from "../core/pipeline.ts";
import { loadCheckpoint } from "../core/train/checkpoint.ts";
import { Rng } from "../core/data/rng.ts";
import { addGrain, loadOrTrainProbe, scoreImages } from "../datasets/probe.ts";
import type { ProbeScores } from "../datasets/score.ts";
import { UsageError } from "./_cli.ts";
import { type EvalContext, fmt, loadSplit, probeTable, table } from "./_eval_common.ts";

/**
 * Standard deviations (in the [-1, 1] pixel scale) of the Gaussian grain added to the real images
 * for the robustness check: 0.02 is 2.5 grey levels of 255, invisible to the eye; 0.05 is faint.
 * A judge of generated images, which carry some grain, must not change its verdict for it.
 */
export const GRAIN_LEVELS = [0.02, 0.05] as const;

/** Scores the run's ground-truth probe on real images; returns the results to store. */
export async function evalProbe(ctx: EvalContext): Promise<Record<string, unknown>> {
  const { checkpoint, registry, split, print, probeOptions } = ctx;
  const clipCkpt = await loadCheckpoint(join(checkpoint, "clip"), "clip");
  const config = await revalidateStoredConfig(clipCkpt.meta.config, registry, clipCkpt.dir);
  const data = await loadSplit(config, registry, ctx);
  if (!data.every((d) => d.labels)) {
    throw new UsageError(`The ${split} split has no ground-truth labels: no probe can judge it`);
  }
  const { probe, info, trained } = await loadOrTrainProbe(
    checkpoint,
    config,
    registry,
    probeOptions,
    { print },
  );
  try {
    const captions = data.map((d) => d.caption);
    const clean = imagesToNchw(data);
    const real = await scoreImages(probe, clean, captions);
    print(probeTable(
      `Ground-truth probe on ${data.length} real ${split} images (${info.options.steps} steps, ` +
        `${trained ? `trained now in ${info.seconds.toFixed(0)} s` : "cached"})`,
      real,
      null,
    ));
    const grained: Record<string, ProbeScores> = {};
    for (const sd of GRAIN_LEVELS) {
      const images = clean.slice();
      addGrain(images, 0, images.length, sd, new Rng(`grain-${sd}`));
      const { byFigures: _f, byShape: _s, exactByImage: _e, ...rates } = await scoreImages(
        probe,
        images,
        captions,
      );
      grained[sd] = rates;
    }
    const [lo, hi] = GRAIN_LEVELS.map((sd) => grained[sd]);
    const rows: [string, keyof ProbeScores][] = [
      ["exact", "exact"],
      ["colours right", "colour"],
      ["shapes right", "shape"],
      ["figure count right", "count"],
    ];
    print(table(
      `The same images with Gaussian grain (sd ${GRAIN_LEVELS.join(" and ")} of [-1, 1]; ` +
        `its training grain: up to ${info.options.noise ?? 0})`,
      rows.map(([name, k]) => [name, fmt(lo[k], true), fmt(hi[k], true)]),
      [`sd ${GRAIN_LEVELS[0]}`, `sd ${GRAIN_LEVELS[1]}`],
    ));
    return { probe: info, realImages: real, realImagesGrain: grained, trained };
  } finally {
    probe.dispose();
  }
}
