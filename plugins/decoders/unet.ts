/**
 * The decoder: a GLIDE-style U-Net predicting the noise in x_t given the caption and the CLIP
 * image embedding (thesis section 3.3, Figure 3.5), and the "unet" decoder plugin. Its training
 * loss (Algorithm 2) is `decoderLoss` in core/diffusion/loss.ts: it works for any decoder.
 *
 * @module
 */
import { z } from "../../core/deps.ts";
import { Conv2d, Linear, timestepEmbedding } from "../../core/nn/mod.ts";
import { Module } from "../../core/nn/module.ts";
import { definePlugin, type PluginDefinition } from "../../core/registry.ts";
import { add, type Tensor } from "../../core/tensor/mod.ts";
import type { Decoder, DecoderConditioning, EncodedConditioning } from "../../core/components.ts";
import { noEstimate } from "../../core/diffusion/mod.ts";
import { withoutDrawing, zeroParameters } from "./blocks.ts";
import { UNetBody } from "./unet_body.ts";
import { lossOptionFields, multiscaleLossProblems } from "./loss_options.ts";
import { type ConditionerOutput, CONDITIONING_INPUTS, DecoderConditioner } from "./conditioning.ts";

/** The U-Net's encoded conditioning: the conditioner's output, computed once per sample. */
interface EncodedUnetConditioning extends EncodedConditioning, ConditionerOutput {}

/** Options of the "unet" decoder plugin (defaults: the thesis, Appendix A). */
export const unetOptions = z.object({
  imageSize: z.number().int().positive().default(32).describe("Image side in pixels"),
  channels: z.number().int().positive().default(3).describe("Image channels"),
  baseChannels: z.number().int().positive().default(64).describe("Channels at full resolution"),
  channelMults: z.array(z.number().int().positive()).min(1).default([1, 2, 4])
    .describe("Channel multiplier per resolution level (64, 128, 256 in the thesis)"),
  resBlocksPerLevel: z.number().int().positive().default(1)
    .describe("Residual blocks per level (1: 12.1M parameters, near the thesis's 10M; 2: 17.0M)"),
  timeEmbedDim: z.number().int().positive().default(32)
    .describe("Sinusoidal timestep embedding size; the MLP widens it 4x"),
  heads: z.number().int().positive().default(8).describe("Attention heads in the U-Net"),
  attentionLevels: z.array(z.number().int().nonnegative()).optional()
    .describe("Levels (0 = full resolution) with attention blocks; default every level"),
  crossAttentionLevels: z.array(z.number().int().nonnegative()).default([])
    .describe(
      "Levels with cross-attention blocks instead (positions read the caption and CLIP tokens, " +
        "not each other); none by default",
    ),
  groups: z.number().int().positive().default(32)
    .describe("GroupNorm groups (clamped to a divisor of the channel count)"),
  upsample: z.enum(["transposed", "nearest"]).default("transposed")
    .describe("Transposed 4x4 conv (thesis) or nearest + conv3x3"),
  dropout: z.number().min(0).lt(1).default(0).describe("Dropout in residual blocks"),
  textWidth: z.number().int().positive().default(64).describe("Text transformer width"),
  textLayers: z.number().int().nonnegative().default(6).describe("Text transformer layers"),
  textHeads: z.number().int().positive().default(8).describe("Text transformer heads"),
  contextLength: z.number().int().positive().default(33).describe("Tokens per caption"),
  vocabSize: z.number().int().positive().default(512)
    .describe("Token vocabulary (context.vocabSize from the tokenizer wins)"),
  clipEmbedDim: z.number().int().positive().default(256).describe("CLIP embedding size"),
  clipTokens: z.number().int().positive().default(4)
    .describe("Tokens the CLIP embedding is projected into"),
  conditioning: z.enum(CONDITIONING_INPUTS).default("clip+text")
    .describe(
      'Inputs: "clip+text" (thesis), "clip" (image embedding only) or "text" (caption only, GLIDE)',
    ),
  nullRate: z.number().min(0).max(1).default(0.2)
    .describe("Probability of the null condition at training (read by the trainer)"),
  textDropRate: z.number().min(0).max(1).default(0)
    .describe("Probability of dropping the caption alone at training (DALL-E 2: 0.5)"),
  clipDropRate: z.number().min(0).max(1).default(0)
    .describe("Probability of dropping the CLIP embedding alone at training (DALL-E 2: 0.1)"),
  clipToTime: z.boolean().default(false)
    .describe("Also add the CLIP embedding's projection to the time embedding (DALL-E 2)"),
  ...lossOptionFields,
  prediction: z.enum(["eps", "v"]).default("eps")
    .describe('Output: the noise "eps" (thesis) or the velocity "v" (Salimans & Ho 2022)'),
  selfCondition: z.number().min(0).max(1).default(0)
    .describe(
      "Self-conditioning (Chen et al. 2022): the fraction of training steps that feed the " +
        "network its own x_0 estimate, which sampling then feeds at every step (theirs: 0.5); " +
        "0 = off",
    ),
}).strict().superRefine((o, ctx) => {
  // Checked when the config loads: the constructor (which checks too) runs only when the decoder
  // stage starts, after CLIP and the prior have trained.
  const problem = (path: (string | number)[], message: string): void =>
    ctx.addIssue({ code: "custom", path, message });
  const levels = o.channelMults.length;
  const factor = 2 ** (levels - 1);
  if (o.imageSize % factor !== 0) {
    problem(
      ["imageSize"],
      `${o.imageSize} is not divisible by ${factor}: channelMults has ${levels} levels and ` +
        `each level below the first halves the image`,
    );
  }
  o.attentionLevels?.forEach((level, i) => {
    if (level >= levels) {
      problem(
        ["attentionLevels", i],
        `level ${level} does not exist: channelMults has ${levels} levels (0 to ${levels - 1})`,
      );
    }
  });
  const attentionLevels = new Set(o.attentionLevels ?? o.channelMults.map((_, i) => i));
  o.crossAttentionLevels.forEach((level, i) => {
    if (level >= levels) {
      problem(
        ["crossAttentionLevels", i],
        `level ${level} does not exist: channelMults has ${levels} levels (0 to ${levels - 1})`,
      );
    } else if (attentionLevels.has(level)) {
      problem(
        ["crossAttentionLevels", i],
        `level ${level} already has attention blocks (attentionLevels); a level takes one kind`,
      );
    }
  });
  // Attention blocks at the chosen levels, cross-attention blocks at theirs, and attention in the
  // middle (the last level's channels).
  const attn = new Set([...attentionLevels, ...o.crossAttentionLevels]).add(levels - 1);
  for (const level of [...attn].filter((l) => l < levels).sort((a, b) => a - b)) {
    const ch = o.baseChannels * o.channelMults[level];
    if (ch % o.heads !== 0) {
      problem(["heads"], `${o.heads} heads do not divide the ${ch} channels of level ${level}`);
      break;
    }
  }
  if (o.textWidth % o.textHeads !== 0) {
    problem(["textHeads"], `${o.textHeads} heads do not divide textWidth ${o.textWidth}`);
  }
  if (o.timeEmbedDim % 2 !== 0) problem(["timeEmbedDim"], `${o.timeEmbedDim} must be even`);
  for (const [i, message] of multiscaleLossProblems(o.imageSize, o.multiscaleLoss)) {
    problem(["multiscaleLoss", i], message);
  }
  // Dropping one input alone, or adding CLIP to the time embedding beside the caption, needs both.
  if (o.conditioning !== "clip+text") {
    for (const key of ["textDropRate", "clipDropRate"] as const) {
      if (o[key] > 0) {
        problem([key], `needs conditioning "clip+text" (it is "${o.conditioning}"); use nullRate`);
      }
    }
    if (o.clipToTime) {
      problem(["clipToTime"], `needs conditioning "clip+text" (it is "${o.conditioning}")`);
    }
  }
});

/** Validated options of the U-Net. */
export type UNetOptions = z.output<typeof unetOptions>;

/**
 * The U-Net of thesis Figure 3.5: per level `resBlocksPerLevel` residual blocks each followed by
 * an attention block, a stride-2 conv between levels; a middle res/attn/res; the mirror path with
 * one more block per level, each fed the matching encoder activation by concatenation, and an
 * upsampling layer between levels; GroupNorm+SiLU and a zero-initialised conv3x3 out.
 */
export class UNetDecoder extends Module implements Decoder {
  /** Image side in pixels. */
  readonly imageSize: number;
  /** Feature channels (image channels for the U-Net). */
  readonly channels: number;
  /** What `predictNoise` returns: the noise or the velocity (the `prediction` option). */
  readonly prediction: "eps" | "v";
  /** The fraction of training steps self-conditioned (0: it reads no x_0 estimate). */
  readonly selfCondition: number;
  /** The options it was built with. */
  readonly options: UNetOptions;
  readonly #embDim: number;
  readonly #timeMlp1: Linear;
  readonly #timeMlp2: Linear;
  readonly #conditioner: DecoderConditioner;
  readonly #body: UNetBody;
  /** The self-conditioning estimate's input conv (zero-initialised), when self-conditioned. */
  readonly #estimateIn?: Conv2d;

  /**
   * Builds the U-Net with freshly initialised parameters (zero-initialised output layers).
   *
   * @example
   * ```ts
   * const options = unetOptions.parse({ imageSize: 16, baseChannels: 16 }); // the defaults filled in
   * function decoder(): UNetDecoder {
   *   return new UNetDecoder(options); // parameters are tensors: needs a started backend
   * }
   * ```
   */
  constructor(options: UNetOptions) {
    super();
    const o = { ...options };
    this.options = o;
    this.imageSize = o.imageSize;
    this.channels = o.channels;
    this.prediction = o.prediction;
    this.selfCondition = o.selfCondition;
    const levels = o.channelMults.length;
    if (o.imageSize % 2 ** (levels - 1) !== 0) {
      throw new RangeError(
        `Image size "${o.imageSize}" is not divisible by 2^${levels - 1} for ${levels} levels`,
      );
    }
    if (o.timeEmbedDim % 2 !== 0) {
      throw new RangeError(`Time embedding size "${o.timeEmbedDim}" must be even`);
    }
    const embDim = this.#embDim = 4 * o.timeEmbedDim;

    // Time: sinusoidal embedding (thesis eqs. 3.2-3.3) then an MLP (Ho et al. 2020's code).
    this.#timeMlp1 = this.addModule("timeMlp1", new Linear(o.timeEmbedDim, embDim));
    this.#timeMlp2 = this.addModule("timeMlp2", new Linear(embDim, embDim));
    this.#conditioner = this.addModule(
      "conditioner",
      new DecoderConditioner({
        vocabSize: o.vocabSize,
        contextLength: o.contextLength,
        width: o.textWidth,
        layers: o.textLayers,
        heads: o.textHeads,
        clipEmbedDim: o.clipEmbedDim,
        clipTokens: o.clipTokens,
        embDim,
        inputs: o.conditioning,
        clipToTime: o.clipToTime,
      }),
    );
    // Registered after the conditioner, in the order of the first version.
    this.#body = new UNetBody((name, m) => this.addModule(name, m), {
      ...o,
      inChannels: o.channels,
      outChannels: o.channels,
      attentionLevels: o.attentionLevels ?? o.channelMults.map((_, i) => i),
      midAttention: true,
      embDim,
      contextDim: o.textWidth,
    });
    // Its own conv rather than three more input channels of inConv (the same function): zero at
    // first, so a decoder fine-tuned into self-conditioning (`train --init-from` a decoder
    // without it) starts as exactly that decoder. Its random initialisation, overwritten, is
    // undone in the generator too, so training draws the same timesteps and noise as the same
    // decoder without it (a controlled comparison).
    if (o.selfCondition > 0) {
      this.#estimateIn = this.addModule(
        "selfCondIn",
        withoutDrawing(() =>
          zeroParameters(new Conv2d(o.channels, o.baseChannels, 3, { padding: 1 }))
        ),
      );
    }
  }

  /**
   * Runs the conditioner (text transformer, CLIP tokens, null condition) once, for reuse by
   * every sampling step.
   *
   * @example
   * ```ts
   * import type { DecoderConditioning } from "../../core/components.ts";
   * import type { Tensor } from "../../core/tensor/mod.ts";
   * function denoiseTwice(unet: UNetDecoder, x: Tensor, t: Tensor, cond: DecoderConditioning) {
   *   const encoded = unet.encodeConditioning(cond); // the text transformer runs once
   *   return [unet.predictNoise(x, t, encoded), unet.predictNoise(x, t, encoded)];
   * }
   * ```
   */
  encodeConditioning(cond: DecoderConditioning): EncodedConditioning {
    const out: EncodedUnetConditioning = {
      encoded: true,
      batch: cond.keep.size,
      ...this.#conditioner.forward(cond),
    };
    return out;
  }

  #checkEncoded(cond: EncodedUnetConditioning, batch: number): ConditionerOutput {
    if (cond.batch !== batch || !cond.tokens || !cond.pooled) {
      throw new RangeError(
        `Encoded conditioning has ${cond.batch} rows (or came from another decoder); the batch has ${batch}`,
      );
    }
    return cond;
  }

  /**
   * Predicts the noise in x_t [B, C, H, W] at original timestep indices t (f32 [B]), or the
   * velocity v when built with `prediction: "v"`.
   *
   * @example
   * ```ts
   * import type { TokenBatch } from "../../core/components.ts";
   * import { ones, type Tensor } from "../../core/tensor/mod.ts";
   * function eps(unet: UNetDecoder, xt: Tensor, t: Tensor, tokens: TokenBatch, clip: Tensor) {
   *   const keep = ones([xt.shape[0]]); // 1: every row keeps its condition
   *   return unet.predictNoise(xt, t, { tokens, imageEmbedding: clip, keep }); // [B, C, H, W]
   * }
   * ```
   */
  predictNoise(
    xt: Tensor,
    t: Tensor,
    cond: DecoderConditioning | EncodedConditioning,
    estimate?: Tensor,
  ): Tensor {
    const [B, C, H, W] = xt.shape;
    if (xt.rank !== 4 || C !== this.channels || H !== W || H % 2 ** (this.#levels - 1) !== 0) {
      throw new RangeError(
        `Decoder input has shape [${xt.shape}]; expected [B, ${this.channels}, S, S] with S ` +
          `divisible by ${2 ** (this.#levels - 1)}`,
      );
    }
    if (t.size !== B) throw new RangeError(`Timesteps have shape [${t.shape}]; expected [${B}]`);
    const { tokens, pooled } = "encoded" in cond
      ? this.#checkEncoded(cond as EncodedUnetConditioning, B)
      : this.#conditioner.forward(cond);
    let emb = this.#timeMlp1.forward(timestepEmbedding(t, this.options.timeEmbedDim), "silu");
    emb = this.#timeMlp2.forward(emb);
    // Thesis 3.3.1 / GLIDE: the end-token feature is added to the time embedding; the CLIP
    // embedding is not (the thesis ablation found that worse).
    emb = add(emb, pooled);

    let inputAdd: Tensor | undefined;
    if (this.#estimateIn) {
      if (estimate && estimate.shape.join() !== xt.shape.join()) {
        throw new RangeError(
          `Self-conditioning estimate has shape [${estimate.shape}]; expected x_t's [${xt.shape}]`,
        );
      }
      // No estimate yet (the first step, or a training step without one) reads as zeros.
      inputAdd = this.#estimateIn.forward(estimate ?? noEstimate(xt));
    }
    return this.#body.forward(xt, emb, tokens, inputAdd);
  }

  get #levels(): number {
    return this.options.channelMults.length;
  }

  /** Width of the time embedding (4 x timeEmbedDim). */
  get embDim(): number {
    return this.#embDim;
  }
}

/** The "unet" decoder plugin. `context.vocabSize` (from the tokenizer) overrides `vocabSize`. */
export const unetDecoder: PluginDefinition<"decoder", typeof unetOptions, UNetDecoder> =
  definePlugin({
    kind: "decoder",
    name: "unet",
    description: "GLIDE-style U-Net decoder with text transformer and CLIP tokens (thesis 3.3)",
    options: unetOptions,
    create: (o, context) => {
      const vocab = context.vocabSize;
      if (vocab !== undefined && (typeof vocab !== "number" || !Number.isInteger(vocab))) {
        throw new TypeError(`Context vocabSize "${vocab}" is not an integer`);
      }
      return new UNetDecoder({ ...o, vocabSize: (vocab as number | undefined) ?? o.vocabSize });
    },
  });
