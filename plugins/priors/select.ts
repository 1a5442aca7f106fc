/**
 * Candidate selection of the prior's sampler (thesis Algorithm 5, lines 14-20; Ramesh et al.
 * 2022, section 2.2): of several sampled image embeddings per caption, keep the one with the
 * largest dot product with the caption's text embedding. Done on the GPU, without readback.
 *
 * @module
 */
import {
  add,
  affine,
  concat,
  equal,
  max,
  mul,
  reshape,
  slice,
  sum,
  type Tensor,
  unsqueeze,
  zeros,
} from "../../core/tensor/mod.ts";

/**
 * Picks, for each caption b, the candidate k maximising samples[k * B + b] . text[b]
 * (the first one on a tie). `samples` [K * B, E] is candidate-major (rows k * B .. k * B + B - 1
 * are candidate k of every caption); `textEmbedding` [B, E]. Returns [B, E].
 *
 * @example
 * ```ts
 * import type { Tensor } from "../../core/tensor/mod.ts";
 * function best(samples: Tensor, textEmbedding: Tensor): Tensor {
 *   return selectCandidates(samples, textEmbedding, 2); // [B, E] from [2B, E]
 * }
 * ```
 */
export function selectCandidates(
  samples: Tensor,
  textEmbedding: Tensor,
  candidates: number,
): Tensor {
  const [B, E] = textEmbedding.shape;
  if (samples.rank !== 2 || samples.shape[0] !== candidates * B || samples.shape[1] !== E) {
    throw new Error(
      `Samples have shape [${samples.shape}]; expected [${
        candidates * B
      }, ${E}] for ${candidates} candidates`,
    );
  }
  if (candidates === 1) return affine(samples, 1, 0);
  const grouped = reshape(samples, [candidates, B, E]);
  const scores = sum(mul(grouped, unsqueeze(textEmbedding, 0)), 2); // [K, B]
  const isBest = equal(scores, max(scores, 0, true));
  // Keep only the first maximum per caption, so ties never average two candidates.
  let taken = zeros([1, B]);
  const masks: Tensor[] = [];
  for (let k = 0; k < candidates; k++) {
    const m = mul(slice(isBest, 0, k, k + 1), affine(taken, -1, 1));
    masks.push(m);
    taken = add(taken, m);
  }
  return sum(mul(grouped, unsqueeze(concat(masks, 0), 2)), 0);
}
