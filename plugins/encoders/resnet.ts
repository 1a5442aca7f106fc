/**
 * The CLIP image encoder (thesis 3.2.2, Figure 3.4): a small ResNet (He et al. 2016) with a
 * max-pooling stem, residual blocks that downsample by average pooling (as CLIP's modified
 * ResNet, Radford et al. 2021, section 2.4), an adaptive average pool to 2x2 and a linear
 * projection into the CLIP embedding space.
 *
 * @module
 */
import { z } from "../../core/deps.ts";
import { definePlugin, type PluginDefinition } from "../../core/registry.ts";
import type { ImageEncoder } from "../../core/components.ts";
import { Module } from "../../core/nn/module.ts";
import { BatchNorm2d, Conv2d, GroupNorm, Linear } from "../../core/nn/mod.ts";
import {
  adaptiveAvgPool2d,
  add,
  avgPool2d,
  maxPool2d,
  relu,
  reshape,
  type Tensor,
} from "../../core/tensor/mod.ts";

/** Which normalisation the convolutions use. */
export type ResNetNorm = "batch" | "group";

/** Options of `ResNetEncoder` (defaults: thesis code). */
export interface ResNetOptions {
  /** Output channels of the residual blocks ([32, 64, 128, 192]). */
  widths: number[];
  /** Stem width (16). */
  stem: number;
  /** Stride of each block, 1 or 2 ([1, 2, 2, 2]). */
  strides: number[];
  /** CLIP embedding size (256). */
  embedDim: number;
  /** Side of the square input images (32). */
  imageSize: number;
  /** BatchNorm (thesis code) or GroupNorm. */
  norm: ResNetNorm;
}

/** A normalisation layer as the blocks use it (BatchNorm2d or GroupNorm). */
export interface Norm extends Module {
  /** Normalises x [B, C, H, W]. */
  forward(x: Tensor): Tensor;
}

/** GroupNorm groups: 8 when they divide the channels (as in the thesis' decoder), else 1. */
function makeNorm(kind: ResNetNorm, channels: number): Norm {
  if (kind === "batch") return new BatchNorm2d(channels) as unknown as Norm;
  return new GroupNorm(channels % 8 === 0 ? 8 : 1, channels) as unknown as Norm;
}

/**
 * conv3x3-norm-relu-[avgpool 2x2]-conv3x3-norm, plus a shortcut ([avgpool 2x2] + conv1x1 + norm
 * when the shape changes, as CLIP's modified ResNet), added, then ReLU (He et al. 2016).
 */
export class ResidualBlock extends Module {
  /** 1, or 2 to halve the resolution. */
  readonly stride: number;
  /** First conv3x3. */
  readonly conv1: Conv2d;
  /** Norm after `conv1`. */
  readonly norm1: Norm;
  /** Second conv3x3. */
  readonly conv2: Conv2d;
  /** Norm after `conv2`. */
  readonly norm2: Norm;
  /** 1x1 conv of the shortcut when the shape changes, else null (identity). */
  readonly shortcut: Conv2d | null;
  /** Norm of the shortcut conv. */
  readonly shortcutNorm: Norm | null;

  /** A block from `inC` to `outC` channels. */
  constructor(inC: number, outC: number, stride: number, norm: ResNetNorm) {
    super();
    this.stride = stride;
    // No conv biases: every conv is followed by a normalisation that removes them.
    this.conv1 = this.addModule("conv1", new Conv2d(inC, outC, 3, { padding: 1, bias: false }));
    this.norm1 = this.addModule("norm1", makeNorm(norm, outC));
    this.conv2 = this.addModule("conv2", new Conv2d(outC, outC, 3, { padding: 1, bias: false }));
    this.norm2 = this.addModule("norm2", makeNorm(norm, outC));
    const changes = stride !== 1 || inC !== outC;
    this.shortcut = changes
      ? this.addModule("shortcut", new Conv2d(inC, outC, 1, { bias: false }))
      : null;
    this.shortcutNorm = changes ? this.addModule("shortcutNorm", makeNorm(norm, outC)) : null;
  }

  /** x [B, inC, H, W] -> [B, outC, H / stride, W / stride]. */
  forward(x: Tensor): Tensor {
    let h = relu(this.norm1.forward(this.conv1.forward(x)));
    // Anti-aliased downsampling by average pooling instead of a strided conv (CLIP's ResNet).
    if (this.stride === 2) h = avgPool2d(h, 2);
    h = this.norm2.forward(this.conv2.forward(h));
    let s = x;
    if (this.shortcut && this.shortcutNorm) {
      if (this.stride === 2) s = avgPool2d(s, 2);
      s = this.shortcutNorm.forward(this.shortcut.forward(s));
    }
    return relu(add(h, s));
  }
}

/**
 * The CLIP image tower: stem conv3x3 + norm + ReLU + 2x2 max-pool, residual blocks, adaptive
 * average pool to 2x2, flatten, linear to `embedDim` (thesis 3.2.2).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../../core/tensor/mod.ts";
 * function embed(images: Tensor): Tensor {
 *   const enc = new ResNetEncoder({
 *     widths: [32, 64, 128, 192],
 *     stem: 16,
 *     strides: [1, 2, 2, 2],
 *     embedDim: 256,
 *     imageSize: 32,
 *     norm: "batch",
 *   });
 *   return enc.encode(images); // [B, 3, 32, 32] -> [B, 256]
 * }
 * ```
 */
export class ResNetEncoder extends Module implements ImageEncoder {
  /** CLIP embedding size E. */
  readonly embedDim: number;
  /** Input side in pixels. */
  readonly imageSize: number;
  /** Stem conv3x3. */
  readonly stemConv: Conv2d;
  /** Stem norm. */
  readonly stemNorm: Norm;
  /** The residual blocks. */
  readonly blocks: ResidualBlock[];
  /** Flattened 2x2 features -> CLIP embedding. */
  readonly projection: Linear;

  /** Builds the tower (parameters drawn from the engine RNG: seed with `manualSeed`). */
  constructor(o: ResNetOptions) {
    super();
    if (o.widths.length !== o.strides.length) {
      throw new Error(`ResNet widths [${o.widths}] and strides [${o.strides}] differ in length.`);
    }
    const bad = o.strides.find((s) => s !== 1 && s !== 2);
    if (bad !== undefined) throw new Error(`ResNet stride "${bad}" is not 1 or 2.`);
    const finalSide = o.imageSize / 2 / o.strides.reduce((p, s) => p * s, 1);
    if (!Number.isInteger(finalSide) || finalSide < 2) {
      throw new Error(
        `Image size ${o.imageSize} is too small or not divisible for strides [${o.strides}]: ` +
          `the last feature map must be at least 2x2.`,
      );
    }
    this.embedDim = o.embedDim;
    this.imageSize = o.imageSize;
    this.stemConv = this.addModule(
      "stemConv",
      new Conv2d(3, o.stem, 3, { padding: 1, bias: false }),
    );
    this.stemNorm = this.addModule("stemNorm", makeNorm(o.norm, o.stem));
    this.blocks = [];
    let c = o.stem;
    o.widths.forEach((w, i) => {
      this.blocks.push(
        this.addModule(`blocks.${i}`, new ResidualBlock(c, w, o.strides[i], o.norm)),
      );
      c = w;
    });
    this.projection = this.addModule("projection", new Linear(c * 4, o.embedDim));
  }

  /** images [B, 3, H, W] in [-1, 1] -> [B, E] (not normalised). */
  encode(images: Tensor): Tensor {
    const [B, C, H, W] = images.shape;
    if (images.rank !== 4 || C !== 3 || H !== this.imageSize || W !== this.imageSize) {
      throw new Error(
        `Images of shape [${images.shape}] do not match the image encoder's [B, 3, ${this.imageSize}, ${this.imageSize}].`,
      );
    }
    let h = maxPool2d(relu(this.stemNorm.forward(this.stemConv.forward(images))), 2);
    for (const block of this.blocks) h = block.forward(h);
    h = adaptiveAvgPool2d(h, [2, 2]);
    return this.projection.forward(reshape(h, [B, h.shape[1] * 4]));
  }
}

/** Options schema of the "resnet" image encoder plugin. */
export const resnetOptions: z.ZodObject<
  {
    widths: z.ZodDefault<z.ZodArray<z.ZodNumber>>;
    stem: z.ZodDefault<z.ZodNumber>;
    strides: z.ZodDefault<z.ZodArray<z.ZodUnion<readonly [z.ZodLiteral<1>, z.ZodLiteral<2>]>>>;
    embedDim: z.ZodDefault<z.ZodNumber>;
    imageSize: z.ZodDefault<z.ZodNumber>;
    norm: z.ZodDefault<z.ZodEnum<{ batch: "batch"; group: "group" }>>;
  },
  z.core.$strict
> = z.object({
  widths: z.array(z.number().int().positive()).min(1).default([32, 64, 128, 192]).describe(
    "Residual block widths",
  ),
  stem: z.number().int().positive().default(16).describe("Stem conv width"),
  strides: z.array(z.union([z.literal(1), z.literal(2)])).min(1).default([1, 2, 2, 2]).describe(
    "Residual block strides",
  ),
  embedDim: z.number().int().positive().default(256).describe("CLIP embedding size"),
  imageSize: z.number().int().positive().default(32).describe("Input image side"),
  norm: z.enum(["batch", "group"]).default("batch").describe(
    "BatchNorm (thesis code) or GroupNorm",
  ),
}).strict();

/** The "resnet" image encoder plugin (thesis 3.2.2). */
export const resnetPlugin: PluginDefinition<"imageEncoder", typeof resnetOptions, ResNetEncoder> =
  definePlugin({
    kind: "imageEncoder",
    name: "resnet",
    description: "CLIP image encoder: small ResNet with average-pool downsampling (thesis 3.2.2)",
    options: resnetOptions,
    create: (o) => new ResNetEncoder({ ...o, strides: [...o.strides] }),
  });
