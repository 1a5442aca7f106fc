// Packed SGEMM for the CPU backend (AssemblyScript, compiled by `deno task wasm`).
//
// Goto/BLIS structure (Goto & van de Geijn, "Anatomy of High-Performance Matrix Multiplication",
// TOMS 2008; Van Zee & van de Geijn, "BLIS", TOMS 2015): C is computed in NC-wide column panels;
// for each KC-deep slice of K, a KC x NC panel of B and then MC x KC blocks of A are packed into
// contiguous scratch, laid out as MR-row strips of A and NR-column strips of B (k-major, zero
// padded at the edges), so that the microkernel streams both with unit stride whatever transA,
// transB and the leading dimensions were. The microkernel keeps an MR x NR tile of C in twelve
// v128 registers (x86 has 16 xmm registers: 12 accumulators + 2 B vectors + 1 A broadcast).
// When C has few columns a row-major A is read in place instead (see DIRECT_A_MAX_N).

import { gelu4, silu4 } from "./math";
//
// Threads: `gemm_batches` hands out whole products, `gemm_tiles` the packing of A and then
// rectangles of C of one product; either way work is claimed from an atomic counter, so a thread
// that the OS keeps off the CPU delays nobody.
//
// Pointers are byte addresses into the shared memory; leading dimensions and batch strides count
// floats. Nothing here allocates: each thread gets its own scratch block from the caller.

/** Rows of the microkernel tile. */
const MR: i32 = 6;
/** Columns of the microkernel tile (two v128). */
const NR: i32 = 8;
/** Depth of one packed slice: a KC x NR strip of B (8 KiB) stays in L1. */
const KC: i32 = 256;
/** Rows of a packed A block: MC x KC floats (96 KiB) stay in L2. */
const MC: i32 = 96;
/** Columns of a packed B panel (KC x NC floats, 2 MiB). */
const NC: i32 = 2048;

/**
 * Up to this many columns of C, a row-major A is read in place by the microkernel instead of
 * being packed: each element of A then serves only 2 N flops, too few to pay for its copy.
 */
const DIRECT_A_MAX_N: i32 = 64;

const TRANS_A: i32 = 1;
const TRANS_B: i32 = 2;
const ACCUMULATE: i32 = 4;
const HAS_BIAS: i32 = 8;
const BIAS_PER_ROW: i32 = 16;
/**
 * With TRANS_A and few columns of C (N <= DIRECT_A_MAX_N): read the transposed A in place too,
 * MR consecutive floats per k (the convolution's im2col matrix read as pixels x taps), instead
 * of packing it. Only for callers whose A rows (lda) are not a large power of two apart.
 */
const DIRECT_TRANS_A: i32 = 32;

const ACT_RELU: i32 = 1;
const ACT_GELU: i32 = 2;
const ACT_SILU: i32 = 3;

/** a * b + c: fused where the runtime has relaxed SIMD (an FMA on x86 with FMA3), else mul + add. */
// @ts-ignore: decorator
@inline function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** Bytes of scratch one thread needs for a GEMM of this shape (packed A, packed B, edge tile). */
export function scratch_bytes(M: i32, N: i32, K: i32): i32 {
  const kc = min(KC, max(K, 1));
  const mc = min(MC, roundUp(M, MR));
  const nc = min(NC, roundUp(N, NR));
  return (mc * kc + kc * nc + MR * NR) * 4 + 64;
}

// @ts-ignore: decorator
@inline function roundUp(x: i32, m: i32): i32 {
  return (x + m - 1) / m * m;
}

/** Bytes of the shared scratch of `gemm_tiles`: two counters, then A packed whole. */
export function shared_bytes(M: i32, K: i32): i32 {
  return 64 + roundUp(M, MR) * K * 4;
}

/** Whether the microkernel reads A in place (see DIRECT_A_MAX_N). */
// @ts-ignore: decorator
@inline function readsAInPlace(flags: i32, N: i32): bool {
  return ((flags & TRANS_A) == 0 || (flags & DIRECT_TRANS_A) != 0) && N <= DIRECT_A_MAX_N;
}

/** Claims the next unit of work: returns the counter at `counter` and increments it. */
// @ts-ignore: decorator
@inline function claim(counter: usize): i32 {
  if (ASC_FEATURE_THREADS) return atomic.add<i32>(counter, 1);
  const v = load<i32>(counter);
  store<i32>(counter, v + 1);
  return v;
}

/**
 * Whole products of a batched GEMM (see GemmArgs in gemm.ts for the arguments): all of them on
 * one thread, or, with more threads, each thread claims the next product from the counter at
 * `shared` (zeroed by the caller) until none is left, so a thread the OS sets aside holds up no
 * one. Each thread packs into its own block of `scratch` (`scratchStride` bytes apart).
 */
export function gemm_batches(
  M: i32, N: i32, K: i32,
  a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32,
  batch: i32, strideA: i32, strideB: i32, strideC: i32,
  flags: i32, bias: usize, act: i32,
  shared: usize, scratch: usize, scratchStride: i32,
  tid: i32, nthreads: i32,
): void {
  const work = scratch + <usize>tid * <usize>scratchStride;
  for (let bi = nthreads == 1 ? 0 : claim(shared); bi < batch; bi = nthreads == 1 ? bi + 1 : claim(shared)) {
    gemm_block(
      M, N, K, a + batchOffset(bi, strideA), lda, b + batchOffset(bi, strideB), ldb,
      c + batchOffset(bi, strideC), ldc, flags, bias, act, work, 0, 0, M, 0, N,
    );
  }
}

/**
 * One product split across threads, in one job and without a barrier. Units of work are claimed
 * from the counter at `shared` (zeroed by the caller): first `P` units that each pack a share of
 * op(A) whole into `shared + 64` (KC-deep blocks one after the other, each as MR-row strips),
 * then about 4 x nthreads rectangles of C (cut along N first: A is packed once, only B is packed
 * again per rectangle). A thread that claims a rectangle waits, if need be, until the packing
 * units are done (counted at `shared + 4`); it never waits for a thread that has claimed nothing,
 * so a worker the OS keeps off the CPU holds up no one.
 */
export function gemm_tiles(
  M: i32, N: i32, K: i32,
  a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32,
  flags: i32, bias: usize, act: i32,
  shared: usize, scratch: usize, scratchStride: i32,
  tid: i32, nthreads: i32,
): void {
  const work = scratch + <usize>tid * <usize>scratchStride;
  const packedA = shared + 64, packed = shared + 4;
  const strips = (M + MR - 1) / MR;
  const P = readsAInPlace(flags, N) ? 0 : min(strips, nthreads);
  const units = 4 * nthreads;
  const cols = (N + NR - 1) / NR;
  // A read in place: cut along M only, so that each row of A is read by one rectangle.
  let un = P == 0 && readsAInPlace(flags, N) ? 1 : min(cols, units);
  let um = min(strips, (units + un - 1) / un);
  const nt = (cols + un - 1) / un * NR, mt = (strips + um - 1) / um * MR;
  un = (N + nt - 1) / nt;
  um = (M + mt - 1) / mt;
  for (let u = claim(shared); u < P + um * un; u = claim(shared)) {
    if (u < P) {
      packAWhole(a, lda, flags, M, K, strips * u / P, strips * (u + 1) / P, packedA);
      if (ASC_FEATURE_THREADS) {
        atomic.add<i32>(packed, 1);
        atomic.notify(packed);
      }
      continue;
    }
    if (ASC_FEATURE_THREADS) {
      for (let seen = atomic.load<i32>(packed); seen < P; seen = atomic.load<i32>(packed)) {
        atomic.wait<i32>(packed, seen, 50_000);
      }
    }
    const r = u - P;
    const m0 = (r / un) * mt, n0 = (r % un) * nt;
    gemm_block(
      M, N, K, a, lda, b, ldb, c, ldc, flags, bias, act, work, P > 0 ? packedA : 0,
      m0, min(M, m0 + mt), n0, min(N, n0 + nt),
    );
  }
}

/** Packs strips [s0, s1) of op(A), every KC-deep block, into the whole-A layout of gemm_tiles. */
function packAWhole(a: usize, lda: i32, flags: i32, M: i32, K: i32, s0: i32, s1: i32, dst: usize): void {
  if (s0 >= s1) return;
  const Mpad = roundUp(M, MR);
  const m0 = s0 * MR, m1 = min(M, s1 * MR);
  for (let pc = 0; pc < K; pc += KC) {
    const kc = min(KC, K - pc);
    packA(a, lda, (flags & TRANS_A) != 0, m0, m1 - m0, pc, kc, dst + (<usize>pc * Mpad + <usize>m0 * kc) * 4);
  }
}

// @ts-ignore: decorator
@inline function batchOffset(bi: i32, stride: i32): usize {
  return <usize>bi * <usize>stride * 4;
}

/**
 * C[m0:m1, n0:n1] of one product, by the Goto/BLIS loops around the microkernel. A is packed
 * here block by block, or was packed whole by `pack_a` when `packedA` is not 0 (then m0 is a
 * multiple of MR).
 */
export function gemm_block(
  M: i32, N: i32, K: i32,
  a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32,
  flags: i32, bias: usize, act: i32, work: usize, packedA: usize,
  m0: i32, m1: i32, n0: i32, n1: i32,
): void {
  const accumulate = (flags & ACCUMULATE) != 0;
  const direct = packedA == 0 && readsAInPlace(flags, N);
  const transA = (flags & TRANS_A) != 0;
  // In place, A(r, k) lies at a + r * rs + k * ks bytes.
  const rs: usize = transA ? 4 : <usize>lda * 4, ks: usize = transA ? <usize>lda * 4 : 4;
  if (K == 0) {
    if (!accumulate) {
      for (let m = m0; m < m1; m++) memory.fill(c + (<usize>m * ldc + n0) * 4, 0, (n1 - n0) * 4);
    }
    epilogue(c, ldc, m0, m1 - m0, n0, n1 - n0, flags, bias, act);
    return;
  }
  // The scratch layout of `scratch_bytes`: packed A, packed B, edge tile.
  const kcMax = min(KC, K);
  const ap = work;
  const bp = ap + <usize>(min(MC, roundUp(M, MR)) * kcMax * 4);
  const edge = bp + <usize>(kcMax * min(NC, roundUp(N, NR)) * 4);
  for (let jc = n0; jc < n1; jc += NC) {
    const nc = min(NC, n1 - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = min(KC, K - pc);
      packB(b, ldb, (flags & TRANS_B) != 0, pc, kc, jc, nc, bp);
      const first = pc == 0 && !accumulate;
      for (let ic = m0; ic < m1; ic += MC) {
        const mc = min(MC, m1 - ic);
        // Packed A: strip ir at ablock + ir kc floats. In place: only a last partial strip is
        // packed (at ap), so that no row past M is read.
        let ablock = ap;
        const fullRows = direct ? mc - mc % MR : mc;
        if (packedA) ablock = packedA + (<usize>pc * roundUp(M, MR) + <usize>ic * kc) * 4;
        else if (!direct) packA(a, lda, (flags & TRANS_A) != 0, ic, mc, pc, kc, ap);
        else if (fullRows < mc) packA(a, lda, transA, ic + fullRows, mc - fullRows, pc, kc, ap);
        for (let jr = 0; jr < nc; jr += NR) {
          const bs = bp + <usize>(jr * kc * 4);
          for (let ir = 0; ir < mc; ir += MR) {
            const cp = c + (<usize>(ic + ir) * ldc + <usize>(jc + jr)) * 4;
            const full = ir + MR <= mc && jr + NR <= nc;
            const out = full ? cp : edge, ldo: usize = full ? <usize>ldc * 4 : NR * 4;
            if (direct && ir < fullRows) {
              const as = a + <usize>(ic + ir) * rs + <usize>pc * ks;
              kernelDirect(as, rs, ks, bs, kc, out, ldo, first || !full);
            } else {
              const as = direct ? ap : ablock + <usize>(ir * kc * 4);
              kernel(as, bs, kc, out, ldo, first || !full);
            }
            if (!full) storeEdge(edge, cp, ldc, min(MR, mc - ir), min(NR, nc - jr), first);
          }
        }
        if (pc + kc >= K) epilogue(c, ldc, ic, mc, jc, nc, flags, bias, act);
      }
    }
  }
}

/**
 * Packs A[ic:ic+mc, pc:pc+kc] as MR-row strips, each k-major (`MR` floats per k), zero rows past
 * `mc`. A(m, k) is a[m * lda + k], or a[k * lda + m] with transA.
 */
function packA(a: usize, lda: i32, trans: bool, ic: i32, mc: i32, pc: i32, kc: i32, dst: usize): void {
  for (let ir = 0; ir < mc; ir += MR) {
    const rows = min(MR, mc - ir);
    if (trans) {
      // Rows of op(A) are contiguous columns of the stored matrix.
      let src = a + (<usize>pc * lda + <usize>(ic + ir)) * 4;
      const step = <usize>lda * 4;
      if (rows == MR) {
        for (let k = 0; k < kc; k++) {
          v128.store(dst, v128.load(src));
          store<u64>(dst, load<u64>(src, 16), 16);
          src += step;
          dst += MR * 4;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          for (let r = 0; r < MR; r++) store<f32>(dst + r * 4, r < rows ? load<f32>(src + r * 4) : 0);
          src += step;
          dst += MR * 4;
        }
      }
    } else {
      const row = a + (<usize>(ic + ir) * lda + <usize>pc) * 4;
      const step = <usize>lda * 4;
      if (rows == MR) {
        // Four k at a time: six row loads, then a 4 x 6 transpose through scalar stores.
        let k = 0;
        for (; k + 4 <= kc; k += 4) {
          const o = <usize>k * 4;
          const r0 = v128.load(row + o), r1 = v128.load(row + step + o);
          const r2 = v128.load(row + 2 * step + o), r3 = v128.load(row + 3 * step + o);
          const r4 = v128.load(row + 4 * step + o), r5 = v128.load(row + 5 * step + o);
          // k+0
          const t01 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), t23 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
          const t45 = v128.shuffle<f32>(r4, r5, 0, 4, 1, 5);
          const u01 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7), u23 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
          const u45 = v128.shuffle<f32>(r4, r5, 2, 6, 3, 7);
          // t01 = (r0k0 r1k0 r0k1 r1k1) etc.
          v128.store(dst, v128.shuffle<f32>(t01, t23, 0, 1, 4, 5));
          store<u64>(dst, i64x2.extract_lane(t45, 0), 16);
          v128.store(dst, v128.shuffle<f32>(t01, t23, 2, 3, 6, 7), 24);
          store<u64>(dst, i64x2.extract_lane(t45, 1), 40);
          v128.store(dst, v128.shuffle<f32>(u01, u23, 0, 1, 4, 5), 48);
          store<u64>(dst, i64x2.extract_lane(u45, 0), 64);
          v128.store(dst, v128.shuffle<f32>(u01, u23, 2, 3, 6, 7), 72);
          store<u64>(dst, i64x2.extract_lane(u45, 1), 88);
          dst += 4 * MR * 4;
        }
        for (; k < kc; k++) {
          const o = <usize>k * 4;
          for (let r = 0; r < MR; r++) store<f32>(dst + r * 4, load<f32>(row + <usize>r * step + o));
          dst += MR * 4;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          const o = <usize>k * 4;
          for (let r = 0; r < MR; r++) {
            store<f32>(dst + r * 4, r < rows ? load<f32>(row + <usize>r * step + o) : 0);
          }
          dst += MR * 4;
        }
      }
    }
  }
}

/**
 * Packs B[pc:pc+kc, jc:jc+nc] as NR-column strips, each k-major (`NR` floats per k), zero columns
 * past `nc`. B(k, n) is b[k * ldb + n], or b[n * ldb + k] with transB.
 */
function packB(b: usize, ldb: i32, trans: bool, pc: i32, kc: i32, jc: i32, nc: i32, dst: usize): void {
  const step = <usize>ldb * 4;
  for (let jr = 0; jr < nc; jr += NR) {
    const cols = min(NR, nc - jr);
    if (!trans) {
      let src = b + (<usize>pc * ldb + <usize>(jc + jr)) * 4;
      if (cols == NR) {
        for (let k = 0; k < kc; k++) {
          v128.store(dst, v128.load(src));
          v128.store(dst, v128.load(src, 16), 16);
          src += step;
          dst += NR * 4;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          for (let j = 0; j < NR; j++) store<f32>(dst + j * 4, j < cols ? load<f32>(src + j * 4) : 0);
          src += step;
          dst += NR * 4;
        }
      }
    } else {
      const col = b + (<usize>(jc + jr) * ldb + <usize>pc) * 4;
      if (cols == NR) {
        // Four k at a time from eight stored rows: two 4 x 4 transposes.
        let k = 0;
        for (; k + 4 <= kc; k += 4) {
          const o = <usize>k * 4;
          transpose4(col + o, step, dst, NR * 4);
          transpose4(col + 4 * step + o, step, dst + 16, NR * 4);
          dst += 4 * NR * 4;
        }
        for (; k < kc; k++) {
          const o = <usize>k * 4;
          for (let j = 0; j < NR; j++) store<f32>(dst + j * 4, load<f32>(col + <usize>j * step + o));
          dst += NR * 4;
        }
      } else {
        for (let k = 0; k < kc; k++) {
          const o = <usize>k * 4;
          for (let j = 0; j < NR; j++) {
            store<f32>(dst + j * 4, j < cols ? load<f32>(col + <usize>j * step + o) : 0);
          }
          dst += NR * 4;
        }
      }
    }
  }
}

/** Stores the transpose of the 4 x 4 block at `src` (row step `ss` bytes) to `dst` (step `ds`). */
// @ts-ignore: decorator
@inline function transpose4(src: usize, ss: usize, dst: usize, ds: usize): void {
  const r0 = v128.load(src), r1 = v128.load(src + ss);
  const r2 = v128.load(src + 2 * ss), r3 = v128.load(src + 3 * ss);
  const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5), t1 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
  const t2 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7), t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<f32>(t0, t1, 0, 1, 4, 5));
  v128.store(dst + ds, v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
  v128.store(dst + 2 * ds, v128.shuffle<f32>(t2, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * ds, v128.shuffle<f32>(t2, t3, 2, 3, 6, 7));
}

/**
 * The MR x NR microkernel on a packed A strip (MR floats per k): C (row step `ldc` bytes) =
 * (first ? 0 : C) + sum over k of the A strip times the packed B strip (NR floats per k).
 */
function kernel(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, first: bool): void {
  microkernel(ap, 4, MR * 4, bp, kc, c, ldc, first);
}

/** The microkernel reading MR rows of A in place: A(r, k) at ap + r * rs + k * ks bytes. */
function kernelDirect(
  ap: usize, rs: usize, ks: usize, bp: usize, kc: i32, c: usize, ldc: usize, first: bool,
): void {
  if (rs == 4) microkernel(ap, 4, ks, bp, kc, c, ldc, first);
  else microkernel(ap, rs, 4, bp, kc, c, ldc, first);
}

/** A(r, k) is at ap + r * rs + k * ks bytes. */
// @ts-ignore: decorator
@inline function microkernel(
  ap: usize, rs: usize, ks: usize, bp: usize, kc: i32, c: usize, ldc: usize, first: bool,
): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0), c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0), c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  let c40 = f32x4.splat(0), c41 = f32x4.splat(0), c50 = f32x4.splat(0), c51 = f32x4.splat(0);
  for (let k = 0; k < kc; k++) {
    const b0 = v128.load(bp), b1 = v128.load(bp, 16);
    let x = v128.load32_splat(ap);
    c00 = madd(x, b0, c00);
    c01 = madd(x, b1, c01);
    x = v128.load32_splat(ap + rs);
    c10 = madd(x, b0, c10);
    c11 = madd(x, b1, c11);
    x = v128.load32_splat(ap + 2 * rs);
    c20 = madd(x, b0, c20);
    c21 = madd(x, b1, c21);
    x = v128.load32_splat(ap + 3 * rs);
    c30 = madd(x, b0, c30);
    c31 = madd(x, b1, c31);
    x = v128.load32_splat(ap + 4 * rs);
    c40 = madd(x, b0, c40);
    c41 = madd(x, b1, c41);
    x = v128.load32_splat(ap + 5 * rs);
    c50 = madd(x, b0, c50);
    c51 = madd(x, b1, c51);
    ap += ks;
    bp += NR * 4;
  }
  if (!first) {
    c00 = f32x4.add(c00, v128.load(c));
    c01 = f32x4.add(c01, v128.load(c, 16));
    c10 = f32x4.add(c10, v128.load(c + ldc));
    c11 = f32x4.add(c11, v128.load(c + ldc, 16));
    c20 = f32x4.add(c20, v128.load(c + 2 * ldc));
    c21 = f32x4.add(c21, v128.load(c + 2 * ldc, 16));
    c30 = f32x4.add(c30, v128.load(c + 3 * ldc));
    c31 = f32x4.add(c31, v128.load(c + 3 * ldc, 16));
    c40 = f32x4.add(c40, v128.load(c + 4 * ldc));
    c41 = f32x4.add(c41, v128.load(c + 4 * ldc, 16));
    c50 = f32x4.add(c50, v128.load(c + 5 * ldc));
    c51 = f32x4.add(c51, v128.load(c + 5 * ldc, 16));
  }
  v128.store(c, c00);
  v128.store(c, c01, 16);
  v128.store(c + ldc, c10);
  v128.store(c + ldc, c11, 16);
  v128.store(c + 2 * ldc, c20);
  v128.store(c + 2 * ldc, c21, 16);
  v128.store(c + 3 * ldc, c30);
  v128.store(c + 3 * ldc, c31, 16);
  v128.store(c + 4 * ldc, c40);
  v128.store(c + 4 * ldc, c41, 16);
  v128.store(c + 5 * ldc, c50);
  v128.store(c + 5 * ldc, c51, 16);
}

/** Copies the valid `rows` x `cols` corner of an edge tile (row step NR) into C. */
function storeEdge(tile: usize, c: usize, ldc: i32, rows: i32, cols: i32, first: bool): void {
  for (let r = 0; r < rows; r++) {
    const src = tile + <usize>(r * NR * 4), dst = c + <usize>r * ldc * 4;
    for (let j = 0; j < cols; j++) {
      const o = <usize>j * 4;
      const v = load<f32>(src + o);
      store<f32>(dst + o, first ? v : v + load<f32>(dst + o));
    }
  }
}

/** Adds the bias and applies the activation to C[ic:ic+mc, jc:jc+nc] once its sums are final. */
function epilogue(
  c: usize, ldc: i32, ic: i32, mc: i32, jc: i32, nc: i32, flags: i32, bias: usize, act: i32,
): void {
  const hasBias = (flags & HAS_BIAS) != 0, perRow = (flags & BIAS_PER_ROW) != 0;
  if (!hasBias && act == 0) return;
  for (let m = ic; m < ic + mc; m++) {
    const row = c + (<usize>m * ldc + <usize>jc) * 4;
    const rowBias = hasBias && perRow ? load<f32>(bias + <usize>m * 4) : <f32>0;
    const colBias = bias + <usize>jc * 4;
    let j = 0;
    // Bias and activation four at a time (GELU and SiLU by the float32 vector code of math.ts,
    // as the unfused ops' kernels in unary.ts compute them).
    const rb = f32x4.splat(rowBias);
    for (; j + 4 <= nc; j += 4) {
      const o = <usize>j * 4;
      let v = v128.load(row + o);
      if (hasBias) v = f32x4.add(v, perRow ? rb : v128.load(colBias + o));
      v128.store(row + o, activate4(v, act));
    }
    for (; j < nc; j++) {
      const o = <usize>j * 4;
      let v = load<f32>(row + o);
      if (hasBias) v += perRow ? rowBias : load<f32>(colBias + o);
      store<f32>(row + o, activate(v, act));
    }
  }
}

/** Four values through the activation (GELU and SiLU by the float32 vector code of math.ts). */
// @ts-ignore: decorator
@inline export function activate4(v: v128, act: i32): v128 {
  if (act == ACT_RELU) return f32x4.max(v, f32x4.splat(0));
  if (act == ACT_GELU) return gelu4(v);
  if (act == ACT_SILU) return silu4(v);
  return v;
}

/** One value through the activation: ReLU exactly, GELU and SiLU by the vector code (lane 0). */
// @ts-ignore: decorator
@inline export function activate(x: f32, act: i32): f32 {
  const v = <f64>x;
  // NaN stays NaN, as f32x4.max above and the unfused relu (Math.max) leave it.
  if (act == ACT_RELU) return v > 0 || x != x ? x : 0;
  if (act == ACT_GELU) return f32x4.extract_lane(gelu4(f32x4.splat(x)), 0);
  if (act == ACT_SILU) return f32x4.extract_lane(silu4(f32x4.splat(x)), 0);
  return x;
}
