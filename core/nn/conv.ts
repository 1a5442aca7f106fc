/** 2-D convolution layers (NCHW). */
import { conv2d, type ConvActivation, convTranspose2d, type Tensor } from "../tensor/mod.ts";
import { Module, uniformInit } from "./module.ts";

/** A number or a [height, width] pair. */
export type Size2 = number | readonly [number, number];

const pair = (v: Size2): [number, number] => (typeof v === "number" ? [v, v] : [v[0], v[1]]);

/** Options for `Conv2d`. */
export interface Conv2dLayerOptions {
  /** Default 1. */
  stride?: Size2;
  /** Zero padding per side, default 0. */
  padding?: Size2;
  /** Learn a bias (default true). */
  bias?: boolean;
}

/**
 * Convolution with weight [outC, inC, kh, kw], initialised U(-1/sqrt(fan_in), 1/sqrt(fan_in))
 * with fan_in = inC * kh * kw, as PyTorch's `nn.Conv2d`. Runs as an implicit GEMM.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function features(images: Tensor): Tensor {
 *   const conv = new Conv2d(3, 32, 3, { padding: 1 });
 *   return conv.forward(images); // [B, 32, H, W]
 * }
 * ```
 */
export class Conv2d extends Module {
  /** Learned weight. */
  readonly weight: Tensor;
  /** Learned bias (null when disabled). */
  readonly bias: Tensor | null;
  /** Kernel size [kh, kw]. */
  readonly kernel: [number, number];
  /** Stride [sy, sx]. */
  readonly stride: [number, number];
  /** Zero padding [py, px]. */
  readonly padding: [number, number];

  /** Creates the object; parameters are drawn from the global generator in a fixed order. */
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernel: Size2,
    opts: Conv2dLayerOptions = {},
  ) {
    super();
    this.kernel = pair(kernel);
    this.stride = pair(opts.stride ?? 1);
    this.padding = pair(opts.padding ?? 0);
    const bound = 1 / Math.sqrt(inChannels * this.kernel[0] * this.kernel[1]);
    this.weight = this.addParameter(
      "weight",
      uniformInit([outChannels, inChannels, ...this.kernel], bound),
    );
    this.bias = (opts.bias ?? true)
      ? this.addParameter("bias", uniformInit([outChannels], bound))
      : null;
  }

  /** x [B, inC, H, W] -> [B, outC, H', W'], with an optional fused activation. */
  forward(x: Tensor, activation: ConvActivation = "none"): Tensor {
    return conv2d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      activation,
    });
  }
}

/** Options for `ConvTranspose2d`. */
export interface ConvTranspose2dLayerOptions extends Conv2dLayerOptions {
  /** Extra rows/columns at the bottom/right of the output (< stride), default 0. */
  outputPadding?: Size2;
}

/**
 * Transposed convolution with weight [inC, outC, kh, kw] (PyTorch's layout). Initialised
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) where, as in PyTorch, fan_in is computed from weight
 * dimension 1: outC * kh * kw. Output size (H - 1) * stride - 2 * padding + kh + outputPadding.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function upsample(x: Tensor): Tensor {
 *   const up = new ConvTranspose2d(64, 32, 4, { stride: 2, padding: 1 }); // doubles H and W
 *   return up.forward(x);
 * }
 * ```
 */
export class ConvTranspose2d extends Module {
  /** Learned weight. */
  readonly weight: Tensor;
  /** Learned bias (null when disabled). */
  readonly bias: Tensor | null;
  /** Kernel size [kh, kw]. */
  readonly kernel: [number, number];
  /** Stride [sy, sx]. */
  readonly stride: [number, number];
  /** Zero padding [py, px]. */
  readonly padding: [number, number];
  /** Extra output rows/columns [oy, ox]. */
  readonly outputPadding: [number, number];

  /** Creates the object; parameters are drawn from the global generator in a fixed order. */
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernel: Size2,
    opts: ConvTranspose2dLayerOptions = {},
  ) {
    super();
    this.kernel = pair(kernel);
    this.stride = pair(opts.stride ?? 1);
    this.padding = pair(opts.padding ?? 0);
    this.outputPadding = pair(opts.outputPadding ?? 0);
    const bound = 1 / Math.sqrt(outChannels * this.kernel[0] * this.kernel[1]);
    this.weight = this.addParameter(
      "weight",
      uniformInit([inChannels, outChannels, ...this.kernel], bound),
    );
    this.bias = (opts.bias ?? true)
      ? this.addParameter("bias", uniformInit([outChannels], bound))
      : null;
  }

  /** x [B, inC, H, W] -> [B, outC, H', W']. */
  forward(x: Tensor): Tensor {
    return convTranspose2d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      outputPadding: this.outputPadding,
    });
  }
}
