/**
 * The diffusion upsampler of DALL-E 2's cascade (Ramesh et al. 2022, section 2.1 and Appendix C)
 * and the "unet" upsampler plugin: the decoder's U-Net body predicting the noise in x_t at
 * `imageSize`, given the low-resolution image upsampled to `imageSize` (nearest neighbour) and
 * concatenated to x_t as extra input channels (SR3, Saharia et al. 2021; Cascaded Diffusion
 * Models, Ho et al. 2021). No text or CLIP conditioning: DALL-E 2's upsamplers have none. The
 * conditioning augmentation's level is embedded like the timestep and added to its embedding
 * (Ho et al. 2021, section 3.2); the augmentation itself is core's (`augmentLowRes`).
 *
 * @module
 */
import { z } from "../../core/deps.ts";
import { Linear, timestepEmbedding } from "../../core/nn/mod.ts";
import { Module } from "../../core/nn/module.ts";
import { definePlugin, type PluginDefinition } from "../../core/registry.ts";
import { add, affine, concat, type Tensor } from "../../core/tensor/mod.ts";
import { AUGMENT_KINDS, trainedLevelMax, upsampleToSize } from "../../core/diffusion/mod.ts";
import type { AugmentKind, Upsampler, UpsamplerConditioning } from "../../core/components.ts";
import { UNetBody } from "./unet_body.ts";
import { lossOptionFields, multiscaleLossProblems } from "./loss_options.ts";

/** Levels in [0, 1] are embedded as timesteps 0..1000, like a 1,000-step schedule's. */
const LEVEL_SCALE = 1000;

/** Options of the "unet" upsampler plugin (defaults: a small 16 -> 32 upsampler). */
export const upsamplerOptions = z.object({
  imageSize: z.number().int().positive().default(32).describe("Output side in pixels"),
  lowResSize: z.number().int().positive().default(16)
    .describe("Side of the low-resolution input (the decoder's image size)"),
  channels: z.number().int().positive().default(3).describe("Image channels"),
  baseChannels: z.number().int().positive().default(32).describe("Channels at full resolution"),
  channelMults: z.array(z.number().int().positive()).min(1).default([1, 2, 2])
    .describe("Channel multiplier per resolution level"),
  resBlocksPerLevel: z.number().int().positive().default(1).describe("Residual blocks per level"),
  timeEmbedDim: z.number().int().positive().default(32)
    .describe("Sinusoidal timestep (and augmentation level) embedding size; the MLPs widen it 4x"),
  attentionLevels: z.array(z.number().int().nonnegative()).default([])
    .describe("Levels with self-attention (default none: DALL-E 2's upsamplers use convolutions)"),
  heads: z.number().int().positive().default(4).describe("Attention heads (with attention)"),
  groups: z.number().int().positive().default(8)
    .describe("GroupNorm groups (clamped to a divisor of the channel count)"),
  upsample: z.enum(["transposed", "nearest"]).default("nearest")
    .describe("Upsampling in the U-Net's up path: transposed 4x4 conv or nearest + conv3x3"),
  dropout: z.number().min(0).lt(1).default(0).describe("Dropout in residual blocks"),
  augment: z.enum(AUGMENT_KINDS).default("noise")
    .describe(
      'Conditioning augmentation: "noise" (Gaussian, Ho et al. 2021), "blur" (Gaussian blur, ' +
        'DALL-E 2\'s first upsampler) or "none"',
    ),
  augmentMax: z.number().min(0).max(1).default(0.5)
    .describe("Training levels are uniform in [0, augmentMax] (noise std; blur sigma / 2 px)"),
  sampleAugment: z.number().min(0).max(1).default(0.1)
    .describe("The fixed augmentation level applied when sampling"),
  ...lossOptionFields,
  prediction: z.enum(["eps", "v"]).default("eps")
    .describe('Output: the noise "eps" or the velocity "v" (Salimans & Ho 2022)'),
}).strict().superRefine((o, ctx) => {
  const problem = (path: (string | number)[], message: string): void =>
    ctx.addIssue({ code: "custom", path, message });
  if (o.imageSize <= o.lowResSize || o.imageSize % o.lowResSize !== 0) {
    problem(
      ["lowResSize"],
      `${o.lowResSize} must divide imageSize ${o.imageSize} and be smaller (an upsampler ` +
        `enlarges by an integer factor)`,
    );
  }
  const levels = o.channelMults.length;
  if (o.imageSize % 2 ** (levels - 1) !== 0) {
    problem(
      ["imageSize"],
      `${o.imageSize} is not divisible by ${2 ** (levels - 1)}: channelMults has ${levels} ` +
        `levels and each level below the first halves the image`,
    );
  }
  o.attentionLevels.forEach((level, i) => {
    if (level >= levels) {
      problem(["attentionLevels", i], `level ${level} does not exist (0 to ${levels - 1})`);
    } else if ((o.baseChannels * o.channelMults[level]) % o.heads !== 0) {
      problem(["heads"], `${o.heads} heads do not divide the channels of level ${level}`);
    }
  });
  if (o.timeEmbedDim % 2 !== 0) problem(["timeEmbedDim"], `${o.timeEmbedDim} must be even`);
  for (const [i, message] of multiscaleLossProblems(o.imageSize, o.multiscaleLoss)) {
    problem(["multiscaleLoss", i], message);
  }
  // Sampling must condition at a level the upsampler trained on: 0 without augmentation, else
  // one in [0, augmentMax].
  if (o.sampleAugment > trainedLevelMax(o.augmentMax, o.augment)) {
    problem(
      ["sampleAugment"],
      o.augment === "none"
        ? `${o.sampleAugment} but augment is "none" (trained at level 0 only); set it to 0`
        : `${o.sampleAugment} is above augmentMax ${o.augmentMax}, the highest level trained`,
    );
  }
});

/** Validated options of the upsampler. */
export type UpsamplerOptions = z.output<typeof upsamplerOptions>;

/**
 * The U-Net upsampler: input [x_t, upsample(low-res)] (2 x channels), output the noise.
 * Attention (when `attentionLevels` is not empty, also in the middle) is self-attention only.
 */
export class UNetUpsampler extends Module implements Upsampler {
  readonly imageSize: number;
  readonly lowResSize: number;
  readonly channels: number;
  readonly augment: AugmentKind;
  readonly augmentMax: number;
  readonly sampleAugment: number;
  /** What `predictNoise` returns: the noise or the velocity (the `prediction` option). */
  readonly prediction: "eps" | "v";
  /** The options it was built with. */
  readonly options: UpsamplerOptions;
  readonly #timeMlp1: Linear;
  readonly #timeMlp2: Linear;
  readonly #levelMlp1: Linear;
  readonly #levelMlp2: Linear;
  readonly #body: UNetBody;

  /**
   * Builds the upsampler with freshly initialised parameters.
   *
   * @example
   * ```ts
   * function small(): UNetUpsampler {
   *   return new UNetUpsampler(upsamplerOptions.parse({ imageSize: 16, lowResSize: 8 }));
   * }
   * ```
   */
  constructor(options: UpsamplerOptions) {
    super();
    const o = upsamplerOptions.parse(options);
    this.options = o;
    this.imageSize = o.imageSize;
    this.lowResSize = o.lowResSize;
    this.channels = o.channels;
    this.augment = o.augment;
    this.augmentMax = o.augment === "none" ? 0 : o.augmentMax;
    this.sampleAugment = o.augment === "none" ? 0 : o.sampleAugment;
    this.prediction = o.prediction;
    const embDim = 4 * o.timeEmbedDim;
    this.#timeMlp1 = this.addModule("timeMlp1", new Linear(o.timeEmbedDim, embDim));
    this.#timeMlp2 = this.addModule("timeMlp2", new Linear(embDim, embDim));
    this.#levelMlp1 = this.addModule("levelMlp1", new Linear(o.timeEmbedDim, embDim));
    this.#levelMlp2 = this.addModule("levelMlp2", new Linear(embDim, embDim));
    this.#body = new UNetBody((name, m) => this.addModule(name, m), {
      ...o,
      inChannels: 2 * o.channels,
      outChannels: o.channels,
      midAttention: o.attentionLevels.length > 0,
      embDim,
      contextDim: 0,
    });
  }

  /**
   * Predicts the noise in x_t [B, C, imageSize, imageSize] at original timestep indices t
   * (f32 [B]), given the (augmented) low-resolution image and its augmentation level.
   *
   * @example
   * ```ts
   * import { full, type Tensor } from "../../core/tensor/mod.ts";
   * function eps(up: UNetUpsampler, xt: Tensor, lowRes: Tensor): Tensor {
   *   const B = xt.shape[0];
   *   return up.predictNoise(xt, full([B], 10), { lowRes, level: full([B], 0.1) });
   * }
   * ```
   */
  predictNoise(xt: Tensor, t: Tensor, cond: UpsamplerConditioning): Tensor {
    const [B, C, H, W] = xt.shape;
    const S = this.imageSize;
    if (xt.rank !== 4 || C !== this.channels || H !== S || W !== S) {
      throw new RangeError(
        `Upsampler input has shape [${xt.shape}]; expected [B, ${C}, ${S}, ${S}]`,
      );
    }
    const { lowRes, level } = cond;
    const s = this.lowResSize;
    if (lowRes.rank !== 4 || lowRes.shape.join() !== [B, C, s, s].join()) {
      throw new RangeError(
        `Low-resolution input has shape [${lowRes.shape}]; expected [${B}, ${C}, ${s}, ${s}]`,
      );
    }
    if (t.size !== B || level.size !== B) {
      throw new RangeError(
        `Timesteps [${t.shape}] and levels [${level.shape}] must have ${B} entries`,
      );
    }
    const d = this.options.timeEmbedDim;
    const time = this.#timeMlp2.forward(
      this.#timeMlp1.forward(timestepEmbedding(t, d), "silu"),
    );
    const lvl = this.#levelMlp2.forward(
      this.#levelMlp1.forward(timestepEmbedding(affine(level, LEVEL_SCALE, 0), d), "silu"),
    );
    const x = concat([xt, upsampleToSize(lowRes, S)], 1);
    return this.#body.forward(x, add(time, lvl));
  }
}

/** The "unet" upsampler plugin. */
export const unetUpsampler: PluginDefinition<"upsampler", typeof upsamplerOptions, UNetUpsampler> =
  definePlugin({
    kind: "upsampler",
    name: "unet",
    description:
      "U-Net diffusion upsampler conditioned on the low-res image (DALL-E 2 cascade, SR3)",
    options: upsamplerOptions,
    create: (o) => new UNetUpsampler(o),
  });
