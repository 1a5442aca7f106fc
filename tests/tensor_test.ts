/**
 * Tensor mechanics: creation, the seeded GPU random generator, scopes, the buffer pool and
 * autograd bookkeeping (accumulation, shared subexpressions, independent leaf gradients, noGrad,
 * errors).
 */
import assert from "node:assert/strict";
import {
  add,
  arange,
  bernoulli,
  clone,
  engineStats,
  exp,
  full,
  getRngState,
  manualSeed,
  mean,
  mul,
  noGrad,
  ones,
  onesLike,
  rand,
  randn,
  readMany,
  reshape,
  scope,
  setRngState,
  sum,
  type Tensor,
  tensor,
  zeros,
  zerosLike,
} from "../core/tensor/mod.ts";
import { randU32 } from "../core/tensor/cpu/elementwise.ts";
import { assertClose, param, randomArray } from "./_support/check.ts";

// ---- creation ------------------------------------------------------------------------------

Deno.test("tensor() uploads data with its shape and dtype", async () => {
  const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  assert.deepEqual([...a.shape], [2, 3]);
  assert.equal(a.dtype, "f32");
  assert.equal(a.size, 6);
  assert.equal(a.rank, 2);
  assert.deepEqual([...(await a.read())], [1, 2, 3, 4, 5, 6]);
  const b = tensor([7, 8, 9]);
  assert.deepEqual([...b.shape], [3]);
  const i = tensor(new Int32Array([-1, 2]), [2]);
  assert.equal(i.dtype, "i32");
  assert.deepEqual([...(await i.read())], [-1, 2]);
  const u = tensor([1, 2], [2], "u32");
  assert.equal(u.dtype, "u32");
  assert.deepEqual([...(await u.read())], [1, 2]);
  const s = tensor([4.5], []);
  assert.equal(await s.item(), 4.5);
  await assert.rejects(() => a.item(), /item.*\[2,3\]/);
  assert.throws(() => tensor([1, 2, 3], [2, 2]), /tensor: 3 values.*\[2,2\]/);
  assert.throws(() => zeros([2, -1]), /Invalid shape \[2,-1\]/);
  assert.throws(() => zeros([1.5]), /Invalid shape/);
  for (const t of [a, b, i, u, s]) t.dispose();
});

Deno.test("zeros, ones, full, zerosLike, onesLike and arange fill the expected values", async () => {
  const z = zeros([2, 3]), o = ones([4]), f = full([3], -2.5), fi = full([2], -7, "i32");
  assert.deepEqual([...(await z.read())], [0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...(await o.read())], [1, 1, 1, 1]);
  assert.deepEqual([...(await f.read())], [-2.5, -2.5, -2.5]);
  assert.deepEqual([...(await fi.read())], [-7, -7]);
  assert.equal(fi.dtype, "i32");
  const zl = zerosLike(f), ol = onesLike(z);
  assert.deepEqual([...zl.shape], [3]);
  assert.deepEqual([...(await ol.read())], [1, 1, 1, 1, 1, 1]);
  const ninf = full([2], -Infinity);
  assert.deepEqual([...(await ninf.read())], [-Infinity, -Infinity]);
  const r1 = arange(5),
    r2 = arange(2, 8, 2),
    r3 = arange(1, 0, -0.25),
    r4 = arange(-3, 3, 1, "i32"),
    r5 = arange(3, 3);
  assert.deepEqual([...(await r1.read())], [0, 1, 2, 3, 4]);
  assert.deepEqual([...(await r2.read())], [2, 4, 6]);
  assert.deepEqual([...(await r3.read())], [1, 0.75, 0.5, 0.25]);
  assert.deepEqual([...(await r4.read())], [-3, -2, -1, 0, 1, 2]);
  const r6 = arange(5, -4, -3, "i32"), r7 = arange(0.5, 2, 0.3);
  assert.deepEqual([...(await r6.read())], [5, 2, -1]);
  assertClose(await r7.read(), [0.5, 0.8, 1.1, 1.4, 1.7], { label: "arange fractional" });
  const fu = full([3], 4294967295, "u32"), fn = full([2], NaN);
  assert.deepEqual([...(await fu.read())], [4294967295, 4294967295, 4294967295]);
  assert.ok((await fn.read()).every(Number.isNaN), "full NaN");
  for (const t of [r6, r7, fu, fn]) t.dispose();
  assert.equal(r4.dtype, "i32");
  assert.deepEqual([...r5.shape], [0]);
  assert.throws(() => arange(0, 1, 0), /arange.*step/);
  for (const t of [z, o, f, fi, zl, ol, ninf, r1, r2, r3, r4, r5]) t.dispose();
});

// ---- random --------------------------------------------------------------------------------

function stats(v: ArrayLike<number>): { mean: number; variance: number } {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i];
  const m = s / v.length;
  let ss = 0;
  for (let i = 0; i < v.length; i++) ss += (v[i] - m) ** 2;
  return { mean: m, variance: ss / v.length };
}

Deno.test("randn has mean ~0 and variance ~1 on 20000 samples", async () => {
  manualSeed(1234);
  const x = randn([20000]);
  const v = Array.from(await x.read());
  const { mean: m, variance } = stats(v);
  // Standard errors: 1/sqrt(n) = 0.007 for the mean, sqrt(2/n) = 0.01 for the variance.
  assert.ok(Math.abs(m) < 0.04, `mean ${m}`);
  assert.ok(Math.abs(variance - 1) < 0.05, `variance ${variance}`);
  assert.ok(v.every(Number.isFinite), "all finite");
  const within1 = v.filter((a) => Math.abs(a) < 1).length / v.length;
  assert.ok(Math.abs(within1 - 0.6827) < 0.02, `P(|x|<1) = ${within1}`);
  x.dispose();
});

Deno.test("rand is uniform in [0, 1) and bernoulli hits its rate", async () => {
  manualSeed(99);
  const u = rand([20000]);
  const v = Array.from(await u.read());
  assert.ok(v.every((a) => a >= 0 && a < 1), "rand in [0, 1)");
  const { mean: m, variance } = stats(v);
  assert.ok(Math.abs(m - 0.5) < 0.01, `mean ${m}`);
  assert.ok(Math.abs(variance - 1 / 12) < 0.005, `variance ${variance}`);
  for (const p of [0, 0.1, 0.5, 1]) {
    const b = bernoulli([20000], p);
    const bv = Array.from(await b.read());
    assert.ok(bv.every((a) => a === 0 || a === 1), "values are 0 or 1");
    const rate = stats(bv).mean;
    assert.ok(Math.abs(rate - p) < 0.015, `bernoulli(${p}) rate ${rate}`);
    b.dispose();
  }
  assert.throws(() => bernoulli([2], 1.5), /bernoulli.*1.5/);
  u.dispose();
});

/** Host copy of the generator's hash (creation.ts RNG_PRELUDE) for an explicit seed. */
function hostRandBits(seed: number, i: number): number {
  const fmix = (h: number): number => {
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h >>> 0;
  };
  const k0 = seed >>> 0, k1 = 0x5bd1e995;
  return fmix(
    (fmix((fmix((i ^ k0) >>> 0) + k1 + 0x9e3779b9) >>> 0) ^ Math.imul(k0, 0x27d4eb2d)) >>> 0,
  ) >>> 8;
}

Deno.test("rand never returns exactly 1.0, even for the largest 24-bit draw", async () => {
  // Seed 5, index 49051 draws the all-ones 24-bit value (found by scanning hostRandBits).
  assert.equal(hostRandBits(5, 49051), 0xffffff);
  const u = rand([49052], 5);
  const v = await u.read();
  // The host hash reproduces the GPU's draws (so the index above is the right one).
  for (const i of [0, 1, 2, 1000]) {
    assert.equal(Math.floor(v[i] * 16777216), hostRandBits(5, i), `draw ${i}`);
  }
  assert.ok(v[49051] < 1, `rand produced ${v[49051]} at index 49051`);
  u.dispose();
});

Deno.test("the CPU twin of the hash agrees with the host copy; draws match the WGSL's bit for bit", async () => {
  // randU32 (cpu/elementwise.ts) against the host copy above, over many indices and seeds.
  for (const seed of [0, 5, 0xdeadbeef, 0xffffffff]) {
    for (let i = 0; i < 5000; i += 7) {
      assert.equal(randU32(seed >>> 0, 0x5bd1e995, i) >>> 8, hostRandBits(seed, i), `${seed}/${i}`);
    }
  }
  // Known 24-bit draws, recorded from the WGSL kernel: every backend must reproduce them.
  const explicit = await rand([6], 5).read();
  assert.deepEqual(
    Array.from(explicit, (v) => v * 16777216),
    [4387140, 15004004, 3858913, 3562161, 13745601, 4977882],
  );
  manualSeed(2024);
  const counted = await rand([4]).read();
  assert.deepEqual(Array.from(counted, (v) => v * 16777216), [
    8538740,
    10985904,
    14334878,
    7927145,
  ]);
  const mask = await bernoulli([16], 0.3, 77).read();
  assert.equal(Array.from(mask).join(""), "0000110100000000");
  // Box-Muller of identical uniforms: equal up to the last bits of log and cos.
  assertClose(await randn([4], 42).read(), [0.33158565, 0.22592391, -0.27124372, -0.75083572], {
    atol: 1e-6,
    rtol: 1e-6,
    label: "randn",
  });
});

Deno.test("the same seed gives the same numbers; getRngState/setRngState reproduce a draw", async () => {
  const a = randn([64], 42), b = randn([64], 42), c = randn([64], 43);
  assert.deepEqual([...(await a.read())], [...(await b.read())]);
  assert.notDeepEqual([...(await a.read())], [...(await c.read())]);
  manualSeed(7);
  const d1 = await rand([32]).read();
  const e1 = await randn([32]).read();
  manualSeed(7);
  const d2 = await rand([32]).read();
  const state = getRngState();
  const e2 = await randn([32]).read();
  assert.deepEqual([...d1], [...d2]);
  assert.deepEqual([...e1], [...e2]);
  // Successive draws differ.
  assert.notDeepEqual([...d1], [...(await rand([32]).read())]);
  setRngState(state);
  const e3 = await randn([32]).read();
  assert.deepEqual([...e2], [...e3], "restored state replays the draw");
  const f = await bernoulli([32], 0.5).read();
  setRngState(state);
  await randn([32]).read();
  assert.deepEqual([...f], [...(await bernoulli([32], 0.5).read())], "and the draw after it");
  for (const t of [a, b, c]) t.dispose();
});

// ---- scopes and the pool ---------------------------------------------------------------------

Deno.test("scope disposes intermediates but keeps returned (also nested) and kept tensors", async () => {
  const x = tensor([1, 2, 3], [3]);
  let inner: Tensor[] = [];
  let kept: Tensor | null = null;
  const result = scope(() => {
    const a = exp(x), b = mul(a, 2), c = add(b, 1), d = add(c, 1);
    kept = mul(x, 10).keep();
    inner = [a, b, c, d];
    return { pair: [c, 5], nested: { deep: [[d]] }, label: "ok" };
  });
  const [a, b, c, d] = inner;
  assert.equal(a.disposed, true);
  assert.equal(b.disposed, true);
  assert.equal(c.disposed, false);
  assert.equal(d.disposed, false);
  assert.equal(x.disposed, false, "tensors created outside survive");
  assert.equal(kept!.disposed, false);
  assert.equal(result.pair[0], c);
  assertClose(await c.read(), [1, 2, 3].map((v) => 2 * Math.exp(v) + 1), {
    label: "returned value",
  });
  // Nested scopes: the inner result moves to the outer scope and is disposed with it.
  let moved: Tensor | null = null;
  let outerTemp: Tensor | null = null;
  const outer = scope(() => {
    moved = scope(() => add(x, 1));
    outerTemp = mul(moved, 2);
    return add(outerTemp, 0.5);
  });
  assert.equal(moved!.disposed, true, "inner result is owned by the outer scope");
  assert.equal(outerTemp!.disposed, true);
  assert.deepEqual([...(await outer.read())], [4.5, 6.5, 8.5]);
  for (const t of [x, c, d, kept!, outer]) t.dispose();
});

Deno.test("scope disposes everything when the callback throws, and rejects async callbacks", () => {
  let made: Tensor | null = null;
  assert.throws(() =>
    scope(() => {
      made = ones([2]);
      throw new Error("boom");
    }), /boom/);
  assert.equal(made!.disposed, true);
  assert.throws(() => scope(() => Promise.resolve(1)), /synchronous/);
});

Deno.test("pool created count stops growing across identical scoped steps", async () => {
  const w = param(randomArray(16, 1), [4, 4]);
  const x = tensor(randomArray(8, 2), [2, 4]);
  const step = async (): Promise<number> => {
    const loss = scope(() => {
      const l = mean(mul(exp(add(x, 1)), sum(w, 0)));
      l.backward();
      return l;
    });
    const v = await loss.item();
    loss.dispose();
    w.grad?.dispose();
    w.grad = null;
    return v;
  };
  const first = await step();
  await step();
  const before = engineStats();
  for (let i = 0; i < 5; i++) assert.equal(await step(), first, "same result every step");
  const after = engineStats();
  assert.equal(after.created, before.created, "no new buffers after warm-up");
  assert.equal(after.inUse, before.inUse, "no buffers leak");
  assert.ok(after.reused > before.reused);
  w.dispose();
  x.dispose();
});

Deno.test("dispose returns buffers to the pool and is idempotent; use after dispose throws", () => {
  const before = engineStats().inUse;
  const t = zeros([10]);
  assert.equal(engineStats().inUse, before + 1);
  t.dispose();
  t.dispose();
  assert.equal(engineStats().inUse, before);
  assert.throws(() => exp(t), /after dispose/);
});

Deno.test("a reshape view sharing storage survives disposal of its base, and frees with the last view", async () => {
  const before = engineStats().inUse;
  const x = tensor([1, 2, 3, 4], [2, 2]);
  const v = reshape(x, [4]);
  assert.equal(v.storage, x.storage);
  x.dispose();
  assert.equal(engineStats().inUse, before + 1, "storage still held by the view");
  assert.deepEqual([...(await v.read())], [1, 2, 3, 4]);
  v.dispose();
  assert.equal(engineStats().inUse, before, "released with the last view");
});

// ---- autograd mechanics ------------------------------------------------------------------------

Deno.test("gradients accumulate across two backward calls", async () => {
  const x = param([1, 2, 3], [3]);
  scope(() => sum(mul(x, x)).backward());
  assert.deepEqual([...(await x.grad!.read())], [2, 4, 6]);
  scope(() => sum(mul(x, 3)).backward());
  assert.deepEqual([...(await x.grad!.read())], [5, 7, 9]);
  x.grad!.dispose();
  x.dispose();
});

Deno.test("a tensor used twice sums both paths: y = x*x + x", async () => {
  const x = param([-1, 0.5, 2], [3]);
  scope(() => sum(add(mul(x, x), x)).backward());
  assert.deepEqual([...(await x.grad!.read())], [-1, 2, 5]);
  x.grad!.dispose();
  x.dispose();
});

Deno.test("y = a + b gives both leaves independent gradient tensors", async () => {
  const a = param([1, 2], [2]), b = param([3, 4], [2]);
  scope(() => sum(add(a, b)).backward());
  assert.notEqual(a.grad, b.grad);
  assert.notEqual(a.grad!.storage, b.grad!.storage);
  a.grad!.dispose();
  assert.equal(b.grad!.disposed, false);
  assert.deepEqual([...(await b.grad!.read())], [1, 1]);
  // And the other way round.
  a.grad = null;
  b.grad!.dispose();
  b.grad = null;
  scope(() => sum(add(a, b)).backward());
  b.grad!.dispose();
  assert.deepEqual([...(await a.grad!.read())], [1, 1]);
  for (const t of [a, b, a.grad!]) t.dispose();
});

Deno.test("backward(gradOut) leaves the caller's gradOut independent of leaf gradients", async () => {
  const a = param([1, 2], [2]), b = param([3, 4], [2]);
  const g = tensor([0.5, -1], [2]);
  scope(() => add(a, b).backward(g));
  g.dispose();
  assert.equal(a.grad!.disposed, false, "a.grad must not alias gradOut");
  assert.equal(b.grad!.disposed, false, "b.grad must not alias gradOut");
  assert.deepEqual([...(await a.grad!.read())], [0.5, -1]);
  assert.deepEqual([...(await b.grad!.read())], [0.5, -1]);
  const c = param([1, 2], [2]);
  const g2 = tensor([2, 3], [2]);
  scope(() => clone(c).backward(g2));
  g2.dispose();
  assert.equal(c.grad!.disposed, false, "c.grad must not alias gradOut");
  for (const t of [a, b, c, a.grad!, b.grad!, c.grad!]) t.dispose();
});

Deno.test("noGrad records nothing and restores recording afterwards", () => {
  const x = param([1, 2], [2]);
  const y = noGrad(() => mul(exp(x), x));
  assert.equal(y.requiresGrad, false);
  assert.equal(y.node, null);
  assert.throws(() => y.backward(), /does not require a gradient/);
  assert.throws(() =>
    noGrad(() => {
      throw new Error("inner");
    }), /inner/);
  const z = exp(x);
  assert.equal(z.requiresGrad, true, "recording resumes after noGrad (even after a throw)");
  assert.equal(z.node?.op, "exp");
  assert.deepEqual(z.node?.inputs, [x]);
  for (const t of [x, y, z]) t.dispose();
});

Deno.test("backward on a non-scalar without gradOut throws naming the shape", () => {
  const x = param([1, 2, 3, 4], [2, 2]);
  const y = mul(x, 2);
  assert.throws(() => y.backward(), /backward.*scalar.*\[2,2\]/);
  for (const t of [x, y]) t.dispose();
});

Deno.test("backward with an explicit gradOut on a non-scalar output", async () => {
  const x = param([1, 2, 3], [3]);
  const y = exp(x);
  y.backward(tensor([1, 0, 2], [3]));
  assertClose(await x.grad!.read(), [Math.E, 0, 2 * Math.exp(3)], { label: "dx" });
  for (const t of [x, y, x.grad!]) t.dispose();
});

Deno.test("assign() overwrites a tensor in place from a tensor or a host array; readMany reads many", async () => {
  const p = tensor([1, 2, 3, 4], [2, 2]);
  const src = tensor([5, 6, 7, 8], [4]); // same size, other shape: values in row-major order
  assert.equal(p.assign(src), p);
  assert.deepEqual([...(await p.read())], [5, 6, 7, 8]);
  p.assign(new Float32Array([9, 10, 11, 12]));
  assert.deepEqual([...(await p.read())], [9, 10, 11, 12]);
  p.assign(p); // a no-op
  assert.throws(() => p.assign(new Float32Array(3)), /Tensor.assign: 3 values do not fit/);
  assert.throws(() => p.assign(new Int32Array(4)), /Tensor.write/);
  const [a, b] = await readMany([p, src]);
  assert.deepEqual([...new Float32Array(a)], [9, 10, 11, 12]);
  assert.deepEqual([...new Float32Array(b)], [5, 6, 7, 8]);
  for (const t of [p, src]) t.dispose();
});
