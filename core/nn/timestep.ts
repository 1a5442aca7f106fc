/**
 * Sinusoidal embeddings of (diffusion) timesteps: the positional encoding of Vaswani et al. 2017
 * applied to t, as in DDPM (Ho et al. 2020) and GLIDE/guided-diffusion's `timestep_embedding`.
 */
import type { Tensor } from "../tensor/mod.ts";
import { emptyTensor } from "../tensor/tensor.ts";
import { f32Literal, runElementwise } from "../tensor/wgsl.ts";

/**
 * Embeds timesteps t (f32 [B], may be fractional) as [B, dim]: with half = floor(dim / 2) and
 * freq_j = maxPeriod^(-j / half), columns j < half hold cos(t * freq_j) and columns half + j hold
 * sin(t * freq_j) (guided-diffusion's order: cos first); an odd `dim` gets a final zero column.
 * One GPU kernel; the frequencies are computed in float64 on the host and baked in as constants.
 * No gradient flows to t.
 *
 * @example
 * ```ts
 * const emb = timestepEmbedding(tensor([0, 10, 999], [3]), 128); // [3, 128]
 * ```
 */
export function timestepEmbedding(t: Tensor, dim: number, maxPeriod = 10000): Tensor {
  if (t.rank !== 1 || t.dtype !== "f32") {
    throw new Error(`timestepEmbedding: t must be f32 of shape [B], got ${t.dtype} [${t.shape}].`);
  }
  if (!Number.isInteger(dim) || dim < 2) {
    throw new Error(`timestepEmbedding: dim must be an integer >= 2, got ${dim}.`);
  }
  const half = Math.floor(dim / 2);
  const freqs = Array.from(
    { length: half },
    (_, j) => f32Literal(Math.exp((-Math.log(maxPeriod) * j) / half)),
  );
  const out = emptyTensor([t.shape[0], dim]);
  runElementwise({
    label: "timestep_embedding",
    n: out.size,
    prelude: `const FREQ = array<f32, ${half}>(${freqs.join(", ")});`,
    bindings: [
      { binding: { name: "T", type: "f32", access: "read" }, tensor: t },
      { binding: { name: "O", type: "f32", access: "read_write" }, tensor: out },
    ],
    body: `  let b = i / ${dim}u;
  let j = i % ${dim}u;
  var v = 0.0;
  if (j < ${half}u) {
    v = cos(T[b] * FREQ[j]);
  } else if (j < ${2 * half}u) {
    v = sin(T[b] * FREQ[j - ${half}u]);
  }
  O[i] = v;`,
  });
  return out;
}
