/**
 * `deno task eval clip` and `deno task eval prior`: the thesis's evaluations of the trained CLIP
 * (Table 4.1: cosine similarities of true and random pairs, top-1 and top-5 retrieval) and of the
 * prior (Table 4.2: sampled image embeddings against the text, true image and random text
 * embeddings), printed beside the thesis's numbers.
 * @module
 */
import { join } from "node:path";
import type { NoiseSchedule } from "../core/diffusion/mod.ts";
import { evaluateClip, THESIS_TABLE_4_1 } from "../core/eval/clip.ts";
import { evaluatePrior, type PriorMetrics, THESIS_TABLE_4_2 } from "../core/eval/prior.ts";
import {
  buildClipCache,
  CLIP_SLOTS,
  createComponent,
  createDataset,
  createPrior,
  createPriorSampler,
  loadClip,
  loadResolvedCheckpoint,
} from "../core/pipeline.ts";
import {
  assertConfigMatches,
  assertSameClip,
  loadModuleWeights,
} from "../core/train/checkpoint.ts";
import { shapesCaptionTruth } from "../datasets/captions.ts";
import { clipRows, type EvalContext, evalSet, fmt, loadSplit, table } from "./_eval_common.ts";

/** Evaluates the run's CLIP, or its prior with that CLIP; returns the results to store. */
export async function evalClipOrPrior(
  what: "clip" | "prior",
  ctx: EvalContext,
): Promise<Record<string, unknown>> {
  const { checkpoint, registry, split, seed, print, load } = ctx;
  const clipCkpt = await loadResolvedCheckpoint(join(checkpoint, "clip"), "clip", registry);
  const config = clipCkpt.meta.config;
  const data = await loadSplit(config, registry, ctx);
  const { clip, tokenizer } = await loadClip(clipCkpt, config, registry);
  try {
    if (what === "clip") {
      // On shapes data, retrieval is also scored against every caption true of the image, and
      // each image's caption against its hard negative (colours swapped) where the dataset has one.
      const captionTrueOf = shapesCaptionTruth(data) ?? undefined;
      const dataset = await createDataset(config, registry);
      const hardNegative = dataset.hardNegative?.bind(dataset);
      const r = await evaluateClip(clip, tokenizer, evalSet(data), {
        seed,
        captionTrueOf,
        hardNegative,
      });
      print(table(
        `CLIP, ${split} split (${r.count} pairs; step ${clipCkpt.meta.step}) vs thesis Table 4.1:`,
        clipRows(r, split === "test" ? THESIS_TABLE_4_1 : null),
      ));
      return { clip: r, thesis: THESIS_TABLE_4_1, step: clipCkpt.meta.step };
    } else {
      const priorCkpt = await loadResolvedCheckpoint(join(checkpoint, "prior"), "prior", registry);
      assertConfigMatches(priorCkpt, config, CLIP_SLOTS);
      assertSameClip([priorCkpt], clipCkpt, checkpoint);
      const pconfig = priorCkpt.meta.config;
      const prior = await createPrior(pconfig, registry, tokenizer);
      const cache = buildClipCache(clip, tokenizer, data);
      try {
        loadModuleWeights(prior, priorCkpt, { ema: true });
        prior.eval();
        const schedule = await createComponent<NoiseSchedule>(pconfig, registry, "priorSchedule");
        const m: PriorMetrics = await evaluatePrior(prior, cache, schedule, {
          seed,
          sampler: await createPriorSampler(registry, load),
          guidance: load.priorGuidance,
        });
        const ref = THESIS_TABLE_4_2;
        const t = (x: number): string => (split === "test" ? fmt(x) : "-");
        print(table(
          `Prior, ${split} split (${data.length} captions; step ${priorCkpt.meta.step}) vs thesis Table 4.2:`,
          [
            ["generated vs text embedding", fmt(m.textSimilarity), t(ref.textSimilarity)],
            ["generated vs true image embedding", fmt(m.imageSimilarity), t(ref.imageSimilarity)],
            [
              "baseline: text vs true image",
              fmt(m.baselineSimilarity),
              t(ref.baselineSimilarity),
            ],
            ["generated vs random text", fmt(m.randomSimilarity), t(ref.randomSimilarity)],
          ],
        ));
        return { prior: m, thesis: ref, step: priorCkpt.meta.step, count: data.length };
      } finally {
        prior.dispose();
        cache.dispose();
      }
    }
  } finally {
    clip.dispose();
  }
}
