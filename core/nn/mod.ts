/**
 * Neural-network layers built from engine ops (gradients come from the tape): linear,
 * convolutions, normalisations, embeddings, attention, transformer blocks and timestep
 * embeddings, on the `Module` base class.
 *
 * @example
 * ```ts
 * import { Linear, TransformerBlock } from "./mod.ts";
 * function layers() {
 *   return [new Linear(64, 256), new TransformerBlock(256, 8, { causal: true })];
 * }
 * ```
 */
export { Module, normalInit, uniformInit } from "./module.ts";
export { Linear } from "./linear.ts";
export type { LinearOptions } from "./linear.ts";
export { Conv2d, ConvTranspose2d } from "./conv.ts";
export type { Conv2dLayerOptions, ConvTranspose2dLayerOptions, Size2 } from "./conv.ts";
export { BatchNorm2d, GroupNorm, LayerNorm } from "./norm.ts";
export type { BatchNorm2dOptions, GroupNormLayerOptions, LayerNormLayerOptions } from "./norm.ts";
export { Embedding } from "./embedding.ts";
export type { EmbeddingOptions } from "./embedding.ts";
export { MultiheadAttention } from "./attention.ts";
export type { AttentionForwardOptions, MultiheadAttentionOptions } from "./attention.ts";
export { TransformerBlock } from "./transformer.ts";
export type { TransformerBlockOptions } from "./transformer.ts";
export { timestepEmbedding } from "./timestep.ts";
