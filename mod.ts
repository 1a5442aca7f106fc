/**
 * unCLIP (DALL-E 2) from scratch on WebGPU: the public API. Importable from a URL, e.g.
 * `import { builtins, loadConfig, loadPipeline } from "http://host/mod.ts"` (run Deno with
 * `--allow-import=host --allow-read`, and `--allow-write` to save images; see README "Use it as
 * a library"); library code uses relative imports only, npm packages through core/deps.ts.
 *
 * @example
 * ```ts
 * import { builtins, initBackend, loadPipeline, textToImage } from "./mod.ts";
 * async function circles() {
 *   await initBackend();
 *   const pipeline = await loadPipeline("weights/default", builtins());
 *   return await textToImage(pipeline, ["a red circle"], { n: 4 });
 * }
 * ```
 *
 * @module
 */
export * from "./core/tensor/mod.ts";
export * from "./core/nn/mod.ts";
export * from "./core/optim/mod.ts";
export * from "./core/io/mod.ts";
export * from "./core/registry.ts";
export * from "./core/config.ts";
export * from "./core/config_file.ts";
export * from "./plugins/mod.ts";
export * from "./core/components.ts";
export * from "./core/diffusion/mod.ts";
export * from "./core/clip.ts";
export * from "./core/eval/clip.ts";
export * from "./core/eval/prior.ts";
export * from "./core/pipeline.ts";
export * from "./core/train/mod.ts";
export * from "./datasets/mod.ts";
// Both core (labels of any type) and datasets (shapes labels) name a CaptionedImage; the public
// name keeps meaning the shapes one, as before. Core's is `CaptionedImage<Label>` in components.ts.
export type { CaptionedImage } from "./datasets/mod.ts";
export * from "./plugins/tokenizers/mod.ts";
export * from "./plugins/encoders/mod.ts";
export * from "./plugins/priors/mod.ts";
export * from "./plugins/decoders/mod.ts";
export * from "./plugins/samplers/mod.ts";
export * from "./plugins/schedules/mod.ts";
export * from "./plugins/datasets/mod.ts";
export * from "./core/host_random.ts";
/** zod, pinned: plugin authors build `definePlugin` options schemas with this same copy. */
export { z } from "./core/deps.ts";
