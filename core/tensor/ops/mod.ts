/** Every op of the engine, re-exported. */
export * from "./elementwise.ts";
export * from "./reduce.ts";
export * from "./view.ts";
export * from "./matmul.ts";
export * from "./conv.ts";
export * from "./pool.ts";
export * from "./norm.ts";
export * from "./softmax.ts";
export * from "./attention.ts";
export * from "./loss.ts";
export * from "./embedding.ts";
export * from "./dropout.ts";
export * from "./optim.ts";
export * from "./timestep.ts";
