/**
 * Pooling and upsampling on the CPU backend (the twins of ops/pool.ts). Every one of these ops
 * maps output pixel (oy, ox) of a plane to an input window [y0, y1) x [x0, x1), so one pair of
 * loops serves them all: max or mean over the window forward, and a scatter of the output
 * gradient into the window backward (no atomics to avoid on one thread, so no gather).
 * Windows: strided pooling [o*s, o*s + k), PyTorch's adaptive bins
 * [floor(o*H/oh), ceil((o+1)*H/oh)), nearest upsampling [floor(o/f), floor(o/f) + 1).
 */

/** Input windows along one axis: output o reads [lo[o], hi[o]). */
export interface Windows {
  lo: Int32Array;
  hi: Int32Array;
}

function windows(out: number, bounds: (o: number) => [number, number]): Windows {
  const lo = new Int32Array(out), hi = new Int32Array(out);
  for (let o = 0; o < out; o++) [lo[o], hi[o]] = bounds(o);
  return { lo, hi };
}

/** Windows of length k every s (no padding). */
export function stridedWindows(out: number, k: number, s: number): Windows {
  return windows(out, (o) => [o * s, o * s + k]);
}

/** PyTorch's adaptive pooling bins of n inputs into `out` outputs (integer arithmetic, exact). */
export function adaptiveWindows(out: number, n: number): Windows {
  return windows(out, (o) => [Math.floor(o * n / out), Math.ceil((o + 1) * n / out)]);
}

/** Nearest-neighbour upsampling by f: output o copies input floor(o / f). */
export function nearestWindows(out: number, f: number): Windows {
  return windows(out, (o) => [Math.floor(o / f), Math.floor(o / f) + 1]);
}

/** The windows of every output pixel of a plane, and how many planes (N*C) there are. */
export interface PlaneGeometry {
  planes: number;
  /** Input pixels per plane. */
  plane: number;
  /** Input row length. */
  w: number;
  /** Per output pixel of a plane: window start (offset in its plane), rows, columns. */
  win: Int32Array;
}

/** The windows wy x wx over planes of h x w input pixels. */
export function planeGeometry(
  planes: number,
  h: number,
  w: number,
  wy: Windows,
  wx: Windows,
): PlaneGeometry {
  const ho = wy.lo.length, wo = wx.lo.length;
  const win = new Int32Array(ho * wo * 3);
  for (let oy = 0, t = 0; oy < ho; oy++) {
    for (let ox = 0; ox < wo; ox++, t += 3) {
      win[t] = wy.lo[oy] * w + wx.lo[ox];
      win[t + 1] = wy.hi[oy] - wy.lo[oy];
      win[t + 2] = wx.hi[ox] - wx.lo[ox];
    }
  }
  return { planes, plane: h * w, w, win };
}

/**
 * Forward (`grad` false): dst[i] = the mean of src over output i's window. Backward (`grad`
 * true): each output gradient src[i], divided by its window's size, is added over its window
 * in dst (zeroed first).
 */
export function windowMean(
  src: Float32Array,
  dst: Float32Array,
  g: PlaneGeometry,
  grad: boolean,
): void {
  const { win, w } = g, n = win.length / 3;
  if (grad) dst.fill(0);
  // Plane by plane, so that no output pays a division for its plane and window.
  for (let p = 0, i = 0; p < g.planes; p++) {
    const base = p * g.plane;
    for (let t = 0; t < 3 * n; t += 3, i++) {
      const rows = win[t + 1], cols = win[t + 2];
      const s0 = base + win[t], area = rows * cols;
      if (grad) {
        const v = src[i] / area;
        for (let r = s0; r < s0 + rows * w; r += w) for (let c = r; c < r + cols; c++) dst[c] += v;
      } else {
        let acc = 0;
        for (let r = s0; r < s0 + rows * w; r += w) {
          for (let c = r; c < r + cols; c++) acc += src[c];
        }
        dst[i] = acc / area;
      }
    }
  }
}

/**
 * y = the maximum of each window of x, and idx its flat input index: the first maximum in
 * row-major window order, as the WGSL picks it (a NaN wins only as the window's first element).
 */
export function windowMax(
  x: Float32Array,
  y: Float32Array,
  idx: Uint32Array,
  g: PlaneGeometry,
): void {
  const { win, w } = g, n = win.length / 3;
  for (let p = 0, i = 0; p < g.planes; p++) {
    const base = p * g.plane;
    for (let t = 0; t < 3 * n; t += 3, i++) {
      const rows = win[t + 1], cols = win[t + 2], s0 = base + win[t];
      let arg = s0, best = x[s0];
      for (let r = s0; r < s0 + rows * w; r += w) {
        for (let c = r; c < r + cols; c++) {
          if (x[c] > best) {
            best = x[c];
            arg = c;
          }
        }
      }
      y[i] = best;
      idx[i] = arg;
    }
  }
}

/** Gradient of `windowMax`: each output's gradient to its window's argmax. */
export function scatterByIndex(gy: Float32Array, idx: Uint32Array, gx: Float32Array): void {
  gx.fill(0);
  for (let i = 0; i < gy.length; i++) gx[idx[i]] += gy[i];
}
