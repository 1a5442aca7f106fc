/**
 * Sinusoidal timestep embeddings for the diffusion models: a tensor op
 * (`core/tensor/ops/timestep.ts`), re-exported here for the layers that use it.
 */
export { timestepEmbedding } from "../tensor/ops/timestep.ts";
