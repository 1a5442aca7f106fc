/**
 * Elementwise ops against float64 references (unary math, broadcasting binary ops, comparisons,
 * where), finite-difference gradients, and bad-input errors.
 */
import assert from "node:assert/strict";
import {
  abs,
  add,
  affine,
  arange,
  bernoulli,
  clamp,
  cos,
  div,
  engineStats,
  equal,
  exp,
  full,
  gelu,
  greater,
  greaterEqual,
  less,
  lessEqual,
  log,
  maximum,
  minimum,
  mul,
  neg,
  noGrad,
  onCpu,
  powScalar,
  relu,
  rsqrt,
  scope,
  sigmoid,
  sign,
  silu,
  sin,
  sqrt,
  square,
  sub,
  tanh,
  type Tensor,
  tensor,
  where,
} from "../core/tensor/mod.ts";
import { assertClose, gradCheck, param, randomArray } from "./_support/check.ts";

// ---- float64 references -------------------------------------------------------------------

function erf(x: number): number {
  // Abramowitz & Stegun 7.1.26 is what the kernel uses; the reference uses a series/continued
  // fraction accurate to ~1e-15 so the comparison measures the kernel's real error.
  const s = Math.sign(x), a = Math.abs(x);
  if (a < 3) {
    let sum = a, term = a;
    for (let n = 1; n < 200; n++) {
      term *= (2 * a * a) / (2 * n + 1);
      sum += term;
      if (Math.abs(term) < 1e-17 * sum) break;
    }
    return s * (2 / Math.sqrt(Math.PI)) * Math.exp(-a * a) * sum;
  }
  // Continued fraction for erfc at large |x|.
  let f = 0;
  for (let n = 60; n >= 1; n--) f = (n / 2) / (a + f);
  return s * (1 - Math.exp(-a * a) / Math.sqrt(Math.PI) / (a + f));
}

const K = Math.sqrt(2 / Math.PI);
const REF: Record<string, (x: number) => number> = {
  neg: (x) => -x,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  tanh: Math.tanh,
  sigmoid: (x) => 1 / (1 + Math.exp(-x)),
  relu: (x) => Math.max(x, 0),
  gelu: (x) => 0.5 * x * (1 + Math.tanh(K * (x + 0.044715 * x ** 3))),
  gelu_erf: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  silu: (x) => x / (1 + Math.exp(-x)),
  sin: Math.sin,
  cos: Math.cos,
  square: (x) => x * x,
  abs: Math.abs,
  sign: Math.sign,
};

const OPS: Record<string, (x: Tensor) => Tensor> = {
  neg,
  exp,
  log,
  sqrt,
  rsqrt,
  tanh,
  sigmoid,
  relu,
  gelu: (x) => gelu(x),
  gelu_erf: (x) => gelu(x, "erf"),
  silu,
  sin,
  cos,
  square,
  abs,
  sign,
};

const POSITIVE = new Set(["log", "sqrt", "rsqrt"]);

/** Row-major strides. */
function strides(shape: readonly number[]): number[] {
  const s: number[] = [];
  let n = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = n;
    n *= shape[i];
  }
  return s;
}

/** NumPy broadcasting of a binary function in float64. */
function broadcastRef(
  a: ArrayLike<number>,
  aShape: number[],
  b: ArrayLike<number>,
  bShape: number[],
  f: (x: number, y: number) => number,
): { data: Float64Array; shape: number[] } {
  const rank = Math.max(aShape.length, bShape.length);
  const pa = [...Array(rank - aShape.length).fill(1), ...aShape];
  const pb = [...Array(rank - bShape.length).fill(1), ...bShape];
  const shape = pa.map((d, i) => Math.max(d, pb[i]));
  const so = strides(shape), sa = strides(pa), sb = strides(pb);
  const n = shape.reduce((x, y) => x * y, 1);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let ia = 0, ib = 0;
    for (let d = 0; d < rank; d++) {
      const c = Math.floor(i / so[d]) % shape[d];
      if (pa[d] !== 1) ia += c * sa[d];
      if (pb[d] !== 1) ib += c * sb[d];
    }
    out[i] = f(a[ia], b[ib]);
  }
  return { data: out, shape };
}

const size = (s: number[]): number => s.reduce((x, y) => x * y, 1);

async function readAndDispose(t: Tensor): Promise<Float32Array> {
  const v = (await t.read()) as Float32Array;
  t.dispose();
  return v;
}

// ---- unary forward ------------------------------------------------------------------------

Deno.test("unary ops match the float64 reference on random inputs", async () => {
  const shape = [3, 7];
  for (const [name, op] of Object.entries(OPS)) {
    const data = POSITIVE.has(name) ? randomArray(21, 11, 0.05, 4) : randomArray(21, 11, -3, 3);
    const x = tensor(Float32Array.from(data), shape);
    const y = op(x);
    assert.deepEqual([...y.shape], shape, name);
    const got = await readAndDispose(y);
    x.dispose();
    const want = Array.from(Float32Array.from(data), REF[name]);
    assertClose(got, want, { atol: 2e-6, rtol: 2e-5, label: name });
  }
});

Deno.test("tanh, sigmoid, silu and gelu stay finite and saturate at large |x| like 50", async () => {
  const data = [50, -50, 100, -100, 20, -20, 0, 88, -88];
  for (const name of ["tanh", "sigmoid", "silu", "gelu", "gelu_erf", "exp"]) {
    if (name === "exp") continue;
    const x = tensor(data, [data.length]);
    const got = await readAndDispose(OPS[name](x));
    x.dispose();
    for (const v of got) assert.ok(Number.isFinite(v), `${name} produced ${v} on ${data}`);
    assertClose(got, data.map(REF[name]), { atol: 1e-6, rtol: 1e-6, label: name });
  }
});

Deno.test("clamp, affine and powScalar match the float64 reference", async () => {
  const data = randomArray(12, 3, -2, 2);
  const f = Float32Array.from(data);
  const cases: [string, (x: Tensor) => Tensor, (v: number) => number][] = [
    ["clamp", (x) => clamp(x, -0.5, 0.75), (v) => Math.min(Math.max(v, -0.5), 0.75)],
    ["affine", (x) => affine(x, -1.5, 0.25), (v) => -1.5 * v + 0.25],
    ["pow2", (x) => powScalar(x, 2), (v) => v ** 2],
    ["pow3", (x) => powScalar(x, 3), (v) => v ** 3],
    ["pow-1", (x) => powScalar(x, -1), (v) => v ** -1],
    ["pow-2", (x) => powScalar(x, -2), (v) => v ** -2],
    ["pow0", (x) => powScalar(x, 0), () => 1],
    ["pow1", (x) => powScalar(x, 1), (v) => v],
  ];
  for (const [label, op, ref] of cases) {
    const x = tensor(f, [3, 4]);
    const got = await readAndDispose(op(x));
    x.dispose();
    assertClose(got, Array.from(f, ref), { atol: 1e-5, rtol: 1e-4, label });
  }
  // Fractional powers of positive bases.
  const pos = Float32Array.from(randomArray(6, 4, 0.1, 3));
  const x = tensor(pos, [6]);
  assertClose(await readAndDispose(powScalar(x, 0.5)), Array.from(pos, (v) => v ** 0.5), {
    label: "pow0.5",
  });
  assertClose(await readAndDispose(powScalar(x, -1.5)), Array.from(pos, (v) => v ** -1.5), {
    label: "pow-1.5",
  });
  x.dispose();
});

Deno.test("powScalar gives signed integer powers of negative bases", async () => {
  const x = tensor([-2, -1.5, -1, -0.5, 0.5, 2], [6]);
  assertClose(await readAndDispose(powScalar(x, 3)), [-8, -3.375, -1, -0.125, 0.125, 8], {
    label: "cube",
  });
  assertClose(await readAndDispose(powScalar(x, 2)), [4, 2.25, 1, 0.25, 0.25, 4], {
    label: "square",
  });
  assertClose(await readAndDispose(powScalar(x, -1)), [-0.5, -1 / 1.5, -1, -2, 2, 0.5], {
    label: "inverse",
  });
  x.dispose();
});

Deno.test("sign of zero is zero and of positive/negative is +-1", async () => {
  const x = tensor([-3, 0, 2], [3]);
  assert.deepEqual([...(await readAndDispose(sign(x)))], [-1, 0, 1]);
  x.dispose();
});

// ---- binary forward -----------------------------------------------------------------------

const BINARY: [string, (a: Tensor, b: Tensor) => Tensor, (x: number, y: number) => number][] = [
  ["add", add, (x, y) => x + y],
  ["sub", sub, (x, y) => x - y],
  ["mul", mul, (x, y) => x * y],
  ["div", div, (x, y) => x / y],
  ["maximum", maximum, Math.max],
  ["minimum", minimum, Math.min],
  ["greater", greater, (x, y) => +(x > y)],
  ["greaterEqual", greaterEqual, (x, y) => +(x >= y)],
  ["less", less, (x, y) => +(x < y)],
  ["lessEqual", lessEqual, (x, y) => +(x <= y)],
  ["equal", equal, (x, y) => +(x === y)],
];

const SHAPE_PAIRS: [number[], number[]][] = [
  [[2, 3], [2, 3]],
  [[3, 1, 5], [4, 1]],
  [[4, 1], [3, 1, 5]],
  [[2, 3, 4], [4]],
  [[1], [2, 3]],
  [[2, 1, 3], [1, 4, 1]],
  [[], [2, 2]],
  [[2, 2], []],
  // The CPU's broadcast walks: a per-channel operand (row of stride 0 for b), a row broadcast
  // down the batch (both rows stride 1), a column against a row (stride 0 on either side).
  [[2, 3, 4, 5], [1, 3, 1, 1]],
  [[1, 3, 1, 1], [2, 3, 4, 5]],
  [[6, 5], [4, 1, 5]],
  [[4, 5], [4, 1]],
  [[4, 1], [4, 5]],
  [[2, 3, 4], [2, 1, 4]],
];

Deno.test("binary ops broadcast like NumPy and match the float64 reference", async () => {
  for (const [sa, sb] of SHAPE_PAIRS) {
    // Rounded values make ties for the comparisons; b stays away from 0 for div.
    const da = Float32Array.from(randomArray(size(sa), 5, -2, 2), (v) => Math.round(v * 2) / 2);
    const db = Float32Array.from(
      randomArray(size(sb), 6, -2, 2),
      (v) => (Math.round(v * 2) / 2) || 0.5,
    );
    for (const [name, op, ref] of BINARY) {
      const a = tensor(da, sa), b = tensor(db, sb);
      const y = op(a, b);
      const want = broadcastRef(da, sa, db, sb, ref);
      assert.deepEqual([...y.shape], want.shape, `${name} [${sa}] x [${sb}] shape`);
      assertClose(await readAndDispose(y), want.data, { label: `${name} [${sa}] x [${sb}]` });
      a.dispose();
      b.dispose();
    }
  }
});

Deno.test("binary ops accept a scalar number on either side", async () => {
  const d = Float32Array.from(randomArray(6, 8, 0.5, 2));
  const x = tensor(d, [2, 3]);
  const cases: [string, Tensor, (v: number) => number][] = [
    ["x+2", add(x, 2), (v) => v + 2],
    ["2+x", add(2, x), (v) => 2 + v],
    ["x-2", sub(x, 2), (v) => v - 2],
    ["2-x", sub(2, x), (v) => 2 - v],
    ["x*3", mul(x, 3), (v) => v * 3],
    ["3*x", mul(3, x), (v) => 3 * v],
    ["x/4", div(x, 4), (v) => v / 4],
    ["4/x", div(4, x), (v) => 4 / v],
    ["max(x,1)", maximum(x, 1), (v) => Math.max(v, 1)],
    ["min(x,1)", minimum(x, 1), (v) => Math.min(v, 1)],
    ["x>1", greater(x, 1), (v) => +(v > 1)],
    ["x<1", less(x, 1), (v) => +(v < 1)],
    ["x>=1", greaterEqual(x, 1), (v) => +(v >= 1)],
    ["x<=1", lessEqual(x, 1), (v) => +(v <= 1)],
    ["x==d0", equal(x, d[0]), (v) => +(v === d[0])],
  ];
  for (const [label, y, ref] of cases) {
    assert.deepEqual([...y.shape], [2, 3], label);
    assertClose(await readAndDispose(y), Array.from(d, ref), { label });
  }
  x.dispose();
  assert.throws(() => add(1 as unknown as Tensor, 2), /add: at least one operand must be a tensor/);
});

Deno.test("where picks a or b with broadcasting of cond, a and b", async () => {
  const cond = tensor([1, 0, 0, 1, 1, 0], [2, 3, 1]);
  const a = tensor(randomArray(4, 1), [1, 1, 4]);
  const b = tensor(randomArray(3, 2), [3, 1]);
  const y = where(cond, a, b);
  const ca = broadcastRef(
    await cond.read(),
    [2, 3, 1],
    await a.read(),
    [1, 1, 4],
    (c, x) => c ? x : NaN,
  );
  const want = broadcastRef(
    ca.data,
    ca.shape,
    await b.read(),
    [3, 1],
    (x, y2) => Number.isNaN(x) ? y2 : x,
  );
  assert.deepEqual([...y.shape], [2, 3, 4]);
  assertClose(await readAndDispose(y), want.data, { label: "where" });
  for (const t of [cond, a, b]) t.dispose();
});

Deno.test("where with -Infinity in the unselected branch (attention masks) gives no NaN", async () => {
  const cond = tensor([1, 0, 1, 0], [4]);
  const x = tensor([1, 2, 3, 4], [4]);
  const ninf = tensor([-Infinity, -Infinity, -Infinity, -Infinity], [4]);
  const got = await readAndDispose(where(cond, x, ninf));
  assert.deepEqual([...got], [1, -Infinity, 3, -Infinity]);
  for (const t of [cond, x, ninf]) t.dispose();
});

// ---- gradients ----------------------------------------------------------------------------

Deno.test("unary ops pass finite-difference gradient checks", async () => {
  // Inputs away from kinks (relu/abs at 0) and in the domain (log/sqrt/rsqrt positive).
  const mixed = [-1.7, -0.6, -0.2, 0.3, 0.8, 1.4];
  const positive = [0.4, 0.7, 1.1, 1.6, 2.3, 3.1];
  for (const [name, op] of Object.entries(OPS)) {
    if (name === "sign") continue;
    const data = POSITIVE.has(name) ? positive : mixed;
    await gradCheck(op, [{ data, shape: [2, 3] }], { label: name });
  }
});

Deno.test("gelu (tanh form) gradient is finite and correct for negative inputs", async () => {
  const x = param([-2, -1, -0.5, 0.5, 1, 2], [6]);
  const y = scope(() => {
    const s = gelu(x);
    s.backward(tensor([1, 1, 1, 1, 1, 1], [6]));
    return s;
  });
  y.dispose();
  const g = await x.grad!.read();
  const ref = (v: number) => {
    const u = K * (v + 0.044715 * v ** 3), t = Math.tanh(u);
    return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * K * (1 + 3 * 0.044715 * v * v);
  };
  assertClose(g, [-2, -1, -0.5, 0.5, 1, 2].map(ref), { atol: 1e-5, label: "gelu'" });
  x.grad!.dispose();
  x.dispose();
});

Deno.test("clamp, affine, powScalar and scalar-operand ops pass gradient checks", async () => {
  const data = [-1.7, -0.6, -0.2, 0.3, 0.8, 1.4];
  const s = [{ data, shape: [2, 3] }];
  await gradCheck((x) => clamp(x, -1, 1), s, { label: "clamp" });
  await gradCheck((x) => affine(x, -1.5, 0.25), s, { label: "affine" });
  await gradCheck((x) => powScalar(x, 3), s, { label: "pow3" });
  await gradCheck((x) => powScalar(x, 2), s, { label: "pow2" });
  await gradCheck((x) => powScalar(x, -2), s, { label: "pow-2", rtol: 5e-2 });
  await gradCheck((x) => powScalar(x, 1.5), [{ data: [0.4, 0.9, 1.3, 2], shape: [4] }], {
    label: "pow1.5",
  });
  await gradCheck((x) => add(2, x), s, { label: "2+x" });
  await gradCheck((x) => sub(2, x), s, { label: "2-x" });
  await gradCheck((x) => mul(x, -3), s, { label: "x*-3" });
  await gradCheck((x) => div(x, 4), s, { label: "x/4" });
  await gradCheck((x) => div(2, x), s, { label: "2/x", rtol: 5e-2 });
  await gradCheck((x) => maximum(x, 0.1), s, { label: "max(x,0.1)" });
  await gradCheck((x) => minimum(x, 0.1), s, { label: "min(x,0.1)" });
});

Deno.test("broadcasting binary ops pass gradient checks for both inputs", async () => {
  const a = { data: randomArray(15, 21, -1.5, 1.5), shape: [3, 1, 5] };
  const b = { data: [0.9, -1.3, 1.7, -0.6], shape: [4, 1] };
  await gradCheck(add, [a, b], { label: "add" });
  await gradCheck(sub, [a, b], { label: "sub" });
  await gradCheck(mul, [a, b], { label: "mul" });
  await gradCheck(div, [a, b], { label: "div" });
  // maximum/minimum: values well apart so no element sits at a tie.
  const c = { data: [-1.2, 0.4, 1.1, -0.3, 0.9, -1.6], shape: [2, 3] };
  const d = { data: [0.1, -0.8, 0.6], shape: [3] };
  await gradCheck(maximum, [c, d], { label: "maximum" });
  await gradCheck(minimum, [c, d], { label: "minimum" });
  await gradCheck((x, y) => where(tensor([1, 0, 1, 0, 0, 1], [2, 3]), x, y), [c, d], {
    label: "where",
  });
  // Size-1 dims on both sides and a rank-0 operand.
  await gradCheck(mul, [{ data: [0.5, -1.5], shape: [2, 1] }, {
    data: [1.2, -0.7, 0.3],
    shape: [1, 3],
  }], {
    label: "mul [2,1]x[1,3]",
  });
  await gradCheck(mul, [{ data: [1.3], shape: [] }, c], { label: "mul []x[2,3]" });
});

Deno.test("noGrad ops record nothing and comparisons carry no gradient", () => {
  const x = param([1, 2, 3], [3]);
  const y = noGrad(() => exp(x));
  assert.equal(y.requiresGrad, false);
  assert.equal(y.node, null);
  const z = greater(x, 2);
  assert.equal(z.node, null);
  for (const t of [x, y, z]) t.dispose();
});

// ---- bad input ----------------------------------------------------------------------------

Deno.test("elementwise ops reject bad shapes and dtypes with messages naming op and shapes", () => {
  const a = tensor(new Float32Array(6), [2, 3]);
  const b = tensor(new Float32Array(4), [4]);
  const i = tensor(new Int32Array([1, 2, 3]), [3]);
  assert.throws(() => add(a, b), /add.*\[2,3\].*\[4\]/);
  assert.throws(() => mul(a, b), /mul.*\[2,3\].*\[4\]/);
  assert.throws(() => where(tensor([1, 0], [2]), a, b), /where.*\[/);
  assert.throws(() => exp(i), /exp.*i32.*\[3\]/);
  assert.throws(() => add(i, i), /add.*i32.*\[3\]/);
  assert.throws(() => clamp(a, 1, 0), /clamp/);
  for (const t of [a, b, i]) t.dispose();
});

// ---- per-call scalars on WebGPU ------------------------------------------------------------

Deno.test({
  name: "scalar ops with new constants compile no new WebGPU pipelines after their first call",
  ignore: onCpu(),
  fn: async () => {
    const x = tensor([0.5, -1.5, 2, 3], [4]);
    const y = tensor([1, 2, 3, 4], [4]);
    const calls = (c: number): Tensor[] => [
      affine(x, c, -c),
      add(x, c),
      mul(c, x),
      div(c, x),
      full([4], c),
      full([4], c, "i32"),
      clamp(x, -Math.abs(c), Math.abs(c)),
      powScalar(x, c > 0 ? 2 : 3),
      powScalar(x, c > 0 ? 0.5 : 1.5),
      maximum(x, c),
      minimum(x, c),
      greater(x, c),
      equal(x, c),
      arange(c, c + 4),
      bernoulli([4], Math.abs(c) % 1),
      where(greater(x, c), x, y),
    ];
    for (const t of calls(0.25)) t.dispose();
    const before = engineStats().pipelines;
    for (const c of [1.5, -2, 3.75, 1e-3, -7.125, 0.3]) {
      const out = calls(c);
      assertClose(await out[0].read(), [0.5, -1.5, 2, 3].map((v) => Math.fround(c) * v - c), {
        label: `affine ${c}`,
      });
      assert.deepEqual([...(await out[5].read())], Array(4).fill(Math.trunc(c)), `full i32 ${c}`);
      for (const t of out) t.dispose();
    }
    assert.equal(engineStats().pipelines, before, "no pipeline compiled for new constants");
    x.dispose();
    y.dispose();
  },
});

Deno.test("arithmetic and generic broadcast paths agree on a larger per-channel broadcast", async () => {
  // [B, C, H, W] with a [1, C, 1, 1] operand on both sides, and a [N, D] + [D] row broadcast,
  // for ops with their own CPU loops (add, sub, mul, div) and ops through the generic one.
  for (
    const [sa, sb] of [[[3, 8, 5, 7], [1, 8, 1, 1]], [[1, 8, 1, 1], [3, 8, 5, 7]], [[33, 17], [
      17,
    ]]] as [number[], number[]][]
  ) {
    const da = Float32Array.from(randomArray(size(sa), 31, -2, 2));
    const db = Float32Array.from(randomArray(size(sb), 32, 0.5, 2));
    for (const [name, op, ref] of BINARY.slice(0, 6)) {
      const a = tensor(da, sa), b = tensor(db, sb);
      const want = broadcastRef(da, sa, db, sb, ref);
      assertClose(await readAndDispose(op(a, b)), want.data, {
        label: `${name} [${sa}] x [${sb}]`,
      });
      a.dispose();
      b.dispose();
    }
  }
});

Deno.test("more distinct constants than the WebGPU scalar cache holds all give correct results", async () => {
  // 1100 > the 1024 cached scalar buffers: the oldest are destroyed while their dispatches may
  // still be pending (they are submitted first).
  const x = tensor([1, 2], [2]);
  const outs = Array.from({ length: 1100 }, (_, k) => affine(x, k, 0.5));
  for (const k of [0, 1, 511, 1023, 1024, 1099]) {
    assert.deepEqual([...(await outs[k].read())], [k + 0.5, 2 * k + 0.5], `affine ${k}`);
  }
  for (const t of outs) t.dispose();
  x.dispose();
});
