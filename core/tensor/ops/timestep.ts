/**
 * Sinusoidal embeddings of (diffusion) timesteps: the positional encoding of Vaswani et al. 2017
 * applied to t, as in DDPM (Ho et al. 2020) and GLIDE/guided-diffusion's `timestep_embedding`.
 * One kernel (WGSL, or its CPU twin); the frequencies are computed in float64 on the host and
 * rounded to float32 for both.
 */
import { cpu, onCpu } from "../backend.ts";
import { f32 } from "../cpu/views.ts";
import { emptyTensor, type Tensor } from "../tensor.ts";
import { f32Literal, runElementwise } from "../kernels/wgsl.ts";

/**
 * Embeds timesteps t (f32 [B], may be fractional) as [B, dim]: with half = floor(dim / 2) and
 * freq_j = maxPeriod^(-j / half), columns j < half hold cos(t * freq_j) and columns half + j hold
 * sin(t * freq_j) (guided-diffusion's order: cos first); an odd `dim` gets a final zero column.
 * No gradient flows to t.
 *
 * @example
 * ```ts
 * import { tensor, type Tensor } from "../mod.ts";
 * function embedSteps(): Tensor {
 *   return timestepEmbedding(tensor([0, 10, 999], [3]), 128); // [3, 128]
 * }
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
    (_, j) => Math.fround(Math.exp((-Math.log(maxPeriod) * j) / half)),
  );
  const out = emptyTensor([t.shape[0], dim]);
  if (onCpu()) embedCpu(t, out, freqs);
  else embedGpu(t, out, freqs);
  return out;
}

/** out[b, j] = cos(t[b] f[j]), out[b, half + j] = sin(t[b] f[j]), the rest 0 (float32 product). */
function embedCpu(t: Tensor, out: Tensor, freqs: number[]): void {
  cpu().countOp();
  const T = f32(t), O = f32(out), half = freqs.length, dim = out.shape[1];
  for (let b = 0; b < T.length; b++) {
    const row = b * dim;
    for (let j = 0; j < half; j++) {
      const arg = Math.fround(T[b] * freqs[j]);
      O[row + j] = Math.cos(arg);
      O[row + half + j] = Math.sin(arg);
    }
    for (let j = 2 * half; j < dim; j++) O[row + j] = 0;
  }
}

function embedGpu(t: Tensor, out: Tensor, freqs: number[]): void {
  const half = freqs.length, dim = out.shape[1];
  runElementwise({
    label: "timestep_embedding",
    n: out.size,
    prelude: `const FREQ = array<f32, ${half}>(${freqs.map(f32Literal).join(", ")});`,
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
}
