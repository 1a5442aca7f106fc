/**
 * `experiment guidance` (thesis Figure 4.3, samples in Figures 4.1-4.2): images of the test
 * captions at several classifier-free guidance scales s, and per s the distance of the generated
 * set from the real test images: FID, KID, precision, recall and F1 (core/eval/metrics.ts) on
 * the trained CLIP image tower's embeddings (`FID(clip-image)`: not Inception, so only the trend
 * over s compares with the thesis), plus the ground-truth probe's exact-match rate.
 *
 * @module
 */
import { decoderRerank, loadPipeline, outputImageSize } from "../core/pipeline.ts";
import { imagesToNchw } from "../core/data/images.ts";
import { scoreImages } from "../datasets/probe.ts";
import type { ProbeScores } from "../datasets/score.ts";
import { generateImages, loadJudge, PROBE_FLAGS, probeOverrides } from "./generate.ts";
import { imageEmbeddings } from "../core/eval/embed.ts";
import { sampleMetrics } from "../core/eval/metrics.ts";
import { linePanels, type LinePoint } from "../core/eval/plot.ts";
import {
  type Experiment,
  type ExperimentFile,
  ExperimentUsageError,
  gridPng,
  loadSplit,
  numberList,
  round,
} from "./common.ts";

/** The guidance scales of thesis Figure 4.3. */
export const DEFAULT_SCALES = [1, 1.5, 2, 2.5, 3];

/** The feature extractor of the sample metrics (part of each metric's name). */
export const FEATURES = "clip-image";

/** Default number of test captions. */
export const DEFAULT_GUIDANCE_LIMIT = 200;

/** The guidance experiment. */
export const guidanceExperiment: Experiment = {
  name: "guidance",
  thesis: "Figure 4.3 (metrics against s), Figures 4.1-4.2 (samples)",
  summary: "samples at several guidance scales s; FID/KID/precision/recall/F1 and probe per s",
  stages: ["clip", "prior", "decoder"],
  draws: "captions",
  flags: {
    scales: { type: "string", help: "guidance scales, comma-separated (default 1,1.5,2,2.5,3)" },
    ...PROBE_FLAGS,
  },
  async run(ctx) {
    const scales = numberList(ctx.flags.scales, "scales", { min: 0, max: 100 }) ?? DEFAULT_SCALES;
    probeOverrides(ctx.flags); // bad probe flags fail before any work
    const p = await loadPipeline(ctx.checkpoint, ctx.registry, ctx.load);
    try {
      const dataset = await loadSplit(p.config, ctx.registry, "test", undefined);
      // Without --limit, the default or the whole split when it is smaller (the tiny preset's 64).
      const limit = ctx.limit ?? Math.min(DEFAULT_GUIDANCE_LIMIT, dataset.length);
      if (limit > dataset.length) {
        throw new ExperimentUsageError(
          `--limit ${limit} is more than the ${dataset.length} images of the test split; ` +
            `use --limit ${dataset.length} or less`,
        );
      }
      const data = dataset.slice(0, limit);
      const captions = data.map((d) => d.caption);
      const S = outputImageSize(p);
      if (data[0].width !== S) {
        throw new Error(`Test images are ${data[0].width}px but the pipeline makes ${S}px images`);
      }
      const realImages = imagesToNchw(data);
      const real = await imageEmbeddings(p.clip, realImages, data.length);
      const probe = await loadJudge(ctx, p, data);
      try {
        const realProbe: ProbeScores | null = probe
          ? await scoreImages(probe.probe, realImages, captions)
          : null;
        const per = 3 * S * S;
        const rows = [];
        const files: ExperimentFile[] = [];
        for (const s of scales) {
          const t0 = performance.now();
          // The same seeds at every s: the scales differ in guidance only.
          const images = await generateImages(p, captions, {
            guidance: s,
            steps: ctx.steps,
            rerank: ctx.rerank,
            seed: ctx.seed,
          });
          const seconds = (performance.now() - t0) / 1000;
          const fake = await imageEmbeddings(p.clip, images, captions.length);
          const m = sampleMetrics(real, fake, FEATURES);
          const probeScores = probe ? await scoreImages(probe.probe, images, captions) : null;
          const grid = `samples_s${s}.png`;
          const shown = Math.min(captions.length, 64);
          files.push({
            name: grid,
            data: gridPng(images.subarray(0, shown * per), shown, S),
            caption: `Samples at guidance scale s = ${s} (the first ${shown} test captions)`,
          });
          rows.push({
            scale: s,
            fid: round(m.fid),
            kid: round(m.kid),
            kidStd: round(m.kidStd),
            precision: round(m.precision),
            recall: round(m.recall),
            f1: round(m.f1),
            probeExact: probeScores ? round(probeScores.exact) : null,
            probe: probeScores,
            grid,
            seconds: round(seconds),
          });
          ctx.print(
            `guidance s=${s}: FID(${FEATURES}) ${m.fid.toFixed(4)}  KID ${m.kid.toFixed(5)}  ` +
              `precision ${m.precision.toFixed(3)}  recall ${m.recall.toFixed(3)}  F1 ${
                m.f1.toFixed(3)
              }` +
              (probeScores ? `  probe exact ${(probeScores.exact * 100).toFixed(1)}%` : "") +
              `  (${seconds.toFixed(1)} s)`,
          );
        }
        const names: Record<string, string> = {
          fid: `FID(${FEATURES})`,
          kid: `KID(${FEATURES})`,
          precision: `precision(${FEATURES})`,
          recall: `recall(${FEATURES})`,
          f1: `F1(${FEATURES})`,
          ...(probe && { probeExact: "probe exact match" }),
        };
        const points: LinePoint[] = rows.flatMap((r) =>
          Object.entries(names).map(([k, series]) => ({
            x: r.scale,
            y: (r as unknown as Record<string, number>)[k],
            series,
          }))
        );
        files.unshift({
          name: "guidance.svg",
          data: await linePanels(points, {
            x: "guidance scale s",
            title: `Sample metrics against the guidance scale (${captions.length} test captions)`,
          }),
          caption: `Every metric against the guidance scale s (thesis Figure 4.3). ` +
            `Features: the trained CLIP image tower; not comparable with Inception values.`,
        });
        return {
          results: {
            features: FEATURES,
            featureNote: "L2-normalised image embeddings of this run's CLIP image tower " +
              "(no Inception weights here): only the trend over s compares with the thesis",
            metricNames: names,
            captions: captions.length,
            sampler: p.sampler.name,
            steps: ctx.steps ?? null,
            // Candidates CLIP reranked per image (the model config's sampling.rerank).
            rerank: decoderRerank(p, { rerank: ctx.rerank }),
            k: 3,
            scales: rows,
            realProbe,
            probe: probe?.info ?? null,
            modelSteps: p.steps,
          },
          files,
        };
      } finally {
        probe?.probe.dispose();
      }
    } finally {
      p.dispose();
    }
  },
};
