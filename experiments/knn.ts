/**
 * `experiment knn` (thesis Figure 4.10): are samples new images or copies of training images?
 * Each sample (from a test caption) is shown beside its 3 nearest training images in CLIP image
 * space, with the cosine distances 1 - cos. As a reference, the same distance for the real test
 * images (new images by construction) is reported beside the samples'.
 *
 * @module
 */
import { decoderGuidance, loadPipeline, outputImageSize, textToImage } from "../core/pipeline.ts";
import { imagesToNchw } from "../core/data/images.ts";
import { imageEmbeddings, nearest } from "../core/eval/embed.ts";
import {
  type Experiment,
  ExperimentUsageError,
  gridPng,
  GUIDANCE_FLAG,
  guidanceFlag,
  loadSplit,
  oneNumber,
  round,
} from "./common.ts";

/** Neighbours shown per sample. */
export const NEIGHBOURS = 3;

/** Default number of samples. */
export const DEFAULT_KNN_LIMIT = 16;

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1);
}

/** The knn experiment. */
export const knnExperiment: Experiment = {
  name: "knn",
  thesis: "Figure 4.10",
  summary: "each sample beside its 3 nearest training images in CLIP space, with distances",
  stages: ["clip", "prior", "decoder"],
  draws: "captions",
  flags: {
    "train-limit": { type: "string", help: "search the first N training images (default all)" },
    ...GUIDANCE_FLAG,
  },
  async run(ctx) {
    const trainLimit = oneNumber(ctx.flags["train-limit"], "train-limit", {
      integer: true,
      min: NEIGHBOURS,
    });
    const givenGuidance = guidanceFlag(ctx.flags);
    const limit = ctx.limit ?? DEFAULT_KNN_LIMIT;
    const p = await loadPipeline(ctx.checkpoint, ctx.registry, ctx.load);
    const guidance = decoderGuidance(p, { guidance: givenGuidance });
    try {
      const test = await loadSplit(p.config, ctx.registry, "test", limit);
      const train = await loadSplit(p.config, ctx.registry, "train", trainLimit).catch((e) => {
        throw e instanceof ExperimentUsageError
          ? new ExperimentUsageError(e.message.replaceAll("--limit", "--train-limit"))
          : e;
      });
      const S = outputImageSize(p);
      const captions = test.map((d) => d.caption);
      const per = 3 * S * S;
      const samples = new Float32Array(captions.length * per);
      for (let i = 0; i < captions.length; i += 16) {
        const g = await textToImage(p, captions.slice(i, i + 16), {
          n: 1,
          guidance,
          steps: ctx.steps,
          rerank: ctx.rerank,
          seed: ctx.seed + i,
        });
        samples.set(g.images, i * per);
      }
      ctx.print(`knn: embedding ${train.length} training images`);
      const trainImages = imagesToNchw(train);
      const trainEmb = await imageEmbeddings(p.clip, trainImages, train.length);
      const sampleEmb = await imageEmbeddings(p.clip, samples, captions.length);
      const testEmb = await imageEmbeddings(p.clip, imagesToNchw(test), test.length);
      const rows = sampleEmb.map((z, i) => ({
        caption: captions[i],
        neighbours: nearest(z, trainEmb, NEIGHBOURS).map((n) => ({
          index: n.index,
          caption: train[n.index].caption,
          distance: round(n.distance),
        })),
      }));
      const realNearest = testEmb.map((z) => nearest(z, trainEmb, 1)[0].distance);
      const sampleNearest = rows.map((r) => r.neighbours[0].distance);
      const grid = new Float32Array(rows.length * (NEIGHBOURS + 1) * per);
      rows.forEach((r, i) => {
        const base = i * (NEIGHBOURS + 1) * per;
        grid.set(samples.subarray(i * per, (i + 1) * per), base);
        r.neighbours.forEach((n, k) => {
          grid.set(trainImages.subarray(n.index * per, (n.index + 1) * per), base + (k + 1) * per);
        });
      });
      const summary = {
        samplesMeanNearest: round(mean(sampleNearest)),
        realTestMeanNearest: round(mean(realNearest)),
        samplesExactCopies: sampleNearest.filter((d) => d < 1e-4).length,
      };
      ctx.print(
        `knn: mean cosine distance to the nearest training image: samples ` +
          `${summary.samplesMeanNearest.toFixed(4)}, real test images ` +
          `${summary.realTestMeanNearest.toFixed(4)}`,
      );
      return {
        results: {
          samples: rows.length,
          trainImages: train.length,
          guidance,
          distance: "cosine distance 1 - cos between L2-normalised CLIP image embeddings",
          ...summary,
          rows,
          modelSteps: p.steps,
        },
        files: [{
          name: "knn.png",
          data: gridPng(grid, rows.length * (NEIGHBOURS + 1), S, NEIGHBOURS + 1),
          caption: `Each row: a sample (left) and its ${NEIGHBOURS} nearest training images in ` +
            `CLIP image space, nearest first (thesis Figure 4.10); distances in knn.json`,
        }],
      };
    } finally {
      p.dispose();
    }
  },
};
