/** Every op of the engine, re-exported. */
export * from "./elementwise.ts";
export * from "./reduce.ts";
export * from "./view.ts";
export * from "./matmul.ts";
