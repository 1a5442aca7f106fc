/**
 * Datasets: the synthetic coloured shapes (thesis datasets 1 and 2), dataset folders of PNGs +
 * captions.jsonl, CIFAR-10 from local files, and the seeded batch loader.
 * @module
 */

export * from "./shapes.ts";
export * from "./rng.ts";
export * from "./rasterize.ts";
export * from "./captions.ts";
export * from "./generate.ts";
export * from "./flip.ts";
export * from "./folder.ts";
export * from "./cifar10.ts";
export * from "./loader.ts";
