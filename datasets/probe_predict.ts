/**
 * Reading the ground-truth probe: its logits for a batch of images (averaged over the 8 dihedral
 * views when it was trained with them), the decoded predictions, and their scores against the
 * images' captions (`score.ts`).
 *
 * @module
 */
import { noGrad, scope, tensor } from "../core/tensor/mod.ts";
import {
  decodePrediction,
  type FigureScores,
  PAIR_COUNT,
  type ProbePrediction,
  type ProbeScores,
  scoreCaption,
  scoresByFigures,
  type ShapeOutcome,
  shapeOutcomes,
  summarizeScores,
} from "./score.ts";
import type { ShapeName } from "./shapes.ts";
import { COUNT_LOGIT, dihedralInto, PROBE_LOGITS, type ShapeProbe } from "./probe_model.ts";

/**
 * The probe's predictions for NCHW images in [-1, 1] (decoded `probeLogits`).
 *
 * @example
 * ```ts
 * import type { ShapeProbe } from "./probe_model.ts";
 * async function predict(probe: ShapeProbe, images: Float32Array, count: number) {
 *   return await predictProbe(probe, images, count); // one prediction per image
 * }
 * ```
 */
export async function predictProbe(
  probe: ShapeProbe,
  images: Float32Array,
  count: number,
): Promise<ProbePrediction[]> {
  return (await probeLogits(probe, images, count)).map((row) =>
    decodePrediction(row.subarray(0, PAIR_COUNT), row[COUNT_LOGIT], row.subarray(COUNT_LOGIT + 1))
  );
}

/**
 * The probe's raw outputs for NCHW images in [-1, 1], one row of `PROBE_LOGITS` per image: the
 * (colour, shape) pair logits (`pairIndex` order), the count logit (> 0: two figures), the size
 * logits. One readback per 128 images.
 *
 * @example
 * ```ts
 * import type { ShapeProbe } from "./probe_model.ts";
 * import { pairIndex } from "./score.ts";
 * async function seesRedCircle(probe: ShapeProbe, images: Float32Array, count: number) {
 *   const rows = await probeLogits(probe, images, count);
 *   return rows[0][pairIndex("red", "circle")] > 0; // the probe sees a red circle in image 0
 * }
 * ```
 */
export async function probeLogits(
  probe: ShapeProbe,
  images: Float32Array,
  count: number,
): Promise<Float32Array[]> {
  const S = probe.imageSize, per = 3 * S * S, K = PROBE_LOGITS;
  if (images.length !== count * per) {
    throw new Error(
      `Expected ${count} images of ${S}x${S} (${count * per} values), got ${images.length}`,
    );
  }
  const out: Float32Array[] = [];
  for (let i = 0; i < count; i += 128) {
    const b = Math.min(128, count - i);
    const chunk = images.subarray(i * per, (i + b) * per);
    const z = new Float32Array(b * K);
    const views = probe.dihedral ? 8 : 1;
    const moved = views > 1 ? new Float32Array(b * per) : chunk;
    for (let v = 0; v < views; v++) {
      if (views > 1) {
        for (let k = 0; k < b; k++) {
          dihedralInto(chunk.subarray(k * per, (k + 1) * per), S, v, moved, k * per);
        }
      }
      const logits = noGrad(() => scope(() => probe.forward(tensor(moved, [b, 3, S, S]))));
      const zv = (await logits.read()) as Float32Array;
      logits.dispose();
      for (let j = 0; j < zv.length; j++) z[j] += zv[j] / views;
    }
    for (let k = 0; k < b; k++) out.push(z.slice(k * K, (k + 1) * K));
  }
  return out;
}

/**
 * Scores NCHW images against their captions with the probe: the rates of `summarizeScores`, the
 * same per captioned figure count (`scoresByFigures`), per captioned shape what was drawn
 * (`shapeOutcomes`), and which images are exact (`exactByImage`, "1" or "0" per image in order).
 *
 * @example
 * ```ts
 * import type { ShapeProbe } from "./probe_model.ts";
 * async function score(probe: ShapeProbe, generated: Float32Array, captions: string[]) {
 *   const s = await scoreImages(probe, generated, captions);
 *   console.log(s.exact);
 * }
 * ```
 */
export async function scoreImages(
  probe: ShapeProbe,
  images: Float32Array,
  captions: readonly string[],
): Promise<
  ProbeScores & {
    byFigures: Record<string, FigureScores>;
    byShape: Record<ShapeName, ShapeOutcome>;
    exactByImage: string;
  }
> {
  const preds = await predictProbe(probe, images, captions.length);
  const scores = preds.map((p, i) => scoreCaption(p, captions[i]));
  return {
    ...summarizeScores(scores),
    byFigures: scoresByFigures(scores, captions),
    byShape: shapeOutcomes(preds, captions),
    // One character per image, "1" where it is exact: two evals of the same captions and seed
    // can then be compared image by image (a paired comparison, far less noisy than the rates).
    exactByImage: scores.map((s) => (s.exact ? "1" : "0")).join(""),
  };
}
