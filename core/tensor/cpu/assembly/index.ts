// Entry of the CPU backend's WebAssembly kernels: every export here can run on the thread pool
// (`cpuKernels().pool.run(name, args)`; the export takes `args` then `(tid, nthreads)`). Add new
// kernel files beside this one and re-export them here.
export { gemm_batches, gemm_tiles, scratch_bytes, shared_bytes } from "./gemm";
export { exp_f32 } from "./math";
export { unary_backward, unary_forward } from "./unary";
export { binary_broadcast, binary_same } from "./binary";
export { norm_backward, norm_forward } from "./norm";
export { softmax_grad_row, softmax_grad_rows, softmax_row, softmax_rows } from "./rows";
export * from "./conv";
export * from "./view";
export { adam_update, ema_update, scale_in_place } from "./optim";
export { sum_rows } from "./reduce";
export {
  winograd_block_floats,
  winograd_filter,
  winograd_filter_grad,
  winograd_grad_output,
  winograd_input,
  winograd_input_scratch,
  winograd_output,
} from "./winograd";
export {
  winograd4_filter,
  winograd4_filter_grad,
  winograd4_grad_output,
  winograd4_input,
  winograd4_input_scratch,
  winograd4_output,
} from "./winograd4";
