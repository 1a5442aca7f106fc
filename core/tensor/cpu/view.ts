/**
 * Layout copies of the CPU backend. Every layout op (expand, permute, slice, pad, flip, concat,
 * clone) is one strided copy between two blocks of the tensor memory: for each coordinate `c`
 * of a box, `dst[dstOffset + c . dstStrides] = src[srcOffset + c . srcStrides]`. Copies go
 * through the memory as int32, so they are bit-exact for every dtype (a float copy could
 * quieten NaN payloads of integer data).
 */
import { cpu } from "../backend.ts";
import { bufferOf, type Tensor } from "../tensor.ts";
import type { CpuBuffer } from "./memory.ts";
import { cpuKernels } from "./runtime.ts";

/** One side of a strided copy: element offset into the memory and a stride per box dimension. */
export interface Strided {
  offset: number;
  strides: readonly number[];
}

/** The element offset of a tensor in the whole memory viewed as 4-byte words. */
export function wordOffset(t: Tensor): number {
  return (bufferOf(t) as CpuBuffer).offset / 4; // not >> 2: addresses reach 4 GiB, past int32
}

/** The whole memory as int32 words (take it after allocating the outputs). */
export function words(): Int32Array {
  return new Int32Array(cpu().mem.buffer);
}

/** Sets `count` words from `offset` to zero. */
export function zeroWords(mem: Int32Array, offset: number, count: number): void {
  mem.fill(0, offset, offset + count);
}

/**
 * Copies the box `dims` from `src` to `dst`. Size-1 dimensions are dropped and dimensions that
 * both sides walk contiguously are merged, so most copies become a few long runs.
 */
export function copyStrided(mem: Int32Array, dims: readonly number[], src: Strided, dst: Strided) {
  const d: number[] = [], ss: number[] = [], ds: number[] = [];
  for (let k = 0; k < dims.length; k++) {
    if (dims[k] === 0) return;
    if (dims[k] === 1) continue;
    const last = d.length - 1;
    if (
      last >= 0 && ss[last] === src.strides[k] * dims[k] && ds[last] === dst.strides[k] * dims[k]
    ) {
      d[last] *= dims[k];
      ss[last] = src.strides[k];
      ds[last] = dst.strides[k];
    } else {
      d.push(dims[k]);
      ss.push(src.strides[k]);
      ds.push(dst.strides[k]);
    }
  }
  if (d.length === 0) {
    mem[dst.offset] = mem[src.offset];
    return;
  }
  if (copyWasm(mem, d, ss, ds, src.offset, dst.offset)) return;
  const last = d.length - 1;
  const inner = d[last], si = ss[last], di = ds[last];
  const count = new Int32Array(d.length);
  let s = src.offset, t = dst.offset;
  const rows = d.reduce((a, b) => a * b, 1) / inner;
  for (let r = 0; r < rows; r++) {
    if (si === 1 && di === 1) {
      if (inner >= 32) mem.copyWithin(t, s, s + inner);
      else for (let j = 0; j < inner; j++) mem[t + j] = mem[s + j];
    } else {
      for (let j = 0; j < inner; j++) mem[t + j * di] = mem[s + j * si];
    }
    // Odometer over the outer dimensions, moving both offsets.
    for (let k = last - 1; k >= 0; k--) {
      s += ss[k];
      t += ds[k];
      if (++count[k] < d[k]) break;
      count[k] = 0;
      s -= ss[k] * d[k];
      t -= ds[k] * d[k];
    }
  }
}

/** Most dimensions the WebAssembly `copy_strided` takes (after merging). */
const WASM_RANK = 6;

/**
 * From this many words a copy is split across the thread pool: one thread copies about 11 words
 * per ns (contiguous runs) and a worker round trip costs about 8 us, so smaller copies gain
 * nothing from a second thread (see also PARALLEL_MIN_FLOATS below).
 */
const PARALLEL_MIN_WORDS = 1 << 18;

/**
 * The merged box copied by the WebAssembly kernel (`assembly/view.ts`, same walk as below);
 * false when the kernels are missing, the box has too many dimensions or `mem` is not the whole
 * tensor memory.
 */
function copyWasm(
  mem: Int32Array,
  d: number[],
  ss: number[],
  ds: number[],
  srcOffset: number,
  dstOffset: number,
): boolean {
  if (d.length > WASM_RANK || mem.byteOffset !== 0 || mem.buffer !== cpu().mem.buffer) return false;
  const pad = WASM_RANK - d.length, ones = new Array(pad).fill(1), zeros = new Array(pad).fill(0);
  const args = [srcOffset * 4, dstOffset * 4, ...ones, ...d, ...zeros, ...ss, ...zeros, ...ds];
  const total = d.reduce((a, b) => a * b, 1);
  return runLayoutKernel("copy_strided", args, total >= PARALLEL_MIN_WORDS);
}

/**
 * Runs a layout kernel (`assembly/conv.ts`, `assembly/view.ts`) on this thread or, when
 * `parallel`, on the whole pool, the threads claiming chunks of its work from a counter that is
 * passed as its last argument; false where the WebAssembly kernels did not load.
 */
export function runLayoutKernel(name: string, args: number[], parallel: boolean): boolean {
  const k = cpuKernels();
  if (!k) return false;
  const threads = parallel ? k.pool.size : 1;
  let counter = 0;
  if (threads > 1) {
    counter = k.scratch(64);
    new Int32Array(cpu().mem.buffer, counter, 1)[0] = 0;
  }
  k.pool.run(name, [...args, counter], threads);
  return true;
}

/**
 * Below this many floats written a layout kernel runs on the calling thread alone. One thread
 * writes about 5 floats per ns (im2col of 16 x 32 x 16 x 16 images, 3x3: 1.18 M floats in
 * 235 us on a 2-core EPYC) and a worker round trip costs about 8 us, so a split pays off only
 * when each share is well over that: from about 128 K floats. (The machine the kernels were
 * written on was shared and busy, so the two-thread side could not be timed cleanly.)
 */
const PARALLEL_MIN_FLOATS = 1 << 17;

/**
 * Runs a layout kernel (`assembly/conv.ts`, `assembly/winograd.ts`) that writes `floats` floats,
 * on the pool from `PARALLEL_MIN_FLOATS`; false where the WebAssembly kernels did not load.
 */
export function runFloatsKernel(name: string, args: number[], floats: number): boolean {
  return runLayoutKernel(name, args, floats >= PARALLEL_MIN_FLOATS);
}
