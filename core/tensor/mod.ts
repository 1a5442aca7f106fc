/**
 * The tensor engine: tensors on WebGPU or the CPU, their ops with reverse-mode gradients, scopes
 * for device memory, and the choice of backend. Code outside `core/tensor/` imports the engine
 * from here only: device buffers, WGSL and the backend object stay inside.
 *
 * @example
 * ```ts
 * import { matmul, randn, sum } from "./mod.ts";
 * async function gramTotal(): Promise<number> {
 *   await initBackend(); // once per program: WebGPU on a hardware adapter, else the CPU
 *   const x = randn([4, 8]);
 *   return await sum(matmul(x, x, { transB: true })).item();
 * }
 * ```
 */
export {
  adapterLine,
  BACKEND_CHOICES,
  backendKind,
  closeBackend,
  deviceLine,
  engineStats,
  flush,
  initBackend,
  onCpu,
  parseBackendChoice,
  settled,
  sync,
} from "./backend.ts";
export type { BackendChoice, EngineStats } from "./backend.ts";
export { adapterSummary, NoAdapterError } from "./device.ts";
export type { AdapterSummary } from "./device.ts";
export { readMany, scope, sizeOf, Tensor } from "./tensor.ts";
export type { DType, GradNode } from "./tensor.ts";
export { isGradEnabled, noGrad, record } from "./autograd.ts";
export { activeProfile, OpProfile, profileOps, startProfile, stopProfile } from "./profiler.ts";
export type { OpPhase, OpTiming, ProfileOptions } from "./profiler.ts";
export * from "./creation.ts";
export * from "./ops/mod.ts";
export type { PoolStats } from "./pool.ts";
export { useWinograd, type WinogradMode } from "./cpu/winograd.ts";
export { subpixelApplies, useSubpixelUpsampling } from "./ops/conv_subpixel.ts";
export type { TransposedGeometry } from "./ops/conv_subpixel.ts";
export type { ConvGeometry } from "./cpu/conv.ts";
/** erf on the host: the polynomial the exact-GELU kernels use (e.g. for a normal CDF). */
export { erfApprox } from "./kernels/activation.ts";
