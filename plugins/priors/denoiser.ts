/**
 * The transformer prior as a sampler drives it (thesis Algorithm 5): the repeated conditioning of
 * the candidate chains, the guided x_0 prediction at each step, and the choice of the best
 * candidate at the end. `samplePrior` (core/diffusion/prior_sampling.ts) runs it with any sampler.
 *
 * @module
 */
import type { ClipConditioning, PriorDenoiser, PriorSampleOptions } from "../../core/components.ts";
import { combineGuidance } from "../../core/diffusion/mod.ts";
import {
  affine,
  clone,
  concat,
  expand,
  full,
  mul,
  noGrad,
  ones,
  reshape,
  rsqrt,
  scope,
  slice,
  sum,
  type Tensor,
  unsqueeze,
  zeros,
} from "../../core/tensor/mod.ts";
import { selectCandidates } from "./select.ts";
import type { PriorNetworkConditioning, TransformerPrior } from "./transformer_prior.ts";

/**
 * `candidates` chains per caption run as one batch of [K * B, E] (candidate-major), the network
 * predicts x_0 (no clamping: embeddings are not images), and `finish` keeps, per caption, the
 * sample with the largest dot product with the text embedding (selected on the GPU), divided back
 * to unit scale with `scaleEmbeddings`. `guidance` s != 1 (needs textDropRate > 0) predicts
 * x_0 = x_0(null) + s (x_0(text) - x_0(null)) (Ho & Salimans 2022, applied to x_0), both halves
 * in one batch; `renormalizeX0` rescales each prediction to the training embeddings' norm.
 *
 * @example
 * ```ts
 * import type { ClipConditioning } from "../../core/components.ts";
 * import type { TransformerPrior } from "./transformer_prior.ts";
 * function guided(prior: TransformerPrior, cond: ClipConditioning) {
 *   return transformerPriorDenoiser(prior, cond, { candidates: 2, guidance: 2 });
 * }
 * ```
 */
export function transformerPriorDenoiser(
  prior: TransformerPrior,
  cond: ClipConditioning,
  options: PriorSampleOptions = {},
): PriorDenoiser {
  const K = options.candidates ?? 2;
  const guidance = options.guidance ?? 1;
  if (!Number.isInteger(K) || K < 1) {
    throw new Error(`Candidates "${K}" must be a positive integer`);
  }
  if (guidance !== 1 && !prior.nullText) {
    throw new Error(
      `Guidance "${guidance}" needs a prior trained with textDropRate > 0 (this one has 0); ` +
        `use guidance 1 or retrain the prior with textDropRate`,
    );
  }
  const B = cond.textEmbedding.shape[0];
  const repeated = noGrad(() =>
    scope(() => {
      let seq = repeatRows(cond.textSequence, K), emb = repeatRows(cond.textEmbedding, K);
      let keep: Tensor | null = null;
      if (guidance !== 1) {
        seq = concat([seq, seq], 0);
        emb = concat([emb, emb], 0);
        keep = concat([ones([K * B, 1]), zeros([K * B, 1])], 0);
      }
      return { textSequence: seq, textEmbedding: emb, keep };
    })
  );
  return {
    shape: [K * B, prior.embedDim],
    prediction: "x0",
    clipDenoised: false,
    predict: (x, timestep) => predictX0(prior, repeated, x, timestep, guidance),
    finish: (x) =>
      scope(() => {
        const best = selectCandidates(x, cond.textEmbedding, K);
        return prior.options.scaleEmbeddings ? affine(best, 1 / prior.embeddingScale, 0) : best;
      }),
    dispose() {
      repeated.textSequence.dispose();
      repeated.textEmbedding.dispose();
      repeated.keep?.dispose();
    },
  };
}

/** The x_0 prediction at one step, guided when `guidance` != 1 (rows: conditional, then null). */
function predictX0(
  prior: TransformerPrior,
  cond: PriorNetworkConditioning,
  x: Tensor,
  timestep: number,
  guidance: number,
): Tensor {
  const n = x.shape[0];
  let x0: Tensor;
  if (guidance !== 1) {
    const both = prior.forward(cond, concat([x, x], 0), full([2 * n], timestep));
    x0 = combineGuidance(slice(both, 0, 0, n), slice(both, 0, n, 2 * n), guidance);
  } else {
    x0 = prior.forward(cond, x, full([n], timestep));
  }
  if (!prior.options.renormalizeX0) return x0;
  return mul(
    x0,
    affine(rsqrt(affine(sum(mul(x0, x0), 1, true), 1, 1e-12)), prior.embeddingScale, 0),
  );
}

/** x [B, ...] -> [K * B, ...] (a new tensor), row k * B + b holding x[b]. */
function repeatRows(x: Tensor, K: number): Tensor {
  if (K === 1) return clone(x);
  const expanded = expand(unsqueeze(x, 0), [K, ...x.shape]);
  return reshape(expanded, [K * x.shape[0], ...x.shape.slice(1)]);
}
