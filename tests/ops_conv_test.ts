/**
 * conv2d, convTranspose2d, pooling and upsampling against plain float64 references, finite
 * difference gradient checks, and argument errors.
 */
import assert from "node:assert/strict";
import { assertClose, gradCheck, randomArray } from "./_support/check.ts";
import { winogradTile } from "../core/tensor/cpu/winograd.ts";
import {
  adaptiveAvgPool2d,
  avgPool2d,
  conv2d,
  convTranspose2d,
  engineStats,
  maxPool2d,
  noGrad,
  onCpu,
  scope,
  startProfile,
  stopProfile,
  subpixelApplies,
  type Tensor,
  tensor,
  upsampleNearest2d,
  useSubpixelUpsampling,
  useWinograd,
  type WinogradMode,
} from "../core/tensor/mod.ts";

type Arr = ArrayLike<number>;
type Shape4 = [number, number, number, number];

// ---- float64 references --------------------------------------------------------------------

/** Direct convolution; output size per the PyTorch Conv2d docs. */
function refConv2d(
  x: Arr,
  [N, C, H, W]: Shape4,
  w: Arr,
  [O, , kh, kw]: Shape4,
  b: Arr | null,
  s: number,
  p: number,
  act: "none" | "relu" | "silu" = "none",
): { data: Float64Array; shape: Shape4 } {
  const Ho = Math.floor((H + 2 * p - kh) / s) + 1, Wo = Math.floor((W + 2 * p - kw) / s) + 1;
  const y = new Float64Array(N * O * Ho * Wo);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          let acc = b ? b[o] : 0;
          for (let c = 0; c < C; c++) {
            for (let ky = 0; ky < kh; ky++) {
              for (let kx = 0; kx < kw; kx++) {
                const iy = oy * s - p + ky, ix = ox * s - p + kx;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += x[((n * C + c) * H + iy) * W + ix] * w[((o * C + c) * kh + ky) * kw + kx];
              }
            }
          }
          if (act === "relu") acc = Math.max(acc, 0);
          if (act === "silu") acc = acc / (1 + Math.exp(-acc));
          y[((n * O + o) * Ho + oy) * Wo + ox] = acc;
        }
      }
    }
  }
  return { data: y, shape: [N, O, Ho, Wo] };
}

/** Transposed convolution by scattering each input pixel (Dumoulin & Visin 2016, sec. 4). */
function refConvTranspose2d(
  x: Arr,
  [N, C, H, W]: Shape4,
  w: Arr,
  [, O, kh, kw]: Shape4,
  b: Arr | null,
  s: number,
  p: number,
  op: number,
): { data: Float64Array; shape: Shape4 } {
  const Ho = (H - 1) * s - 2 * p + kh + op, Wo = (W - 1) * s - 2 * p + kw + op;
  const y = new Float64Array(N * O * Ho * Wo);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      for (let i = 0; i < Ho * Wo; i++) y[(n * O + o) * Ho * Wo + i] = b ? b[o] : 0;
    }
    for (let c = 0; c < C; c++) {
      for (let iy = 0; iy < H; iy++) {
        for (let ix = 0; ix < W; ix++) {
          const v = x[((n * C + c) * H + iy) * W + ix];
          for (let o = 0; o < O; o++) {
            for (let ky = 0; ky < kh; ky++) {
              for (let kx = 0; kx < kw; kx++) {
                const yy = iy * s - p + ky, yx = ix * s - p + kx;
                if (yy < 0 || yy >= Ho || yx < 0 || yx >= Wo) continue;
                y[((n * O + o) * Ho + yy) * Wo + yx] += v * w[((c * O + o) * kh + ky) * kw + kx];
              }
            }
          }
        }
      }
    }
  }
  return { data: y, shape: [N, O, Ho, Wo] };
}

/** Max or average pooling without padding (PyTorch MaxPool2d/AvgPool2d floor mode). */
function refPool(
  kind: "max" | "avg",
  x: Arr,
  [N, C, H, W]: Shape4,
  k: number,
  s: number,
): { data: Float64Array; shape: Shape4 } {
  const Ho = Math.floor((H - k) / s) + 1, Wo = Math.floor((W - k) / s) + 1;
  const y = new Float64Array(N * C * Ho * Wo);
  for (let pl = 0; pl < N * C; pl++) {
    for (let oy = 0; oy < Ho; oy++) {
      for (let ox = 0; ox < Wo; ox++) {
        let acc = kind === "max" ? -Infinity : 0;
        for (let ky = 0; ky < k; ky++) {
          for (let kx = 0; kx < k; kx++) {
            const v = x[(pl * H + oy * s + ky) * W + ox * s + kx];
            acc = kind === "max" ? Math.max(acc, v) : acc + v;
          }
        }
        y[(pl * Ho + oy) * Wo + ox] = kind === "max" ? acc : acc / (k * k);
      }
    }
  }
  return { data: y, shape: [N, C, Ho, Wo] };
}

/** PyTorch adaptive average pooling: bins [floor(i*H/oh), ceil((i+1)*H/oh)). */
function refAdaptive(x: Arr, [N, C, H, W]: Shape4, oh: number, ow: number): Float64Array {
  const y = new Float64Array(N * C * oh * ow);
  for (let pl = 0; pl < N * C; pl++) {
    for (let oy = 0; oy < oh; oy++) {
      const y0 = Math.floor(oy * H / oh), y1 = Math.ceil((oy + 1) * H / oh);
      for (let ox = 0; ox < ow; ox++) {
        const x0 = Math.floor(ox * W / ow), x1 = Math.ceil((ox + 1) * W / ow);
        let acc = 0;
        for (let yy = y0; yy < y1; yy++) {
          for (let xx = x0; xx < x1; xx++) acc += x[(pl * H + yy) * W + xx];
        }
        y[(pl * oh + oy) * ow + ox] = acc / ((y1 - y0) * (x1 - x0));
      }
    }
  }
  return y;
}

function refUpsample(x: Arr, [N, C, H, W]: Shape4, f: number): Float64Array {
  const Ho = H * f, Wo = W * f;
  const y = new Float64Array(N * C * Ho * Wo);
  for (let pl = 0; pl < N * C; pl++) {
    for (let oy = 0; oy < Ho; oy++) {
      for (let ox = 0; ox < Wo; ox++) {
        y[(pl * Ho + oy) * Wo + ox] = x[(pl * H + Math.floor(oy / f)) * W + Math.floor(ox / f)];
      }
    }
  }
  return y;
}

// ---- helpers -------------------------------------------------------------------------------

const size = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const t = (data: Arr, shape: readonly number[]) => tensor(Float32Array.from(data), shape);

/** Runs `f` on GPU copies of the arrays without a tape and reads the result. */
async function run(
  f: (...xs: Tensor[]) => Tensor,
  inputs: { data: Arr; shape: readonly number[] }[],
): Promise<{ data: ArrayLike<number>; shape: number[] }> {
  const out = noGrad(() => scope(() => f(...inputs.map((i) => t(i.data, i.shape)))));
  const data = await out.read();
  const shape = [...out.shape];
  out.dispose();
  return { data, shape };
}

/** Distinct values spaced >= 0.05 apart, so max pooling's argmax is stable under eps = 1e-2. */
function distinct(n: number, seed: number): Float64Array {
  const r = randomArray(n, seed);
  const order = [...r.keys()].sort((a, b) => r[a] - r[b]);
  const out = new Float64Array(n);
  order.forEach((idx, rank) => (out[idx] = -1 + rank * 0.05));
  return out;
}

// ---- forward against references ------------------------------------------------------------

Deno.test("conv2d() matches the float64 reference", async () => {
  const configs: {
    x: Shape4;
    w: Shape4;
    s: number;
    p: number;
    bias: boolean;
    act?: "relu" | "silu";
  }[] = [
    { x: [2, 3, 5, 5], w: [4, 3, 3, 3], s: 1, p: 1, bias: true },
    { x: [1, 5, 9, 7], w: [7, 5, 3, 3], s: 2, p: 1, bias: true },
    { x: [2, 3, 6, 11], w: [5, 3, 1, 1], s: 1, p: 0, bias: false },
    { x: [1, 2, 8, 6], w: [3, 2, 2, 3], s: 2, p: 0, bias: true, act: "relu" },
    { x: [2, 4, 7, 9], w: [33, 4, 3, 3], s: 1, p: 1, bias: true, act: "silu" },
    { x: [1, 1, 3, 3], w: [2, 1, 5, 5], s: 3, p: 2, bias: false },
    { x: [1, 17, 4, 5], w: [3, 17, 3, 3], s: 1, p: 1, bias: true },
    { x: [2, 3, 10, 9], w: [70, 3, 3, 3], s: 1, p: 1, bias: true },
    // vec4 read paths: K = C*kh*kw and Wo multiples of 4, at strides 1 and 2
    { x: [2, 4, 8, 8], w: [6, 4, 3, 3], s: 1, p: 1, bias: true },
    { x: [1, 4, 9, 16], w: [5, 4, 3, 3], s: 2, p: 1, bias: false, act: "relu" },
  ];
  for (const [i, c] of configs.entries()) {
    const x = randomArray(size(c.x), 10 + i), w = randomArray(size(c.w), 20 + i);
    const b = c.bias ? randomArray(c.w[0], 30 + i) : null;
    const ref = refConv2d(x, c.x, w, c.w, b, c.s, c.p, c.act);
    const inputs: { data: Arr; shape: readonly number[] }[] = [
      { data: x, shape: c.x },
      { data: w, shape: c.w },
    ];
    if (b) inputs.push({ data: b, shape: [c.w[0]] });
    const got = await run(
      (xx, ww, bb) => conv2d(xx, ww, bb, { stride: c.s, padding: c.p, activation: c.act }),
      inputs,
    );
    assert.deepEqual(got.shape, ref.shape, `config ${i}`);
    assertClose(got.data, ref.data, { atol: 1e-4, label: `conv2d config ${i}` });
  }
});

Deno.test("conv2d() applies its activation after the bias while recording gradients", async () => {
  const xs: Shape4 = [1, 2, 4, 4], ws: Shape4 = [3, 2, 3, 3];
  const x = randomArray(size(xs), 1), w = randomArray(size(ws), 2), b = randomArray(3, 3);
  const ref = refConv2d(x, xs, w, ws, b, 1, 1, "silu");
  const wt = t(w, ws);
  wt.requiresGrad = true;
  const out = scope(() => conv2d(t(x, xs), wt, t(b, [3]), { padding: 1, activation: "silu" }));
  assert.ok(out.requiresGrad);
  assertClose(await out.read(), ref.data, { atol: 1e-4, label: "conv2d silu (taped)" });
  out.dispose();
  wt.dispose();
});

Deno.test("convTranspose2d() matches the float64 reference", async () => {
  const configs: { x: Shape4; w: Shape4; s: number; p: number; op: number; bias: boolean }[] = [
    { x: [2, 3, 4, 4], w: [3, 5, 3, 3], s: 1, p: 1, op: 0, bias: true },
    { x: [1, 4, 3, 5], w: [4, 3, 4, 4], s: 2, p: 1, op: 0, bias: true },
    { x: [2, 3, 3, 4], w: [3, 2, 3, 3], s: 2, p: 1, op: 1, bias: false },
    { x: [1, 5, 5, 3], w: [5, 7, 1, 1], s: 1, p: 0, op: 0, bias: true },
    { x: [1, 2, 3, 3], w: [2, 33, 2, 2], s: 2, p: 0, op: 0, bias: true },
    { x: [1, 3, 2, 3], w: [3, 2, 3, 2], s: 3, p: 0, op: 2, bias: false },
    { x: [2, 4, 4, 4], w: [4, 3, 4, 4], s: 2, p: 1, op: 0, bias: true }, // vec4 paths (Wo = 8)
    { x: [1, 4, 4, 4], w: [4, 5, 3, 3], s: 1, p: 0, op: 0, bias: false }, // Wo = 6, K = 36
    { x: [2, 5, 4, 3], w: [5, 6, 1, 1], s: 1, p: 0, op: 0, bias: true }, // 1x1, batch of 2
    { x: [2, 3, 3, 3], w: [3, 4, 1, 1], s: 2, p: 0, op: 1, bias: true }, // 1x1 strided
    // Stride 1 into more channels than read: the CPU's flipped forward convolution.
    { x: [2, 3, 4, 5], w: [3, 6, 3, 2], s: 1, p: 1, op: 0, bias: true },
    { x: [1, 2, 3, 4], w: [2, 5, 2, 3], s: 1, p: 0, op: 0, bias: false },
  ];
  for (const [i, c] of configs.entries()) {
    const x = randomArray(size(c.x), 40 + i), w = randomArray(size(c.w), 50 + i);
    const b = c.bias ? randomArray(c.w[1], 60 + i) : null;
    const ref = refConvTranspose2d(x, c.x, w, c.w, b, c.s, c.p, c.op);
    const inputs: { data: Arr; shape: readonly number[] }[] = [
      { data: x, shape: c.x },
      { data: w, shape: c.w },
    ];
    if (b) inputs.push({ data: b, shape: [c.w[1]] });
    const got = await run(
      (xx, ww, bb) =>
        convTranspose2d(xx, ww, bb, { stride: c.s, padding: c.p, outputPadding: c.op }),
      inputs,
    );
    assert.deepEqual(got.shape, ref.shape, `config ${i}`);
    assertClose(got.data, ref.data, { atol: 1e-4, label: `convTranspose2d config ${i}` });
  }
});

Deno.test("convTranspose2d() upsampling as a sub-pixel 3x3 convolution: values and gradients", async () => {
  // Kernel 2s, stride s, padding s/2: on the CPU (where Winograd runs) a 3x3 convolution with
  // s*s phases of output channels and a pixel shuffle (ops/conv_subpixel.ts). Its values and
  // gradients against the direct path (switched off), and the values against the float64
  // reference where the stride is square.
  const configs: { x: Shape4; w: Shape4; s: [number, number]; bias: boolean }[] = [
    { x: [2, 16, 5, 4], w: [16, 16, 4, 4], s: [2, 2], bias: true },
    { x: [1, 24, 3, 3], w: [24, 16, 8, 8], s: [4, 4], bias: true },
    { x: [2, 16, 3, 5], w: [16, 16, 4, 8], s: [2, 4], bias: false },
  ];
  for (const [i, c] of configs.entries()) {
    const [sy, sx] = c.s, O = c.w[1];
    const opts = { stride: c.s, padding: [sy / 2, sx / 2] as [number, number] };
    const x = randomArray(size(c.x), 70 + i), w = randomArray(size(c.w), 80 + i);
    const b = c.bias ? randomArray(O, 90 + i) : null;
    const outShape = [c.x[0], O, sy * c.x[2], sx * c.x[3]];
    const g = randomArray(size(outShape), 100 + i);
    const pass = async (subpixel: boolean) => {
      const before = useSubpixelUpsampling(subpixel);
      const xt = t(x, c.x), wt = t(w, c.w), bt = b ? t(b, [O]) : null;
      const params = bt ? [xt, wt, bt] : [xt, wt];
      for (const p of params) p.requiresGrad = true;
      const profile = startProfile();
      let y: Tensor;
      try {
        y = scope(() => {
          const y = convTranspose2d(xt, wt, bt, opts);
          y.backward(t(g, outShape));
          return y;
        });
      } finally {
        stopProfile();
        useSubpixelUpsampling(before);
      }
      const ops = new Set(profile.rows().map((r) => r.op));
      const out = [y, ...params.map((p) => p.grad!)];
      const [vy, gx, gw, gb] = await Promise.all(out.map((v) => v.read()));
      for (const v of [...out, ...params]) v.dispose();
      return { vy, gx, gw, gb, subpixel: !ops.has("convTranspose2d") && ops.has("conv2d") };
    };
    const direct = await pass(false), fast = await pass(true);
    const geometry = { sy, sx, py: sy / 2, px: sx / 2, kh: c.w[2], kw: c.w[3], oy: 0, ox: 0 };
    const expected = subpixelApplies(geometry, c.x[1], O, c.x[2], c.x[3]);
    assert.equal(direct.subpixel, false, `config ${i}: switched off, the direct path runs`);
    assert.equal(fast.subpixel, expected, `config ${i}: the route subpixelApplies names`);
    const label = `sub-pixel config ${i}`;
    if (sy === sx) {
      const ref = refConvTranspose2d(x, c.x, w, c.w, b, sy, sy / 2, 0);
      assertClose(fast.vy, ref.data, { atol: 4e-4, label });
    }
    assertClose(fast.vy, direct.vy, { atol: 4e-4, label: `${label} vs direct` });
    assertClose(fast.gx, direct.gx, { atol: 4e-4, label: `${label} grad x` });
    assertClose(fast.gw, direct.gw, { atol: 4e-3, label: `${label} grad w` });
    if (b) assertClose(fast.gb!, direct.gb!, { atol: 4e-3, label: `${label} grad bias` });
  }
});

Deno.test("maxPool2d() and avgPool2d() match the float64 reference", async () => {
  const configs: { x: Shape4; k: number; s?: number }[] = [
    { x: [2, 3, 6, 6], k: 2 },
    { x: [1, 5, 7, 9], k: 3, s: 2 },
    { x: [2, 1, 5, 4], k: 2, s: 1 },
    { x: [1, 2, 3, 5], k: 3 },
  ];
  for (const [i, c] of configs.entries()) {
    const x = randomArray(size(c.x), 70 + i);
    for (const kind of ["max", "avg"] as const) {
      const ref = refPool(kind, x, c.x, c.k, c.s ?? c.k);
      const f = kind === "max" ? maxPool2d : avgPool2d;
      const got = await run((xx) => f(xx, c.k, c.s), [{ data: x, shape: c.x }]);
      assert.deepEqual(got.shape, ref.shape, `${kind} config ${i}`);
      assertClose(got.data, ref.data, { label: `${kind}Pool2d config ${i}` });
    }
  }
});

Deno.test("adaptiveAvgPool2d() matches PyTorch's bins", async () => {
  const configs: { x: Shape4; o: [number, number] }[] = [
    { x: [2, 3, 7, 5], o: [3, 2] },
    { x: [1, 2, 5, 5], o: [1, 1] },
    { x: [1, 1, 4, 6], o: [4, 6] },
    { x: [1, 2, 3, 3], o: [5, 4] },
  ];
  for (const [i, c] of configs.entries()) {
    const x = randomArray(size(c.x), 80 + i);
    const got = await run((xx) => adaptiveAvgPool2d(xx, c.o), [{ data: x, shape: c.x }]);
    assert.deepEqual(got.shape, [c.x[0], c.x[1], ...c.o]);
    assertClose(got.data, refAdaptive(x, c.x, c.o[0], c.o[1]), { label: `adaptive config ${i}` });
  }
});

Deno.test("upsampleNearest2d() matches the float64 reference", async () => {
  for (
    const [i, c] of [{ x: [2, 3, 3, 5] as Shape4, f: 2 }, { x: [1, 2, 2, 3] as Shape4, f: 3 }]
      .entries()
  ) {
    const x = randomArray(size(c.x), 90 + i);
    const got = await run((xx) => upsampleNearest2d(xx, c.f), [{ data: x, shape: c.x }]);
    assert.deepEqual(got.shape, [c.x[0], c.x[1], c.x[2] * c.f, c.x[3] * c.f]);
    assertClose(got.data, refUpsample(x, c.x, c.f), { label: `upsample config ${i}` });
  }
});

// ---- gradients -------------------------------------------------------------------------------

Deno.test("conv2d() gradients match finite differences (x, w, bias)", async () => {
  const xs: Shape4 = [2, 3, 5, 5], ws: Shape4 = [4, 3, 3, 3];
  const inputs = [
    { data: randomArray(size(xs), 101), shape: xs },
    { data: randomArray(size(ws), 102), shape: ws },
    { data: randomArray(4, 103), shape: [4] },
  ];
  await gradCheck((x, w, b) => conv2d(x, w, b, { stride: 2, padding: 1 }), inputs, {
    label: "conv2d s2 p1",
  });
  const xs2: Shape4 = [1, 2, 4, 5], ws2: Shape4 = [3, 2, 2, 3];
  await gradCheck(
    (x, w, b) => conv2d(x, w, b, { padding: 1, activation: "silu" }),
    [
      { data: randomArray(size(xs2), 104), shape: xs2 },
      { data: randomArray(size(ws2), 105), shape: ws2 },
      { data: randomArray(3, 106), shape: [3] },
    ],
    { label: "conv2d s1 p1 silu" },
  );
});

Deno.test("convTranspose2d() gradients match finite differences", async () => {
  const xs: Shape4 = [2, 3, 3, 3], ws: Shape4 = [3, 2, 3, 3];
  await gradCheck(
    (x, w, b) => convTranspose2d(x, w, b, { stride: 2, padding: 1, outputPadding: 1 }),
    [
      { data: randomArray(size(xs), 111), shape: xs },
      { data: randomArray(size(ws), 112), shape: ws },
      { data: randomArray(2, 113), shape: [2] },
    ],
    { label: "convTranspose2d s2 p1 op1" },
  );
});

Deno.test("pooling and upsampling gradients match finite differences", async () => {
  const xs: Shape4 = [2, 3, 5, 5];
  const x = { data: distinct(size(xs), 121), shape: xs };
  await gradCheck((a) => maxPool2d(a, 2), [x], { label: "maxPool2d k2" });
  await gradCheck((a) => maxPool2d(a, 3, 2), [x], { label: "maxPool2d k3 s2" });
  await gradCheck((a) => avgPool2d(a, 3, 2), [x], { label: "avgPool2d k3 s2" });
  await gradCheck((a) => adaptiveAvgPool2d(a, [3, 2]), [x], { label: "adaptiveAvgPool2d" });
  const small: Shape4 = [1, 2, 2, 3];
  await gradCheck((a) => upsampleNearest2d(a, 2), [{ data: randomArray(12, 122), shape: small }], {
    label: "upsampleNearest2d",
  });
});

/** Float64 gradients of conv2d for an output gradient g (by scattering each output tap). */
function refConv2dGrads(
  x: Arr,
  [N, C, H, W]: Shape4,
  w: Arr,
  [O, , kh, kw]: Shape4,
  g: Arr,
  s: number,
  p: number,
): { gx: Float64Array; gw: Float64Array; gb: Float64Array } {
  const Ho = Math.floor((H + 2 * p - kh) / s) + 1, Wo = Math.floor((W + 2 * p - kw) / s) + 1;
  const gx = new Float64Array(N * C * H * W), gw = new Float64Array(O * C * kh * kw);
  const gb = new Float64Array(O);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < O; o++) {
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          const gv = g[((n * O + o) * Ho + oy) * Wo + ox];
          gb[o] += gv;
          for (let c = 0; c < C; c++) {
            for (let ky = 0; ky < kh; ky++) {
              for (let kx = 0; kx < kw; kx++) {
                const iy = oy * s - p + ky, ix = ox * s - p + kx;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                const xi = ((n * C + c) * H + iy) * W + ix, wi = ((o * C + c) * kh + ky) * kw + kx;
                gx[xi] += gv * w[wi];
                gw[wi] += gv * x[xi];
              }
            }
          }
        }
      }
    }
  }
  return { gx, gw, gb };
}

Deno.test("conv2d() gradients match the float64 reference on multi-tile shapes", async () => {
  const configs: { x: Shape4; w: Shape4; s: number; p: number }[] = [
    { x: [2, 5, 9, 8], w: [70, 5, 3, 3], s: 2, p: 1 },
    { x: [3, 19, 6, 7], w: [9, 19, 1, 1], s: 1, p: 0 },
    // vec4 read paths in all three GEMMs, stride 1 and 2
    { x: [2, 4, 8, 12], w: [70, 4, 3, 3], s: 1, p: 1 },
    { x: [2, 8, 9, 16], w: [12, 8, 3, 3], s: 2, p: 1 },
    { x: [2, 3, 24, 24], w: [4, 3, 3, 3], s: 1, p: 1 }, // weight gradient K = 1152: split-K
    { x: [2, 6, 7, 9], w: [5, 6, 1, 1], s: 2, p: 0 }, // 1x1 kernel, strided (not pointwise)
  ];
  for (const [i, c] of configs.entries()) {
    const x = randomArray(size(c.x), 130 + i), w = randomArray(size(c.w), 140 + i);
    const b = randomArray(c.w[0], 150 + i);
    const [xt, wt, bt] = [t(x, c.x), t(w, c.w), t(b, [c.w[0]])];
    for (const p of [xt, wt, bt]) p.requiresGrad = true;
    const outShape = refConv2d(x, c.x, w, c.w, b, c.s, c.p).shape;
    const g = randomArray(size(outShape), 160 + i);
    scope(() => {
      const y = conv2d(xt, wt, bt, { stride: c.s, padding: c.p });
      y.backward(t(g, outShape));
    });
    const ref = refConv2dGrads(x, c.x, w, c.w, g, c.s, c.p);
    assertClose(await xt.grad!.read(), ref.gx, { atol: 1e-4, label: `grad x config ${i}` });
    assertClose(await wt.grad!.read(), ref.gw, { atol: 1e-4, label: `grad w config ${i}` });
    assertClose(await bt.grad!.read(), ref.gb, { atol: 1e-4, label: `grad bias config ${i}` });
    for (const p of [xt, wt, bt]) {
      p.grad!.dispose();
      p.dispose();
    }
  }
});

Deno.test("conv2d() and convTranspose2d() over batches larger than one im2col chunk", async () => {
  // On the CPU each image needs 400 x 96*96 im2col elements, so the 3 images run as chunks of
  // 2 and 1 (several images folded into one GEMM, then a single image written in place).
  const xs: Shape4 = [3, 16, 96, 96], ws: Shape4 = [2, 16, 5, 5];
  const x = randomArray(size(xs), 170), w = randomArray(size(ws), 171), b = randomArray(2, 172);
  const [xt, wt, bt] = [t(x, xs), t(w, ws), t(b, [2])];
  for (const p of [xt, wt, bt]) p.requiresGrad = true;
  const ref = refConv2d(x, xs, w, ws, b, 1, 2);
  const g = randomArray(size(ref.shape), 173);
  const y = scope(() => {
    const y = conv2d(xt, wt, bt, { padding: 2 });
    y.backward(t(g, ref.shape));
    return y;
  });
  assertClose(await y.read(), ref.data, { atol: 1e-3, label: "chunked conv2d" });
  const grads = refConv2dGrads(x, xs, w, ws, g, 1, 2);
  assertClose(await xt.grad!.read(), grads.gx, { atol: 1e-3, label: "chunked grad x" });
  assertClose(await wt.grad!.read(), grads.gw, { atol: 1e-2, label: "chunked grad w" });
  assertClose(await bt.grad!.read(), grads.gb, { atol: 1e-2, label: "chunked grad bias" });
  for (const p of [xt, wt, bt]) p.grad!.dispose();
  for (const v of [xt, wt, bt, y]) v.dispose();
  // Stride 2 with output padding: the GEMM runs over input pixels, col2im scatters the taps.
  const xs2: Shape4 = [3, 2, 96, 96], ws2: Shape4 = [2, 16, 5, 5];
  const x2 = randomArray(size(xs2), 174), w2 = randomArray(size(ws2), 175);
  const ref2 = refConvTranspose2d(x2, xs2, w2, ws2, null, 2, 2, 1);
  const got = await run(
    (a, c) => convTranspose2d(a, c, null, { stride: 2, padding: 2, outputPadding: 1 }),
    [{ data: x2, shape: xs2 }, { data: w2, shape: ws2 }],
  );
  assert.deepEqual(got.shape, ref2.shape);
  assertClose(got.data, ref2.data, { atol: 1e-4, label: "chunked convTranspose2d" });
});

Deno.test("3x3 same convolutions with many channels (Winograd on the CPU) match the references", async () => {
  // On the CPU these take Winograd's F(2x2, 3x3) or F(4x4, 3x3), each config run under both
  // (and under the default rule): sizes that are not a multiple of the tile leave part tiles at
  // the right and bottom; the gradient of x and the stride-1 transposed convolution are its
  // adjoint; the 128x128 shape's scratch (16 x (16 + 32) x 64 x 64 floats an image for F(2x2),
  // 36 x 48 x 32 x 32 for F(4x4), against a budget of 2^23) runs as chunks of 2 and 4 images. Inputs and weights are uniform in [-1, 1], so outputs reach ~10.
  // Tolerances: F(2x2) is within 1e-4 absolute (the products by halves are exact); F(4x4)
  // scales values by up to 100 in the transforms and rounds G's sixths, so its float32 error is
  // 10-20x larger: 4e-4 absolute plus the default 1e-4 relative covers the worst seen, 3.2e-4
  // for 96 -> 64 at 16x16 with outputs up to 42 (docs/benchmarks.md, "2026-12-05: Winograd
  // F(4x4, 3x3)"); the weight gradient sums over every tile of every image and gets ten times
  // the bound (worst 2.5e-3 at 128x128, of gradients up to 369).
  type Config = { x: Shape4; w: Shape4; act?: "relu" | "silu"; atol: number };
  const configs: Config[] = [
    { x: [2, 16, 7, 9], w: [32, 16, 3, 3], act: "silu", atol: 1e-4 },
    { x: [3, 20, 8, 8], w: [28, 20, 3, 3], act: "relu", atol: 1e-4 },
    { x: [1, 32, 1, 5], w: [17, 32, 3, 3], atol: 1e-4 },
    { x: [5, 16, 128, 128], w: [32, 16, 3, 3], atol: 1e-3 },
    { x: [2, 32, 5, 7], w: [16, 32, 3, 3], atol: 1e-4 },
    { x: [2, 16, 6, 6], w: [32, 16, 3, 3], act: "silu", atol: 1e-4 },
    { x: [2, 64, 8, 8], w: [64, 64, 3, 3], atol: 1e-4 },
    { x: [3, 32, 10, 10], w: [96, 32, 3, 3], act: "relu", atol: 1e-4 },
    { x: [2, 32, 32, 32], w: [32, 32, 3, 3], atol: 1e-4 },
    { x: [1, 96, 16, 16], w: [64, 96, 3, 3], atol: 1e-4 },
  ];
  const tiles: WinogradMode[] = onCpu() ? ["2x2", "4x4", "auto"] : ["auto"];
  for (const [i, c] of configs.entries()) {
    const x = randomArray(size(c.x), 180 + i), w = randomArray(size(c.w), 190 + i);
    const b = randomArray(c.w[0], 200 + i);
    const ref = refConv2d(x, c.x, w, c.w, b, 1, 1, c.act);
    const g = randomArray(size(ref.shape), 210 + i);
    const grads = c.act ? null : refConv2dGrads(x, c.x, w, c.w, g, 1, 1);
    for (const tile of tiles) {
      const before = useWinograd(tile);
      const atol = tile === "2x2" ? c.atol : 4 * c.atol;
      const label = `config ${i} (${tile})`;
      try {
        const [xt, wt, bt] = [t(x, c.x), t(w, c.w), t(b, [c.w[0]])];
        for (const p of [xt, wt, bt]) p.requiresGrad = true;
        const y = scope(() => {
          const y = conv2d(xt, wt, bt, { padding: 1, activation: c.act });
          if (!c.act) y.backward(t(g, ref.shape));
          return y;
        });
        assertClose(await y.read(), ref.data, { atol, label: `conv2d ${label}` });
        if (grads) {
          assertClose(await xt.grad!.read(), grads.gx, { atol, label: `grad x ${label}` });
          // Summed over every tile of every image: a looser bound.
          const wtol = atol * 10;
          assertClose(await wt.grad!.read(), grads.gw, { atol: wtol, label: `grad w ${label}` });
          assertClose(await bt.grad!.read(), grads.gb, { atol: wtol, label: `grad bias ${label}` });
          // The transposed convolution of g with the same filters is that gradient (no bias).
          const tr = await run(
            (gg, ww) => convTranspose2d(gg, ww, null, { padding: 1 }),
            [{ data: g, shape: ref.shape }, { data: w, shape: c.w }],
          );
          assertClose(tr.data, grads.gx, { atol, label: `convTranspose2d ${label}` });
        }
        for (const p of [xt, wt, bt]) p.grad?.dispose();
        for (const v of [xt, wt, bt, y]) v.dispose();
      } finally {
        useWinograd(before);
      }
    }
  }
  // The transposed convolution's weight gradient runs the same path with the roles swapped; on
  // the CPU it must agree with im2col + GEMM.
  if (onCpu()) {
    const xs: Shape4 = [2, 16, 9, 6], ws: Shape4 = [16, 32, 3, 3];
    const x = randomArray(size(xs), 220), w = randomArray(size(ws), 221);
    const g = randomArray(2 * 32 * 9 * 6, 222);
    const gradW = async (winograd: WinogradMode) => {
      const before = useWinograd(winograd);
      const wt = t(w, ws);
      wt.requiresGrad = true;
      scope(() =>
        convTranspose2d(t(x, xs), wt, null, { padding: 1 }).backward(t(g, [2, 32, 9, 6]))
      );
      const got = await wt.grad!.read();
      wt.grad!.dispose();
      wt.dispose();
      useWinograd(before);
      return got;
    };
    const im2col = await gradW("off");
    for (const tile of ["2x2", "4x4"] as const) {
      assertClose(await gradW(tile), im2col, {
        atol: tile === "2x2" ? 1e-4 : 4e-4,
        label: `convTranspose2d grad w, Winograd ${tile} vs im2col`,
      });
    }
  }
});

Deno.test("conv2d() weight gradient, with the forward's Winograd transform kept or gone", async () => {
  // On the CPU the Winograd forward keeps x's transform for the weight gradient; a backward after
  // the forward's scope has ended (the transform freed with it) transforms x again. Both give
  // the gradients of a forward and backward in one scope.
  const xs: Shape4 = [2, 32, 8, 8], ws: Shape4 = [32, 32, 3, 3];
  const same3x3 = { sy: 1, sx: 1, py: 1, px: 1, kh: 3, kw: 3 };
  const bufferRequests = () => {
    const { created, reused } = engineStats();
    return created + reused;
  };
  const x = randomArray(size(xs), 230), w = randomArray(size(ws), 231);
  const g = randomArray(size(xs), 232);
  const grads = async (backwardInScope: boolean, backwardTile?: WinogradMode) => {
    const xt = t(x, xs), wt = t(w, ws);
    for (const p of [xt, wt]) p.requiresGrad = true;
    const before = useWinograd(backwardTile ? "4x4" : "auto");
    const kept = onCpu() && winogradTile(same3x3, xs[1], ws[0], xs[2], xs[3], xs[2], xs[3]) !== 0;
    const requestsBefore = bufferRequests();
    let y: Tensor;
    try {
      y = scope(() => {
        const y = conv2d(xt, wt, null, { padding: 1 });
        // A tile changed between forward and backward: the kept transform no longer fits.
        if (backwardTile) useWinograd(backwardTile);
        if (backwardInScope) y.backward(t(g, xs));
        return y;
      });
      if (!backwardInScope) scope(() => y.backward(t(g, xs)));
    } finally {
      useWinograd(before);
    }
    const requests = bufferRequests() - requestsBefore;
    const out = [xt.grad!, wt.grad!];
    const [gx, gw] = await Promise.all(out.map((v) => v.read()));
    for (const v of [...out, xt, wt, y]) v.dispose();
    return { gx, gw, requests, kept };
  };
  await grads(true); // once before counting: the first call also allocates what is kept for good
  const inScope = await grads(true), after = await grads(false);
  const otherTile = await grads(true, "2x2");
  // The same ops either way; only the weight gradient's transform of x is asked for again when
  // the kept one is gone (or was never kept: WebGPU, no WebAssembly kernels).
  assert.equal(
    after.requests - inScope.requests,
    inScope.kept ? 1 : 0,
    "the kept transform reused",
  );
  const ref = refConv2dGrads(x, xs, w, ws, g, 1, 1);
  const cases = [["in scope", inScope], ["after the scope", after], ["on another tile", otherTile]];
  for (
    const [label, got] of cases as [string, { gx: ArrayLike<number>; gw: ArrayLike<number> }][]
  ) {
    assertClose(got.gx, ref.gx, { atol: 4e-4, label: `grad x, backward ${label}` });
    assertClose(got.gw, ref.gw, { atol: 4e-3, label: `grad w, backward ${label}` });
  }
});

// ---- errors ----------------------------------------------------------------------------------

Deno.test("conv and pool ops reject bad input with clear errors", () => {
  scope(() => {
    const x = t(new Float32Array(2 * 3 * 5 * 5), [2, 3, 5, 5]);
    const w = t(new Float32Array(4 * 3 * 3 * 3), [4, 3, 3, 3]);
    assert.throws(
      () => conv2d(x, t(new Float32Array(4 * 2 * 9), [4, 2, 3, 3])),
      /conv2d: channel mismatch: x \[2,3,5,5\] has 3 channels but weight \[4,2,3,3\] expects 2/,
    );
    assert.throws(
      () => conv2d(x, t(new Float32Array(4 * 3 * 49), [4, 3, 7, 7])),
      /conv2d: kernel 7x7 .*larger than the padded input 5x5/,
    );
    assert.throws(
      () => conv2d(x, w, null, { stride: 0 }),
      /conv2d: stride must be positive integers/,
    );
    assert.throws(
      () => conv2d(x, w, null, { padding: -1 }),
      /conv2d: padding must be non-negative/,
    );
    assert.throws(
      () => conv2d(t([1, 2, 3], [3]), w),
      /conv2d: argument "x" must have rank 4, got shape \[3\]/,
    );
    assert.throws(
      () => conv2d(tensor(new Int32Array(150), [2, 3, 5, 5]), w),
      /conv2d: argument "x" must be f32, got i32/,
    );
    assert.throws(() => conv2d(x, w, t([1, 2], [2])), /conv2d: bias \[2\] does not match weight/);
    assert.throws(
      () => convTranspose2d(x, t(new Float32Array(2 * 4 * 9), [2, 4, 3, 3])),
      /convTranspose2d: channel mismatch/,
    );
    assert.throws(
      () =>
        convTranspose2d(x, t(new Float32Array(3 * 4 * 9), [3, 4, 3, 3]), null, {
          stride: 2,
          outputPadding: 2,
        }),
      /convTranspose2d: outputPadding \[2, 2\] must be smaller than stride/,
    );
    assert.throws(() => maxPool2d(x, 6), /maxPool2d: kernel 6x6 is larger than the input/);
    assert.throws(() => avgPool2d(x, 2, 0), /avgPool2d: stride must be positive/);
    assert.throws(
      () => adaptiveAvgPool2d(t([1], [1]), [1, 1]),
      /adaptiveAvgPool2d: argument "x" must have rank 4/,
    );
    assert.throws(
      () => upsampleNearest2d(x, 1.5),
      /upsampleNearest2d: factor must be positive integers/,
    );
  });
});
