/**
 * matmul (2-D, batched, broadcast batch dimensions, every transpose combination, sizes off the
 * tile grid) and linear (bias, fused activations on the no-grad path, unfused with grad) against
 * float64 references, with gradient checks and bad-input errors.
 */
import assert from "node:assert/strict";
import { type Activation, linear, matmul, noGrad, scope, sum, tensor } from "../core/tensor/mod.ts";
import { assertClose, gradCheck, param, randomArray } from "./_support/check.ts";

const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/**
 * float64 op(A) @ op(B) with NumPy batch broadcasting. A is stored [..., M, K] (or [..., K, M]
 * when transA), B [..., K, N] (or [..., N, K] when transB).
 */
function matmulRef(
  a: ArrayLike<number>,
  aShape: number[],
  b: ArrayLike<number>,
  bShape: number[],
  transA = false,
  transB = false,
): { data: Float64Array; shape: number[] } {
  const ar = aShape.length, br = bShape.length;
  const [M, K] = transA ? [aShape[ar - 1], aShape[ar - 2]] : [aShape[ar - 2], aShape[ar - 1]];
  const N = transB ? bShape[br - 2] : bShape[br - 1];
  const ba = aShape.slice(0, -2), bb = bShape.slice(0, -2);
  const rank = Math.max(ba.length, bb.length);
  const pa = [...Array(rank - ba.length).fill(1), ...ba],
    pb = [...Array(rank - bb.length).fill(1), ...bb];
  const batch = pa.map((d, i) => Math.max(d, pb[i]));
  const nb = size(batch);
  const out = new Float64Array(nb * M * N);
  for (let bi = 0; bi < nb; bi++) {
    // Batch coordinates -> the linear batch index of each operand.
    let rem = bi, ia = 0, ib = 0, sa = 1, sb = 1;
    for (let d = rank - 1; d >= 0; d--) {
      const c = rem % batch[d];
      rem = Math.floor(rem / batch[d]);
      if (pa[d] !== 1) ia += c * sa;
      if (pb[d] !== 1) ib += c * sb;
      sa *= pa[d];
      sb *= pb[d];
    }
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++) {
          const av = a[ia * M * K + (transA ? k * M + m : m * K + k)];
          const bv = b[ib * K * N + (transB ? n * K + k : k * N + n)];
          acc += av * bv;
        }
        out[bi * M * N + m * N + n] = acc;
      }
    }
  }
  return { data: out, shape: [...batch, M, N] };
}

function stored(
  M: number,
  K: number,
  N: number,
  batchA: number[],
  batchB: number[],
  tA: boolean,
  tB: boolean,
) {
  return {
    aShape: [...batchA, ...(tA ? [K, M] : [M, K])],
    bShape: [...batchB, ...(tB ? [N, K] : [K, N])],
  };
}

async function checkMatmul(
  M: number,
  K: number,
  N: number,
  batchA: number[] = [],
  batchB: number[] = [],
  seed = 1,
): Promise<void> {
  for (const tA of [false, true]) {
    for (const tB of [false, true]) {
      const { aShape, bShape } = stored(M, K, N, batchA, batchB, tA, tB);
      const ad = Float32Array.from(randomArray(size(aShape), seed));
      const bd = Float32Array.from(randomArray(size(bShape), seed + 1));
      const a = tensor(ad, aShape), b = tensor(bd, bShape);
      const y = matmul(a, b, { transA: tA, transB: tB });
      const want = matmulRef(ad, aShape, bd, bShape, tA, tB);
      const label = `matmul [${aShape}]${tA ? "^T" : ""} x [${bShape}]${tB ? "^T" : ""}`;
      assert.deepEqual([...y.shape], want.shape, label);
      assertClose(await y.read(), want.data, { atol: 1e-5 * Math.max(K, 4), rtol: 1e-4, label });
      for (const t of [a, b, y]) t.dispose();
    }
  }
}

Deno.test("matmul() matches the float64 reference with transposes on 2-D shapes", async () => {
  await checkMatmul(1, 1, 1);
  await checkMatmul(5, 7, 3);
  await checkMatmul(4, 1, 6); // K = 1
  await checkMatmul(3, 16, 2); // K exactly one tile step
  await checkMatmul(2, 17, 9); // K just over
  await checkMatmul(65, 33, 70); // M, N over one 64 tile, K over two 16 steps
  await checkMatmul(32, 32, 32);
  await checkMatmul(33, 5, 31);
});

Deno.test("matmul() matches the float64 reference for batched and broadcast batch dims", async () => {
  await checkMatmul(3, 4, 5, [2], [2]);
  await checkMatmul(3, 4, 5, [2, 1], [3]); // [2,1,M,K] x [3,K,N] -> [2,3,M,N]
  await checkMatmul(2, 3, 4, [], [3]); // 2-D A against a batch of B
  await checkMatmul(2, 3, 4, [2, 3], []); // batch of A against 2-D B
  await checkMatmul(2, 3, 2, [1, 2], [3, 1]);
  await checkMatmul(1, 1, 1, [4], [1]);
  // Partly coalescable batch axes: one batched product over [3, 4] repeated for the leading 2.
  await checkMatmul(3, 4, 5, [2, 3, 4], [3, 4]);
  await checkMatmul(2, 3, 2, [4, 1, 3], [5, 1]); // broadcasts on both sides, interleaved
});

Deno.test("matmul() vec4 read paths (dimensions multiples of 4, mixed, multi-tile, batched)", async () => {
  await checkMatmul(68, 36, 72); // every dimension a multiple of 4, over one 64 tile
  await checkMatmul(8, 20, 12, [2, 1], [3]); // broadcast batch dims with vec4 reads
  await checkMatmul(12, 7, 8); // M and N multiples of 4, K not
  await checkMatmul(5, 8, 9); // K a multiple of 4, M and N not
  await checkMatmul(4, 4, 4, [3], []);
});

Deno.test("matmul() split-K path (few output tiles, K >> M*N)", async () => {
  await checkMatmul(5, 2100, 7); // 4 slices of K, scalar reads
  await checkMatmul(8, 1540, 12, [2], [2]); // batched, vec4 reads, ragged last slice
});

Deno.test("matmul() with zero-sized M or N returns an empty result", () => {
  const a = tensor(new Float32Array(0), [0, 3]), b = tensor(new Float32Array(6), [3, 2]);
  const y = matmul(a, b);
  assert.deepEqual([...y.shape], [0, 2]);
  for (const t of [a, b, y]) t.dispose();
});

Deno.test("matmul() passes finite-difference gradient checks for every transpose combination", async () => {
  for (const tA of [false, true]) {
    for (const tB of [false, true]) {
      const { aShape, bShape } = stored(2, 3, 2, [], [], tA, tB);
      await gradCheck((a, b) => matmul(a, b, { transA: tA, transB: tB }), [
        { data: randomArray(size(aShape), 3), shape: aShape },
        { data: randomArray(size(bShape), 4), shape: bShape },
      ], { label: `matmul tA=${tA} tB=${tB}` });
    }
  }
  // Broadcast batch dims: the gradients are summed back over the broadcast axes.
  for (const [tA, tB] of [[false, false], [true, true]]) {
    const { aShape, bShape } = stored(2, 2, 2, [2, 1], [3], tA, tB);
    await gradCheck((a, b) => matmul(a, b, { transA: tA, transB: tB }), [
      { data: randomArray(size(aShape), 5), shape: aShape },
      { data: randomArray(size(bShape), 6), shape: bShape },
    ], { label: `broadcast matmul tA=${tA} tB=${tB}` });
  }
  await gradCheck((a, b) => matmul(a, b), [
    { data: randomArray(3, 7), shape: [3, 1] },
    { data: randomArray(2, 8), shape: [1, 2] },
  ], { label: "matmul K=1" });
});

// ---- linear -------------------------------------------------------------------------------

const ACT: Record<Activation, (v: number) => number> = {
  none: (v) => v,
  relu: (v) => Math.max(v, 0),
  gelu: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
  silu: (v) => v / (1 + Math.exp(-v)),
};

function linearRef(
  x: ArrayLike<number>,
  xShape: number[],
  w: ArrayLike<number>,
  wShape: number[],
  b: ArrayLike<number> | null,
  act: Activation,
): Float64Array {
  const [outF, inF] = wShape;
  const rows = size(xShape) / inF;
  const out = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let acc = b ? b[o] : 0;
      for (let k = 0; k < inF; k++) acc += x[r * inF + k] * w[o * inF + k];
      out[r * outF + o] = ACT[act](acc);
    }
  }
  return out;
}

Deno.test("linear() matches the float64 reference with and without bias, fused and unfused", async () => {
  const xShape = [2, 3, 5], wShape = [7, 5];
  const xd = Float32Array.from(randomArray(30, 1, -2, 2));
  const wd = Float32Array.from(randomArray(35, 2));
  const bd = Float32Array.from(randomArray(7, 3));
  for (const act of ["none", "relu", "gelu", "silu"] as Activation[]) {
    for (const withBias of [false, true]) {
      for (const grad of [false, true]) {
        const x = grad ? param(xd, xShape) : tensor(xd, xShape);
        const w = tensor(wd, wShape);
        const b = withBias ? tensor(bd, [7]) : null;
        const y = grad ? linear(x, w, b, act) : noGrad(() => linear(x, w, b, act));
        const label = `linear act=${act} bias=${withBias} grad=${grad}`;
        assert.deepEqual([...y.shape], [2, 3, 7], label);
        assert.equal(y.requiresGrad, grad, `${label}: requiresGrad`);
        assertClose(await y.read(), linearRef(xd, xShape, wd, wShape, withBias ? bd : null, act), {
          atol: 1e-5,
          rtol: 1e-4,
          label,
        });
        // The unfused path leaves the pre-activation on the tape; free it with the output.
        const pre = y.node?.inputs[0];
        if (pre && pre !== x) pre.dispose();
        for (const t of [x, w, b, y]) t?.dispose();
      }
    }
  }
});

Deno.test("linear() on shapes off the tile grid and a rank-1 input", async () => {
  for (const [rows, inF, outF] of [[1, 1, 1], [65, 33, 70], [3, 1, 2], [67, 36, 70], [5, 4, 3]]) {
    const xd = Float32Array.from(randomArray(rows * inF, 4));
    const wd = Float32Array.from(randomArray(outF * inF, 5));
    const bd = Float32Array.from(randomArray(outF, 6));
    const x = tensor(xd, [rows, inF]), w = tensor(wd, [outF, inF]), b = tensor(bd, [outF]);
    const y = noGrad(() => linear(x, w, b, "relu"));
    assertClose(await y.read(), linearRef(xd, [rows, inF], wd, [outF, inF], bd, "relu"), {
      atol: 1e-4,
      label: `linear ${rows}x${inF}->${outF}`,
    });
    for (const t of [x, w, b, y]) t.dispose();
  }
  const x = tensor([1, 2], [2]), w = tensor([1, 0, 0, 1, 1, 1], [3, 2]);
  const y = linear(x, w);
  assert.deepEqual([...y.shape], [3]);
  assert.deepEqual([...(await y.read())], [1, 2, 3]);
  for (const t of [x, w, y]) t.dispose();
});

Deno.test("linear() passes gradient checks for x, weight and bias with each activation", async () => {
  const x = { data: randomArray(6, 10, -1.5, 1.5), shape: [2, 3] };
  const w = { data: randomArray(6, 11), shape: [2, 3] };
  const b = { data: [0.3, -0.2], shape: [2] };
  for (const act of ["none", "gelu", "silu"] as Activation[]) {
    await gradCheck((xi, wi, bi) => linear(xi, wi, bi, act), [x, w, b], { label: `linear ${act}` });
  }
  // relu: inputs chosen so no pre-activation sits near the kink at 0.
  await gradCheck((xi, wi) => linear(xi, wi, null, "relu"), [
    { data: [1, 0.5, -0.5, 0.2, 1, 0.7], shape: [2, 3] },
    { data: [1, 1, 1, -1, -1, 0.5], shape: [2, 3] },
  ], { label: "linear relu no bias" });
  await gradCheck(
    (xi, wi) => linear(xi, wi),
    [{ data: randomArray(12, 12), shape: [2, 2, 3] }, w],
    {
      label: "linear rank-3 input",
    },
  );
});

Deno.test("linear() with grad enabled gives the same gradient as the explicit matmul form", async () => {
  const x = param(randomArray(6, 20), [2, 3]);
  const w = param(randomArray(12, 21), [4, 3]);
  scope(() => sum(linear(x, w)).backward());
  const gx1 = await x.grad!.read(), gw1 = await w.grad!.read();
  x.grad!.dispose();
  w.grad!.dispose();
  x.grad = null;
  w.grad = null;
  scope(() => sum(matmul(x, w, { transB: true })).backward());
  assertClose(await x.grad!.read(), gx1, { label: "dx" });
  assertClose(await w.grad!.read(), gw1, { label: "dw" });
  for (const t of [x, w, x.grad!, w.grad!]) t.dispose();
});

// ---- bad input ----------------------------------------------------------------------------

Deno.test("matmul and linear reject mismatched shapes and dtypes naming op and shapes", () => {
  const a = tensor(new Float32Array(6), [2, 3]);
  const b = tensor(new Float32Array(8), [4, 2]);
  const v = tensor(new Float32Array(3), [3]);
  const i = tensor(new Int32Array(6), [3, 2]);
  assert.throws(() => matmul(a, b), /matmul.*\[2,3\].*\[4,2\]/);
  assert.throws(() => matmul(a, a), /matmul.*\[2,3\]/);
  assert.throws(() => matmul(a, v), /matmul.*\[2,3\].*\[3\]/);
  assert.throws(() => matmul(a, i), /matmul.*i32.*\[3,2\]/);
  const ba = tensor(new Float32Array(12), [2, 2, 3]), bb = tensor(new Float32Array(18), [3, 3, 2]);
  assert.throws(() => matmul(ba, bb), /matmul.*\[2\].*\[3\]/);
  assert.throws(() => linear(a, b), /linear.*\[2,3\].*\[4,2\]/);
  const w = tensor(new Float32Array(12), [4, 3]);
  assert.throws(
    () => linear(a, w, tensor(new Float32Array(3), [3])),
    /linear.*bias \[3\].*\[4,3\]/,
  );
  assert.throws(() => linear(a, v), /linear.*\[2,3\].*\[3\]/);
  for (const t of [a, b, v, i, ba, bb, w]) t.dispose();
});

Deno.test("linear(): the fused epilogue (sampling) and the separate op (training) agree", async () => {
  // Both take the activation from the one table: the fused path with no gradient recorded,
  // the unfused one (GEMM, then the activation op) when the inputs need gradients.
  const xs = randomArray(5 * 16, 31, -4, 4), ws = randomArray(8 * 16, 32), bs = randomArray(8, 33);
  for (const act of ["relu", "gelu", "silu"] as Activation[]) {
    const y = noGrad(() =>
      scope(() => linear(tensor(xs, [5, 16]), tensor(ws, [8, 16]), tensor(bs, [8]), act))
    );
    const fused = await y.read();
    y.dispose();
    const x = param(xs, [5, 16]), w = param(ws, [8, 16]), b = param(bs, [8]);
    const unfused = await scope(() => linear(x, w, b, act)).read();
    for (const t of [x, w, b]) t.dispose();
    assertClose(fused, unfused, { label: `linear ${act}`, atol: 1e-6, rtol: 1e-6 });
  }
});
