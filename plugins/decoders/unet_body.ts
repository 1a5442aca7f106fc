/**
 * The convolutional body of the U-Net (thesis Figure 3.5), shared by the decoder and the
 * upsampler: input conv, the down path, the middle, the up path with skip connections and the
 * output layers. Its modules are registered on the owning model under the names the decoder has
 * always used (`inConv`, `down.N.res`, `mid1`, ...), so checkpoints keep loading.
 *
 * @module
 */
import { Conv2d, GroupNorm } from "../../core/nn/mod.ts";
import type { Module } from "../../core/nn/module.ts";
import { add, concat, type Tensor } from "../../core/tensor/mod.ts";
import {
  AttentionBlock,
  clampGroups,
  CrossAttentionBlock,
  Downsample,
  ResBlock,
  Upsample,
  type UpsampleMode,
  withoutDrawing,
  zeroParameters,
} from "./blocks.ts";

/** Sizes of `UNetBody`. */
export interface UNetBodyOptions {
  /** Channels of the input (x_t, plus the upsampled condition for an upsampler). */
  inChannels: number;
  /** Channels of the output (the predicted noise). */
  outChannels: number;
  baseChannels: number;
  channelMults: readonly number[];
  resBlocksPerLevel: number;
  /** Levels with attention blocks after each residual block. */
  attentionLevels: readonly number[];
  /**
   * Levels with a cross-attention block (the condition tokens only, `CrossAttentionBlock`) after
   * each residual block; none by default. A level may not have both kinds.
   */
  crossAttentionLevels?: readonly number[];
  /** Whether the middle has an attention block (the decoder's always does). */
  midAttention: boolean;
  heads: number;
  groups: number;
  upsample: UpsampleMode;
  dropout: number;
  /** Width of the time embedding each residual block receives. */
  embDim: number;
  /** Width of the condition tokens attention reads; 0 for self-attention only. */
  contextDim: number;
}

/** A block after a residual block: attention over the positions and tokens, or tokens only. */
type Attention = AttentionBlock | CrossAttentionBlock;

/** Registers a child module on the owner (its protected `addModule`). */
export type AddModule = <M extends Module>(name: string, m: M) => M;

/**
 * Per level `resBlocksPerLevel` residual blocks (each followed by an attention block at the
 * attention levels), a stride-2 conv between levels; a middle res/(attn)/res; the mirror path
 * with one more block per level, each fed the matching encoder activation by concatenation, and
 * an upsampling layer between levels; GroupNorm+SiLU and a zero-initialised conv3x3 out.
 */
export class UNetBody {
  readonly #inConv: Conv2d;
  readonly #down: { res?: ResBlock; attn?: Attention; down?: Downsample }[] = [];
  readonly #mid1: ResBlock;
  readonly #midAttn?: AttentionBlock;
  readonly #mid2: ResBlock;
  readonly #up: { res: ResBlock; attn?: Attention; up?: Upsample }[] = [];
  readonly #outNorm: GroupNorm;
  readonly #outConv: Conv2d;

  /**
   * Builds the body's modules on the owner through `add` (freshly initialised).
   *
   * @example
   * ```ts
   * import { Module } from "../../core/nn/module.ts";
   * class Net extends Module {
   *   body = new UNetBody((name, m) => this.addModule(name, m), {
   *     inChannels: 6, outChannels: 3, baseChannels: 8, channelMults: [1, 2],
   *     resBlocksPerLevel: 1, attentionLevels: [], midAttention: false, heads: 1, groups: 4,
   *     upsample: "nearest", dropout: 0, embDim: 16, contextDim: 0,
   *   });
   * }
   * function params(): number {
   *   return new Net().parameterCount(); // after initBackend()
   * }
   * ```
   */
  constructor(add: AddModule, o: UNetBodyOptions) {
    const levels = o.channelMults.length;
    const attnLevels = new Set(o.attentionLevels);
    const crossLevels = new Set(o.crossAttentionLevels ?? []);
    for (const level of crossLevels) {
      if (attnLevels.has(level)) {
        throw new RangeError(`Level ${level} has both attention and cross-attention blocks`);
      }
    }
    const rb = { groups: o.groups, dropout: o.dropout };
    const attn = (c: number): AttentionBlock =>
      new AttentionBlock(c, o.heads, o.contextDim, o.groups);
    // The block after a residual block at `level` (registered as `<prefix>.attn` or
    // `<prefix>.xattn`), if any. A cross-attention block's random initialisation is undone in the
    // generator, so every other parameter starts as in the same U-Net without it (a controlled
    // comparison, as the decoder's self-conditioning conv).
    const blockAt = (level: number, prefix: string, c: number): Attention | undefined => {
      if (attnLevels.has(level)) return add(`${prefix}.attn`, attn(c));
      if (!crossLevels.has(level)) return undefined;
      return add(
        `${prefix}.xattn`,
        withoutDrawing(() => new CrossAttentionBlock(c, o.heads, o.contextDim, o.groups)),
      );
    };
    let ch = o.baseChannels;
    this.#inConv = add("inConv", new Conv2d(o.inChannels, ch, 3, { padding: 1 }));
    const skips: number[] = [ch];
    for (let level = 0; level < levels; level++) {
      const out = o.baseChannels * o.channelMults[level];
      for (let i = 0; i < o.resBlocksPerLevel; i++) {
        const n = this.#down.length;
        const res = add(`down.${n}.res`, new ResBlock(ch, out, o.embDim, rb));
        ch = out;
        this.#down.push({ res, attn: blockAt(level, `down.${n}`, ch) });
        skips.push(ch);
      }
      if (level < levels - 1) {
        const n = this.#down.length;
        this.#down.push({ down: add(`down.${n}.down`, new Downsample(ch)) });
        skips.push(ch);
      }
    }
    this.#mid1 = add("mid1", new ResBlock(ch, ch, o.embDim, rb));
    if (o.midAttention) this.#midAttn = add("midAttn", attn(ch));
    this.#mid2 = add("mid2", new ResBlock(ch, ch, o.embDim, rb));
    for (let level = levels - 1; level >= 0; level--) {
      const out = o.baseChannels * o.channelMults[level];
      for (let i = 0; i <= o.resBlocksPerLevel; i++) {
        const n = this.#up.length;
        const res = add(`up.${n}.res`, new ResBlock(ch + skips.pop()!, out, o.embDim, rb));
        ch = out;
        const a = blockAt(level, `up.${n}`, ch);
        const up = level > 0 && i === o.resBlocksPerLevel
          ? add(`up.${n}.up`, new Upsample(ch, o.upsample))
          : undefined;
        this.#up.push({ res, attn: a, up });
      }
    }
    this.#outNorm = add("outNorm", new GroupNorm(clampGroups(o.groups, ch), ch));
    this.#outConv = add(
      "outConv",
      zeroParameters(new Conv2d(ch, o.outChannels, 3, { padding: 1 })),
    );
  }

  /**
   * x [B, inChannels, S, S], the time embedding [B, embDim] and the condition tokens
   * [B, K, contextDim] (none for contextDim 0) -> [B, outChannels, S, S]. `inputAdd`
   * [B, baseChannels, S, S], when given, is added to the input conv's output: a second input
   * through its own conv, as if concatenated to x (the decoder's self-conditioning estimate).
   *
   * @example
   * ```ts
   * import type { Tensor } from "../../core/tensor/mod.ts";
   * function eps(body: UNetBody, xt: Tensor, emb: Tensor, tokens: Tensor): Tensor {
   *   return body.forward(xt, emb, tokens);
   * }
   * ```
   */
  forward(x: Tensor, emb: Tensor, context?: Tensor, inputAdd?: Tensor): Tensor {
    let h = this.#inConv.forward(x);
    if (inputAdd) h = add(h, inputAdd);
    const hs: Tensor[] = [h];
    for (const b of this.#down) {
      if (b.down) h = b.down.forward(h);
      else {
        h = b.res!.forward(h, emb);
        if (b.attn) h = b.attn.forward(h, context);
      }
      hs.push(h);
    }
    h = this.#mid1.forward(h, emb);
    if (this.#midAttn) h = this.#midAttn.forward(h, context);
    h = this.#mid2.forward(h, emb);
    for (const b of this.#up) {
      h = b.res.forward(concat([h, hs.pop()!], 1), emb);
      if (b.attn) h = b.attn.forward(h, context);
      if (b.up) h = b.up.forward(h);
    }
    return this.#outConv.forward(this.#outNorm.forward(h, { silu: true }));
  }
}
