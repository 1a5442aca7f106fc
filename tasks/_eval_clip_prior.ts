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
  priorSampleSimilarity,
  sameCaptionSimilarity,
  THESIS_TABLE_4_2,
} from "../core/eval/prior.ts";
import type { ClipModel } from "../core/clip.ts";
import type { CaptionedImage, Prior, Tokenizer } from "../core/components.ts";
import { tokenBatch } from "../core/clip.ts";
import { noGrad, scope } from "../core/tensor/mod.ts";
import {
  buildClipCache,
  CLIP_SLOTS,
  type ClipCache,
  clipConditioning,
  createComponent,
  createDataset,
  createPrior,
  createPriorSampler,
  gatherClipCache,
  loadClip,
  loadResolvedCheckpoint,
} from "../core/pipeline.ts";
import {
  assertConfigMatches,
  assertSameClip,
  loadModuleWeights,
} from "../core/train/checkpoint.ts";
import { exists } from "../core/io/mod.ts";
import { shapesCaptionTruth } from "../datasets/captions.ts";
import { UsageError } from "./_cli.ts";
import { clipRows, type EvalContext, evalSet, fmt, loadSplit, table } from "./_eval_common.ts";

/**
 * Evaluates the run's CLIP (or its reranking CLIP, `reranker/`), or its prior with its CLIP;
 * returns the results to store.
 */
export async function evalClipOrPrior(
  what: "clip" | "reranker" | "prior",
  ctx: EvalContext,
): Promise<Record<string, unknown>> {
  const { checkpoint, registry, split, seed, print, load } = ctx;
  const stage = what === "reranker" ? "reranker" : "clip";
  const stageDir = join(checkpoint, stage);
  if (stage === "reranker" && !(await exists(stageDir))) {
    throw new UsageError(
      `Checkpoint folder "${checkpoint}" has no reranker/ stage; train one with ` +
        `"deno task train reranker --config FILE --out ${checkpoint}" (a config with train.reranker)`,
    );
  }
  const clipCkpt = await loadResolvedCheckpoint(stageDir, stage, registry);
  const config = clipCkpt.meta.config;
  const data = await loadSplit(config, registry, ctx);
  const { clip, tokenizer } = await loadClip(clipCkpt, config, registry);
  // Each caption's hard negative (colours swapped), where the dataset makes them: the binding rows.
  const dataset = await createDataset(config, registry);
  const hardNegative = dataset.hardNegative?.bind(dataset);
  try {
    if (what !== "prior") {
      // On shapes data, retrieval is also scored against every caption true of the image.
      const captionTrueOf = shapesCaptionTruth(data) ?? undefined;
      const r = await evaluateClip(clip, tokenizer, evalSet(data), {
        seed,
        captionTrueOf,
        hardNegative,
      });
      print(table(
        `${what === "reranker" ? "The reranking CLIP" : "CLIP"}, ${split} split (${r.count} ` +
          `pairs; step ${clipCkpt.meta.step}) vs thesis Table 4.1:`,
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
          candidates: load.priorCandidates,
        };
        const m: PriorMetrics = await evaluatePrior(prior, cache, schedule, sampling);
        const spread = await sampleSpread(prior, schedule, cache, data, sampling);
        const binding = hardNegative
          ? await priorBinding(
            prior,
            schedule,
            clip,
            tokenizer,
            data,
            cache,
            sampling,
            hardNegative,
          )
          : null;
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
            ["two samples of one caption (1 = no spread)", fmt(spread.samples), "-"],
            ...(spread.images === null ? [] : [[
              `two true images of one caption (${spread.imagePairs} pairs)`,
              fmt(spread.images),
              "-",
            ] as [string, string, string]]),
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
          spread,
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
 * How far apart the prior's samples for one caption are (two draws compared), beside how far
 * apart the true image embeddings of the split's images that share a caption are (null where no
 * caption repeats).
 */
async function sampleSpread(
  prior: Prior,
  schedule: NoiseSchedule,
  cache: ClipCache,
  data: readonly CaptionedImage[],
  options: EvaluatePriorOptions,
): Promise<{ samples: number; images: number | null; imagePairs: number }> {
  const samples = await priorSampleSimilarity(prior, cache, schedule, options);
  const flat = await cache.imageEmbedding.read();
  const E = cache.imageEmbedding.shape[1];
  const rows = data.map((_, i) => flat.subarray(i * E, (i + 1) * E));
  const images = sameCaptionSimilarity(rows, data.map((d) => d.caption));
  return { samples, images: images?.similarity ?? null, imagePairs: images?.pairs ?? 0 };
}

/**
 * The prior's binding on the split's captions that have a hard negative (`priorBindingAccuracy`),
 * or null when none has: the own captions' rows are gathered from `cache` (the split's CLIP
 * encodings), only the hard negatives' text is encoded here.
 */
async function priorBinding(
  prior: Prior,
  schedule: NoiseSchedule,
  clip: ClipModel,
  tokenizer: Tokenizer,
  data: readonly CaptionedImage[],
  cache: ClipCache,
  options: EvaluatePriorOptions,
  hardNegative: (caption: string) => string | null,
): Promise<{ accuracy: number; count: number } | null> {
  const rows = data.flatMap((d, i) => {
    const negative = hardNegative(d.caption);
    return negative === null ? [] : [{ index: i, negative }];
  });
  if (rows.length === 0) return null;
  // Under scope, so that only the returned tensors outlive the gather and the text encoder.
  const { own, swapped } = scope(() =>
    noGrad(() => {
      const g = gatherClipCache(cache, rows.map((r) => r.index));
      return {
        own: { ...g.cond, imageEmbedding: g.imageEmbedding },
        swapped: clipConditioning(clip, tokenBatch(tokenizer, rows.map((r) => r.negative))),
      };
    })
  );
  try {
    const accuracy = await priorBindingAccuracy(prior, own, swapped, schedule, options);
    return { accuracy, count: rows.length };
  } finally {
    for (const t of [...Object.values(own), ...Object.values(swapped)]) t.dispose();
  }
}
