import assert from "node:assert/strict";
import {
  backendKind,
  batchNorm2d,
  groupNorm,
  layerNorm,
  profileOps,
  type Tensor,
  tensor,
} from "../core/tensor/mod.ts";
import { assertClose, gradCheck, randomArray } from "./_support/check.ts";

const f32 = (a: ArrayLike<number>, shape: number[]): Tensor => tensor(Float32Array.from(a), shape);

/** Float64 reference: normalise `rows` contiguous rows of length L, affine by channel(row, j). */
function rowNormRef(
  x: Float64Array,
  rows: number,
  L: number,
  channel: (row: number, j: number) => number,
  w: Float64Array | null,
  b: Float64Array | null,
  eps: number,
  silu = false,
): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let j = 0; j < L; j++) m += x[r * L + j];
    m /= L;
    let v = 0;
    for (let j = 0; j < L; j++) v += (x[r * L + j] - m) ** 2;
    v /= L;
    for (let j = 0; j < L; j++) {
      const c = channel(r, j);
      let z = (x[r * L + j] - m) / Math.sqrt(v + eps) * (w ? w[c] : 1) + (b ? b[c] : 0);
      if (silu) z = z / (1 + Math.exp(-z));
      y[r * L + j] = z;
    }
  }
  return y;
}

Deno.test("layerNorm() matches the float64 reference", async () => {
  for (const [rows, D] of [[3, 1], [2, 7], [4, 33], [2, 130], [1, 300]]) {
    const x = randomArray(rows * D, D, -3, 5);
    const w = randomArray(D, D + 1), b = randomArray(D, D + 2);
    const y = layerNorm(f32(x, [rows, D]), f32(w, [D]), f32(b, [D]));
    assertClose(await y.read(), rowNormRef(x, rows, D, (_, j) => j, w, b, 1e-5), {
      atol: 1e-4,
      label: `layerNorm [${rows}, ${D}]`,
    });
    const plain = layerNorm(f32(x, [1, rows, D]));
    assert.deepEqual(plain.shape, [1, rows, D]);
    assertClose(await plain.read(), rowNormRef(x, rows, D, (_, j) => j, null, null, 1e-5), {
      atol: 1e-4,
      label: `layerNorm no affine [${rows}, ${D}]`,
    });
  }
});

Deno.test("layerNorm() gradients (x, weight, bias) match finite differences", async () => {
  const D = 5;
  await gradCheck((x, w, b) => layerNorm(x, w, b), [
    { data: randomArray(3 * D, 1, -2, 2), shape: [3, D] },
    { data: randomArray(D, 2), shape: [D] },
    { data: randomArray(D, 3), shape: [D] },
  ], { label: "layerNorm" });
  // A row longer than the workgroup.
  await gradCheck((x) => layerNorm(x), [{ data: randomArray(70, 4, -2, 2), shape: [1, 70] }], {
    label: "layerNorm long row",
  });
});

Deno.test("groupNorm() matches the float64 reference, with and without SiLU", async () => {
  for (
    const [N, C, H, W, G] of [[2, 4, 3, 3, 2], [1, 6, 1, 1, 3], [2, 8, 5, 4, 2], [1, 3, 7, 7, 1]]
  ) {
    const S = H * W, Cg = C / G;
    const x = randomArray(N * C * S, C * S, -2, 3);
    const w = randomArray(C, 5), b = randomArray(C, 6);
    const channel = (r: number, j: number) => (r % G) * Cg + Math.floor(j / S);
    for (const silu of [false, true]) {
      const y = groupNorm(f32(x, [N, C, H, W]), G, f32(w, [C]), f32(b, [C]), 1e-5, { silu });
      assertClose(await y.read(), rowNormRef(x, N * G, Cg * S, channel, w, b, 1e-5, silu), {
        atol: 1e-4,
        label: `groupNorm [${N},${C},${H},${W}] G=${G} silu=${silu}`,
      });
    }
  }
});

Deno.test("groupNorm() gradients match finite differences, with and without SiLU", async () => {
  const [N, C, H, W] = [2, 4, 2, 1];
  for (const silu of [false, true]) {
    await gradCheck((x, w, b) => groupNorm(x, 2, w, b, 1e-5, { silu }), [
      { data: randomArray(N * C * H * W, 11, -2, 2), shape: [N, C, H, W] },
      { data: randomArray(C, 12, 0.5, 1.5), shape: [C] },
      { data: randomArray(C, 13), shape: [C] },
    ], { label: `groupNorm silu=${silu}` });
  }
  await gradCheck((x) => groupNorm(x, 1, null, null, 1e-5, { silu: true }), [
    { data: randomArray(6, 14, -2, 2), shape: [1, 2, 3] },
  ], { label: "groupNorm no affine" });
});

function batchNormRef(x: Float64Array, N: number, C: number, S: number) {
  const mean = new Float64Array(C), vb = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let m = 0;
    for (let n = 0; n < N; n++) for (let s = 0; s < S; s++) m += x[(n * C + c) * S + s];
    m /= N * S;
    let v = 0;
    for (let n = 0; n < N; n++) for (let s = 0; s < S; s++) v += (x[(n * C + c) * S + s] - m) ** 2;
    mean[c] = m;
    vb[c] = v / (N * S);
  }
  return { mean, vb };
}

Deno.test("batchNorm2d() matches the float64 reference in training and eval mode", async () => {
  const [N, C, H, W] = [3, 2, 2, 3], S = H * W;
  const x = randomArray(N * C * S, 21, -1, 3);
  const w = randomArray(C, 22), b = randomArray(C, 23);
  const rm = randomArray(C, 24), rv = randomArray(C, 25, 0.5, 2);
  const { mean, vb } = batchNormRef(x, N, C, S);
  const out = batchNorm2d(
    f32(x, [N, C, H, W]),
    f32(rm, [C]),
    f32(rv, [C]),
    f32(w, [C]),
    f32(b, [C]),
    {
      training: true,
      momentum: 0.1,
    },
  );
  const expected = Float64Array.from(x, (v, i) => {
    const c = Math.floor(i / S) % C;
    return (v - mean[c]) / Math.sqrt(vb[c] + 1e-5) * w[c] + b[c];
  });
  assertClose(await out.y.read(), expected, { atol: 1e-4, label: "batchNorm2d training y" });
  const n = N * S;
  assertClose(await out.runningMean.read(), Array.from(rm, (v, c) => 0.9 * v + 0.1 * mean[c]), {
    label: "running mean",
  });
  assertClose(
    await out.runningVar.read(),
    Array.from(rv, (v, c) => 0.9 * v + 0.1 * vb[c] * n / (n - 1)),
    {
      label: "running var (unbiased)",
    },
  );
  const ev = batchNorm2d(
    f32(x, [N, C, H, W]),
    f32(rm, [C]),
    f32(rv, [C]),
    f32(w, [C]),
    f32(b, [C]),
    {
      training: false,
    },
  );
  const expectedEval = Float64Array.from(x, (v, i) => {
    const c = Math.floor(i / S) % C;
    return (v - rm[c]) / Math.sqrt(rv[c] + 1e-5) * w[c] + b[c];
  });
  assertClose(await ev.y.read(), expectedEval, { atol: 1e-4, label: "batchNorm2d eval y" });
});

Deno.test("batchNorm2d() without affine parameters, over larger planes, matches the reference", async () => {
  const [N, C, H, W] = [4, 3, 5, 7], S = H * W;
  const x = randomArray(N * C * S, 26, -2, 5);
  const rm = randomArray(C, 27), rv = randomArray(C, 28, 0.5, 2);
  const { mean, vb } = batchNormRef(x, N, C, S);
  const out = batchNorm2d(f32(x, [N, C, H, W]), f32(rm, [C]), f32(rv, [C]), null, null, {
    training: true,
    momentum: 0.25,
    eps: 1e-3,
  });
  const expected = Float64Array.from(x, (v, i) => {
    const c = Math.floor(i / S) % C;
    return (v - mean[c]) / Math.sqrt(vb[c] + 1e-3);
  });
  assertClose(await out.y.read(), expected, { atol: 1e-4, label: "batchNorm2d y" });
  const n = N * S;
  assertClose(await out.runningMean.read(), Array.from(rm, (v, c) => 0.75 * v + 0.25 * mean[c]), {
    label: "running mean",
  });
  assertClose(
    await out.runningVar.read(),
    Array.from(rv, (v, c) => 0.75 * v + 0.25 * vb[c] * n / (n - 1)),
    { label: "running var (unbiased)" },
  );
  // On the CPU the row-norm kernels run it (one op), elsewhere the composed ops.
  const { profile } = profileOps(() =>
    batchNorm2d(f32(x, [N, C, H, W]), f32(rm, [C]), f32(rv, [C]), null, null, { training: true })
  );
  const fused = profile.rows().some((r) => r.op === "batchNorm2d");
  assert.equal(fused, backendKind() === "cpu");
});

Deno.test("batchNorm2d() of [N, C] with a weight and no bias, and of a constant channel", async () => {
  const [N, C] = [5, 3];
  const x = randomArray(N * C, 29, -1, 2);
  for (let n = 0; n < N; n++) x[n * C + 2] = 0.75; // channel 2 is constant: variance 0
  const w = randomArray(C, 30);
  const { mean, vb } = batchNormRef(x, N, C, 1);
  const out = batchNorm2d(
    f32(x, [N, C]),
    f32([0, 0, 0], [C]),
    f32([1, 1, 1], [C]),
    f32(w, [C]),
    null,
    {
      training: true,
      momentum: 1,
    },
  );
  const expected = Float64Array.from(
    x,
    (v, i) => (v - mean[i % C]) / Math.sqrt(vb[i % C] + 1e-5) * w[i % C],
  );
  assertClose(await out.y.read(), expected, { atol: 1e-4, label: "batchNorm2d [N, C] y" });
  const rvNew = await out.runningVar.read();
  assertClose(rvNew, Array.from(vb, (v) => v * N / (N - 1)), { atol: 1e-5, label: "running var" });
  assert.ok(rvNew[2] >= 0, `constant channel's running variance ${rvNew[2]}`);
  await gradCheck(
    (xt, wt) => batchNorm2d(xt, f32([0, 0], [2]), f32([1, 1], [2]), wt, null, { training: true }).y,
    [
      { data: randomArray(4 * 2, 35, -2, 2), shape: [4, 2] },
      { data: randomArray(2, 36, 0.5, 1.5), shape: [2] },
    ],
    { label: "batchNorm2d [N, C], weight only" },
  );
});

Deno.test("batchNorm2d() training gradients match finite differences", async () => {
  const [N, C, H, W] = [2, 2, 2, 1];
  const rm = f32([0, 0], [C]), rv = f32([1, 1], [C]);
  await gradCheck((x, w, b) => batchNorm2d(x, rm, rv, w, b, { training: true }).y, [
    { data: randomArray(N * C * H * W, 31, -2, 2), shape: [N, C, H, W] },
    { data: randomArray(C, 32, 0.5, 1.5), shape: [C] },
    { data: randomArray(C, 33), shape: [C] },
  ], { label: "batchNorm2d" });
  await gradCheck((x) => batchNorm2d(x, rm, rv, null, null, { training: true }).y, [
    { data: randomArray(3 * C * 3, 34, -2, 2), shape: [3, C, 3] },
  ], { label: "batchNorm2d no affine, [N, C, L]" });
});

Deno.test("norm ops reject bad input naming the op and shapes", () => {
  const x = f32(randomArray(24, 1), [2, 4, 3]);
  assert.throws(
    () => layerNorm(x, f32([1, 2], [2])),
    /layerNorm: weight has shape \[2\], expected \[3\]/,
  );
  assert.throws(
    () => groupNorm(x, 3),
    /groupNorm: 3 groups do not divide the 4 channels of input \[2,4,3\]/,
  );
  assert.throws(() => groupNorm(x, 2, f32([1, 2, 3], [3])), /groupNorm: weight has shape \[3\]/);
  assert.throws(
    () => batchNorm2d(x, f32([0, 0], [2]), f32([1, 1, 1, 1], [4]), null, null, { training: true }),
    /batchNorm2d: runningMean has shape \[2\], expected \[4\]/,
  );
  assert.throws(
    () => layerNorm(tensor(new Int32Array(4), [4])),
    /layerNorm: argument "x" must be f32/,
  );
});
