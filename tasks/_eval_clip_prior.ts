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
import {
  evaluatePrior,
  type EvaluatePriorOptions,
  priorBindingAccuracy,
  type PriorMetrics,
  THESIS_TABLE_4_2,
} from "../core/eval/prior.ts";
import type { ClipModel } from "../core/clip.ts";
import type { CaptionedImage, ImageTextDataset, Prior, Tokenizer } from "../core/components.ts";
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
        const sampling: EvaluatePriorOptions = {
          seed,
          sampler: await createPriorSampler(registry, load),
          guidance: load.priorGuidance,
        };
        const m: PriorMetrics = await evaluatePrior(prior, cache, schedule, sampling);
        const dataset = await createDataset(config, registry);
        const binding = await priorBinding(
          prior,
          schedule,
          clip,
          tokenizer,
          data,
          sampling,
          dataset,
        );
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
            ...(binding === null ? [] : [[
              `own caption's sample nearer the image than its colour swap's (${binding.count})`,
              fmt(binding.accuracy, true),
              "-",
            ] as [string, string, string]]),
          ],
        ));
        return {
          prior: m,
          thesis: ref,
          step: priorCkpt.meta.step,
          count: data.length,
          ...(binding === null ? {} : { binding }),
        };
      } finally {
        prior.dispose();
        cache.dispose();
      }
    }
  } finally {
    clip.dispose();
  }
}

/**
 * The prior's binding on the split's captions that have a hard negative (`priorBindingAccuracy`),
 * or null when the dataset makes none.
 */
async function priorBinding(
  prior: Prior,
  schedule: NoiseSchedule,
  clip: ClipModel,
  tokenizer: Tokenizer,
  data: readonly CaptionedImage[],
  options: EvaluatePriorOptions,
  dataset: ImageTextDataset,
): Promise<{ accuracy: number; count: number } | null> {
  if (!dataset.hardNegative) return null;
  const rows = data.flatMap((d) => {
    const negative = dataset.hardNegative!(d.caption);
    return negative === null ? [] : [{ own: d, negative: { ...d, caption: negative } }];
  });
  if (rows.length === 0) return null;
  const own = buildClipCache(clip, tokenizer, rows.map((r) => r.own));
  const swapped = buildClipCache(clip, tokenizer, rows.map((r) => r.negative));
  try {
    const accuracy = await priorBindingAccuracy(prior, own, swapped, schedule, options);
    return { accuracy, count: rows.length };
  } finally {
    own.dispose();
    swapped.dispose();
  }
}
