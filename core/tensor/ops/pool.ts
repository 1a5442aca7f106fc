/**
 * Pooling and upsampling over NCHW f32 tensors: max and average pooling, PyTorch's adaptive
 * average pooling, and nearest-neighbour upsampling. Forward kernels run one thread per output;
 * backward kernels one thread per input element, gathering from the outputs whose windows hold
 * it (no atomics). On the CPU every op is a max or mean over one input window per output
 * (cpu/pool.ts), whose backward scatters into the window.
 */
import { record } from "../autograd.ts";
import { cpu, onCpu } from "../backend.ts";
import {
  adaptiveWindows,
  nearestWindows,
  type PlaneGeometry,
  planeGeometry,
  scatterByIndex,
  stridedWindows,
  windowMax,
  windowMean,
} from "../cpu/pool.ts";
import * as view from "../cpu/views.ts";
import { expectDType, expectRank } from "../shape.ts";
import { emptyTensor, type Tensor } from "../tensor.ts";
import { f32Literal, runElementwise } from "../kernels/wgsl.ts";
import { conv2dPair } from "./conv.ts";

type Pair = number | readonly [number, number];

const f32 = (name: string, access: "read" | "read_write" = "read") => ({
  name,
  type: "f32" as const,
  access,
});

/** WGSL lines for the plane index `p` (n*C + c) and pixel `y`, `x` of linear index i. */
function coords(h: number, w: number, y: string, x: string): string {
  return `  let p = i / ${
    h * w
  }u;\n  let ${y} = i32((i / ${w}u) % ${h}u);\n  let ${x} = i32(i % ${w}u);`;
}

function checkX(op: string, x: Tensor): [number, number, number, number] {
  expectDType(op, "x", x, "f32");
  expectRank(op, "x", x, 4);
  const [n, c, h, w] = x.shape;
  return [n, c, h, w];
}

/** Window geometry shared by max and average pooling (no padding; PyTorch's floor mode). */
function poolGeometry(op: string, x: Tensor, kernel: Pair, stride?: Pair) {
  const [n, c, h, w] = checkX(op, x);
  const [kh, kw] = conv2dPair(op, "kernel", kernel, 1);
  const [sy, sx] = conv2dPair(op, "stride", stride ?? [kh, kw], 1);
  if (kh > h || kw > w) {
    throw new Error(`${op}: kernel ${kh}x${kw} is larger than the input x [${x.shape}].`);
  }
  // PyTorch MaxPool2d/AvgPool2d docs: Ho = floor((H - kh) / sy) + 1 (no padding, no ceil mode).
  const ho = Math.floor((h - kh) / sy) + 1, wo = Math.floor((w - kw) / sx) + 1;
  return { n, c, h, w, kh, kw, sy, sx, ho, wo };
}

/** The CPU kernels' view of pooling windows (see cpu/pool.ts). */
function stridedPlanes(g: ReturnType<typeof poolGeometry>): PlaneGeometry {
  const { n, c, h, w } = g;
  return planeGeometry(
    n * c,
    h,
    w,
    stridedWindows(g.ho, g.kh, g.sy),
    stridedWindows(g.wo, g.kw, g.sx),
  );
}

/**
 * Runs a one-input kernel x -> out (forward: X -> Y; backward: G -> GX): on the CPU as the window
 * mean (or its gradient) over `planes`, else as the given WGSL.
 */
function planeKernel(
  x: Tensor,
  out: Tensor,
  planes: PlaneGeometry | null,
  grad: boolean,
  wgsl: { label: string; body: string; prelude?: string },
): void {
  if (planes) {
    cpu().countOp();
    windowMean(view.f32(x), view.f32(out), planes, grad);
    return;
  }
  const [from, to] = grad ? ["G", "GX"] : ["X", "Y"];
  runElementwise({
    ...wgsl,
    n: out.size,
    bindings: [{ binding: f32(from), tensor: x }, { binding: f32(to, "read_write"), tensor: out }],
  });
}

/**
 * WGSL loop header over the outputs (oy, ox) whose windows (start o*s, length k) contain input
 * pixel (y, x): o in [ceil((y - k + 1)/s), floor(y/s)] clipped to [0, out).
 */
function windowsOf(g: { kh: number; kw: number; sy: number; sx: number; ho: number; wo: number }): {
  open: string;
  close: string;
} {
  const lo = (v: string, k: number, s: number) => `max(0, (${v} - ${k - 1} + ${s - 1}) / ${s})`;
  // (v - k + 1 + s - 1) can be negative; i32 division truncates toward zero, which max(0, .)
  // clips correctly because the true ceiling is then <= 0.
  const open = `  let oy0 = ${lo("y", g.kh, g.sy)};
  let oy1 = min(${g.ho - 1}, y / ${g.sy});
  let ox0 = ${lo("x", g.kw, g.sx)};
  let ox1 = min(${g.wo - 1}, x / ${g.sx});
  for (var oy = oy0; oy <= oy1; oy++) {
    for (var ox = ox0; ox <= ox1; ox++) {
      let o = p * ${g.ho * g.wo}u + u32(oy) * ${g.wo}u + u32(ox);`;
  return { open, close: "    }\n  }" };
}

/**
 * Max pooling over kh x kw windows (stride defaults to the kernel). The gradient flows to the
 * first maximum of each window, whose flat input index the forward pass stores.
 */
export function maxPool2d(x: Tensor, kernel: Pair, stride?: Pair): Tensor {
  const op = "maxPool2d";
  const g = poolGeometry(op, x, kernel, stride);
  const out = emptyTensor([g.n, g.c, g.ho, g.wo]);
  const idx = emptyTensor([g.n, g.c, g.ho, g.wo], "u32");
  if (onCpu()) {
    cpu().countOp();
    windowMax(view.f32(x), view.f32(out), view.u32(idx), stridedPlanes(g));
  } else {
    runElementwise({
      label: op,
      n: out.size,
      bindings: [
        { binding: f32("X"), tensor: x },
        { binding: f32("Y", "read_write"), tensor: out },
        { binding: { name: "IDX", type: "u32", access: "read_write" }, tensor: idx },
      ],
      body: `${coords(g.ho, g.wo, "oy", "ox")}
  var best = ${f32Literal(-Infinity)};
  var arg = 0u;
  for (var ky = 0; ky < ${g.kh}; ky++) {
    for (var kx = 0; kx < ${g.kw}; kx++) {
      let j = p * ${g.h * g.w}u + u32(oy * ${g.sy} + ky) * ${g.w}u + u32(ox * ${g.sx} + kx);
      let v = X[j];
      if (v > best || (ky == 0 && kx == 0)) { best = v; arg = j; }
    }
  }
  Y[i] = best;
  IDX[i] = arg;`,
    });
  }
  const recorded = record(out, op, [x], (gy) => {
    const gx = emptyTensor(x.shape);
    if (onCpu()) {
      cpu().countOp();
      scatterByIndex(view.f32(gy), view.u32(idx), view.f32(gx));
      return [gx];
    }
    const win = windowsOf(g);
    runElementwise({
      label: `${op}_grad`,
      n: x.size,
      bindings: [
        { binding: f32("G"), tensor: gy },
        { binding: { name: "IDX", type: "u32", access: "read" }, tensor: idx },
        { binding: f32("GX", "read_write"), tensor: gx },
      ],
      body: `${coords(g.h, g.w, "y", "x")}
  var acc = 0.0;
${win.open}
      if (IDX[o] == i) { acc += G[o]; }
${win.close}
  GX[i] = acc;`,
    });
    return [gx];
  });
  if (!recorded.node) idx.dispose();
  return recorded;
}

/** Average pooling over kh x kw windows (stride defaults to the kernel), dividing by kh*kw. */
export function avgPool2d(x: Tensor, kernel: Pair, stride?: Pair): Tensor {
  const op = "avgPool2d";
  const g = poolGeometry(op, x, kernel, stride);
  const out = emptyTensor([g.n, g.c, g.ho, g.wo]);
  const inv = f32Literal(1 / (g.kh * g.kw));
  const planes = onCpu() ? stridedPlanes(g) : null;
  planeKernel(x, out, planes, false, {
    label: op,
    body: `${coords(g.ho, g.wo, "oy", "ox")}
  var acc = 0.0;
  for (var ky = 0; ky < ${g.kh}; ky++) {
    for (var kx = 0; kx < ${g.kw}; kx++) {
      acc += X[p * ${g.h * g.w}u + u32(oy * ${g.sy} + ky) * ${g.w}u + u32(ox * ${g.sx} + kx)];
    }
  }
  Y[i] = acc * ${inv};`,
  });
  return record(out, op, [x], (gy) => {
    const gx = emptyTensor(x.shape);
    const win = windowsOf(g);
    planeKernel(gy, gx, planes, true, {
      label: `${op}_grad`,
      body: `${coords(g.h, g.w, "y", "x")}
  var acc = 0.0;
${win.open}
      acc += G[o];
${win.close}
  GX[i] = acc * ${inv};`,
    });
    return [gx];
  });
}

/**
 * Adaptive average pooling to [oh, ow] with PyTorch's bins: output row i averages input rows
 * floor(i*H/oh) .. ceil((i+1)*H/oh) - 1 (aten/src/ATen/native/AdaptiveAveragePooling.cpp).
 */
export function adaptiveAvgPool2d(x: Tensor, size: Pair): Tensor {
  const op = "adaptiveAvgPool2d";
  const [n, c, h, w] = checkX(op, x);
  const [oh, ow] = conv2dPair(op, "size", size, 1);
  const out = emptyTensor([n, c, oh, ow]);
  const planes = onCpu()
    ? planeGeometry(n * c, h, w, adaptiveWindows(oh, h), adaptiveWindows(ow, w))
    : null;
  // Bin bounds in WGSL (integer arithmetic, exact): start = floor(o*H/oh), end = ceil((o+1)*H/oh).
  const prelude = `
fn startY(o: i32) -> i32 { return (o * ${h}) / ${oh}; }
fn endY(o: i32) -> i32 { return ((o + 1) * ${h} + ${oh - 1}) / ${oh}; }
fn startX(o: i32) -> i32 { return (o * ${w}) / ${ow}; }
fn endX(o: i32) -> i32 { return ((o + 1) * ${w} + ${ow - 1}) / ${ow}; }`;
  planeKernel(x, out, planes, false, {
    label: op,
    prelude,
    body: `${coords(oh, ow, "oy", "ox")}
  let y0 = startY(oy);
  let y1 = endY(oy);
  let x0 = startX(ox);
  let x1 = endX(ox);
  var acc = 0.0;
  for (var y = y0; y < y1; y++) {
    for (var x = x0; x < x1; x++) { acc += X[p * ${h * w}u + u32(y) * ${w}u + u32(x)]; }
  }
  Y[i] = acc / f32((y1 - y0) * (x1 - x0));`,
  });
  return record(out, op, [x], (gy) => {
    const gx = emptyTensor(x.shape);
    planeKernel(gy, gx, planes, true, {
      label: `${op}_grad`,
      prelude,
      body: `${coords(h, w, "y", "x")}
  var acc = 0.0;
  for (var oy = 0; oy < ${oh}; oy++) {
    let y0 = startY(oy);
    let y1 = endY(oy);
    if (y < y0 || y >= y1) { continue; }
    for (var ox = 0; ox < ${ow}; ox++) {
      let x0 = startX(ox);
      let x1 = endX(ox);
      if (x < x0 || x >= x1) { continue; }
      acc += G[p * ${oh * ow}u + u32(oy) * ${ow}u + u32(ox)] / f32((y1 - y0) * (x1 - x0));
    }
  }
  GX[i] = acc;`,
    });
    return [gx];
  });
}

/** Nearest-neighbour upsampling by an integer factor (one number or [fy, fx]). */
export function upsampleNearest2d(x: Tensor, factor: Pair): Tensor {
  const op = "upsampleNearest2d";
  const [n, c, h, w] = checkX(op, x);
  const [fy, fx] = conv2dPair(op, "factor", factor, 1);
  const ho = h * fy, wo = w * fx;
  const out = emptyTensor([n, c, ho, wo]);
  // On the CPU: the mean over a one-pixel window, whose gradient sums each fy x fx block.
  const planes = onCpu()
    ? planeGeometry(n * c, h, w, nearestWindows(ho, fy), nearestWindows(wo, fx))
    : null;
  planeKernel(x, out, planes, false, {
    label: op,
    body: `${coords(ho, wo, "oy", "ox")}
  Y[i] = X[p * ${h * w}u + u32(oy / ${fy}) * ${w}u + u32(ox / ${fx})];`,
  });
  return record(out, op, [x], (gy) => {
    const gx = emptyTensor(x.shape);
    planeKernel(gy, gx, planes, true, {
      label: `${op}_grad`,
      body: `${coords(h, w, "y", "x")}
  var acc = 0.0;
  for (var dy = 0; dy < ${fy}; dy++) {
    for (var dx = 0; dx < ${fx}; dx++) {
      acc += G[p * ${ho * wo}u + u32(y * ${fy} + dy) * ${wo}u + u32(x * ${fx} + dx)];
    }
  }
  GX[i] = acc;`,
    });
    return [gx];
  });
}
