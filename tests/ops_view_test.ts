/**
 * Layout ops (reshape, expand, permute, transpose, slice, pad, flip, concat, clone, unsqueeze,
 * squeeze) against float64 host references, their gradients, view storage sharing, and errors.
 */
import assert from "node:assert/strict";
import {
  clone,
  concat,
  expand,
  flip,
  pad,
  permute,
  reshape,
  slice,
  squeeze,
  type Tensor,
  tensor,
  transpose,
  unsqueeze,
} from "../core/tensor/mod.ts";
import { assertClose, gradCheck, randomArray } from "./_support/check.ts";

// ---- host references ------------------------------------------------------------------------

interface Host {
  data: Float64Array;
  shape: number[];
}

const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

function strides(shape: readonly number[]): number[] {
  const s: number[] = [];
  let n = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = n;
    n *= shape[i];
  }
  return s;
}

function coordsOf(i: number, shape: readonly number[]): number[] {
  const c: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    c[d] = i % shape[d];
    i = Math.floor(i / shape[d]);
  }
  return c;
}

/** out[c] = src(c) for every coordinate c of `shape`. */
function build(shape: number[], src: (c: number[]) => number): Host {
  const data = new Float64Array(size(shape));
  for (let i = 0; i < data.length; i++) data[i] = src(coordsOf(i, shape));
  return { data, shape };
}

function at(x: Host, c: number[]): number {
  const s = strides(x.shape);
  return x.data[c.reduce((o, v, k) => o + v * s[k], 0)];
}

const refPermute = (x: Host, p: number[]): Host =>
  build(p.map((a) => x.shape[a]), (c) => {
    const src: number[] = [];
    p.forEach((a, k) => (src[a] = c[k]));
    return at(x, src);
  });

const refExpand = (x: Host, shape: number[]): Host =>
  build(shape, (c) => {
    const off = shape.length - x.shape.length;
    return at(x, x.shape.map((d, i) => (d === 1 ? 0 : c[i + off])));
  });

/** Python-style slice [start:end:step] along axis. */
function refSlice(x: Host, axis: number, start: number, end: number, step: number): Host {
  const n = x.shape[axis];
  const idx: number[] = [];
  const s = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
  const e = Math.min(Math.max(end < 0 ? end + n : end, 0), n);
  for (let i = s; i < e; i += step) idx.push(i);
  const shape = x.shape.map((d, i) => (i === axis ? idx.length : d));
  return build(shape, (c) => at(x, c.map((v, i) => (i === axis ? idx[v] : v))));
}

const refPad = (x: Host, w: [number, number][]): Host =>
  build(x.shape.map((d, i) => d + w[i][0] + w[i][1]), (c) => {
    const src = c.map((v, i) => v - w[i][0]);
    return src.every((v, i) => v >= 0 && v < x.shape[i]) ? at(x, src) : 0;
  });

const refFlip = (x: Host, axes: number[]): Host =>
  build(x.shape, (c) => at(x, c.map((v, i) => (axes.includes(i) ? x.shape[i] - 1 - v : v))));

function refConcat(xs: Host[], axis: number): Host {
  const shape = [...xs[0].shape];
  shape[axis] = xs.reduce((n, x) => n + x.shape[axis], 0);
  return build(shape, (c) => {
    let v = c[axis];
    for (const x of xs) {
      if (v < x.shape[axis]) return at(x, c.map((u, i) => (i === axis ? v : u)));
      v -= x.shape[axis];
    }
    throw new Error("unreachable");
  });
}

function host(shape: number[], seed: number): Host {
  return { data: Float64Array.from(Float32Array.from(randomArray(size(shape), seed))), shape };
}

const dev = (x: Host): Tensor => tensor(Float32Array.from(x.data), x.shape);

async function expectEqual(t: Tensor, want: Host, label: string): Promise<void> {
  assert.deepEqual([...t.shape], want.shape, `${label}: shape`);
  assertClose(await t.read(), want.data, { atol: 0, rtol: 0, label });
}

// ---- forward -------------------------------------------------------------------------------

Deno.test("reshape with -1 shares storage and keeps row-major order", async () => {
  const h = host([2, 3, 4], 1);
  const x = dev(h);
  for (
    const [shape, want] of [[[6, -1], [6, 4]], [[-1], [24]], [[2, -1, 2], [2, 6, 2]], [[24, 1], [
      24,
      1,
    ]]]
  ) {
    const y = reshape(x, shape);
    assert.deepEqual([...y.shape], want);
    assert.equal(y.storage, x.storage, "reshape is a view");
    assertClose(await y.read(), h.data, { atol: 0, rtol: 0 });
    y.dispose();
  }
  x.dispose();
});

Deno.test("expand repeats size-1 and leading dimensions", async () => {
  const cases: [number[], number[]][] = [[[3, 1], [3, 4]], [[1, 4], [2, 3, 4]], [[2, 1, 3], [
    4,
    2,
    5,
    3,
  ]], [[1], [5]]];
  for (const [from, to] of cases) {
    const h = host(from, 2);
    const x = dev(h);
    const y = expand(x, to);
    await expectEqual(y, refExpand(h, to), `expand [${from}] -> [${to}]`);
    y.dispose();
    x.dispose();
  }
});

Deno.test("permute and transpose match the host reference", async () => {
  const h = host([2, 3, 4, 5], 3);
  const x = dev(h);
  for (const p of [[3, 2, 1, 0], [0, 2, 1, 3], [1, 3, 0, 2], [0, 1, 2, 3]]) {
    const y = permute(x, p);
    await expectEqual(y, refPermute(h, p), `permute [${p}]`);
    if (y !== x) y.dispose();
  }
  const neg = permute(x, [-1, 0, 1, 2]);
  await expectEqual(neg, refPermute(h, [3, 0, 1, 2]), "permute with negative axis");
  neg.dispose();
  const t = transpose(x);
  await expectEqual(t, refPermute(h, [0, 1, 3, 2]), "transpose last two");
  t.dispose();
  const t2 = transpose(x, 0, -2);
  await expectEqual(t2, refPermute(h, [2, 1, 0, 3]), "transpose 0,-2");
  t2.dispose();
  x.dispose();
});

Deno.test("slice with negative indices, steps and clamped bounds", async () => {
  const h = host([4, 7, 3], 4);
  const x = dev(h);
  const cases: [number, number, number, number][] = [
    [0, 1, 3, 1],
    [1, -3, Infinity, 1],
    [1, -5, -1, 1],
    [1, 0, 7, 2],
    [1, 1, 7, 3],
    [-1, 0, 3, 2],
    [0, -2, 100, 1],
    [1, 2, 2, 1], // empty
    [1, -100, 3, 1],
  ];
  for (const [axis, s, e, step] of cases) {
    const y = slice(x, axis, s, e, step);
    const ax = axis < 0 ? axis + 3 : axis;
    await expectEqual(
      y,
      refSlice(h, ax, s, e === Infinity ? 1e9 : e, step),
      `slice(${axis}, ${s}, ${e}, ${step})`,
    );
    y.dispose();
  }
  x.dispose();
});

Deno.test("pad adds zeros before and after each dimension", async () => {
  const h = host([2, 3], 5);
  const x = dev(h);
  for (const w of [[[1, 2], [0, 1]], [[0, 0], [3, 0]], [[0, 0], [0, 0]]] as [number, number][][]) {
    const y = pad(x, w);
    await expectEqual(y, refPad(h, w), `pad ${JSON.stringify(w)}`);
    y.dispose();
  }
  x.dispose();
});

Deno.test("flip reverses one or several axes", async () => {
  const h = host([2, 3, 4], 6);
  const x = dev(h);
  for (
    const [axes, norm] of [[0, [0]], [-1, [2]], [[0, 2], [0, 2]], [[1], [1]]] as [
      number | number[],
      number[],
    ][]
  ) {
    const y = flip(x, axes);
    await expectEqual(y, refFlip(h, norm), `flip ${JSON.stringify(axes)}`);
    y.dispose();
  }
  x.dispose();
});

Deno.test("concat along each axis, with three inputs and negative axes", async () => {
  for (const axis of [0, 1, 2, -1]) {
    const ax = axis < 0 ? axis + 3 : axis;
    const shapes = [2, 3, 1].map((k) => [2, 3, 4].map((d, i) => (i === ax ? k : d)));
    const hs = shapes.map((s, i) => host(s, 10 + i));
    const xs = hs.map(dev);
    const y = concat(xs, axis);
    await expectEqual(y, refConcat(hs, ax), `concat axis ${axis}`);
    y.dispose();
    const two = concat(xs.slice(0, 2), axis);
    await expectEqual(two, refConcat(hs.slice(0, 2), ax), `concat of two, axis ${axis}`);
    two.dispose();
    xs.forEach((t) => t.dispose());
  }
  const a = tensor(new Int32Array([1, 2]), [2]), b = tensor(new Int32Array([-3]), [1]);
  const c = concat([a, b], 0);
  assert.equal(c.dtype, "i32");
  assert.deepEqual([...(await c.read())], [1, 2, -3]);
  for (const t of [a, b, c]) t.dispose();
});

Deno.test("clone copies into a separate buffer; unsqueeze and squeeze reshape", async () => {
  const h = host([2, 3], 7);
  const x = dev(h);
  const c = clone(x);
  assert.notEqual(c.storage, x.storage);
  x.dispose();
  assertClose(await c.read(), h.data, { atol: 0, rtol: 0, label: "clone after base disposed" });
  const u0 = unsqueeze(c, 0), u2 = unsqueeze(c, 2), um = unsqueeze(c, -1), um3 = unsqueeze(c, -3);
  assert.deepEqual([...u0.shape], [1, 2, 3]);
  assert.deepEqual([...u2.shape], [2, 3, 1]);
  assert.deepEqual([...um.shape], [2, 3, 1]);
  assert.deepEqual([...um3.shape], [1, 2, 3]);
  const s = squeeze(u0, 0), s2 = squeeze(u2, -1);
  assert.deepEqual([...s.shape], [2, 3]);
  assert.deepEqual([...s2.shape], [2, 3]);
  assertClose(await s2.read(), h.data, { atol: 0, rtol: 0 });
  for (const t of [c, u0, u2, um, um3, s, s2]) t.dispose();
});

Deno.test("layout ops copy integer data bit for bit, also values whose bits are float NaNs", async () => {
  // 0xff800001 (-8388607) and 0xffffffff (-1) are signalling and quiet NaN patterns as floats.
  const data = Int32Array.from([-8388607, -1, 7, 2147483647, -2147483648, 0, 5, -6]);
  const x = tensor(data, [2, 2, 2]);
  const ints = (shape: number[]): Host => ({ data: Float64Array.from(data), shape });
  const cases: [string, Tensor, Host][] = [
    ["permute", permute(x, [2, 0, 1]), refPermute(ints([2, 2, 2]), [2, 0, 1])],
    ["flip", flip(x, [0, 2]), refFlip(ints([2, 2, 2]), [0, 2])],
    ["slice", slice(x, 1, 1), refSlice(ints([2, 2, 2]), 1, 1, 2, 1)],
    ["concat", concat([x, x], 2), refConcat([ints([2, 2, 2]), ints([2, 2, 2])], 2)],
    ["expand", expand(reshape(x, [1, 8]), [2, 8]), {
      data: Float64Array.from([...data, ...data]),
      shape: [2, 8],
    }],
    ["clone", clone(x), ints([2, 2, 2])],
    ["pad", pad(x, [[0, 1], [1, 0], [0, 0]]), refPad(ints([2, 2, 2]), [[0, 1], [1, 0], [0, 0]])],
  ];
  for (const [label, t, want] of cases) {
    assert.equal(t.dtype, "i32", label);
    assert.deepEqual([...t.shape], want.shape, label);
    assert.deepEqual([...(await t.read())], [...want.data], label);
    t.dispose();
  }
  x.dispose();
});

Deno.test("layout ops on long rows (bulk copies) and with many merged dimensions", async () => {
  const shape = [3, 4, 70];
  const data = randomArray(size(shape), 50);
  const x = tensor(Float32Array.from(data), shape);
  const h = { data: Float64Array.from(Float32Array.from(data)), shape };
  const cases: [string, Tensor, Host][] = [
    ["permute keeps last", permute(x, [1, 0, 2]), refPermute(h, [1, 0, 2])],
    ["slice rows", slice(x, 2, 3, 68), refSlice(h, 2, 3, 68, 1)],
    ["concat", concat([x, x], 1), refConcat([h, h], 1)],
    ["flip middle", flip(x, 1), refFlip(h, [1])],
  ];
  for (const [label, t, want] of cases) {
    assert.deepEqual([...t.shape], want.shape, label);
    assertClose(await t.read(), want.data, { label });
    t.dispose();
  }
  x.dispose();
});

// ---- gradients -----------------------------------------------------------------------------

Deno.test("layout ops pass finite-difference gradient checks", async () => {
  const x = { data: randomArray(12, 40), shape: [2, 3, 2] };
  await gradCheck((t) => reshape(t, [3, -1]), [x], { label: "reshape" });
  await gradCheck((t) => expand(t, [2, 2, 3, 2]), [x], { label: "expand leading" });
  await gradCheck((t) => expand(t, [3, 4]), [{ data: [0.5, -1, 2], shape: [3, 1] }], {
    label: "expand size-1",
  });
  await gradCheck((t) => permute(t, [2, 0, 1]), [x], { label: "permute" });
  await gradCheck((t) => transpose(t), [x], { label: "transpose" });
  await gradCheck((t) => slice(t, 1, -2), [x], { label: "slice negative start" });
  await gradCheck((t) => slice(t, 1, 0, 3, 2), [x], { label: "slice step 2" });
  await gradCheck((t) => slice(t, 0, 1, 2), [x], { label: "slice axis 0" });
  await gradCheck((t) => pad(t, [[1, 0], [0, 2], [1, 1]]), [x], { label: "pad" });
  await gradCheck((t) => flip(t, [0, -1]), [x], { label: "flip" });
  await gradCheck((t) => clone(t), [x], { label: "clone" });
  await gradCheck((t) => squeeze(unsqueeze(t, 1), 1), [x], { label: "unsqueeze/squeeze" });
  const y = { data: randomArray(4, 41), shape: [2, 1, 2] };
  const z = { data: randomArray(8, 42), shape: [2, 2, 2] };
  await gradCheck((a, b, c) => concat([a, b, c], 1), [x, y, z], {
    label: "concat 3 inputs axis 1",
  });
  await gradCheck((a, b) => concat([a, b], -1), [
    { data: randomArray(4, 43), shape: [2, 2] },
    { data: randomArray(6, 44), shape: [2, 3] },
  ], { label: "concat axis -1" });
});

Deno.test("a reshape view outlives disposal of its base", async () => {
  const x = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const v = reshape(x, [3, 2]);
  x.dispose();
  assert.equal(x.disposed, true);
  assert.deepEqual([...(await v.read())], [1, 2, 3, 4, 5, 6]);
  await assert.rejects(() => x.read(), /after dispose/);
  v.dispose();
});

// ---- bad input -----------------------------------------------------------------------------

Deno.test("layout ops reject bad shapes and axes with messages naming op and shapes", () => {
  const x = tensor(new Float32Array(6), [2, 3]);
  const y = tensor(new Float32Array(8), [2, 4]);
  assert.throws(() => reshape(x, [4, 2]), /reshape.*\[2,3\].*\[4,2\]/);
  assert.throws(() => reshape(x, [4, -1]), /reshape.*\[2,3\].*\[4,-1\]/);
  assert.throws(() => expand(x, [2, 4]), /expand.*\[2,3\].*\[2,4\]/);
  assert.throws(() => expand(x, [3]), /expand.*\[2,3\].*\[3\]/);
  assert.throws(() => permute(x, [0, 2]), /permute.*axis 2/);
  assert.throws(() => permute(x, [0, 0]), /permute.*\[0,0\].*\[2,3\]/);
  assert.throws(() => permute(x, [0]), /permute.*\[2,3\]/);
  assert.throws(() => transpose(x, 0, 5), /transpose.*axis 5/);
  assert.throws(() => slice(x, 2, 0, 1), /slice.*axis 2/);
  assert.throws(() => slice(x, -3, 0, 1), /slice.*axis -3/);
  assert.throws(() => slice(x, 0, 0, 1, 0), /slice.*step/);
  assert.throws(() => pad(x, [[1, 1]]), /pad.*\[2,3\]/);
  assert.throws(() => pad(x, [[1, 1], [-1, 0]]), /pad.*\[2,3\]/);
  assert.throws(() => flip(x, 3), /flip.*axis 3/);
  assert.throws(() => concat([x, y], 0), /concat.*\[2,4\].*\[2,3\]/);
  assert.throws(() => concat([x, y], 2), /concat.*axis 2/);
  assert.throws(() => concat([], 0), /concat/);
  assert.throws(() => squeeze(x, 0), /squeeze.*\[2,3\]/);
  assert.throws(() => unsqueeze(x, 4), /unsqueeze.*\[2,3\]/);
  for (const t of [x, y]) t.dispose();
});
