/**
 * The diffusion prior p(z_i | y) of the thesis (section 3.4, Figure 3.9): a causal transformer
 * over five tokens that predicts the clean CLIP image embedding directly (Ramesh et al. 2022,
 * section 2.2), trained with Algorithm 4 and sampled with Algorithm 5.
 *
 * @module
 */
import type {
  ClipConditioning,
  Prior,
  PriorDenoiser,
  PriorSampleOptions,
} from "../../core/components.ts";
import { z } from "../../core/deps.ts";
import {
  LayerNorm,
  Linear,
  Module,
  normalInit,
  timestepEmbedding,
  TransformerBlock,
} from "../../core/nn/mod.ts";
import { definePlugin, type PluginDefinition } from "../../core/registry.ts";
import {
  add,
  affine,
  bernoulli,
  concat,
  expand,
  mse,
  mul,
  randn,
  reshape,
  slice,
  tanh,
  type Tensor,
  unsqueeze,
} from "../../core/tensor/mod.ts";
import { gatherSteps, type NoiseSchedule, qSample, randomSteps } from "../../core/diffusion/mod.ts";
import { samplePrior } from "../../core/diffusion/prior_sampling.ts";
import { transformerPriorDenoiser } from "./denoiser.ts";

/** Number of input tokens: pooled text, text embedding, timestep, noisy embedding, query. */
export const PRIOR_TOKENS = 5;

/** Options of the "transformer" prior plugin (defaults: the thesis preset, Appendix A). */
export const transformerPriorOptions = z.object({
  width: z.number().int().positive().default(256).describe("Transformer width d_model"),
  heads: z.number().int().positive().default(16).describe("Attention heads"),
  layers: z.number().int().positive().default(8).describe("Transformer blocks"),
  embedDim: z.number().int().positive().default(256).describe("CLIP embedding size E"),
  textWidth: z.number().int().positive().default(64).describe("Width W of the CLIP text encoding"),
  contextLength: z.number().int().positive().default(33).describe("Length T of the text encoding"),
  mlpRatio: z.number().positive().default(2)
    .describe(
      "MLP hidden width as a multiple of width (2 matches the thesis's 4.3M; 4 gives 6.7M)",
    ),
  textDropRate: z.number().min(0).max(1).default(0).describe(
    "Probability of replacing the text conditioning by a learned null during training " +
      "(classifier-free guidance; 0 in the thesis)",
  ),
  scaleEmbeddings: z.boolean().default(false).describe(
    "Diffuse sqrt(E) * the unit image embedding, so its components have unit variance like the noise",
  ),
  renormalizeX0: z.boolean().default(false).describe(
    "While sampling, rescale each predicted x0 to the norm of the training embeddings",
  ),
}).strict().refine((o) => o.width % o.heads === 0, {
  // Checked when the config loads, not when the prior stage starts after CLIP has trained.
  path: ["heads"],
  message: "heads must divide width",
});

/** Validated options of the transformer prior. */
export type TransformerPriorOptions = z.output<typeof transformerPriorOptions>;

/** Conditioning as the network consumes it; `keep` [B, 1] (1 keeps, 0 uses the null tokens). */
export interface PriorNetworkConditioning extends ClipConditioning {
  /** f32 [B, 1]: 1 keeps the text conditioning, 0 swaps in the learned null tokens. */
  keep?: Tensor | null;
}

/**
 * The thesis prior network (section 3.4.1). Token order: pooled text encoding (a 1x1 conv
 * textWidth -> 1 over channels, i.e. a per-position linear, then tanh and a linear
 * contextLength -> width), text embedding (linear), timestep (sinusoidal embedding -> MLP), noisy
 * image embedding (linear), learned query; plus a learned positional embedding, causal pre-LN
 * blocks, a final LayerNorm, and a linear head on the query's output predicting x_0.
 *
 * @example
 * ```ts
 * import type { NoiseSchedule } from "../../core/diffusion/mod.ts";
 * import type { Tensor } from "../../core/tensor/mod.ts";
 * function loss(textSequence: Tensor, textEmbedding: Tensor, image: Tensor, schedule: NoiseSchedule) {
 *   const prior = new TransformerPrior(transformerPriorOptions.parse({}));
 *   return prior.loss({ textSequence, textEmbedding }, image, schedule);
 * }
 * ```
 */
export class TransformerPrior extends Module implements Prior {
  /** CLIP embedding size E. */
  readonly embedDim: number;
  /** The validated options it was built with. */
  readonly options: TransformerPriorOptions;
  /** The 1x1 conv textWidth -> 1 over the text encoding's channels (thesis 3.4.1). */
  readonly textPool: Linear;
  /** Linear contextLength -> width after the tanh: the pooled-text token. */
  readonly textPoolProj: Linear;
  /** Linear embedDim -> width: the text-embedding token. */
  readonly textEmbedProj: Linear;
  /** First layer (SiLU) of the timestep MLP. */
  readonly timeFc1: Linear;
  /** Second layer of the timestep MLP: the timestep token. */
  readonly timeFc2: Linear;
  /** Linear embedDim -> width: the noisy-embedding token. */
  readonly noisyProj: Linear;
  /** The learned query token [width]. */
  readonly query: Tensor;
  /** Learned positional embedding [5, width]. */
  readonly position: Tensor;
  /** Causal pre-LN transformer blocks. */
  readonly blocks: TransformerBlock[];
  /** Final LayerNorm. */
  readonly lnFinal: LayerNorm;
  /** Linear width -> embedDim on the query's output: the x_0 prediction. */
  readonly head: Linear;
  /** Learned null pooled-text token (only with textDropRate > 0). */
  readonly nullPooled: Tensor | null;
  /** Learned null text-embedding token (only with textDropRate > 0). */
  readonly nullText: Tensor | null;

  /**
   * Builds the network from validated options (see `transformerPriorOptions`).
   *
   * @example
   * ```ts
   * function small(): TransformerPrior {
   *   return new TransformerPrior(transformerPriorOptions.parse({ layers: 2 }));
   * }
   * ```
   */
  constructor(options: TransformerPriorOptions) {
    super();
    const o = this.options = options;
    if (o.width % o.heads !== 0) {
      throw new Error(`Prior width "${o.width}" is not divisible by heads "${o.heads}"`);
    }
    this.embedDim = o.embedDim;
    // Thesis 3.4.1: "1D convolution with a kernel size of 1 and an output channel of 1".
    this.textPool = this.addModule("textPool", new Linear(o.textWidth, 1));
    this.textPoolProj = this.addModule("textPoolProj", new Linear(o.contextLength, o.width));
    this.textEmbedProj = this.addModule("textEmbedProj", new Linear(o.embedDim, o.width));
    this.timeFc1 = this.addModule("timeFc1", new Linear(o.width, o.width));
    this.timeFc2 = this.addModule("timeFc2", new Linear(o.width, o.width));
    this.noisyProj = this.addModule("noisyProj", new Linear(o.embedDim, o.width));
    this.query = this.addParameter("query", normalInit([o.width], 0.02));
    this.position = this.addParameter("position", normalInit([PRIOR_TOKENS, o.width], 0.02));
    this.blocks = Array.from(
      { length: o.layers },
      (_, i) =>
        this.addModule(
          `blocks.${i}`,
          new TransformerBlock(o.width, o.heads, { mlpRatio: o.mlpRatio, causal: true }),
        ),
    );
    this.lnFinal = this.addModule("lnFinal", new LayerNorm(o.width));
    this.head = this.addModule("head", new Linear(o.width, o.embedDim));
    // Learned null tokens exist only when guidance training is on, so every parameter is used.
    this.nullPooled = o.textDropRate > 0
      ? this.addParameter("nullPooled", normalInit([o.width], 0.02))
      : null;
    this.nullText = o.textDropRate > 0
      ? this.addParameter("nullText", normalInit([o.width], 0.02))
      : null;
  }

  /**
   * Norm of the embeddings the diffusion runs on: 1, or sqrt(E) with `scaleEmbeddings` (unit
   * vectors have per-component variance 1/E, far below the unit variance of the noise added in
   * q(z_t | z_0), so without scaling the signal is drowned within the first few steps).
   *
   * @example
   * ```ts
   * function scale(prior: TransformerPrior): number {
   *   return prior.embeddingScale; // 1, or sqrt(E) with scaleEmbeddings
   * }
   * ```
   */
  get embeddingScale(): number {
    return this.options.scaleEmbeddings ? Math.sqrt(this.embedDim) : 1;
  }

  /**
   * Predicts x_0 [B, E] from x_t [B, E] at model timesteps t (f32 [B], original indices) given
   * the text encoding [B, T, W] and text embedding [B, E].
   *
   * @example
   * ```ts
   * import type { Tensor } from "../../core/tensor/mod.ts";
   * function x0(prior: TransformerPrior, textSequence: Tensor, textEmbedding: Tensor, xt: Tensor, t: Tensor) {
   *   return prior.forward({ textSequence, textEmbedding }, xt, t); // [B, E]
   * }
   * ```
   */
  forward(cond: PriorNetworkConditioning, xt: Tensor, t: Tensor): Tensor {
    return this.forwardTokens(cond, xt, t).prediction;
  }

  /**
   * The forward pass, also returning every position's final hidden state [B, 5, width] (after
   * the final LayerNorm).
   *
   * @example
   * ```ts
   * import type { Tensor } from "../../core/tensor/mod.ts";
   * function tokens(prior: TransformerPrior, cond: PriorNetworkConditioning, xt: Tensor, t: Tensor) {
   *   const { prediction, hidden } = prior.forwardTokens(cond, xt, t);
   *   return { prediction, hidden };
   * }
   * ```
   */
  forwardTokens(
    cond: PriorNetworkConditioning,
    xt: Tensor,
    t: Tensor,
  ): { prediction: Tensor; hidden: Tensor } {
    const o = this.options;
    const seq = cond.textSequence, emb = cond.textEmbedding;
    const B = xt.shape[0];
    if (seq.rank !== 3 || seq.shape[1] !== o.contextLength || seq.shape[2] !== o.textWidth) {
      throw new Error(
        `Text sequence has shape [${seq.shape}]; expected [B, ${o.contextLength}, ${o.textWidth}]`,
      );
    }
    for (const [name, x] of [["Text embedding", emb], ["Noisy embedding", xt]] as const) {
      if (x.rank !== 2 || x.shape[0] !== B || x.shape[1] !== o.embedDim) {
        throw new Error(`${name} has shape [${x.shape}]; expected [${B}, ${o.embedDim}]`);
      }
    }
    if (seq.shape[0] !== B || t.shape[0] !== B) {
      throw new Error(`Batch sizes differ: text [${seq.shape}], t [${t.shape}], x_t [${xt.shape}]`);
    }
    // Thesis 3.4.1: conv1d(k=1, 1 channel) over the W channels -> [B, T], activation, linear T -> d.
    const pooledScores = reshape(this.textPool.forward(seq), [B, o.contextLength]);
    let pooled = this.textPoolProj.forward(tanh(pooledScores));
    let text = this.textEmbedProj.forward(emb);
    if (cond.keep && this.nullPooled && this.nullText) {
      pooled = mixNull(pooled, this.nullPooled, cond.keep);
      text = mixNull(text, this.nullText, cond.keep);
    }
    // Sinusoidal timestep embedding (Vaswani et al. 2017 / Ho et al. 2020) through an MLP.
    const time = this.timeFc2.forward(
      this.timeFc1.forward(timestepEmbedding(t, o.width), "silu"),
    );
    const noisy = this.noisyProj.forward(xt);
    const query = expand(reshape(this.query, [1, o.width]), [B, o.width]);
    const tokens = concat([pooled, text, time, noisy, query].map((x) => unsqueeze(x, 1)), 1);
    let h = add(tokens, this.position);
    for (const block of this.blocks) h = block.forward(h);
    const hidden = this.lnFinal.forward(h);
    const last = reshape(slice(hidden, 1, PRIOR_TOKENS - 1, PRIOR_TOKENS), [B, o.width]);
    return { prediction: this.head.forward(last), hidden };
  }

  /**
   * Algorithm 4: t ~ U{0..T-1}, eps ~ N(0, I), x_t = q_sample(x_0, t, eps), loss = MSE between the
   * predicted and the true x_0. `imageEmbedding` [B, E] is L2-normalised (scaled by sqrt(E) here
   * with `scaleEmbeddings`). With `textDropRate` > 0 in training mode, each sample's text
   * conditioning is replaced by the learned null tokens with that probability.
   *
   * @example
   * ```ts
   * import type { ClipConditioning } from "../../core/components.ts";
   * import type { NoiseSchedule } from "../../core/diffusion/mod.ts";
   * import { scope, type Tensor } from "../../core/tensor/mod.ts";
   * function step(prior: TransformerPrior, cond: ClipConditioning, image: Tensor, s: NoiseSchedule) {
   *   scope(() => prior.loss(cond, image, s).backward());
   * }
   * ```
   */
  loss(cond: ClipConditioning, imageEmbedding: Tensor, schedule: NoiseSchedule): Tensor {
    const B = imageEmbedding.shape[0];
    const x0 = this.options.scaleEmbeddings
      ? affine(imageEmbedding, this.embeddingScale, 0)
      : imageEmbedding;
    const steps = randomSteps(B, schedule.numSteps);
    const xt = qSample(x0, steps, randn(x0.shape), schedule);
    const t = reshape(gatherSteps(schedule, "timesteps", steps), [B]);
    const p = this.options.textDropRate;
    const keep = p > 0 && this.training ? bernoulli([B, 1], 1 - p) : null;
    return mse(this.forward({ ...cond, keep }, xt, t), x0);
  }

  /**
   * The prior as a sampler drives it (thesis Algorithm 5): candidate chains, guidance and
   * scaling as `transformerPriorDenoiser` (./denoiser.ts) describes. `samplePrior`
   * (core/diffusion/prior_sampling.ts) runs it with any sampler.
   *
   * @example
   * ```ts
   * import type { ClipConditioning } from "../../core/components.ts";
   * import type { NoiseSchedule } from "../../core/diffusion/mod.ts";
   * import { samplePrior } from "../../core/diffusion/prior_sampling.ts";
   * function sample(prior: TransformerPrior, cond: ClipConditioning, schedule: NoiseSchedule) {
   *   return samplePrior(prior, cond, schedule, { steps: 64, candidates: 2 }); // [B, E]
   * }
   * ```
   */
  denoiser(cond: ClipConditioning, options: PriorSampleOptions = {}): PriorDenoiser {
    return transformerPriorDenoiser(this, cond, options);
  }

  /**
   * Samples [B, E] image embeddings with ancestral DDPM over every step of `schedule` (thesis
   * Algorithm 5; respace the schedule for fewer steps): `samplePrior` without a sampler plugin.
   *
   * @example
   * ```ts
   * import type { ClipConditioning } from "../../core/components.ts";
   * import type { NoiseSchedule } from "../../core/diffusion/mod.ts";
   * function sample(prior: TransformerPrior, cond: ClipConditioning, schedule: NoiseSchedule) {
   *   return prior.sample(cond, schedule.respace(64), { candidates: 2 }); // [B, E]
   * }
   * ```
   */
  sample(
    cond: ClipConditioning,
    schedule: NoiseSchedule,
    options: PriorSampleOptions = {},
  ): Tensor {
    return samplePrior(this, cond, schedule, options);
  }
}

/** keep * token + (1 - keep) * null, for keep [B, 1] and null [width]. */
function mixNull(token: Tensor, nullToken: Tensor, keep: Tensor): Tensor {
  return add(mul(token, keep), mul(nullToken, affine(keep, -1, 1)));
}

/** The "transformer" prior plugin (thesis section 3.4). */
export const transformerPrior: PluginDefinition<
  "prior",
  typeof transformerPriorOptions,
  TransformerPrior
> = definePlugin({
  kind: "prior",
  name: "transformer",
  description: "Causal transformer diffusion prior predicting x0 (thesis 3.4, Algorithms 4-5)",
  options: transformerPriorOptions,
  create: (o) => new TransformerPrior(o),
});
