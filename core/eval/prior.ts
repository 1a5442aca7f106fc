/**
 * Zero-shot evaluation of a prior (thesis section 4.6.2, Table 4.2): mean cosine similarities of
 * generated image embeddings with the captions' text embeddings, with the true image embeddings,
 * the text-vs-image baseline, and generated vs a random other caption's text embedding.
 *
 * @module
 */
import { derangement } from "../host_random.ts";
import type { Prior, Sampler } from "../components.ts";
import {
  add,
  concat,
  embedding,
  getRngState,
  manualSeed,
  mul,
  noGrad,
  rsqrt,
  scope,
  setRngState,
  slice,
  sum,
  type Tensor,
  tensor,
  zeros,
} from "../tensor/mod.ts";
import { type NoiseSchedule, samplePrior } from "../diffusion/mod.ts";
import { cosine } from "./embed.ts";

/** The four Table 4.2 numbers (mean cosine similarities). */
export interface PriorMetrics {
  /** Generated image embedding vs the caption's text embedding. */
  textSimilarity: number;
  /** Generated vs the true image embedding. */
  imageSimilarity: number;
  /** Baseline: text embedding vs true image embedding (CLIP's own image-text similarity). */
  baselineSimilarity: number;
  /** Generated vs the text embedding of a different caption (a seeded derangement). */
  randomSimilarity: number;
}

/** The thesis's Table 4.2 (held-out test set). */
export const THESIS_TABLE_4_2: Readonly<PriorMetrics> = Object.freeze({
  textSimilarity: 0.934,
  imageSimilarity: 0.906,
  baselineSimilarity: 0.849,
  randomSimilarity: -0.001,
});

/** Precomputed CLIP tensors of an evaluation set (N rows). */
export interface PriorEvalSet {
  /** [N, T, W] text encodings. */
  textSequence: Tensor;
  /** [N, E] text embeddings. */
  textEmbedding: Tensor;
  /** [N, E] true image embeddings. */
  imageEmbedding: Tensor;
}

/** Options of `evaluatePrior`. */
export interface EvaluatePriorOptions {
  /** Captions sampled per batch (default 64). */
  batchSize?: number;
  /** Chains per caption (default 2, as Algorithm 5). */
  candidates?: number;
  /** Classifier-free guidance scale (default 1: off). */
  guidance?: number;
  /** The prior's reverse process (default ancestral DDPM, thesis Algorithm 5). */
  sampler?: Sampler;
  /** Prior sampling steps (respaced; default the sampler's, else the schedule's). */
  steps?: number;
  /** Seeds the derangement and the sampling noise (default 0); the generator is restored after. */
  seed?: number;
}

/** Row-wise cosine similarity of a and b [B, E] -> [B]. */
function rowCosines(a: Tensor, b: Tensor): Tensor {
  const dot = sum(mul(a, b), 1);
  const norms = mul(sum(mul(a, a), 1), sum(mul(b, b), 1));
  return mul(dot, rsqrt(add(norms, 1e-24)));
}

/** Row-wise cosine similarity of a and b [B, E], summed over the batch -> [1]. */
function cosineSum(a: Tensor, b: Tensor): Tensor {
  return sum(rowCosines(a, b), 0, true);
}

/** Image embeddings [end - start, E] sampled for rows start..end of `set` with `options`. */
function sampleRows(
  prior: Prior,
  set: Pick<PriorEvalSet, "textSequence" | "textEmbedding">,
  start: number,
  end: number,
  schedule: NoiseSchedule,
  options: EvaluatePriorOptions,
): Tensor {
  const { candidates = 2, guidance = 1, sampler, steps } = options;
  return samplePrior(
    prior,
    {
      textSequence: slice(set.textSequence, 0, start, end),
      textEmbedding: slice(set.textEmbedding, 0, start, end),
    },
    schedule,
    { candidates, guidance, sampler, steps },
  );
}

/**
 * Runs `body` on the rows start..end of an N-row set, `batchSize` rows at a time, with the
 * engine's generator seeded by `seed` and restored afterwards.
 */
async function seededBatches(
  N: number,
  batchSize: number,
  seed: number,
  body: (start: number, end: number) => void | Promise<void>,
): Promise<void> {
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`Batch size "${batchSize}" must be a positive integer`);
  }
  const saved = getRngState();
  manualSeed(seed);
  try {
    for (let start = 0; start < N; start += batchSize) {
      await body(start, Math.min(N, start + batchSize));
    }
  } finally {
    setRngState(saved);
  }
}

/**
 * Samples one image embedding per caption and returns the Table 4.2 similarities, averaged over
 * the set. Sums stay on the GPU; there is one readback at the end.
 *
 * @example
 * ```ts
 * import type { Prior, Sampler } from "../components.ts";
 * import { type NoiseSchedule, samplePrior } from "../diffusion/mod.ts";
 * async function table42(prior: Prior, testSet: PriorEvalSet, schedule: NoiseSchedule) {
 *   const m = await evaluatePrior(prior, testSet, schedule.respace(64), { batchSize: 128 });
 *   console.log(m.imageSimilarity, THESIS_TABLE_4_2.imageSimilarity);
 * }
 * ```
 */
export async function evaluatePrior(
  prior: Prior,
  data: PriorEvalSet,
  schedule: NoiseSchedule,
  options: EvaluatePriorOptions = {},
): Promise<PriorMetrics> {
  const { batchSize = 64, seed = 0 } = options;
  const N = data.textEmbedding.shape[0];
  if (data.imageEmbedding.shape[0] !== N || data.textSequence.shape[0] !== N) {
    throw new Error(
      `Evaluation tensors disagree on the number of rows: text sequence [${data.textSequence.shape}], ` +
        `text embedding [${data.textEmbedding.shape}], image embedding [${data.imageEmbedding.shape}]`,
    );
  }
  const perm = derangement(N, seed);
  let sums = zeros([4]).keep();
  try {
    await seededBatches(N, batchSize, seed, (start, end) => {
      const next = scope(() =>
        noGrad(() => {
          const text = slice(data.textEmbedding, 0, start, end);
          const image = slice(data.imageEmbedding, 0, start, end);
          const generated = sampleRows(prior, data, start, end, schedule, options);
          const other = embedding(
            tensor(perm.subarray(start, end), [end - start]),
            data.textEmbedding,
          );
          return add(
            sums,
            concat([
              cosineSum(generated, text),
              cosineSum(generated, image),
              cosineSum(text, image),
              cosineSum(generated, other),
            ], 0),
          );
        })
      ).keep();
      sums.dispose();
      sums = next;
    });
    const s = await sums.read();
    return {
      textSimilarity: s[0] / N,
      imageSimilarity: s[1] / N,
      baselineSimilarity: s[2] / N,
      randomSimilarity: s[3] / N,
    };
  } finally {
    sums.dispose();
  }
}

/**
 * How much the prior's samples for one caption differ: each caption's embedding is sampled twice
 * with different noise and the two are compared, the mean cosine over the set. A prior that
 * samples the caption's image embeddings spreads them as the images do (`sameCaptionSimilarity`
 * of the true ones); one that has collapsed onto their mean returns nearly the same vector
 * every time (cosine near 1), which the Table 4.2 similarities do not show: a mean is closer to
 * each true image embedding on average than any one sample is.
 *
 * @example
 * ```ts
 * import type { Prior } from "../components.ts";
 * import type { NoiseSchedule } from "../diffusion/mod.ts";
 * async function spread(prior: Prior, test: PriorEvalSet, s: NoiseSchedule) {
 *   return await priorSampleSimilarity(prior, test, s); // e.g. 0.98; 1 = no spread at all
 * }
 * ```
 */
export async function priorSampleSimilarity(
  prior: Prior,
  data: Pick<PriorEvalSet, "textSequence" | "textEmbedding">,
  schedule: NoiseSchedule,
  options: EvaluatePriorOptions = {},
): Promise<number> {
  const { batchSize = 64, seed = 0 } = options;
  const N = data.textEmbedding.shape[0];
  if (N === 0) throw new Error("No captions to sample");
  let total = 0;
  await seededBatches(N, batchSize, seed, async (start, end) => {
    const sum = scope(() =>
      noGrad(() => {
        // The generator runs on between the two draws: the second has fresh noise.
        const draw = () => sampleRows(prior, data, start, end, schedule, options);
        return cosineSum(draw(), draw());
      })
    );
    total += (await sum.read())[0];
    sum.dispose();
  });
  return total / N;
}

/**
 * The mean cosine similarity of the true image embeddings of two different images with the same
 * caption, over every such pair in the set (`embeddings` one row each, `captions` the rows'
 * captions), and the number of pairs; null when no caption repeats. The spread a prior that
 * samples should show (`priorSampleSimilarity`).
 *
 * @example
 * ```ts
 * const e = [new Float32Array([1, 0]), new Float32Array([0.6, 0.8]), new Float32Array([0, 1])];
 * sameCaptionSimilarity(e, ["a red circle", "a red circle", "a blue square"]); // { similarity: 0.6, pairs: 1 }
 * ```
 */
export function sameCaptionSimilarity(
  embeddings: readonly ArrayLike<number>[],
  captions: readonly string[],
): { similarity: number; pairs: number } | null {
  if (embeddings.length !== captions.length) {
    throw new Error(`${embeddings.length} embeddings but ${captions.length} captions`);
  }
  const groups = new Map<string, number[]>();
  captions.forEach((c, i) => groups.set(c, [...(groups.get(c) ?? []), i]));
  let total = 0, pairs = 0;
  for (const rows of groups.values()) {
    for (let a = 0; a < rows.length; a++) {
      for (let b = a + 1; b < rows.length; b++) {
        total += cosine(embeddings[rows[a]], embeddings[rows[b]]);
        pairs++;
      }
    }
  }
  return pairs === 0 ? null : { similarity: total / pairs, pairs };
}

/**
 * Whether the prior's image embeddings say which colour goes with which figure: for each row, an
 * image embedding sampled from its own caption and one from its hard negative (`negatives`: the
 * caption with its figures' colours swapped, encoded the same way), with the same noise, and
 * whether the own caption's sample is the closer to the true image embedding. The fraction of
 * rows (50%: the prior, or the CLIP text embedding it reads, does not tell the two apart).
 *
 * @example
 * ```ts
 * import type { Prior } from "../components.ts";
 * import type { NoiseSchedule } from "../diffusion/mod.ts";
 * async function binding(prior: Prior, own: PriorEvalSet, swapped: PriorEvalSet, s: NoiseSchedule) {
 *   return await priorBindingAccuracy(prior, own, swapped, s, { seed: 0 }); // e.g. 0.74
 * }
 * ```
 */
export async function priorBindingAccuracy(
  prior: Prior,
  own: PriorEvalSet,
  negatives: Pick<PriorEvalSet, "textSequence" | "textEmbedding">,
  schedule: NoiseSchedule,
  options: EvaluatePriorOptions = {},
): Promise<number> {
  const { batchSize = 64, seed = 0 } = options;
  const N = own.textEmbedding.shape[0];
  if (negatives.textEmbedding.shape[0] !== N || negatives.textSequence.shape[0] !== N) {
    throw new Error(
      `${N} captions but ${negatives.textEmbedding.shape[0]} hard negatives: need one each`,
    );
  }
  if (N === 0) throw new Error("No captions with a hard negative to evaluate");
  let wins = 0;
  await seededBatches(N, batchSize, seed, async (start, end) => {
    const draw = (set: Pick<PriorEvalSet, "textSequence" | "textEmbedding">): Tensor => {
      manualSeed(seed + start); // the same noise for the caption and its hard negative
      return sampleRows(prior, set, start, end, schedule, options);
    };
    // Each sample's cosine with the true image embedding: the own captions' B, then the swaps'.
    const cosines = scope(() =>
      noGrad(() => {
        const image = slice(own.imageEmbedding, 0, start, end);
        return concat([rowCosines(draw(own), image), rowCosines(draw(negatives), image)], 0);
      })
    );
    const v = await cosines.read();
    cosines.dispose();
    const B = end - start;
    for (let r = 0; r < B; r++) if (v[r] > v[B + r]) wins++;
  });
  return wins / N;
}
