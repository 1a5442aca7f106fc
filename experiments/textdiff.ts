/**
 * `experiment textdiff` (thesis section 4.4, Figure 4.7; DALL-E 2 section 3.3): text-guided
 * manipulation of a test image. With the image's CLIP embedding z_i, its caption's text embedding
 * z_t and a new caption's z_t', the text diff is z_d = norm(z_t' - z_t), and the decoder draws
 * z_r = r z_d + (1 - r) z_i (the thesis's linear form; --mode slerp rotates as DALL-E 2 does) for
 * r from 0 to 0.5, with the same noise at every r. The probe reads every frame: how often it sees
 * the original caption and how often the new one, beside CLIP's similarity of each frame to both.
 *
 * @module
 */
import { decoderGuidance, loadPipeline, outputImageSize } from "../core/pipeline.ts";
import { predictProbe } from "../datasets/probe.ts";
import { imagesToNchw } from "../core/data/images.ts";
import { scoreCaption } from "../datasets/score.ts";
import {
  cosine,
  decodeEmbeddings,
  imageEmbeddings,
  slerp,
  textEmbeddings,
} from "../core/eval/embed.ts";
import { linePanels } from "../core/eval/plot.ts";
import { parseCaption } from "../datasets/mod.ts";
import {
  type Experiment,
  ExperimentUsageError,
  gridPng,
  GUIDANCE_FLAG,
  guidanceFlag,
  loadSplit,
  numberList,
  oneNumber,
  round,
} from "./common.ts";
import { loadJudge, PROBE_FLAGS } from "./generate.ts";

/** The r values of thesis Figure 4.7. */
export const DEFAULT_RATIOS = [0, 0.1, 0.2, 0.3, 0.4, 0.5];

/**
 * The text-diff embedding z_r for each r (unit vectors: the decoder renormalises anyway).
 *
 * @example
 * ```ts
 * const image = [1, 0, 0], from = [0.6, 0.8, 0], to = [0.6, 0, 0.8];
 * textDiffPath(image, from, to, [0, 0.5], "lerp").length; // 2 embeddings, r = 0 and r = 0.5
 * ```
 */
export function textDiffPath(
  image: ArrayLike<number>,
  from: ArrayLike<number>,
  to: ArrayLike<number>,
  ratios: readonly number[],
  mode: "lerp" | "slerp",
): Float64Array[] {
  const d = Float64Array.from({ length: from.length }, (_, j) => to[j] - from[j]);
  const norm = Math.hypot(...d);
  if (!(norm > 1e-12)) {
    throw new ExperimentUsageError("The two captions have the same CLIP text embedding");
  }
  for (let j = 0; j < d.length; j++) d[j] /= norm;
  const zi = Math.hypot(...Array.from(image));
  return ratios.map((r) => {
    if (mode === "slerp") return slerp(image, d, r);
    const z = Float64Array.from({ length: d.length }, (_, j) => r * d[j] + (1 - r) * image[j] / zi);
    const n = Math.hypot(...z) || 1;
    return z.map((v) => v / n);
  });
}

/** The textdiff experiment. */
export const textdiffExperiment: Experiment = {
  name: "textdiff",
  thesis: "Figure 4.7",
  summary: "text-diff edits of a test image towards a new caption, r from 0 to 0.5",
  stages: ["clip", "prior", "decoder"],
  draws: "image-embeddings",
  flags: {
    image: { type: "string", help: "test image index (default: the first with one figure)" },
    to: {
      type: "string",
      help: "the new caption (default: the next one-figure test caption with another colour " +
        "and shape)",
    },
    ratios: { type: "string", help: "values of r (default 0,0.1,0.2,0.3,0.4,0.5)" },
    mode: { type: "string", help: "lerp (thesis, default) or slerp (DALL-E 2)" },
    n: { type: "string", help: "samples per r, each with its own noise (default 4)" },
    ...GUIDANCE_FLAG,
    ...PROBE_FLAGS,
  },
  async run(ctx) {
    const ratios = numberList(ctx.flags.ratios, "ratios", { min: 0, max: 1 }) ?? DEFAULT_RATIOS;
    const n = oneNumber(ctx.flags.n, "n", { integer: true, min: 1, max: 64 }) ?? 4;
    const givenGuidance = guidanceFlag(ctx.flags);
    const mode = (ctx.flags.mode as string | undefined) ?? "lerp";
    if (mode !== "lerp" && mode !== "slerp") {
      throw new ExperimentUsageError(`--mode "${mode}" must be lerp or slerp`);
    }
    const p = await loadPipeline(ctx.checkpoint, ctx.registry, ctx.load);
    const guidance = decoderGuidance(p, { guidance: givenGuidance });
    try {
      const test = await loadSplit(p.config, ctx.registry, "test", undefined);
      const figures = (i: number) => parseCaption(test[i].caption);
      let index: number;
      if (ctx.flags.image !== undefined) {
        index = oneNumber(ctx.flags.image, "image", { integer: true, min: 0 })!;
        if (index >= test.length) {
          throw new ExperimentUsageError(
            `--image ${index}: the test split has ${test.length} images; use an index below ` +
              `${test.length}`,
          );
        }
      } else {
        index = test.findIndex((_, i) => figures(i).length === 1);
        if (index < 0) index = 0;
      }
      const source = test[index];
      let to = ctx.flags.to as string | undefined;
      if (to === undefined) {
        const [f] = figures(index);
        const other = test.findIndex((_, i) => {
          const g = figures(i);
          return g.length === 1 && g[0].colour !== f.colour && g[0].shape !== f.shape;
        });
        to = test[other < 0 ? (index + 1) % test.length : other].caption;
      }
      if (typeof to !== "string" || to.trim() === "") {
        throw new ExperimentUsageError(`--to needs a caption, e.g. --to "a large silver circle"`);
      }
      p.tokenizer.encode(to);
      const [zi] = await imageEmbeddings(p.clip, imagesToNchw([source]), 1);
      const [zFrom, zTo] = await textEmbeddings(p.clip, p.tokenizer, [source.caption, to]);
      const path = textDiffPath(zi, zFrom, zTo, ratios, mode);
      // n samples per r: sample k has the same noise at every r (seed + k).
      const S = outputImageSize(p), per = 3 * S * S;
      const images = new Float32Array(n * ratios.length * per);
      for (let k = 0; k < n; k++) {
        const row = await decodeEmbeddings(p, path, {
          guidance,
          steps: ctx.steps,
          seed: ctx.seed + k,
        });
        images.set(row, k * ratios.length * per);
      }
      const count = n * ratios.length;
      const decoded = await imageEmbeddings(p.clip, images, count);
      const judge = await loadJudge(ctx, p, test);
      let preds = null;
      try {
        preds = judge ? await predictProbe(judge.probe, images, count) : null;
      } finally {
        judge?.probe.dispose();
      }
      const isCaption = (i: number, caption: string): boolean => {
        try {
          return scoreCaption(preds![i], caption).exact;
        } catch {
          return false; // a --to caption outside the shapes grammar: not judged
        }
      };
      let judgeable = preds !== null;
      try {
        parseCaption(to);
      } catch {
        judgeable = false;
      }
      const steps = ratios.map((r, j) => {
        const at = Array.from({ length: n }, (_, k) => k * ratios.length + j);
        const mean = (f: (i: number) => number) => at.reduce((s, i) => s + f(i), 0) / n;
        return {
          r,
          cosineToImage: round(mean((i) => cosine(decoded[i], zi))),
          cosineToFrom: round(mean((i) => cosine(decoded[i], zFrom))),
          cosineToTo: round(mean((i) => cosine(decoded[i], zTo))),
          probeFrom: judgeable ? round(mean((i) => Number(isCaption(i, source.caption)))) : null,
          probeTo: judgeable ? round(mean((i) => Number(isCaption(i, to!)))) : null,
        };
      });
      ctx.print(
        `textdiff "${source.caption}" -> "${to}": ` +
          steps.map((s) =>
            `r=${s.r} cos(to) ${s.cosineToTo.toFixed(2)}` +
            (s.probeTo !== null ? ` probe(to) ${(s.probeTo * 100).toFixed(0)}%` : "")
          ).join(", "),
      );
      const series = steps.flatMap((s) => [
        { x: s.r, y: s.cosineToFrom, series: "CLIP cos(frame, original caption)" },
        { x: s.r, y: s.cosineToTo, series: "CLIP cos(frame, new caption)" },
        ...(s.probeFrom !== null
          ? [
            { x: s.r, y: s.probeFrom, series: "probe: shows the original caption" },
            { x: s.r, y: s.probeTo!, series: "probe: shows the new caption" },
          ]
          : []),
      ]);
      // The grid: the source image, then the frames of each sample (one row per sample).
      const grid = new Float32Array((count + n) * per);
      const real = imagesToNchw([source]);
      for (let k = 0; k < n; k++) {
        grid.set(real, k * (ratios.length + 1) * per);
        grid.set(
          images.subarray(k * ratios.length * per, (k + 1) * ratios.length * per),
          (k * (ratios.length + 1) + 1) * per,
        );
      }
      return {
        results: {
          mode,
          guidance,
          image: { index, caption: source.caption },
          to,
          samplesPerRatio: n,
          steps,
          probe: judge?.info ?? null,
          modelSteps: p.steps,
        },
        files: [
          {
            name: "textdiff.png",
            data: gridPng(grid, count + n, S, ratios.length + 1),
            caption: `Text diff of "${source.caption}" towards "${to}": the test image, then ` +
              `r = ${ratios.join(", ")} (one row per noise seed; thesis Figure 4.7)`,
          },
          {
            name: "textdiff.svg",
            data: await linePanels(series, {
              x: "r",
              columns: 2,
              title: "Each frame against the original and the new caption",
            }),
            caption: "CLIP similarity of the frames to both captions, and the probe's reading",
          },
        ],
      };
    } finally {
      p.dispose();
    }
  },
};
