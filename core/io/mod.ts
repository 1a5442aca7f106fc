/**
 * Checkpoint and image I/O: safetensors (single file and sharded), half-precision conversion,
 * crash-safe writes, PNG and image grids. Pure TypeScript over typed arrays; no GPU.
 *
 * @module
 */

export * from "./atomic.ts";
export * from "./half.ts";
export * from "./safetensors.ts";
export * from "./sharded.ts";
export * from "./png.ts";
export * from "./paths.ts";
export * from "./reader.ts";
