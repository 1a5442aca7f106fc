/**
 * `experiment zeroshot` (thesis section 4.6.4, Figure 4.11): the four zero-shot tasks, each
 * scored by the ground-truth probe instead of by eye:
 *
 * 1. unseen objects: captions of the zeroshot split, whose colour-shape pairs the training set
 *    never shows (the real zeroshot images give the probe's ceiling);
 * 2. rephrased captions: "a large red circle" becomes "a large circle that is red" (wording the
 *    training captions never use), scored against the original, beside the original's own score;
 * 3. partial captions: the shape without the colour ("a large circle") and the colour alone
 *    ("red"): is the named attribute drawn, on one figure?
 * 4. three objects: "a red circle and a blue square and a green star"-like captions of three
 *    different pairs (the training images hold at most two): how often is each of the three
 *    named pairs drawn? The thesis found only the first two.
 *
 * @module
 */
import { decoderGuidance, loadPipeline, outputImageSize } from "../core/pipeline.ts";
import { predictProbe, probeLogits, scoreImages } from "../datasets/probe.ts";
import { imagesToNchw } from "../core/data/images.ts";
import { pairIndex, pairOf, type ProbeScores } from "../datasets/score.ts";
import { barChart } from "../core/eval/plot.ts";
import {
  type CaptionParts,
  COLOUR_NAMES,
  type ColourName,
  formatCaption,
  parseCaption,
  Rng,
  type ShapeName,
  SHAPES,
} from "../datasets/mod.ts";
import {
  type Experiment,
  gridPng,
  GUIDANCE_FLAG,
  guidanceFlag,
  loadSplit,
  round,
} from "./common.ts";
import { generateImages, loadJudge, PROBE_FLAGS, requireJudge } from "./generate.ts";

/** Default captions per task. */
export const DEFAULT_ZEROSHOT_LIMIT = 32;

/** "a large red circle" -> "a large circle that is red" (one figure; thesis Figure 4.11 e). */
export function rephrase(p: CaptionParts): string {
  return [p.det, ...(p.size ? [p.size] : []), p.shape, "that", "is", p.colour].join(" ");
}

/** `count` captions of three figures with three different colours and three different shapes. */
export function threeObjectCaptions(count: number, seed: number): CaptionParts[][] {
  const rng = new Rng(`three-objects-${seed}`);
  const next = () => rng.next();
  const pick = <T>(xs: readonly T[], taken: readonly T[]): T => {
    const free = xs.filter((x) => !taken.includes(x));
    return free[Math.floor(next() * free.length)];
  };
  return Array.from({ length: count }, () => {
    const colours: ColourName[] = [], shapes: ShapeName[] = [];
    for (let k = 0; k < 3; k++) {
      colours.push(pick(COLOUR_NAMES, colours));
      shapes.push(pick(SHAPES, shapes));
    }
    return colours.map((colour, k) => ({
      det: "a" as const,
      size: null,
      colour,
      shape: shapes[k],
      position: null,
    }));
  });
}

const rates = (s: ProbeScores) => ({
  exact: round(s.exact),
  colour: round(s.colour),
  shape: round(s.shape),
  count: round(s.count),
  lenient: round(s.lenient),
});

/** The zeroshot experiment. */
export const zeroshotExperiment: Experiment = {
  name: "zeroshot",
  thesis: "section 4.6.4, Figure 4.11",
  summary: "unseen pairs, rephrased, partial and three-object captions, scored by the probe",
  stages: ["clip", "prior", "decoder"],
  draws: "captions",
  flags: {
    ...PROBE_FLAGS,
    ...GUIDANCE_FLAG,
  },
  async run(ctx) {
    const limit = ctx.limit ?? DEFAULT_ZEROSHOT_LIMIT;
    const givenGuidance = guidanceFlag(ctx.flags);
    const p = await loadPipeline(ctx.checkpoint, ctx.registry, ctx.load);
    const guidance = decoderGuidance(p, { guidance: givenGuidance });
    try {
      const unseen = await loadSplit(p.config, ctx.registry, "zeroshot", limit);
      const test = await loadSplit(p.config, ctx.registry, "test", undefined);
      const judge = requireJudge(await loadJudge(ctx, p, test), "zeroshot");
      try {
        const S = outputImageSize(p), per = 3 * S * S;
        const gen = (captions: readonly string[]) =>
          generateImages(p, captions, {
            guidance,
            steps: ctx.steps,
            rerank: ctx.rerank,
            seed: ctx.seed,
          });
        const grids: { name: string; images: Float32Array; count: number; caption: string }[] = [];
        const t0 = performance.now();

        // 1. Unseen colour-shape pairs.
        const unseenCaptions = unseen.map((d) => d.caption);
        const unseenImages = await gen(unseenCaptions);
        const unseenScores = await scoreImages(judge.probe, unseenImages, unseenCaptions);
        const unseenReal = await scoreImages(judge.probe, imagesToNchw(unseen), unseenCaptions);
        grids.push({
          name: "zeroshot_unseen.png",
          images: unseenImages,
          count: unseenCaptions.length,
          caption: "Unseen colour-shape pairs (the zeroshot split's captions)",
        });
        ctx.print(
          `zeroshot unseen pairs: exact ${(unseenScores.exact * 100).toFixed(1)}% ` +
            `(real ${(unseenReal.exact * 100).toFixed(1)}%)`,
        );

        // 2. Rephrased one-figure captions, scored against the original wording.
        const single = test.filter((d) => parseCaption(d.caption).length === 1).slice(0, limit);
        const originals = single.map((d) => d.caption);
        const rephrased = single.map((d) => rephrase(parseCaption(d.caption)[0]));
        const rephrasedImages = await gen(rephrased);
        const rephrasedScores = await scoreImages(judge.probe, rephrasedImages, originals);
        const originalScores = await scoreImages(judge.probe, await gen(originals), originals);
        grids.push({
          name: "zeroshot_rephrased.png",
          images: rephrasedImages,
          count: rephrased.length,
          caption: `Rephrased captions, e.g. "${rephrased[0]}"`,
        });
        ctx.print(
          `zeroshot rephrased: exact ${(rephrasedScores.exact * 100).toFixed(1)}% ` +
            `(original wording ${(originalScores.exact * 100).toFixed(1)}%)`,
        );

        // 3. Partial captions: shape (and size) without colour; colour alone.
        const parts = single.map((d) => parseCaption(d.caption)[0]);
        const shapeOnly = parts.map((q) => [q.det, ...(q.size ? [q.size] : []), q.shape].join(" "));
        const colourOnly = parts.map((q) => q.colour);
        const shapeImages = await gen(shapeOnly);
        const colourImages = await gen(colourOnly);
        const shapePreds = await predictProbe(judge.probe, shapeImages, shapeOnly.length);
        const colourPreds = await predictProbe(judge.probe, colourImages, colourOnly.length);
        const has = (pairs: number[], test: (c: ColourName, s: ShapeName) => boolean) =>
          pairs.some((i) => test(...pairOf(i)));
        const shapeHit = shapePreds.filter((q, i) => has(q.pairs, (_, s) => s === parts[i].shape));
        const colourHit = colourPreds.filter((q, i) => has(q.pairs, (c) => c === parts[i].colour));
        const oneFigure = (ps: { count: number }[]) => ps.filter((q) => q.count === 1).length;
        const partial = {
          shapeOnly: {
            captions: shapeOnly.length,
            example: shapeOnly[0],
            shapeDrawn: round(shapeHit.length / shapeOnly.length),
            oneFigure: round(oneFigure(shapePreds) / shapeOnly.length),
          },
          colourOnly: {
            captions: colourOnly.length,
            example: colourOnly[0],
            colourDrawn: round(colourHit.length / colourOnly.length),
            oneFigure: round(oneFigure(colourPreds) / colourOnly.length),
          },
        };
        grids.push({
          name: "zeroshot_partial.png",
          images: firstOfEach([shapeImages, colourImages], Math.min(16, parts.length), per),
          count: 2 * Math.min(16, parts.length),
          caption: `Partial captions: shape without colour (e.g. "${shapeOnly[0]}"), then ` +
            `colour alone (e.g. "${colourOnly[0]}")`,
        });
        ctx.print(
          `zeroshot partial: shape drawn ${(partial.shapeOnly.shapeDrawn * 100).toFixed(1)}%, ` +
            `colour drawn ${(partial.colourOnly.colourDrawn * 100).toFixed(1)}%`,
        );

        // 4. Three objects (the training images hold one or two).
        const triples = threeObjectCaptions(limit, ctx.seed);
        const tripleCaptions = triples.map(formatCaption);
        const tripleImages = await gen(tripleCaptions);
        const logits = await probeLogits(judge.probe, tripleImages, triples.length);
        const drawn = [0, 1, 2].map((k) =>
          round(
            logits.filter((row, i) => row[pairIndex(triples[i][k].colour, triples[i][k].shape)] > 0)
              .length / triples.length,
          )
        );
        const allThree = round(
          logits.filter((row, i) => triples[i].every((f) => row[pairIndex(f.colour, f.shape)] > 0))
            .length / triples.length,
        );
        grids.push({
          name: "zeroshot_three.png",
          images: tripleImages,
          count: triples.length,
          caption: `Three-object captions, e.g. "${tripleCaptions[0]}"`,
        });
        ctx.print(
          `zeroshot three objects: pair 1/2/3 drawn ${
            drawn.map((d) => (d * 100).toFixed(0))
              .join("/")
          }%, all three ${(allThree * 100).toFixed(1)}%`,
        );
        const seconds = (performance.now() - t0) / 1000;

        const chart = await barChart(
          [
            { group: "unseen pairs (exact)", bar: "generated", value: unseenScores.exact },
            { group: "unseen pairs (exact)", bar: "real images", value: unseenReal.exact },
            { group: "rephrased (exact)", bar: "generated", value: rephrasedScores.exact },
            { group: "rephrased (exact)", bar: "original wording", value: originalScores.exact },
            {
              group: "shape only (shape drawn)",
              bar: "generated",
              value: partial.shapeOnly.shapeDrawn,
            },
            {
              group: "colour only (colour drawn)",
              bar: "generated",
              value: partial.colourOnly.colourDrawn,
            },
            { group: "three objects (all drawn)", bar: "generated", value: allThree },
          ],
          { title: "Zero-shot tasks scored by the ground-truth probe", y: "rate" },
        );
        return {
          results: {
            guidance,
            seconds: round(seconds),
            unseenPairs: {
              captions: unseenCaptions.length,
              generated: rates(unseenScores),
              real: rates(unseenReal),
            },
            rephrased: {
              captions: rephrased.length,
              example: { original: originals[0], rephrased: rephrased[0] },
              generated: rates(rephrasedScores),
              originalWording: rates(originalScores),
            },
            partial,
            threeObjects: {
              captions: triples.length,
              example: tripleCaptions[0],
              pairDrawn: drawn,
              allThree,
            },
            realProbe: judge.info.realTest,
            probe: judge.info,
            modelSteps: p.steps,
          },
          files: [
            {
              name: "zeroshot.svg",
              data: chart,
              caption: "The four zero-shot tasks, each scored by the ground-truth probe",
            },
            ...grids.map((g) => ({
              name: g.name,
              data: gridPng(
                g.images.subarray(0, Math.min(g.count, 32) * per),
                Math.min(g.count, 32),
                S,
              ),
              caption: g.caption,
            })),
          ],
        };
      } finally {
        judge.probe.dispose();
      }
    } finally {
      p.dispose();
    }
  },
};

/** The first `n` images of each set, one set after the other. */
function firstOfEach(sets: readonly Float32Array[], n: number, per: number): Float32Array {
  const out = new Float32Array(sets.length * n * per);
  sets.forEach((s, k) => out.set(s.subarray(0, n * per), k * n * per));
  return out;
}
