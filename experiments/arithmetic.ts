/**
 * `experiment arithmetic` (thesis section 4.3.3, Figure 4.6): vector offsets of CLIP text
 * embeddings through the prior and the decoder. "a large gold rectangle - a rectangle + a circle"
 * is encoded term by term, summed with its signs (`priorFromTerms`), turned into image embeddings
 * by the prior and drawn by the decoder with an empty caption, so that only the embedding speaks.
 * The probe checks each image against the expected caption ("a large gold circle"); the same
 * pipeline run on the expected caption itself is the reference.
 *
 * @module
 */
import { decoderGuidance, loadPipeline, outputImageSize } from "../core/pipeline.ts";
import { scoreImages } from "../datasets/probe.ts";
import { cosine, decodeEmbeddings, textEmbeddings } from "../core/eval/embed.ts";
import { barChart } from "../core/eval/plot.ts";
import { parseCaption } from "../datasets/mod.ts";
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
import { loadJudge, priorFromTerms, PROBE_FLAGS, type TextTerms } from "./generate.ts";

/** The two equations of thesis Figure 4.6. */
export const DEFAULT_EQUATIONS =
  "a large gold rectangle - a rectangle + a circle = a large gold circle; " +
  "a black rectangle - black + red = a red rectangle";

/** One parsed equation. */
export interface Equation {
  terms: TextTerms;
  expected: string;
  text: string;
}

/**
 * Parses "A - B + C = D" equations separated by ";" (captions may not contain " + ", " - ", "=").
 *
 * @example
 * ```ts
 * parseEquations("a red square - red + blue = a blue square")[0].terms.length; // 3
 * ```
 */
export function parseEquations(raw: string): Equation[] {
  const equations = raw.split(";").map((e) => e.trim()).filter((e) => e !== "");
  if (equations.length === 0) {
    throw new ExperimentUsageError(
      `--equations is empty; e.g. "a red square - red + blue = a blue square"`,
    );
  }
  return equations.map((text) => {
    const sides = text.split("=");
    if (sides.length !== 2 || sides[1].trim() === "") {
      throw new ExperimentUsageError(
        `Equation "${text}" needs one "=" followed by the expected caption, e.g. ` +
          `"a red square - red + blue = a blue square"`,
      );
    }
    const tokens = (" + " + sides[0].trim()).split(/\s+([+-])\s+/).slice(1);
    const terms: { sign: 1 | -1; caption: string }[] = [];
    for (let i = 0; i < tokens.length; i += 2) {
      const caption = (tokens[i + 1] ?? "").trim();
      if (caption === "") {
        throw new ExperimentUsageError(
          `Equation "${text}" has an empty term; write "A - B + C = D"`,
        );
      }
      terms.push({ sign: tokens[i] === "-" ? -1 : 1, caption });
    }
    return { terms, expected: sides[1].trim(), text };
  });
}

/** The arithmetic experiment. */
export const arithmeticExperiment: Experiment = {
  name: "arithmetic",
  thesis: "Figure 4.6",
  summary: "CLIP text-embedding arithmetic (A - B + C) through the prior and the decoder",
  stages: ["clip", "prior", "decoder"],
  draws: "prior-embeddings",
  flags: {
    equations: {
      type: "string",
      help: `"A - B + C = D; ..." (default the thesis's two: "${DEFAULT_EQUATIONS}")`,
    },
    n: { type: "string", help: "images per equation (default 8)" },
    ...GUIDANCE_FLAG,
    ...PROBE_FLAGS,
  },
  async run(ctx) {
    const equations = parseEquations(
      (ctx.flags.equations as string | undefined) ?? DEFAULT_EQUATIONS,
    );
    const n = oneNumber(ctx.flags.n, "n", { integer: true, min: 1, max: 256 }) ?? 8;
    const givenGuidance = guidanceFlag(ctx.flags);
    const p = await loadPipeline(ctx.checkpoint, ctx.registry, ctx.load);
    const guidance = decoderGuidance(p, { guidance: givenGuidance });
    try {
      for (const e of equations) {
        for (const c of [...e.terms.map((t) => t.caption), e.expected]) p.tokenizer.encode(c);
      }
      const test = await loadSplit(p.config, ctx.registry, "test", undefined);
      const judge = await loadJudge(ctx, p, test);
      try {
        const S = outputImageSize(p), per = 3 * S * S;
        const rows = [];
        const grid = new Float32Array(equations.length * 2 * n * per);
        for (const [q, e] of equations.entries()) {
          const draw = async (terms: TextTerms) => {
            const z = await priorFromTerms(p, terms, n, ctx.seed + q);
            const images = await decodeEmbeddings(p, z, {
              guidance,
              steps: ctx.steps,
              seed: ctx.seed + q,
            });
            return { z, images };
          };
          const sum = await draw(e.terms);
          const direct = await draw([{ sign: 1, caption: e.expected }]);
          grid.set(sum.images, 2 * q * n * per);
          grid.set(direct.images, (2 * q + 1) * n * per);
          const [zExpected] = await textEmbeddings(p.clip, p.tokenizer, [e.expected]);
          const meanCos = (zs: Float32Array[]) =>
            round(zs.reduce((s, z) => s + cosine(z, zExpected), 0) / zs.length);
          let judgeable = judge !== null;
          try {
            parseCaption(e.expected);
          } catch {
            judgeable = false;
          }
          const expected = Array(n).fill(e.expected);
          const sumScores = judgeable
            ? await scoreImages(judge!.probe, sum.images, expected)
            : null;
          const directScores = judgeable
            ? await scoreImages(judge!.probe, direct.images, expected)
            : null;
          rows.push({
            equation: e.text,
            terms: e.terms,
            expected: e.expected,
            // Each image embedding the prior made, against the expected caption's text embedding.
            cosineToExpected: { arithmetic: meanCos(sum.z), direct: meanCos(direct.z) },
            probe: sumScores && directScores
              ? {
                arithmetic: { exact: round(sumScores.exact), lenient: round(sumScores.lenient) },
                direct: { exact: round(directScores.exact), lenient: round(directScores.lenient) },
              }
              : null,
          });
          ctx.print(
            `arithmetic "${e.text}": cos(prior z, text(D)) ${meanCos(sum.z).toFixed(3)} ` +
              `(direct ${meanCos(direct.z).toFixed(3)})` +
              (sumScores && directScores
                ? `; probe exact ${(sumScores.exact * 100).toFixed(0)}% ` +
                  `(direct ${(directScores.exact * 100).toFixed(0)}%)`
                : ""),
          );
        }
        const bars = rows.flatMap((r, q) =>
          r.probe
            ? [
              {
                group: `${q + 1}: ${r.expected}`,
                bar: "arithmetic",
                value: r.probe.arithmetic.exact,
              },
              {
                group: `${q + 1}: ${r.expected}`,
                bar: "expected caption",
                value: r.probe.direct.exact,
              },
            ]
            : [
              {
                group: `${q + 1}: ${r.expected}`,
                bar: "arithmetic",
                value: r.cosineToExpected.arithmetic,
              },
              {
                group: `${q + 1}: ${r.expected}`,
                bar: "expected caption",
                value: r.cosineToExpected.direct,
              },
            ]
        );
        const judged = rows.every((r) => r.probe);
        return {
          results: {
            guidance,
            samplesPerEquation: n,
            equations: rows,
            probe: judge?.info ?? null,
            modelSteps: p.steps,
          },
          files: [
            {
              name: "arithmetic.png",
              data: gridPng(grid, equations.length * 2 * n, S, n),
              caption: `Per equation two rows: images from the arithmetic (${
                equations.map((e) => `"${e.text}"`).join("; ")
              }), then from the expected caption directly (thesis Figure 4.6)`,
            },
            {
              name: "arithmetic.svg",
              data: await barChart(bars, {
                y: judged ? "probe exact match with the expected caption" : "cos(prior z, text D)",
                title: "Text-embedding arithmetic against the expected caption",
              }),
              caption: judged
                ? "The probe's exact-match rate against the expected caption"
                : "Cosine of the prior's image embeddings with the expected caption's embedding",
            },
          ],
        };
      } finally {
        judge?.probe.dispose();
      }
    } finally {
      p.dispose();
    }
  },
};
