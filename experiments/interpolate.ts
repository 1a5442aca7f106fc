/**
 * `experiment interpolate` (thesis Figure 4.5; DALL-E 2 section 3.2): decoder images along the
 * spherical (or, with --mode lerp, linear) interpolation between the CLIP image embeddings of
 * two test images, decoded as image variations are (the decoder's caption input empty unless
 * --caption), with the same noise at every step. Each frame's own CLIP embedding is compared
 * with both ends (cosToA at t = 0 measures how well the decoder reproduces image A from its
 * embedding alone).
 *
 * @module
 */
import { decoderGuidance, loadPipeline, outputImageSize } from "../core/pipeline.ts";
import { imagesToNchw } from "../core/data/images.ts";
import { cosine, decodeEmbeddings, imageEmbeddings, lerp, slerp } from "../core/eval/embed.ts";
import { linePanels } from "../core/eval/plot.ts";
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

/** The interpolate experiment. */
export const interpolateExperiment: Experiment = {
  name: "interpolate",
  thesis: "Figure 4.5",
  summary: "decoder images along slerp (or lerp) between two images' CLIP embeddings",
  stages: ["clip", "prior", "decoder"],
  draws: "image-embeddings",
  flags: {
    pair: { type: "string", help: "indices of the two test images, e.g. 0,1 (default 0,1)" },
    frames: { type: "string", help: "interpolation points from t=0 to t=1 (default 8)" },
    mode: { type: "string", help: "slerp (default) or lerp" },
    ...GUIDANCE_FLAG,
    caption: { type: "string", help: 'decoder text input of every frame (default "")' },
  },
  async run(ctx) {
    const [a, b] = numberList(ctx.flags.pair, "pair", { integer: true, min: 0, count: 2 }) ??
      [0, 1];
    if (a === b) throw new ExperimentUsageError(`--pair needs two different images, got ${a},${b}`);
    const frames = oneNumber(ctx.flags.frames, "frames", { integer: true, min: 2, max: 64 }) ?? 8;
    const mode = (ctx.flags.mode as string | undefined) ?? "slerp";
    if (mode !== "slerp" && mode !== "lerp") {
      throw new ExperimentUsageError(`--mode "${mode}" must be slerp or lerp`);
    }
    const givenGuidance = guidanceFlag(ctx.flags);
    const caption = (ctx.flags.caption as string | undefined) ?? "";
    const p = await loadPipeline(ctx.checkpoint, ctx.registry, ctx.load);
    const guidance = decoderGuidance(p, { guidance: givenGuidance });
    try {
      const data = await loadSplit(p.config, ctx.registry, "test", undefined);
      if (Math.max(a, b) >= data.length) {
        throw new ExperimentUsageError(
          `--pair ${a},${b}: the test split has ${data.length} images; use indices below ${data.length}`,
        );
      }
      const S = outputImageSize(p);
      const ends = imagesToNchw([data[a], data[b]]);
      const [za, zb] = await imageEmbeddings(p.clip, ends, 2);
      const ts = Array.from({ length: frames }, (_, i) => i / (frames - 1));
      const path = ts.map((t) => (mode === "slerp" ? slerp(za, zb, t) : lerp(za, zb, t)));
      const images = await decodeEmbeddings(p, path, {
        guidance,
        steps: ctx.steps,
        seed: ctx.seed,
        caption,
      });
      const decoded = await imageEmbeddings(p.clip, images, frames);
      const per = 3 * S * S;
      const row = new Float32Array((frames + 2) * per);
      row.set(ends.subarray(0, per), 0);
      row.set(images, per);
      row.set(ends.subarray(per), (frames + 1) * per);
      const steps = ts.map((t, i) => ({
        t: round(t),
        cosineToA: round(cosine(decoded[i], za)),
        cosineToB: round(cosine(decoded[i], zb)),
      }));
      ctx.print(
        `interpolate (${mode}) "${data[a].caption}" -> "${data[b].caption}": ` +
          steps.map((s) => `${s.cosineToA.toFixed(2)}/${s.cosineToB.toFixed(2)}`).join(" "),
      );
      const chart = await linePanels(
        steps.flatMap((s) => [
          { x: s.t, y: s.cosineToA, series: `cos(frame, A: ${data[a].caption})` },
          { x: s.t, y: s.cosineToB, series: `cos(frame, B: ${data[b].caption})` },
        ]),
        { x: "t", columns: 2, title: "CLIP similarity of each decoded frame with both ends" },
      );
      return {
        results: {
          mode,
          guidance,
          caption,
          pair: [
            { index: a, caption: data[a].caption },
            { index: b, caption: data[b].caption },
          ],
          frames: steps,
          modelSteps: p.steps,
        },
        files: [
          {
            name: "interpolate.png",
            data: gridPng(row, frames + 2, S, frames + 2),
            caption: `Image A, ${frames} decoded frames along the ${mode} of their CLIP image ` +
              `embeddings (t = 0 to 1), image B (thesis Figure 4.5)`,
          },
          {
            name: "interpolate.svg",
            data: chart,
            caption: "Cosine similarity of each decoded frame's CLIP embedding with A and B",
          },
        ],
      };
    } finally {
      p.dispose();
    }
  },
};
