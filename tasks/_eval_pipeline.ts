/**
 * `deno task eval pipeline`: generates one image per caption of the split (CLIP -> prior ->
 * decoder) and scores it with the trained CLIP (how often the true caption is the best match, or
 * among the 5 best, among all captions of the split; real images beside it as the ceiling) and,
 * on labelled data, with the ground-truth probe (which colour-shape pairs and how many figures
 * each image shows).
 * @module
 */
import { enlargeBlocks, imagesToNchw } from "../core/data/images.ts";
import { type ClipEvalResult, evaluateClip } from "../core/eval/clip.ts";
import {
  decoderGuidance,
  decoderRerank,
  loadPipeline,
  outputImageSize,
  reconstructImages,
  textToImage,
  upsampleRealImages,
} from "../core/pipeline.ts";
import { loadOrTrainProbe, scoreImages } from "../datasets/probe.ts";
import { figureCounts } from "../datasets/figure_count.ts";
import { checkUpsamplerFlags, guidanceText, UsageError } from "./_cli.ts";
import { FULL_GUIDANCE_INTERVAL, type GuidanceInterval } from "../core/diffusion/mod.ts";
import {
  drawnFiguresTable,
  type EvalContext,
  evalSet,
  figureCountTable,
  fmt,
  loadSplit,
  probeTable,
  shapeOutcomeTable,
  table,
} from "./_eval_common.ts";

/**
 * Where the decoder's conditioning comes from: the caption and the prior's embedding (the whole
 * pipeline), the caption and the real image's own CLIP embedding (a perfect prior), or the real
 * image's embedding with an empty caption (variations, DALL-E 2 section 3.1: what the decoder
 * draws from the embedding alone); or no decoder at all: the real image area-downsampled to the
 * decoder's size, upsampled by a cascade's upsampler ("downsampled": the cascade's ceiling).
 */
export const PIPELINE_SOURCES = ["prior", "image", "variations", "downsampled"] as const;

/** One of `PIPELINE_SOURCES`. */
export type PipelineSource = typeof PIPELINE_SOURCES[number];

/** How the decoder samples (the samplers themselves are `EvalContext.load`'s). */
export interface PipelineSampling {
  /** The decoder's conditioning (default "prior"). */
  from?: PipelineSource;
  /** Decoder guidance scale (undefined: the model config's `sampling.guidance`). */
  guidance: number | undefined;
  /** Where the decoder's guidance applies (undefined: every step). */
  guidanceInterval?: GuidanceInterval;
  /** Decoder sampling steps (undefined: the sampler's). */
  steps: number | undefined;
  /** Decoder candidates per caption, the best by CLIP kept (undefined: `sampling.rerank`). */
  rerank?: number;
  /** A cascade's upsampler: its reverse-process steps (undefined: `steps`). */
  upsamplerSteps?: number;
  /** A cascade's upsampler: its condition's augmentation level (undefined: its config's). */
  upsamplerAugment?: number;
}

/**
 * What the decoder was given, for the results table's title: nothing for the default (caption and
 * prior), else the source, and with `enlarged` the sides of a cascade's decoder scored alone.
 */
function sourceText(
  from: PipelineSource,
  decoderSide: number,
  enlarged?: { from: number; to: number },
): string {
  const f = enlarged && enlarged.to / enlarged.from;
  const alone = enlarged
    ? `, the decoder's ${enlarged.from}x${enlarged.from} images as ${f}x${f} blocks, no upsampler`
    : "";
  const sources: Record<PipelineSource, string> = {
    prior: "",
    image: ", decoded from the real images' CLIP embeddings",
    variations: ", variations: the real images' CLIP embeddings, empty captions",
    downsampled: `, no decoder: the real images area-downsampled to ${decoderSide}x` +
      `${decoderSide} and upsampled`,
  };
  return alone + sources[from];
}

/** Captions per `textToImage` call: with `rerank` K, K times as many images are drawn at once. */
export const CAPTIONS_PER_CALL = 16;

/** Generates images for the split's captions and scores them; returns the results to store. */
export async function evalPipeline(
  ctx: EvalContext,
  sampling: PipelineSampling,
): Promise<Record<string, unknown>> {
  const { checkpoint, registry, split, seed, print, probeOptions, load } = ctx;
  const { guidanceInterval, steps, upsamplerSteps, upsamplerAugment } = sampling;
  const from = sampling.from ?? "prior";
  const p = await loadPipeline(checkpoint, registry, load);
  try {
    const guidance = decoderGuidance(p, sampling);
    // The config's default reranks text to image only: the other sources have no caption to
    // score, or no decoder.
    const candidates = from === "prior" ? decoderRerank(p, sampling) : 1;
    // Before the split is generated: without an upsampler there is nothing to score.
    if (from === "downsampled" && !p.upsampler) {
      throw new UsageError(
        `--from downsampled runs a cascade's upsampler, and ${checkpoint} has none ` +
          `(no ${checkpoint}/upsampler); use --from prior, image or variations`,
      );
    }
    checkUpsamplerFlags(
      { upsamplerSteps, upsamplerAugment },
      p.upsampler !== undefined,
      `${checkpoint} has no upsampler/ stage`,
    );
    const data = await loadSplit(p.config, registry, ctx);
    const captions = data.map((d) => d.caption);
    // The split's side; with --no-upsampler a cascade's decoder makes smaller images, each pixel
    // then enlarged to a block so that CLIP and the probe see them at the side they know.
    const S = data[0].width, made = outputImageSize(p);
    const enlarge = load.upsampler === false && made < S && S % made === 0;
    if (made !== S && !enlarge) {
      throw new UsageError(`Split images are ${S}px but the pipeline makes ${made}px images`);
    }
    const per = 3 * S * S;
    const generated = new Float32Array(captions.length * per);
    const chunk = CAPTIONS_PER_CALL;
    const realNchw = imagesToNchw(data);
    const t0 = performance.now();
    for (let i = 0; i < captions.length; i += chunk) {
      const part = captions.slice(i, i + chunk);
      const options = {
        guidance,
        guidanceInterval,
        steps,
        upsamplerSteps,
        upsamplerAugment,
        seed: seed + i,
      };
      const real = realNchw.subarray(i * per, (i + part.length) * per);
      const g = from === "downsampled"
        ? await upsampleRealImages(p, real, part.length, options)
        : from !== "prior"
        ? await reconstructImages(
          p,
          real,
          from === "variations" ? part.map(() => "") : part,
          options,
        )
        : await textToImage(p, part, { n: 1, rerank: candidates, ...options });
      generated.set(enlarge ? enlargeBlocks(g.images, made, S) : g.images, i * per);
      print(
        `pipeline: generated ${Math.min(i + chunk, captions.length)}/${captions.length} images`,
      );
    }
    const seconds = (performance.now() - t0) / 1000;
    const gen = await evaluateClip(p.clip, p.tokenizer, {
      images: generated,
      shape: [captions.length, 3, S, S],
      captions,
    }, { seed });
    const real = await evaluateClip(p.clip, p.tokenizer, evalSet(data), { seed });
    const rows = (a: ClipEvalResult, b: ClipEvalResult): [string, string, string][] => [
      ["CLIP top-1 retrieval of the true caption", fmt(a.top1, true), fmt(b.top1, true)],
      ["CLIP top-5 retrieval of the true caption", fmt(a.top5, true), fmt(b.top5, true)],
      ["cosine similarity with the true caption", fmt(a.meanCosine), fmt(b.meanCosine)],
      [
        "cosine similarity with a random caption",
        fmt(a.meanRandomCosine),
        fmt(b.meanRandomCosine),
      ],
    ];
    // The prior's reverse process, where one ran (--from prior): its sampler, steps (null = the
    // sampler's default), guidance scale (1 = off) and candidates per caption; recorded, and
    // named in the title where not the defaults (guided, or other than 2 candidates).
    const priorSampling = from === "prior"
      ? {
        sampler: p.priorSampler.name,
        steps: load.priorSteps ?? null,
        guidance: p.priorGuidance,
        candidates: p.priorCandidates,
      }
      : null;
    const late = p.lateDecoder
      ? `, ${p.lateDecoder.dir}'s decoder below t/T = ${p.lateDecoder.below}`
      : "";
    const priorText = [
      priorSampling && priorSampling.guidance !== 1
        ? `, prior guidance ${priorSampling.guidance}`
        : "",
      priorSampling && priorSampling.candidates !== 2
        ? `, best of ${priorSampling.candidates} prior samples`
        : "",
    ].join("");
    const source =
      sourceText(from, p.decoder.imageSize, enlarge ? { from: made, to: S } : undefined) +
      late + priorText + (candidates > 1 ? `, each image the best of ${candidates} by CLIP` : "");
    const text = table(
      `Pipeline, ${split} split (${captions.length} captions${source}, ` +
        `${from === "downsampled" ? "" : `${guidanceText(guidance, guidanceInterval)}, `}` +
        `${seconds.toFixed(0)} s): generated images scored by the trained CLIP`,
      rows(gen, real),
      ["generated", "real"],
    );
    print(text);
    print(
      "  (The thesis has no such number; its image metrics, FID/KID with Inception, need " +
        "weights that cannot be downloaded here.)",
    );
    let probeResults: Record<string, unknown> | null = null;
    if (data.every((d) => d.labels)) {
      const { probe, info, trained } = await loadOrTrainProbe(
        checkpoint,
        p.config,
        registry,
        probeOptions,
        { print },
      );
      try {
        const pg = await scoreImages(probe, generated, captions);
        const pr = await scoreImages(probe, realNchw, captions);
        print(probeTable(
          `ground-truth probe (trained on the data's labels; ${info.options.steps} steps, ` +
            `${trained ? "trained now" : "cached"}; exact match on real test images ` +
            `${fmt(info.realTest.exact, true)})`,
          pg,
          pr,
        ));
        print(
          "  (The real column is the probe's ceiling: it is right this often on true images.)",
        );
        print(figureCountTable(pg.byFigures, pr.byFigures));
        print(shapeOutcomeTable(pg.byShape, pr.byShape));
        const drawn = {
          generated: figureCounts(generated, S, captions),
          realImages: figureCounts(realNchw, S, captions),
        };
        print(drawnFiguresTable(drawn.generated, drawn.realImages));
        probeResults = {
          metric: "a CNN probe trained on the dataset's ground-truth labels predicts the " +
            "(colour, shape) pairs, figure count and each pair's size word of each image; " +
            "exact = the caption's set of pairs and its number of figures; lenient = exact " +
            "with squares counted as rectangles and circles as ellipses; size = every size " +
            "word of the caption right, over the captions that have one",
          generated: pg,
          realImages: pr,
          probe: info,
          figuresCounted: {
            metric: "connected regions (8-neighbourhood) of pixels away from the grey " +
              "background, at least minPixels large: figures drawn, with no learned model",
            ...drawn,
          },
        };
      } finally {
        probe.dispose();
      }
    } else {
      print("  (The split has no ground-truth labels: the probe table is skipped.)");
    }
    return {
      metric: "CLIP retrieval of generated images: for each generated image, the rank of its " +
        "caption among all captions of the split by the trained CLIP's cosine similarity",
      generated: gen,
      realImages: real,
      from,
      // --from downsampled runs no decoder: no guidance to record.
      guidance: from === "downsampled" ? null : guidance,
      guidanceInterval: from === "downsampled" ? null : guidanceInterval ?? FULL_GUIDANCE_INTERVAL,
      sampler: p.sampler.name,
      samplerOptions: load.samplerOptions ?? null,
      steps: steps ?? null,
      rerank: candidates,
      // Which CLIP chose among the candidates: the run's reranking CLIP, or (null) its own.
      reranker: candidates > 1 && p.reranker
        ? { dir: p.reranker.dir, step: p.reranker.step, grain: p.reranker.train.grain }
        : null,
      prior: priorSampling,
      upsampler: p.upsampler
        ? {
          steps: upsamplerSteps ?? steps ?? null,
          augment: upsamplerAugment ?? p.upsampler.sampleAugment,
        }
        : null,
      // --no-upsampler on a cascade: the decoder's side, each pixel a block of the split's side.
      enlargedFrom: enlarge ? made : null,
      seed,
      seconds,
      modelSteps: p.steps,
      decoderWeights: p.decoderWeights,
      lateDecoder: p.lateDecoder
        ? { dir: p.lateDecoder.dir, step: p.lateDecoder.step, below: p.lateDecoder.below }
        : null,
      probe: probeResults,
    };
  } finally {
    p.dispose();
  }
}
