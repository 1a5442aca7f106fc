/**
 * `experiment binding` (thesis section 4.5, Figure 4.8): do decoders bind colours to the right
 * shapes? DALL-E 2 (Ramesh et al. 2022, section 7) saw its decoder mix up attributes and
 * suspected the CLIP embedding; the thesis compared a decoder conditioned on CLIP embeddings only
 * with one conditioned on captions only (GLIDE). Here each decoder (the run's own, and the runs
 * given by --clip-only / --text-only, trained on the same CLIP: presets/cpu32-clip-only.jsonc and
 * presets/cpu32-text-only.jsonc) draws the same two-object test captions with the same noise, and
 * the ground-truth probe counts the images with every colour and every shape drawn but paired
 * wrongly ("misbound"), beside the exact rate. One-object captions are the control, where there
 * is nothing to bind.
 *
 * @module
 */
import { join } from "node:path";
import {
  type Components,
  decoderGuidance,
  decoderRerank,
  loadPipeline,
  outputImageSize,
} from "../core/pipeline.ts";
import { clipIdentity, loadCheckpoint } from "../core/train/checkpoint.ts";
import { predictProbe } from "../datasets/probe.ts";
import { imagesToNchw } from "../core/data/images.ts";
import { scoreCaption } from "../datasets/score.ts";
import { barChart } from "../core/eval/plot.ts";
import { type CaptionedImage, parseCaption } from "../datasets/mod.ts";
import { exists } from "../core/io/mod.ts";
import {
  type Experiment,
  type ExperimentFile,
  ExperimentUsageError,
  gridPng,
  GUIDANCE_FLAG,
  guidanceFlag,
  loadSplit,
  round,
} from "./common.ts";
import { generateImages, loadJudge, PROBE_FLAGS, requireJudge } from "./generate.ts";
import type { ShapeProbe } from "../datasets/probe.ts";

/** Default two-object captions (and as many one-object ones). */
export const DEFAULT_BINDING_LIMIT = 32;

/** Binding rates of one set of images. */
export interface BindingScores {
  images: number;
  /** Exactly the captioned pairs and count. */
  exact: number;
  /** The captioned colours, as a set. */
  colour: number;
  /** The captioned shapes, as a set. */
  shape: number;
  /** Colours and shapes right as sets, but at least one pair wrong: attributes swapped. */
  misbound: number;
}

/**
 * Binding rates of NCHW images against their captions.
 *
 * @example
 * ```ts
 * import type { ShapeProbe } from "../datasets/probe.ts";
 * async function rates(probe: ShapeProbe, images: Float32Array, captions: string[]) {
 *   return await bindingScores(probe, images, captions); // exact and misbound rates
 * }
 * ```
 */
export async function bindingScores(
  probe: ShapeProbe,
  images: Float32Array,
  captions: readonly string[],
): Promise<BindingScores> {
  const preds = await predictProbe(probe, images, captions.length);
  const scores = preds.map((q, i) => scoreCaption(q, captions[i]));
  const rate = (f: (s: (typeof scores)[number]) => boolean) =>
    round(scores.filter(f).length / Math.max(1, scores.length));
  return {
    images: captions.length,
    exact: rate((s) => s.exact),
    colour: rate((s) => s.colour),
    shape: rate((s) => s.shape),
    misbound: rate((s) => s.colour && s.shape && !s.exact),
  };
}

/** Two-figure captions whose figures differ in colour and in shape (a swap is visible). */
function bindable(d: CaptionedImage): boolean {
  const f = parseCaption(d.caption);
  return f.length === 2 && f[0].colour !== f[1].colour && f[0].shape !== f[1].shape;
}

/** What a decoder is conditioned on, from its stored config. */
function conditioningOf(p: Components): string {
  const o = p.config.components.decoder.options as { conditioning?: string };
  return o.conditioning ?? "clip+text";
}

/** The binding experiment. */
export const bindingExperiment: Experiment = {
  name: "binding",
  thesis: "Figure 4.8",
  summary: "attribute binding of CLIP-only vs text-only decoders on two-object captions",
  stages: ["clip", "prior", "decoder"],
  draws: "captions",
  flags: {
    "clip-only": {
      type: "string",
      help: "run folder whose decoder sees CLIP embeddings only (presets/cpu32-clip-only.jsonc)",
    },
    "text-only": {
      type: "string",
      help: "run folder whose decoder sees captions only (presets/cpu32-text-only.jsonc)",
    },
    ...GUIDANCE_FLAG,
    ...PROBE_FLAGS,
  },
  async run(ctx) {
    const limit = ctx.limit ?? DEFAULT_BINDING_LIMIT;
    const givenGuidance = guidanceFlag(ctx.flags);
    const variants = (["clip-only", "text-only"] as const)
      .filter((f) => ctx.flags[f] !== undefined)
      .map((f) => ({ flag: f, dir: String(ctx.flags[f]) }));
    if (variants.length === 0) {
      throw new ExperimentUsageError(
        `Experiment "binding" compares decoders: pass --clip-only DIR and/or --text-only DIR ` +
          `(runs trained with presets/cpu32-clip-only.jsonc and presets/cpu32-text-only.jsonc ` +
          `on this CLIP; see docs/experiments.md#binding)`,
      );
    }
    const clip = await loadCheckpoint(join(ctx.checkpoint, "clip"), "clip");
    for (const v of variants) {
      for (const stage of ["clip", "prior", "decoder"]) {
        if (!(await exists(join(v.dir, stage)))) {
          throw new ExperimentUsageError(
            `--${v.flag} "${v.dir}" has no "${stage}" stage; copy clip/ and prior/ from ` +
              `${ctx.checkpoint} into it and train its decoder (docs/experiments.md#binding)`,
          );
        }
      }
      const other = await loadCheckpoint(join(v.dir, "clip"), "clip");
      const a = clipIdentity(clip), b = clipIdentity(other);
      if (a.step !== b.step || a.id !== b.id) {
        throw new ExperimentUsageError(
          `--${v.flag} "${v.dir}" has another CLIP than ${ctx.checkpoint}; its decoder must be ` +
            `trained on the same CLIP (copy ${join(ctx.checkpoint, "clip")} into it and retrain)`,
        );
      }
    }

    const base = await loadPipeline(ctx.checkpoint, ctx.registry, ctx.load);
    const guidance = decoderGuidance(base, { guidance: givenGuidance });
    let judge;
    let two: CaptionedImage[], one: CaptionedImage[];
    try {
      const test = await loadSplit(base.config, ctx.registry, "test", undefined);
      two = test.filter(bindable).slice(0, limit);
      one = test.filter((d) => parseCaption(d.caption).length === 1).slice(0, limit);
      if (two.length < limit) {
        throw new ExperimentUsageError(
          `--limit ${limit}: the test split has ${two.length} two-object captions with two ` +
            `colours and two shapes; use --limit ${two.length} or less`,
        );
      }
      judge = requireJudge(await loadJudge(ctx, base, test), "binding");
    } catch (e) {
      base.dispose();
      throw e;
    }
    try {
      const S = outputImageSize(base), per = 3 * S * S;
      const twoCaptions = two.map((d) => d.caption), oneCaptions = one.map((d) => d.caption);
      const real = {
        twoObjects: await bindingScores(judge.probe, imagesToNchw(two), twoCaptions),
        oneObject: await bindingScores(judge.probe, imagesToNchw(one), oneCaptions),
      };
      const rows = [];
      const files: ExperimentFile[] = [];
      const shown = Math.min(16, two.length);
      // Every decoder reranks as the checkpoint's does, so the rows differ in the decoder only.
      const rerank = decoderRerank(base, { rerank: ctx.rerank });
      for (const run of [{ flag: "checkpoint", dir: ctx.checkpoint }, ...variants]) {
        const p = run.dir === ctx.checkpoint
          ? base
          : await loadPipeline(run.dir, ctx.registry, ctx.load);
        try {
          const t0 = performance.now();
          const options = { guidance, steps: ctx.steps, rerank, seed: ctx.seed };
          const twoImages = await generateImages(p, twoCaptions, options);
          const oneImages = await generateImages(p, oneCaptions, options);
          const conditioning = conditioningOf(p);
          const row = {
            run: run.dir,
            conditioning,
            decoderSteps: p.steps.decoder,
            twoObjects: await bindingScores(judge.probe, twoImages, twoCaptions),
            oneObject: await bindingScores(judge.probe, oneImages, oneCaptions),
            seconds: round((performance.now() - t0) / 1000),
          };
          rows.push(row);
          files.push({
            name: `binding_${conditioning.replace("+", "_")}.png`,
            data: gridPng(twoImages.subarray(0, shown * per), shown, S),
            caption: `Decoder conditioned on ${conditioning}: the first ${shown} two-object ` +
              `captions (e.g. "${twoCaptions[0]}")`,
          });
          ctx.print(
            `binding ${conditioning} (${run.dir}): two objects exact ` +
              `${(row.twoObjects.exact * 100).toFixed(1)}%, misbound ` +
              `${(row.twoObjects.misbound * 100).toFixed(1)}%; one object exact ` +
              `${(row.oneObject.exact * 100).toFixed(1)}%`,
          );
        } finally {
          if (p !== base) p.dispose();
        }
      }
      const bars = rows.flatMap((r) => [
        { group: "two objects: exact", bar: r.conditioning, value: r.twoObjects.exact },
        { group: "two objects: misbound", bar: r.conditioning, value: r.twoObjects.misbound },
        { group: "one object: exact", bar: r.conditioning, value: r.oneObject.exact },
      ]);
      files.unshift({
        name: "binding.svg",
        data: await barChart(bars, {
          y: "rate (ground-truth probe)",
          title: "Attribute binding by decoder conditioning",
        }),
        caption: "Exact and misbound rates of each decoder on two-object captions, and the " +
          "one-object control (thesis Figure 4.8 as numbers)",
      });
      return {
        results: {
          guidance,
          captions: { twoObjects: two.length, oneObject: one.length },
          decoders: rows,
          real,
          probe: judge.info,
        },
        files,
      };
    } finally {
      judge.probe.dispose();
      base.dispose();
    }
  },
};
