// Layer and group norm of the CPU backend (AssemblyScript, `deno task wasm`), the twins of
// cpu/norm.ts (see there for the layout): a row is `perRow` channel segments of `S` elements,
// row r's first channel is (r % groups) * perRow. Mean and variance are two float64 passes; the
// output, with the optional fused SiLU, is float32 SIMD. Layer norm (S = 1) walks the channels
// four at a time, group norm (S > 1) each channel's segment. Threads split the rows.

import { madd4, sigmoid4, silu4 } from "./math";
import { hsum2, promoteHigh, rowShare, rowSqDev, rowSum } from "./rowstats";

const HAS_W: i32 = 1;
const HAS_B: i32 = 2;
const SILU: i32 = 4;

// @ts-ignore: decorator
@inline function param(p: usize, c: i32, has: bool, none: f32): f32 {
  return has ? load<f32>(p + (<usize>c << 2)) : none;
}

// @ts-ignore: decorator
@inline function param4(p: usize, c: i32, has: bool, none: f32): v128 {
  return has ? v128.load(p + (<usize>c << 2)) : f32x4.splat(none);
}

/** SiLU on four lanes when `silu`. */
// @ts-ignore: decorator
@inline function act4(z: v128, silu: bool): v128 {
  return silu ? silu4(z) : z;
}

/**
 * y = (x - mean) rstd w + b (then SiLU) for rows of this thread's share, storing each row's
 * mean and rstd (float32) for the backward. w and b are byte addresses, read where `flags` says.
 */
export function norm_forward(
  x: usize, y: usize, mean: usize, rstd: usize, w: usize, b: usize,
  rows: i32, perRow: i32, S: i32, groups: i32, flags: i32, eps: f64,
  tid: i32, nthreads: i32,
): void {
  const share = rowShare(rows, tid, nthreads);
  const hasW = (flags & HAS_W) != 0, hasB = (flags & HAS_B) != 0, silu = (flags & SILU) != 0;
  const L = perRow * S;
  for (let r = <i32>(share >> 32); r < <i32>share; r++) {
    const o = <usize>r * <usize>L * 4;
    const mu = rowSum(x + o, L) / <f64>L;
    const rs = 1 / Math.sqrt(rowSqDev(x + o, L, mu) / <f64>L + eps);
    store<f32>(mean + (<usize>r << 2), <f32>mu);
    store<f32>(rstd + (<usize>r << 2), <f32>rs);
    const c0 = (r % groups) * perRow;
    const xr = x + o, yr = y + o, mu4 = f32x4.splat(<f32>mu);
    if (S == 1) {
      // Layer norm: channel j of the row is element j.
      const rs4 = f32x4.splat(<f32>rs);
      let j = 0;
      for (; j + 4 <= L; j += 4) {
        const a = f32x4.mul(rs4, param4(w, c0 + j, hasW, 1));
        const d = f32x4.sub(v128.load(xr + (<usize>j << 2)), mu4);
        v128.store(yr + (<usize>j << 2), act4(madd4(d, a, param4(b, c0 + j, hasB, 0)), silu));
      }
      for (; j < L; j++) {
        const a = <f32>rs * param(w, c0 + j, hasW, 1);
        const z = (load<f32>(xr + (<usize>j << 2)) - <f32>mu) * a + param(b, c0 + j, hasB, 0);
        store<f32>(yr + (<usize>j << 2), f32x4.extract_lane(act4(f32x4.splat(z), silu), 0));
      }
      continue;
    }
    for (let c = 0; c < perRow; c++) {
      const a = <f32>rs * param(w, c0 + c, hasW, 1), bc = param(b, c0 + c, hasB, 0);
      const a4 = f32x4.splat(a), b4 = f32x4.splat(bc);
      const xs = xr + <usize>c * <usize>S * 4, ys = yr + <usize>c * <usize>S * 4;
      let j = 0;
      for (; j + 4 <= S; j += 4) {
        const d = f32x4.sub(v128.load(xs + (<usize>j << 2)), mu4);
        v128.store(ys + (<usize>j << 2), act4(madd4(d, a4, b4), silu));
      }
      for (; j < S; j++) {
        const z = (load<f32>(xs + (<usize>j << 2)) - <f32>mu) * a + bc;
        store<f32>(ys + (<usize>j << 2), f32x4.extract_lane(act4(f32x4.splat(z), silu), 0));
      }
    }
  }
}

/** The gradient at the pre-activation z from g: g itself, or through the SiLU at z. */
// @ts-ignore: decorator
@inline function gradZ4(z: v128, g: v128, silu: bool): v128 {
  if (!silu) return g;
  // g s (1 + z (1 - s)), s = sigmoid(z)
  const one = f32x4.splat(1);
  const s = sigmoid4(z);
  return f32x4.mul(f32x4.mul(g, s), madd4(z, f32x4.sub(one, s), one));
}

/** Adds the four lanes of `v` into the float64 pair (lo, hi) at acc + 8 c (lanes c .. c + 3). */
// @ts-ignore: decorator
@inline function accumulate4(acc: usize, c: i32, v: v128): void {
  const p = acc + (<usize>c << 3);
  v128.store(p, f64x2.add(v128.load(p), f64x2.promote_low_f32x4(v)));
  v128.store(p + 16, f64x2.add(v128.load(p + 16), promoteHigh(v)));
}

/**
 * Input gradient of `norm_forward` (Ba et al. 2016): dx = rstd (gy - mean(gy) - xhat
 * mean(gy xhat)) with gy = gz w, gz the gradient at the pre-activation; as in cpu/norm.ts.
 * Per-channel sums of gz xhat (weight gradient) and gz (bias gradient) accumulate in float64 into
 * this thread's block at acc + tid * 16 C bytes (C channels of dw, then C of db), zeroed here.
 */
export function norm_backward(
  x: usize, g: usize, mean: usize, rstd: usize, w: usize, b: usize, dx: usize, acc: usize,
  rows: i32, perRow: i32, S: i32, groups: i32, flags: i32,
  tid: i32, nthreads: i32,
): void {
  const share = rowShare(rows, tid, nthreads);
  const hasW = (flags & HAS_W) != 0, hasB = (flags & HAS_B) != 0, silu = (flags & SILU) != 0;
  const C = groups * perRow;
  const dw = acc + <usize>tid * <usize>C * 16, db = dw + <usize>C * 8;
  memory.fill(dw, 0, <usize>C * 16);
  const L = perRow * S;
  for (let r = <i32>(share >> 32); r < <i32>share; r++) {
    const o = <usize>r * <usize>L * 4;
    const xr = x + o, gr = g + o, dr = dx + o;
    const mu = load<f32>(mean + (<usize>r << 2)), rs = load<f32>(rstd + (<usize>r << 2));
    const mu4 = f32x4.splat(mu), rs4 = f32x4.splat(rs);
    const c0 = (r % groups) * perRow;
    // Pass 1: gz into dx; a1 = sum(gz w), a2 = sum(gz w xhat); channel sums.
    let a1: f64 = 0, a2: f64 = 0;
    if (S == 1) {
      let p1 = f64x2.splat(0), p2 = f64x2.splat(0);
      let j = 0;
      for (; j + 4 <= L; j += 4) {
        const q = <usize>j << 2;
        const xh = f32x4.mul(f32x4.sub(v128.load(xr + q), mu4), rs4);
        const wc = param4(w, c0 + j, hasW, 1);
        const gz = gradZ4(madd4(xh, wc, param4(b, c0 + j, hasB, 0)), v128.load(gr + q), silu);
        v128.store(dr + q, gz);
        const gzx = f32x4.mul(gz, xh);
        accumulate4(dw, c0 + j, gzx);
        accumulate4(db, c0 + j, gz);
        const gw = f32x4.mul(gz, wc), gwx = f32x4.mul(gzx, wc);
        p1 = f64x2.add(f64x2.add(p1, f64x2.promote_low_f32x4(gw)), promoteHigh(gw));
        p2 = f64x2.add(f64x2.add(p2, f64x2.promote_low_f32x4(gwx)), promoteHigh(gwx));
      }
      a1 = hsum2(p1);
      a2 = hsum2(p2);
      for (; j < L; j++) {
        const q = <usize>j << 2;
        const xh = (load<f32>(xr + q) - mu) * rs;
        const wc = param(w, c0 + j, hasW, 1);
        const z = xh * wc + param(b, c0 + j, hasB, 0);
        const gz = f32x4.extract_lane(gradZ4(f32x4.splat(z), f32x4.splat(load<f32>(gr + q)), silu), 0);
        store<f32>(dr + q, gz);
        const cq = <usize>(c0 + j) << 3;
        store<f64>(dw + cq, load<f64>(dw + cq) + <f64>gz * <f64>xh);
        store<f64>(db + cq, load<f64>(db + cq) + <f64>gz);
        a1 += <f64>gz * <f64>wc;
        a2 += <f64>gz * <f64>xh * <f64>wc;
      }
    } else {
      for (let c = 0; c < perRow; c++) {
        const wc = param(w, c0 + c, hasW, 1), bc = param(b, c0 + c, hasB, 0);
        const w4 = f32x4.splat(wc), b4 = f32x4.splat(bc);
        const so = <usize>c * <usize>S * 4;
        let sz = f64x2.splat(0), szx = f64x2.splat(0);
        let j = 0;
        for (; j + 4 <= S; j += 4) {
          const q = so + (<usize>j << 2);
          const xh = f32x4.mul(f32x4.sub(v128.load(xr + q), mu4), rs4);
          const gz = gradZ4(madd4(xh, w4, b4), v128.load(gr + q), silu);
          v128.store(dr + q, gz);
          const gzx = f32x4.mul(gz, xh);
          sz = f64x2.add(f64x2.add(sz, f64x2.promote_low_f32x4(gz)), promoteHigh(gz));
          szx = f64x2.add(f64x2.add(szx, f64x2.promote_low_f32x4(gzx)), promoteHigh(gzx));
        }
        let s1 = hsum2(sz), s2 = hsum2(szx);
        for (; j < S; j++) {
          const q = so + (<usize>j << 2);
          const xh = (load<f32>(xr + q) - mu) * rs;
          const gz = f32x4.extract_lane(
            gradZ4(f32x4.splat(xh * wc + bc), f32x4.splat(load<f32>(gr + q)), silu), 0,
          );
          store<f32>(dr + q, gz);
          s1 += <f64>gz;
          s2 += <f64>gz * <f64>xh;
        }
        a1 += s1 * <f64>wc;
        a2 += s2 * <f64>wc;
        const cq = <usize>(c0 + c) << 3;
        store<f64>(dw + cq, load<f64>(dw + cq) + s2);
        store<f64>(db + cq, load<f64>(db + cq) + s1);
      }
    }
    // Pass 2: dx = rstd (gz w - m1 - xhat m2) = gz (rstd w) + (x - mu) (-rstd^2 m2) - rstd m1.
    const m1 = a1 / <f64>L, m2 = a2 / <f64>L;
    const k2 = f32x4.splat(<f32>(-<f64>rs * <f64>rs * m2));
    const k0 = f32x4.splat(<f32>(-<f64>rs * m1));
    for (let c = 0; c < perRow; c += S == 1 ? L : 1) {
      // S == 1: one pass over the row with per-element weights; else per channel segment.
      const n = S == 1 ? L : S;
      const so = <usize>c * <usize>S * 4;
      let j = 0;
      for (; j + 4 <= n; j += 4) {
        const q = so + (<usize>j << 2);
        const k1 = f32x4.mul(rs4, S == 1 ? param4(w, c0 + j, hasW, 1) : f32x4.splat(param(w, c0 + c, hasW, 1)));
        const v = madd4(v128.load(dr + q), k1, madd4(f32x4.sub(v128.load(xr + q), mu4), k2, k0));
        v128.store(dr + q, v);
      }
      for (; j < n; j++) {
        const q = so + (<usize>j << 2);
        const k1 = rs * param(w, c0 + (S == 1 ? j : c), hasW, 1);
        const v = load<f32>(dr + q) * k1 + (load<f32>(xr + q) - mu) * f32x4.extract_lane(k2, 0) +
          f32x4.extract_lane(k0, 0);
        store<f32>(dr + q, v);
      }
    }
  }
}
