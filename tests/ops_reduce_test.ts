/**
 * Reductions (sum, mean, max, variance, sumTo) against float64 references over single, multiple
 * and negative axes with and without keepdim, on both kernel paths (<= 32 elements per output:
 * one thread per output; longer rows: a workgroup tree), plus gradients and bad input.
 */
import assert from "node:assert/strict";
import { max, mean, sum, sumTo, type Tensor, tensor, variance } from "../core/tensor/mod.ts";
import { assertClose, gradCheck, randomArray } from "./_support/check.ts";

type Kind = "sum" | "mean" | "max" | "var" | "var1";

/** float64 reduction of `data` (shape) over `axes` (non-negative); returns the keepdim shape. */
function reduceRef(
  data: ArrayLike<number>,
  shape: number[],
  axes: number[],
  kind: Kind,
): { data: Float64Array; keepShape: number[] } {
  const keepShape = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const nOut = keepShape.reduce((a, b) => a * b, 1);
  const groups: number[][] = Array.from({ length: nOut }, () => []);
  const n = shape.reduce((a, b) => a * b, 1);
  for (let i = 0; i < n; i++) {
    let rem = i, o = 0, stride = 1;
    const coords: number[] = [];
    for (let d = shape.length - 1; d >= 0; d--) {
      coords[d] = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
    }
    for (let d = shape.length - 1; d >= 0; d--) {
      o += (axes.includes(d) ? 0 : coords[d]) * stride;
      stride *= keepShape[d];
    }
    groups[o].push(data[i]);
  }
  const out = groups.map((g) => {
    const s = g.reduce((a, b) => a + b, 0);
    if (kind === "sum") return s;
    if (kind === "mean") return s / g.length;
    if (kind === "max") return Math.max(...g);
    const m = s / g.length;
    const ss = g.reduce((a, b) => a + (b - m) ** 2, 0);
    // The engine divides by max(n - 1, 1): a single sample has variance 0, not NaN.
    return ss / (kind === "var1" ? Math.max(g.length - 1, 1) : g.length);
  });
  return { data: Float64Array.from(out), keepShape };
}

function apply(
  kind: Kind,
  x: Tensor,
  axes: number | number[] | undefined,
  keepdim: boolean,
): Tensor {
  switch (kind) {
    case "sum":
      return sum(x, axes, keepdim);
    case "mean":
      return mean(x, axes, keepdim);
    case "max":
      return max(x, axes, keepdim);
    case "var":
      return variance(x, axes, keepdim);
    case "var1":
      return variance(x, axes, keepdim, true);
  }
}

const KINDS: Kind[] = ["sum", "mean", "max", "var", "var1"];

async function check(
  shape: number[],
  axes: number | number[] | undefined,
  seed: number,
): Promise<void> {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Float32Array.from(randomArray(n, seed, -2, 2));
  const norm = axes === undefined
    ? shape.map((_, i) => i)
    : (Array.isArray(axes) ? axes : [axes]).map((a) => (a < 0 ? a + shape.length : a));
  for (const kind of KINDS) {
    const ref = reduceRef(data, shape, norm, kind);
    for (const keepdim of [false, true]) {
      const x = tensor(data, shape);
      const y = apply(kind, x, axes, keepdim);
      const wantShape = keepdim ? ref.keepShape : shape.filter((_, i) => !norm.includes(i));
      const label = `${kind} of [${shape}] over ${JSON.stringify(axes)} keepdim=${keepdim}`;
      assert.deepEqual([...y.shape], wantShape, label);
      assertClose(await y.read(), ref.data, { atol: 2e-5, rtol: 2e-4, label });
      y.dispose();
      x.dispose();
    }
  }
}

Deno.test("sum, mean, max and variance over single axes match the float64 reference", async () => {
  await check([3, 4, 5], 0, 1);
  await check([3, 4, 5], 1, 2);
  await check([3, 4, 5], 2, 3);
  await check([3, 4, 5], -1, 4);
  await check([3, 4, 5], -3, 5);
});

Deno.test("reductions over multiple and all axes match the float64 reference", async () => {
  await check([3, 4, 5], [0, 2], 6);
  await check([3, 4, 5], [-1, -2], 7);
  await check([2, 3, 2, 3], [1, 3], 8);
  await check([3, 4, 5], undefined, 9);
  await check([7], 0, 10);
});

Deno.test("reductions over rows longer than 64 use the workgroup tree and stay exact", async () => {
  await check([3, 100], -1, 11); // 100 > 64: tree path, strided partials
  await check([2, 257], 1, 12); // odd length, several strides per thread
  await check([130, 2], 0, 13); // long reduced axis with a non-unit stride
  await check([5, 6, 7], [0, 1, 2], 14); // 210 elements, all axes
  await check([4, 32], 1, 15); // exactly 32: the per-thread loop
  await check([4, 33], 1, 16); // 33: just over, the tree with idle threads
  await check([4, 64], 1, 17); // exactly one full workgroup
  await check([4, 65], 1, 18);
});

Deno.test("reductions with kept inner rows and alternating reduced and kept axes", async () => {
  await check([4, 3, 50], [0, 1], 20); // leading axes: whole rows fold into the output row
  await check([5, 40, 3, 6], [1, 3], 21); // reduced, kept, reduced runs
  await check([2, 3, 4, 5], [0, 2], 22); // kept inner run after a reduced one
  await check([3, 1, 4, 1, 5], [1, 2, 3], 23); // size-1 axes among the reduced ones
});

Deno.test("sum and max over size-1 axes and of a rank-0 tensor", async () => {
  await check([3, 1, 4], 1, 19);
  const s = tensor([2.5], []);
  const y = sum(s);
  assert.deepEqual([...y.shape], []);
  assert.equal(await y.item(), 2.5);
  for (const t of [s, y]) t.dispose();
});

Deno.test("max handles all-negative rows and -Infinity", async () => {
  const x = tensor([-5, -3, -9, -Infinity, -Infinity, -Infinity], [2, 3]);
  const y = max(x, 1);
  assert.deepEqual([...(await y.read())], [-3, -Infinity]);
  const long = tensor(Float32Array.from({ length: 100 }, (_, i) => -1000 - i), [1, 100]);
  const z = max(long, -1);
  assert.deepEqual([...(await z.read())], [-1000]);
  for (const t of [x, y, long, z]) t.dispose();
});

Deno.test("reductions with more than 65535 outputs use a 2-D grid on the tree path", async () => {
  const rows = 66000, cols = 40;
  const data = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) data[r * cols + c] = (r % 7) + c * 0.25;
  }
  const x = tensor(data, [rows, cols]);
  const s = sum(x, 1);
  const got = await s.read();
  const rowSum = (r: number) => (r % 7) * cols + 0.25 * (cols * (cols - 1)) / 2;
  for (const r of [0, 1, 65534, 65535, 65536, 65999]) assert.equal(got[r], rowSum(r), `row ${r}`);
  const m = max(x, 1);
  const gm = await m.read();
  for (const r of [0, 65535, 65999]) {
    assert.equal(gm[r], (r % 7) + (cols - 1) * 0.25, `max row ${r}`);
  }
  for (const t of [x, s, m]) t.dispose();
});

Deno.test("sumTo folds a broadcast gradient back to leading and size-1 axes", async () => {
  const data = Float32Array.from(randomArray(24, 20), (v) => v);
  const g = tensor(data, [2, 3, 4]);
  const cases: [number[], number[]][] = [
    [[3, 4], [0]],
    [[1, 4], [0, 1]],
    [[3, 1], [0, 2]],
    [[2, 1, 4], [1]],
    [[4], [0, 1]],
    [[2, 3, 4], []],
  ];
  for (const [shape, axes] of cases) {
    const y = sumTo(g, shape);
    assert.deepEqual([...y.shape], shape);
    const ref = reduceRef(data, [2, 3, 4], axes, "sum");
    assertClose(await y.read(), ref.data, { label: `sumTo [${shape}]` });
    if (y !== g) y.dispose();
  }
  g.dispose();
});

Deno.test("reductions pass finite-difference gradient checks", async () => {
  const x = { data: randomArray(12, 30, -1.5, 1.5), shape: [2, 3, 2] };
  await gradCheck((t) => sum(t), [x], { label: "sum all" });
  await gradCheck((t) => sum(t, 1), [x], { label: "sum axis 1" });
  await gradCheck((t) => sum(t, [0, -1], true), [x], { label: "sum [0,-1] keepdim" });
  await gradCheck((t) => mean(t, -1), [x], { label: "mean -1" });
  await gradCheck((t) => mean(t, [0, 2], true), [x], { label: "mean [0,2]" });
  await gradCheck((t) => variance(t, 1), [x], { label: "var 1" });
  await gradCheck((t) => variance(t, [0, 2], true, true), [x], { label: "var unbiased" });
  // Distinct values (no ties) so max is differentiable.
  const distinct = {
    data: [0.3, -1.2, 1.7, 0.9, -0.4, 2.2, -2.0, 1.1, 0.0, -0.7, 1.4, 0.6],
    shape: [2, 3, 2],
  };
  await gradCheck((t) => max(t, 1), [distinct], { label: "max 1" });
  await gradCheck((t) => max(t, [0, 2], true), [distinct], { label: "max [0,2]" });
  await gradCheck((t) => max(t), [distinct], { label: "max all" });
  // The tree path (row of 70) through mean.
  await gradCheck((t) => mean(t, 1), [{ data: randomArray(70, 31), shape: [1, 70] }], {
    label: "mean long row",
  });
});

Deno.test("reductions reject out-of-range and repeated axes and wrong dtypes, naming the op", () => {
  const x = tensor(new Float32Array(6), [2, 3]);
  assert.throws(() => sum(x, 2), /sum.*axis 2.*rank 2/);
  assert.throws(() => sum(x, -3), /sum.*axis -3/);
  assert.throws(() => mean(x, 5), /mean.*axis 5/);
  assert.throws(() => max(x, [0, 7]), /max.*axis 7/);
  assert.throws(() => variance(x, 9), /var.*axis 9/);
  assert.throws(() => sum(x, [1, -1]), /sum.*repeated axis/);
  assert.throws(() => sum(x, 0.5), /sum.*axis 0.5/);
  const i = tensor(new Int32Array([1, 2]), [2]);
  assert.throws(() => sum(i), /sum.*i32.*\[2\]/);
  assert.throws(() => max(i), /max.*i32.*\[2\]/);
  for (const t of [x, i]) t.dispose();
});
