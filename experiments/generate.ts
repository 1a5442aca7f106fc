/**
 * What the generating experiments share: images of captions through the whole pipeline in
 * batches, image embeddings sampled by the prior from a given (possibly edited) text
 * conditioning, and the ground-truth probe as the judge, with its flags.
 *
 * @module
 */
import {
  type Components,
  outputImageSize,
  sampleEmbeddings,
  textToImage,
} from "../core/pipeline.ts";
import { l2Normalize, tokenBatch } from "../core/clip.ts";
import { add, manualSeed, noGrad, scope, sub, type Tensor } from "../core/tensor/mod.ts";
import {
  DEFAULT_PROBE_OPTIONS,
  loadOrTrainProbe,
  MIN_PROBE_IMAGES,
  type ShapeProbe,
} from "../datasets/probe.ts";
import type { ProbeInfo } from "../datasets/probe.ts";
import type { CaptionedImage } from "../datasets/mod.ts";
import { type Experiment, type ExperimentContext, ExperimentUsageError } from "./common.ts";

/** Captions per `textToImage` call (keeps the GPU batch and memory small). */
const BATCH = 16;

/** Options of `generateImages`. */
export interface GenerateOptions {
  /** Decoder guidance scale (default: the model config's `sampling.guidance`). */
  guidance?: number;
  /** Decoder steps (default the sampler's). */
  steps?: number;
  /** Decoder candidates per image, the best by CLIP kept (default: the config's `sampling.rerank`). */
  rerank?: number;
  /** Seed of the first batch; batch i uses seed + i (so runs with the same seed match). */
  seed: number;
}

/**
 * One image per caption through the whole pipeline (prior, then decoder), NCHW in [-1, 1].
 * Captions at the same position get the same noise in two calls with the same seed, so two
 * decoders or two caption sets are compared on equal terms.
 *
 * @example
 * ```ts
 * import type { Components } from "../core/pipeline.ts";
 * async function circles(p: Components): Promise<Float32Array> {
 *   return await generateImages(p, ["a red circle"], { seed: 0 });
 * }
 * ```
 */
export async function generateImages(
  p: Components,
  captions: readonly string[],
  options: GenerateOptions,
): Promise<Float32Array> {
  const S = outputImageSize(p), per = 3 * S * S;
  const images = new Float32Array(captions.length * per);
  for (let i = 0; i < captions.length; i += BATCH) {
    const g = await textToImage(p, captions.slice(i, i + BATCH), {
      n: 1,
      guidance: options.guidance,
      steps: options.steps,
      rerank: options.rerank,
      seed: options.seed + i,
    });
    images.set(g.images, i * per);
  }
  return images;
}

/** A signed sum of captions' CLIP text conditionings, e.g. [+1 "a red square", -1 "red"]. */
export type TextTerms = readonly { sign: 1 | -1; caption: string }[];

/**
 * Image embeddings (L2-normalised, on the host) the prior samples for `n` copies of the text
 * conditioning sum(sign * CLIP(caption)) over `terms`: the text embeddings and the text
 * encodings are summed with the same signs (thesis section 4.3.3's vector offsets, Figure 4.6;
 * Mikolov et al. 2013), and the embedding renormalised as CLIP's are. One term is plain
 * text-to-embedding.
 *
 * @example
 * ```ts
 * import type { Components } from "../core/pipeline.ts";
 * async function redRectangle(p: Components): Promise<Float32Array[]> {
 *   return await priorFromTerms(p, [{ sign: 1, caption: "a black rectangle" },
 *     { sign: -1, caption: "black" }, { sign: 1, caption: "red" }], 8, 0);
 * }
 * ```
 */
export async function priorFromTerms(
  p: Components,
  terms: TextTerms,
  n: number,
  seed: number,
): Promise<Float32Array[]> {
  if (terms.length === 0) throw new Error("No text terms");
  for (const t of terms) p.tokenizer.encode(t.caption);
  manualSeed(seed);
  const z = noGrad(() =>
    scope(() => {
      let seq: Tensor | undefined, emb: Tensor | undefined;
      for (const t of terms) {
        const e = p.clip.encodeText(tokenBatch(p.tokenizer, Array(n).fill(t.caption)));
        const ze = l2Normalize(e.embedding);
        const op = t.sign === 1 ? add : sub;
        seq = seq ? op(seq, e.sequence) : t.sign === 1 ? e.sequence : sub(0, e.sequence);
        emb = emb ? op(emb, ze) : t.sign === 1 ? ze : sub(0, ze);
      }
      const cond = { textSequence: seq!, textEmbedding: l2Normalize(emb!) };
      return l2Normalize(sampleEmbeddings(p, cond));
    })
  );
  const data = (await z.read()) as Float32Array;
  z.dispose();
  const E = p.clip.embedDim;
  return Array.from({ length: n }, (_, i) => data.slice(i * E, (i + 1) * E));
}

/** The probe flags of the experiments that judge images with it. */
export const PROBE_FLAGS: Experiment["flags"] = {
  "probe-steps": { type: "string", help: "training steps of the ground-truth probe" },
  "probe-images": {
    type: "string",
    help: `training images of the probe (default ${DEFAULT_PROBE_OPTIONS.trainCount})`,
  },
  "no-probe": { type: "boolean", help: "skip the ground-truth probe" },
};

/** The probe options set by --probe-steps and --probe-images. */
export function probeOverrides(
  flags: Record<string, string | boolean | undefined>,
): { steps?: number; trainCount?: number } {
  const n = (name: string, min: number): number | undefined => {
    const raw = flags[name];
    if (raw === undefined) return undefined;
    if (typeof raw !== "string" || !/^\d+$/.test(raw) || Number(raw) < min) {
      throw new ExperimentUsageError(`--${name} "${raw}" must be an integer of at least ${min}`);
    }
    return Number(raw);
  };
  const steps = n("probe-steps", 1), trainCount = n("probe-images", MIN_PROBE_IMAGES);
  return { ...(steps && { steps }), ...(trainCount && { trainCount }) };
}

/**
 * The run's ground-truth probe (trained once, cached in `<run>/probe/`), or null with --no-probe
 * or when the data has no labels to train it on.
 */
export async function loadJudge(
  ctx: ExperimentContext,
  p: Components,
  data: readonly CaptionedImage[],
): Promise<{ probe: ShapeProbe; info: ProbeInfo } | null> {
  const overrides = probeOverrides(ctx.flags);
  if (ctx.flags["no-probe"] || !data.every((d) => d.labels)) return null;
  return await loadOrTrainProbe(ctx.checkpoint, p.config, ctx.registry, overrides, {
    print: ctx.print,
  });
}

/**
 * A flag that names an experiment's judge but finds none: the experiments whose whole result is
 * the probe's verdict refuse --no-probe and unlabelled data.
 */
export function requireJudge<T>(judge: T | null, experiment: string): T {
  if (judge === null) {
    throw new ExperimentUsageError(
      `Experiment "${experiment}" scores images with the ground-truth probe, which needs the ` +
        `labelled shapes data; drop --no-probe (or use a run trained on the shapes dataset)`,
    );
  }
  return judge;
}
