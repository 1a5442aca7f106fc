/** Normalisation layers: GroupNorm, LayerNorm and BatchNorm2d. */
import { batchNorm2d, groupNorm, layerNorm, ones, type Tensor, zeros } from "../tensor/mod.ts";
import { Module } from "./module.ts";

/** Options for `GroupNorm`. */
export interface GroupNormLayerOptions {
  /** Added to the variance, default 1e-5. */
  eps?: number;
  /** Learn a per-channel scale and shift (default true). */
  affine?: boolean;
}

/**
 * Group normalisation (Wu & He 2018) of x [B, C, ...], scale initialised to 1 and shift to 0.
 * `forward(x, { silu: true })` fuses the SiLU that diffusion U-Nets apply after it.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function normalise(x: Tensor): Tensor {
 *   const norm = new GroupNorm(32, 128);
 *   return norm.forward(x, { silu: true });
 * }
 * ```
 */
export class GroupNorm extends Module {
  /** Learned weight. */
  readonly weight: Tensor | null;
  /** Learned bias (null when disabled). */
  readonly bias: Tensor | null;
  /** Added to the variance. */
  readonly eps: number;

  /** Creates the object; parameters are drawn from the global generator in a fixed order. */
  constructor(
    readonly groups: number,
    readonly channels: number,
    opts: GroupNormLayerOptions = {},
  ) {
    super();
    if (channels % groups !== 0) {
      throw new Error(`GroupNorm: ${groups} groups do not divide ${channels} channels.`);
    }
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    this.weight = affine ? this.addParameter("weight", ones([channels])) : null;
    this.bias = affine ? this.addParameter("bias", zeros([channels])) : null;
  }

  /** Normalises x [B, C, ...]; `silu` applies SiLU in the same kernel. */
  forward(x: Tensor, opts: { silu?: boolean } = {}): Tensor {
    return groupNorm(x, this.groups, this.weight, this.bias, this.eps, {
      silu: opts.silu ?? false,
    });
  }
}

/** Options for `LayerNorm`. */
export interface LayerNormLayerOptions {
  /** Added to the variance, default 1e-5. */
  eps?: number;
  /** Learn a scale and shift (default true). */
  affine?: boolean;
}

/**
 * Layer normalisation (Ba et al. 2016) over the last dimension, scale 1 and shift 0 at init.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function normalise(x: Tensor): Tensor {
 *   const ln = new LayerNorm(256);
 *   return ln.forward(x); // x [B, T, 256]
 * }
 * ```
 */
export class LayerNorm extends Module {
  /** Learned weight. */
  readonly weight: Tensor | null;
  /** Learned bias (null when disabled). */
  readonly bias: Tensor | null;
  /** Added to the variance. */
  readonly eps: number;

  /** Creates the object; parameters are drawn from the global generator in a fixed order. */
  constructor(readonly dim: number, opts: LayerNormLayerOptions = {}) {
    super();
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    this.weight = affine ? this.addParameter("weight", ones([dim])) : null;
    this.bias = affine ? this.addParameter("bias", zeros([dim])) : null;
  }

  /** Normalises the last dimension of x. */
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** Options for `BatchNorm2d`. */
export interface BatchNorm2dOptions {
  /** Added to the variance, default 1e-5. */
  eps?: number;
  /** Weight of each new batch statistic in the running estimates, default 0.1 (PyTorch). */
  momentum?: number;
}

/**
 * Batch normalisation (Ioffe & Szegedy 2015) of x [B, C, H, W]. In training mode it normalises
 * with the batch statistics and updates the running mean and (unbiased) variance, which are
 * buffers (`runningMean`, `runningVar`, saved in checkpoints); in eval mode it uses them.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function normalise(x: Tensor): Tensor {
 *   const bn = new BatchNorm2d(16);
 *   bn.forward(x); // training: batch statistics
 *   bn.eval();
 *   return bn.forward(x); // running statistics
 * }
 * ```
 */
export class BatchNorm2d extends Module {
  /** Learned weight. */
  readonly weight: Tensor;
  /** Learned bias (null when disabled). */
  readonly bias: Tensor;
  /** Added to the variance. */
  readonly eps: number;
  /** Weight of a new batch statistic in the running estimates. */
  readonly momentum: number;

  /** Creates the object; parameters are drawn from the global generator in a fixed order. */
  constructor(readonly channels: number, opts: BatchNorm2dOptions = {}) {
    super();
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    this.weight = this.addParameter("weight", ones([channels]));
    this.bias = this.addParameter("bias", zeros([channels]));
    this.addBuffer("runningMean", zeros([channels]));
    this.addBuffer("runningVar", ones([channels]));
  }

  /** The running mean (current tensor; replaced after each training forward). */
  get runningMean(): Tensor {
    return this.getBuffer("runningMean");
  }

  /** The running variance. */
  get runningVar(): Tensor {
    return this.getBuffer("runningVar");
  }

  /** Normalises x [B, C, ...] per channel. */
  forward(x: Tensor): Tensor {
    const rm = this.runningMean, rv = this.runningVar;
    const r = batchNorm2d(x, rm, rv, this.weight, this.bias, {
      training: this.training,
      momentum: this.momentum,
      eps: this.eps,
    });
    if (r.runningMean !== rm) this.setBuffer("runningMean", r.runningMean);
    if (r.runningVar !== rv) this.setBuffer("runningVar", r.runningVar);
    return r.y;
  }
}
