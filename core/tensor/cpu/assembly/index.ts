// Entry of the CPU backend's WebAssembly kernels: every export here can run on the thread pool
// (`cpuKernels().pool.run(name, args)`; the export takes `args` then `(tid, nthreads)`). Add new
// kernel files beside this one and re-export them here.
export * from "./gemm";
export * from "./conv";
export * from "./view";
