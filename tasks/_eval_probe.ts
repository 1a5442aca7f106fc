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
import { loadOrTrainProbe, scoreImages } from "../datasets/probe.ts";
import { UsageError } from "./_cli.ts";
import { type EvalContext, loadSplit, probeTable } from "./_eval_common.ts";

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
    const real = await scoreImages(probe, imagesToNchw(data), data.map((d) => d.caption));
    print(probeTable(
      `Ground-truth probe on ${data.length} real ${split} images (${info.options.steps} steps, ` +
        `${trained ? `trained now in ${info.seconds.toFixed(0)} s` : "cached"})`,
      real,
      null,
    ));
    return { probe: info, realImages: real, trained };
  } finally {
    probe.dispose();
  }
}
