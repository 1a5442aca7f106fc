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

/** Planes (N*C) and the input and output sizes of one plane. */
export interface PlaneGeometry {
  planes: number;
  h: number;
  w: number;
  wy: Windows;
  wx: Windows;
}

/** y = the mean of each window of x (sum, then divide by the window's size). */
export function windowMean(x: Float32Array, y: Float32Array, g: PlaneGeometry): void {
  const { h, w, wy, wx } = g;
  const ho = wy.lo.length, wo = wx.lo.length;
  for (let p = 0, i = 0; p < g.planes; p++) {
    const base = p * h * w;
    for (let oy = 0; oy < ho; oy++) {
      const y0 = wy.lo[oy], y1 = wy.hi[oy];
      for (let ox = 0; ox < wo; ox++, i++) {
        const x0 = wx.lo[ox], x1 = wx.hi[ox];
        let acc = 0;
        for (let yy = y0; yy < y1; yy++) {
          const r = base + yy * w;
          for (let xx = x0; xx < x1; xx++) acc += x[r + xx];
        }
        y[i] = acc / ((y1 - y0) * (x1 - x0));
      }
    }
  }
}

/** Gradient of `windowMean`: each output's gradient, divided by its window size, to its window. */
export function windowMeanGrad(gy: Float32Array, gx: Float32Array, g: PlaneGeometry): void {
  const { h, w, wy, wx } = g;
  const ho = wy.lo.length, wo = wx.lo.length;
  gx.fill(0);
  for (let p = 0, i = 0; p < g.planes; p++) {
    const base = p * h * w;
    for (let oy = 0; oy < ho; oy++) {
      const y0 = wy.lo[oy], y1 = wy.hi[oy];
      for (let ox = 0; ox < wo; ox++, i++) {
        const x0 = wx.lo[ox], x1 = wx.hi[ox];
        const v = gy[i] / ((y1 - y0) * (x1 - x0));
        for (let yy = y0; yy < y1; yy++) {
          const r = base + yy * w;
          for (let xx = x0; xx < x1; xx++) gx[r + xx] += v;
        }
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
  const { h, w, wy, wx } = g;
  const ho = wy.lo.length, wo = wx.lo.length;
  for (let p = 0, i = 0; p < g.planes; p++) {
    const base = p * h * w;
    for (let oy = 0; oy < ho; oy++) {
      const y0 = wy.lo[oy], y1 = wy.hi[oy];
      for (let ox = 0; ox < wo; ox++, i++) {
        const x0 = wx.lo[ox], x1 = wx.hi[ox];
        let arg = base + y0 * w + x0, best = x[arg];
        for (let yy = y0; yy < y1; yy++) {
          const r = base + yy * w;
          for (let xx = x0; xx < x1; xx++) {
            if (x[r + xx] > best) {
              best = x[r + xx];
              arg = r + xx;
            }
          }
        }
        y[i] = best;
        idx[i] = arg;
      }
    }
  }
}

/** Gradient of `windowMax`: each output's gradient to its window's argmax. */
export function scatterByIndex(gy: Float32Array, idx: Uint32Array, gx: Float32Array): void {
  gx.fill(0);
  for (let i = 0; i < gy.length; i++) gx[idx[i]] += gy[i];
}
