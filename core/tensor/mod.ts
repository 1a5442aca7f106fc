/**
 * The tensor engine: tensors on WebGPU, their ops with reverse-mode gradients, scopes for GPU
 * memory, and the backend. Import from here.
 *
 * @example
 * ```ts
 * import { initBackend, randn, matmul, sum } from "./core/tensor/mod.ts";
 * await initBackend();
 * const x = randn([4, 8]);
 * ```
 */
import { installAutogradOps } from "./autograd.ts";
import { onesLike } from "./creation.ts";
import { add } from "./ops/elementwise.ts";
import { clone } from "./ops/view.ts";

installAutogradOps(onesLike, add, clone);

export {
  adapterLine,
  backend,
  BACKEND_CHOICES,
  closeBackend,
  CpuBackend,
  deviceLine,
  initBackend,
  onCpu,
  parseBackendChoice,
  WebGpuBackend,
} from "./backend.ts";
export type { Backend, BackendChoice, DeviceBuffer } from "./backend.ts";
export type { Access, Dispatch } from "./webgpu_backend.ts";
export { adapterSummary, getAdapter, getDevice, NoAdapterError } from "./device.ts";
export type { AdapterSummary } from "./device.ts";
export { scope, sizeOf, Tensor } from "./tensor.ts";
export type { DType, GradNode } from "./tensor.ts";
export { isGradEnabled, noGrad, record } from "./autograd.ts";
export * from "./creation.ts";
export * from "./ops/mod.ts";
export type { PoolStats } from "./pool.ts";
