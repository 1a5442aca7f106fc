/**
 * The library's browser entry: the tensor engine (WebGPU), the plugins, weights loading over
 * `fetch` and the sampling pipeline, without the training loop, the datasets on disk or the
 * CLIs. Its import graph holds no `node:` module (checked by tests/browser_entry_test.ts), so a
 * bundler can target browsers with it (`deno task serve` bundles web/worker.ts, which uses it).
 * Deno programs can import it too; `mod.ts` is the whole API.
 *
 * @example
 * ```ts
 * import { builtins, fetchReader, initBackend, loadPipeline, textToImage } from "./browser.ts";
 * async function inThePage() {
 *   await initBackend({ backend: "webgpu" });
 *   const reader = fetchReader({ base: location.href });
 *   const p = await loadPipeline("weights/", builtins(), { reader });
 *   return await textToImage(p, ["a red circle"], { n: 1, steps: 20 });
 * }
 * ```
 *
 * @module
 */
export * from "./core/tensor/mod.ts";
export * from "./core/io/mod.ts";
export * from "./core/registry.ts";
export * from "./core/config.ts";
export * from "./plugins/mod.ts";
export * from "./core/components.ts";
export * from "./core/pipeline.ts";
export { toNchw } from "./datasets/flip.ts";
export {
  CheckpointError,
  loadCheckpoint,
  type LoadedCheckpoint,
  loadModuleWeights,
} from "./core/train/checkpoint.ts";
