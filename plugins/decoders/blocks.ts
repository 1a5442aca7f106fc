/**
 * Building blocks of the decoder U-Net (thesis section 3.3.1, Figures 3.7 and 3.8; the ADM /
 * GLIDE U-Net of Dhariwal & Nichol 2021 and Nichol et al. 2022): residual blocks with a time
 * embedding, attention blocks that also attend to conditioning tokens, down- and upsampling.
 *
 * @module
 */
import { Conv2d, ConvTranspose2d, GroupNorm, Linear } from "../../core/nn/mod.ts";
import { Module } from "../../core/nn/module.ts";
import {
  add,
  concat,
  dropout,
  getRngState,
  mergeHeads,
  permute,
  reshape,
  scaledDotProductAttention,
  setRngState,
  silu,
  slice,
  splitHeads,
  type Tensor,
  upsampleNearest2d,
} from "../../core/tensor/mod.ts";

/**
 * The largest divisor of `channels` that is at most `groups`, so that tiny configurations can ask
 * for the thesis' 32 groups and still get a valid GroupNorm.
 *
 * @example
 * ```ts
 * clampGroups(32, 8); // 8
 * clampGroups(32, 48); // 24
 * ```
 */
export function clampGroups(groups: number, channels: number): number {
  for (let g = Math.min(groups, channels); g > 1; g--) if (channels % g === 0) return g;
  return 1;
}

/**
 * Overwrites every parameter of `m` with zeros (the "zero_module" initialisation of ADM, used for
 * the last conv of each residual block, the attention output projection and the output conv, so
 * that each block starts as the identity).
 *
 * @example
 * ```ts
 * import { Linear } from "../../core/nn/mod.ts";
 * function zeroProjection(): Linear {
 *   return zeroParameters(new Linear(4, 4)); // outputs 0 until trained
 * }
 * ```
 */
export function zeroParameters<M extends Module>(m: M): M {
  for (const p of m.parameters()) p.write(new Float32Array(p.size));
  return m;
}

/**
 * Builds a module without moving the engine's generator: its random initialisation is drawn and
 * then undone, so every module built after it, and training's timesteps and noise, come out as if
 * it were not there (a module added to a model for a controlled comparison, or to a trained one
 * with `train --init-from`).
 *
 * @example
 * ```ts
 * import { Linear } from "../../core/nn/mod.ts";
 * function extra(): Linear {
 *   return withoutDrawing(() => zeroParameters(new Linear(4, 4))); // the generator is unmoved
 * }
 * ```
 */
export function withoutDrawing<M extends Module>(build: () => M): M {
  const rng = getRngState();
  try {
    return build();
  } finally {
    setRngState(rng);
  }
}

/** Options of `ResBlock`. */
export interface ResBlockOptions {
  /** GroupNorm groups (clamped to a divisor of each channel count). */
  groups: number;
  /** Dropout before the second conv (0 in the thesis). */
  dropout: number;
}

/**
 * Residual block (thesis Figure 3.7; Ho et al. 2020 / ADM): GroupNorm+SiLU, conv3x3, + projected
 * time embedding, GroupNorm+SiLU, dropout, zero-initialised conv3x3, plus the input (through a
 * 1x1 conv when the channel count changes).
 */
export class ResBlock extends Module {
  /** Input channels. */
  readonly inChannels: number;
  /** Output channels. */
  readonly outChannels: number;
  readonly #dropout: number;
  readonly #norm1: GroupNorm;
  readonly #conv1: Conv2d;
  readonly #emb: Linear;
  readonly #norm2: GroupNorm;
  readonly #conv2: Conv2d;
  readonly #skip: Conv2d | null;

  /**
   * Creates the block with freshly initialised parameters.
   *
   * @example
   * ```ts
   * function block(): ResBlock {
   *   return new ResBlock(64, 128, 256, { groups: 32, dropout: 0 }); // 64 -> 128 channels
   * }
   * ```
   */
  constructor(inChannels: number, outChannels: number, embDim: number, opts: ResBlockOptions) {
    super();
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.#dropout = opts.dropout;
    this.#norm1 = this.addModule(
      "norm1",
      new GroupNorm(clampGroups(opts.groups, inChannels), inChannels),
    );
    this.#conv1 = this.addModule("conv1", new Conv2d(inChannels, outChannels, 3, { padding: 1 }));
    this.#emb = this.addModule("emb", new Linear(embDim, outChannels));
    this.#norm2 = this.addModule(
      "norm2",
      new GroupNorm(clampGroups(opts.groups, outChannels), outChannels),
    );
    this.#conv2 = this.addModule(
      "conv2",
      zeroParameters(new Conv2d(outChannels, outChannels, 3, { padding: 1 })),
    );
    this.#skip = inChannels === outChannels
      ? null
      : this.addModule("skip", new Conv2d(inChannels, outChannels, 1));
  }

  /**
   * x [B, Cin, H, W], emb [B, embDim] -> [B, Cout, H, W].
   *
   * @example
   * ```ts
   * import type { Tensor } from "../../core/tensor/mod.ts";
   * function residual(block: ResBlock, x: Tensor, timeEmbedding: Tensor): Tensor {
   *   return block.forward(x, timeEmbedding); // [B, outChannels, H, W]
   * }
   * ```
   */
  forward(x: Tensor, emb: Tensor): Tensor {
    const B = x.shape[0];
    let h = this.#conv1.forward(this.#norm1.forward(x, { silu: true }));
    // The time embedding is projected (SiLU then linear, as ADM: Dhariwal & Nichol 2021) and added
    // after the first activation + conv, broadcast over the spatial positions.
    const e = this.#emb.forward(silu(emb));
    h = add(h, reshape(e, [B, this.outChannels, 1, 1]));
    h = this.#norm2.forward(h, { silu: true });
    if (this.#dropout > 0) h = dropout(h, this.#dropout, this.training);
    h = this.#conv2.forward(h);
    return add(this.#skip ? this.#skip.forward(x) : x, h);
  }
}

/** x [B, C, H, W] normalised and laid out as the attention's rows: [B, H*W, C]. */
function normalisedPositions(norm: GroupNorm, x: Tensor): Tensor {
  const [B, C, H, W] = x.shape;
  return permute(reshape(norm.forward(x), [B, C, H * W]), [0, 2, 1]);
}

/** The residual of an attention block: x [B, C, H, W] plus its output rows [B, H*W, C]. */
function addPositions(x: Tensor, out: Tensor): Tensor {
  return add(x, reshape(permute(out, [0, 2, 1]), x.shape));
}

/**
 * Self-attention over the H*W positions of a feature map whose keys and values also include the
 * conditioning tokens (thesis Figure 3.8; GLIDE's `encoder_kv`): GroupNorm, qkv projection, the
 * tokens projected to keys/values and concatenated before the image's own, multi-head attention,
 * zero-initialised output projection, residual.
 */
export class AttentionBlock extends Module {
  /** Feature channels (image channels for the U-Net). */
  readonly channels: number;
  /** Attention heads. */
  readonly heads: number;
  readonly #norm: GroupNorm;
  readonly #qkv: Linear;
  readonly #contextKv?: Linear;
  readonly #proj: Linear;

  /**
   * Creates the block with freshly initialised parameters.
   *
   * @example
   * ```ts
   * function attention(): AttentionBlock {
   *   return new AttentionBlock(64, 8, 512, 32); // 64 channels, 8 heads, 512-wide tokens
   * }
   * ```
   */
  constructor(channels: number, heads: number, contextDim: number, groups: number) {
    super();
    if (channels % heads !== 0) {
      throw new RangeError(`Attention heads "${heads}" do not divide the ${channels} channels`);
    }
    this.channels = channels;
    this.heads = heads;
    this.#norm = this.addModule("norm", new GroupNorm(clampGroups(groups, channels), channels));
    this.#qkv = this.addModule("qkv", new Linear(channels, 3 * channels));
    // contextDim 0: self-attention only (an upsampler has no condition tokens).
    if (contextDim > 0) {
      this.#contextKv = this.addModule("contextKv", new Linear(contextDim, 2 * channels));
    }
    this.#proj = this.addModule("proj", zeroParameters(new Linear(channels, channels)));
  }

  /**
   * x [B, C, H, W], context [B, S, contextDim] (none when built with contextDim 0) ->
   * [B, C, H, W].
   *
   * @example
   * ```ts
   * import type { Tensor } from "../../core/tensor/mod.ts";
   * function attend(attn: AttentionBlock, x: Tensor, tokens: Tensor): Tensor {
   *   return attn.forward(x, tokens); // [B, C, H, W]; tokens [B, S, contextDim]
   * }
   * ```
   */
  forward(x: Tensor, context?: Tensor): Tensor {
    const C = x.shape[1];
    const qkv = this.#qkv.forward(normalisedPositions(this.#norm, x));
    const q = splitHeads(slice(qkv, 2, 0, C), this.heads);
    const k = splitHeads(slice(qkv, 2, C, 2 * C), this.heads);
    const v = splitHeads(slice(qkv, 2, 2 * C, 3 * C), this.heads);
    let a: Tensor;
    if (this.#contextKv && context) {
      const kv = this.#contextKv.forward(context);
      // GLIDE (Nichol et al. 2022, section 2.3 / its unet.py): the condition tokens' keys and
      // values are concatenated before the image positions' own.
      const ck = splitHeads(slice(kv, 2, 0, C), this.heads);
      const cv = splitHeads(slice(kv, 2, C, 2 * C), this.heads);
      a = scaledDotProductAttention(q, concat([ck, k], 2), concat([cv, v], 2));
    } else if (this.#contextKv || context) {
      throw new RangeError(
        this.#contextKv
          ? "Attention block needs condition tokens"
          : "Attention block has no context",
      );
    } else {
      a = scaledDotProductAttention(q, k, v);
    }
    return addPositions(x, this.#proj.forward(mergeHeads(a)));
  }
}

/**
 * Cross-attention alone: the H*W positions of a feature map query the conditioning tokens only,
 * not each other (Stable Diffusion's transformer block keeps the two apart, Rombach et al. 2022,
 * section 3.3; Imagen reads its text by cross-attention, Saharia et al. 2022, appendix F).
 * GroupNorm, a query projection, the tokens projected to keys/values, multi-head attention,
 * zero-initialised output projection, residual. Where `AttentionBlock` lets every position
 * attend to every other as well, each position here can only fetch what the caption and the CLIP
 * embedding say: a way to place the caption's colours at a resolution too fine for the global
 * self-attention's cost (docs/training.md, "Cross-attention at 16x16").
 */
export class CrossAttentionBlock extends Module {
  /** Feature channels (image channels for the U-Net). */
  readonly channels: number;
  /** Attention heads. */
  readonly heads: number;
  readonly #norm: GroupNorm;
  readonly #q: Linear;
  readonly #contextKv: Linear;
  readonly #proj: Linear;

  /**
   * Creates the block with freshly initialised parameters.
   *
   * @example
   * ```ts
   * function crossAttention(): CrossAttentionBlock {
   *   return new CrossAttentionBlock(64, 4, 64, 8); // 64 channels, 4 heads, 64-wide tokens
   * }
   * ```
   */
  constructor(channels: number, heads: number, contextDim: number, groups: number) {
    super();
    if (channels % heads !== 0) {
      throw new RangeError(`Attention heads "${heads}" do not divide the ${channels} channels`);
    }
    if (contextDim <= 0) {
      throw new RangeError(`Cross-attention needs condition tokens (contextDim ${contextDim})`);
    }
    this.channels = channels;
    this.heads = heads;
    this.#norm = this.addModule("norm", new GroupNorm(clampGroups(groups, channels), channels));
    this.#q = this.addModule("q", new Linear(channels, channels));
    this.#contextKv = this.addModule("contextKv", new Linear(contextDim, 2 * channels));
    this.#proj = this.addModule("proj", zeroParameters(new Linear(channels, channels)));
  }

  /**
   * x [B, C, H, W], context [B, S, contextDim] -> [B, C, H, W].
   *
   * @example
   * ```ts
   * import type { Tensor } from "../../core/tensor/mod.ts";
   * function attend(block: CrossAttentionBlock, x: Tensor, tokens: Tensor): Tensor {
   *   return block.forward(x, tokens); // [B, C, H, W]; tokens [B, S, contextDim]
   * }
   * ```
   */
  forward(x: Tensor, context?: Tensor): Tensor {
    if (!context) throw new RangeError("Cross-attention block needs condition tokens");
    const C = x.shape[1];
    const q = splitHeads(this.#q.forward(normalisedPositions(this.#norm, x)), this.heads);
    const kv = this.#contextKv.forward(context);
    const k = splitHeads(slice(kv, 2, 0, C), this.heads);
    const v = splitHeads(slice(kv, 2, C, 2 * C), this.heads);
    return addPositions(x, this.#proj.forward(mergeHeads(scaledDotProductAttention(q, k, v))));
  }
}

/**
 * Halves the resolution with a stride-2 conv3x3 (thesis section 3.3.1: "the downsampling layer
 * is a normal convolutional layer").
 */
export class Downsample extends Module {
  readonly #conv: Conv2d;

  /**
   * Creates the block with freshly initialised parameters.
   *
   * @example
   * ```ts
   * function downsample(): Downsample {
   *   return new Downsample(64);
   * }
   * ```
   */
  constructor(channels: number) {
    super();
    this.#conv = this.addModule(
      "conv",
      new Conv2d(channels, channels, 3, { stride: 2, padding: 1 }),
    );
  }

  /**
   * [B, C, H, W] -> [B, C, ceil(H/2), ceil(W/2)].
   *
   * @example
   * ```ts
   * import type { Tensor } from "../../core/tensor/mod.ts";
   * function half(down: Downsample, x: Tensor): Tensor {
   *   return down.forward(x); // [B, C, 16, 16] -> [B, C, 8, 8]
   * }
   * ```
   */
  forward(x: Tensor): Tensor {
    return this.#conv.forward(x);
  }
}

/** How `Upsample` doubles the resolution. */
export type UpsampleMode = "transposed" | "nearest";

/**
 * Doubles the resolution: a 4x4 stride-2 transposed conv (the thesis) or nearest-neighbour
 * upsampling followed by conv3x3 (Odena et al. 2016, avoids checkerboard artefacts).
 */
export class Upsample extends Module {
  /** How the resolution is doubled. */
  readonly mode: UpsampleMode;
  readonly #conv: Conv2d | ConvTranspose2d;

  /**
   * Creates the block with freshly initialised parameters.
   *
   * @example
   * ```ts
   * function upsample(): Upsample {
   *   return new Upsample(128, "nearest");
   * }
   * ```
   */
  constructor(channels: number, mode: UpsampleMode) {
    super();
    this.mode = mode;
    this.#conv = this.addModule(
      "conv",
      mode === "transposed"
        ? new ConvTranspose2d(channels, channels, 4, { stride: 2, padding: 1 })
        : new Conv2d(channels, channels, 3, { padding: 1 }),
    );
  }

  /**
   * [B, C, H, W] -> [B, C, 2H, 2W].
   *
   * @example
   * ```ts
   * import type { Tensor } from "../../core/tensor/mod.ts";
   * function double(up: Upsample, x: Tensor): Tensor {
   *   return up.forward(x); // [B, C, 8, 8] -> [B, C, 16, 16]
   * }
   * ```
   */
  forward(x: Tensor): Tensor {
    return this.mode === "transposed"
      ? this.#conv.forward(x)
      : this.#conv.forward(upsampleNearest2d(x, 2));
  }
}
