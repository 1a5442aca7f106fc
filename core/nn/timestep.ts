/**
 * Sinusoidal timestep embeddings for the diffusion models: a tensor op
 * of the engine, re-exported here for the layers that use it.
 */
export { timestepEmbedding } from "../tensor/mod.ts";
