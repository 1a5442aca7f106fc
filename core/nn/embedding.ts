/** Learned lookup tables. */
import { embedding, type Tensor } from "../tensor/mod.ts";
import { Module, normalInit } from "./module.ts";

/** Options for `Embedding`. */
export interface EmbeddingOptions {
  /**
   * Standard deviation of the N(0, std^2) initialisation. Default 1, as PyTorch's `nn.Embedding`;
   * GPT-2/CLIP-style transformers use 0.02 (pass `{ std: 0.02 }`).
   */
  std?: number;
}

/**
 * A table [num, dim] of learned vectors; `forward(ids)` maps i32 ids [...] to [..., dim].
 *
 * @example
 * ```ts
 * import type { Tensor } from "../tensor/mod.ts";
 * function embed(ids: Tensor, vocabSize: number): Tensor {
 *   const tok = new Embedding(vocabSize, 256, { std: 0.02 });
 *   return tok.forward(ids); // ids i32 [B, T] -> [B, T, 256]
 * }
 * ```
 */
export class Embedding extends Module {
  /** Learned weight. */
  readonly weight: Tensor;

  /** Creates the object; parameters are drawn from the global generator in a fixed order. */
  constructor(readonly num: number, readonly dim: number, opts: EmbeddingOptions = {}) {
    super();
    this.weight = this.addParameter("weight", normalInit([num, dim], opts.std ?? 1));
  }

  /** Looks up rows for integer ids (i32). */
  forward(ids: Tensor): Tensor {
    return embedding(ids, this.weight);
  }
}
