import assert from "node:assert/strict";
import {
  clamp,
  logSoftmax,
  mergeHeads,
  mul,
  scaledDotProductAttention,
  softmax,
  splitHeads,
  sum,
  type Tensor,
  tensor,
} from "../core/tensor/mod.ts";
import { attentionFused, attentionReference } from "../core/tensor/ops/attention.ts";
import { assertClose, gradCheck, param, randomArray } from "./_support/check.ts";

const f32 = (a: ArrayLike<number>, shape: number[]): Tensor => tensor(Float32Array.from(a), shape);

/** Float64 softmax of rows of length L; causal over [.., Tq, L] with ends aligned. */
function softmaxRef(
  x: ArrayLike<number>,
  rows: number,
  L: number,
  opts: { causal?: number; log?: boolean; scale?: number } = {},
) {
  const y = new Float64Array(rows * L);
  const s = opts.scale ?? 1;
  for (let r = 0; r < rows; r++) {
    const ok = (j: number) => opts.causal === undefined || j <= (r % opts.causal) + L - opts.causal;
    let m = -Infinity;
    for (let j = 0; j < L; j++) if (ok(j)) m = Math.max(m, s * x[r * L + j]);
    let tot = 0;
    for (let j = 0; j < L; j++) if (ok(j)) tot += Math.exp(s * x[r * L + j] - m);
    for (let j = 0; j < L; j++) {
      const v = s * x[r * L + j] - m;
      y[r * L + j] = ok(j)
        ? (opts.log ? v - Math.log(tot) : Math.exp(v) / tot)
        : (opts.log ? -Infinity : 0);
    }
  }
  return y;
}

Deno.test("softmax() and logSoftmax() match the float64 reference", async () => {
  for (const [rows, L] of [[3, 1], [2, 7], [3, 33], [2, 130]]) {
    const x = randomArray(rows * L, L, -8, 8);
    assertClose(await softmax(f32(x, [rows, L])).read(), softmaxRef(x, rows, L), {
      atol: 1e-6,
      label: `softmax ${L}`,
    });
    assertClose(await logSoftmax(f32(x, [rows, L])).read(), softmaxRef(x, rows, L, { log: true }), {
      atol: 1e-5,
      label: `logSoftmax ${L}`,
    });
  }
  // Large logits do not overflow (max-subtracted).
  assertClose(
    await softmax(f32([1000, 1001, 999], [1, 3])).read(),
    softmaxRef([1000, 1001, 999], 1, 3),
    {
      label: "softmax large",
    },
  );
  // Another axis: softmax over axis 0 of [4, 3] equals the reference on the transpose.
  const x = randomArray(12, 3);
  const xt = Array.from({ length: 12 }, (_, i) => x[(i % 4) * 3 + Math.floor(i / 4)]);
  const yt = softmaxRef(xt, 3, 4);
  const expected = Array.from({ length: 12 }, (_, i) => yt[(i % 3) * 4 + Math.floor(i / 3)]);
  assertClose(await softmax(f32(x, [4, 3]), 0).read(), expected, {
    atol: 1e-6,
    label: "softmax axis 0",
  });
});

Deno.test("softmax() and logSoftmax() apply the causal mask with ends aligned", async () => {
  for (const [B, Tq, Tk] of [[2, 4, 4], [1, 3, 5], [1, 70, 70], [2, 1, 9]]) {
    const x = randomArray(B * Tq * Tk, Tq + Tk, -3, 3);
    const p = await softmax(f32(x, [B, Tq, Tk]), -1, { causal: true }).read();
    assertClose(p, softmaxRef(x, B * Tq, Tk, { causal: Tq }), {
      atol: 1e-6,
      label: `causal softmax ${Tq}x${Tk}`,
    });
    if (Tq === Tk) assert.equal(p[1], 0, "query 0 must not see key 1");
    // -inf compares as NaN under subtraction: map it to a sentinel on both sides.
    const noInf = (a: ArrayLike<number>) => Array.from(a, (v) => (v === -Infinity ? -1e30 : v));
    const lp = noInf(await logSoftmax(f32(x, [B, Tq, Tk]), -1, { causal: true }).read());
    assertClose(lp, noInf(softmaxRef(x, B * Tq, Tk, { causal: Tq, log: true })), {
      atol: 1e-5,
      label: `causal logSoftmax ${Tq}x${Tk}`,
    });
  }
});

Deno.test("softmax() and logSoftmax() gradients match finite differences (causal and not)", async () => {
  const x = { data: randomArray(12, 41, -2, 2), shape: [3, 4] };
  await gradCheck((t) => softmax(t), [x], { label: "softmax" });
  await gradCheck((t) => logSoftmax(t), [x], { label: "logSoftmax" });
  await gradCheck((t) => softmax(t, -1, { causal: true }), [{
    data: randomArray(15, 42, -2, 2),
    shape: [1, 3, 5],
  }], {
    label: "causal softmax",
  });
  // Masked log-probabilities are -inf: clamp them (to a small constant, so the f32 probe loss
  // keeps its precision) so the loss stays finite.
  await gradCheck((t) => clamp(logSoftmax(t, -1, { causal: true }), -20, 20), [
    { data: randomArray(16, 43, -2, 2), shape: [1, 4, 4] },
  ], { label: "causal logSoftmax" });
  await gradCheck((t) => softmax(t, 0), [{ data: randomArray(6, 44, -2, 2), shape: [3, 2] }], {
    label: "softmax axis 0",
  });
  await gradCheck((t) => softmax(t), [{ data: randomArray(70, 45, -2, 2), shape: [1, 70] }], {
    label: "softmax long row",
  });
});

/** Float64 attention for [BH, T, D] flattened. */
function attentionRef(
  q: ArrayLike<number>,
  k: ArrayLike<number>,
  v: ArrayLike<number>,
  BH: number,
  Tq: number,
  Tk: number,
  D: number,
  Dv: number,
  opts: { causal?: boolean; mask?: (bh: number, i: number, j: number) => number },
) {
  const out = new Float64Array(BH * Tq * Dv);
  for (let b = 0; b < BH; b++) {
    const scores = new Float64Array(Tq * Tk);
    for (let i = 0; i < Tq; i++) {
      for (let j = 0; j < Tk; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q[(b * Tq + i) * D + d] * k[(b * Tk + j) * D + d];
        scores[i * Tk + j] = s / Math.sqrt(D) + (opts.mask ? opts.mask(b, i, j) : 0);
      }
    }
    const p = softmaxRef(scores, Tq, Tk, { causal: opts.causal ? Tq : undefined });
    for (let i = 0; i < Tq; i++) {
      for (let e = 0; e < Dv; e++) {
        let s = 0;
        for (let j = 0; j < Tk; j++) s += p[i * Tk + j] * v[(b * Tk + j) * Dv + e];
        out[(b * Tq + i) * Dv + e] = s;
      }
    }
  }
  return out;
}

Deno.test("scaledDotProductAttention() matches the float64 reference (causal, additive -inf mask)", async () => {
  const [B, H, Tq, Tk, D, Dv] = [2, 2, 3, 5, 4, 3];
  const q = randomArray(B * H * Tq * D, 51),
    k = randomArray(B * H * Tk * D, 52),
    v = randomArray(B * H * Tk * Dv, 53);
  const Q = f32(q, [B, H, Tq, D]), K = f32(k, [B, H, Tk, D]), V = f32(v, [B, H, Tk, Dv]);
  const plain = scaledDotProductAttention(Q, K, V);
  assert.deepEqual(plain.shape, [B, H, Tq, Dv]);
  assertClose(await plain.read(), attentionRef(q, k, v, B * H, Tq, Tk, D, Dv, {}), {
    atol: 1e-5,
    label: "sdpa",
  });
  assertClose(
    await scaledDotProductAttention(Q, K, V, { causal: true }).read(),
    attentionRef(q, k, v, B * H, Tq, Tk, D, Dv, { causal: true }),
    { atol: 1e-5, label: "sdpa causal" },
  );
  // Per-batch key mask [B, 1, 1, Tk]: batch 0 drops keys 1 and 3 (dropped condition tokens).
  const m = new Float32Array(B * Tk);
  m[1] = -Infinity;
  m[3] = -Infinity;
  m[Tk + 4] = -0.5;
  const maskFn = (bh: number, _i: number, j: number) => m[Math.floor(bh / H) * Tk + j];
  assertClose(
    await scaledDotProductAttention(Q, K, V, { mask: tensor(m, [B, 1, 1, Tk]) }).read(),
    attentionRef(q, k, v, B * H, Tq, Tk, D, Dv, { mask: maskFn }),
    { atol: 1e-5, label: "sdpa masked" },
  );
});

Deno.test("scaledDotProductAttention() gradients match finite differences", async () => {
  const [B, H, T, D] = [1, 2, 3, 2];
  const inputs = [61, 62, 63].map((s) => ({
    data: randomArray(B * H * T * D, s),
    shape: [B, H, T, D],
  }));
  await gradCheck((q, k, v) => scaledDotProductAttention(q, k, v, { causal: true }), inputs, {
    label: "sdpa causal",
  });
  const mask = f32([0, -Infinity, 0.3], [1, 1, 1, 3]);
  await gradCheck((q, k, v) => scaledDotProductAttention(q, k, v, { mask }), inputs, {
    label: "sdpa masked",
  });
});

type Sdpa = typeof scaledDotProductAttention;

/** Forward output and q/k/v gradients (for a fixed weighting of the output) of one path. */
async function runPath(
  fn: Sdpa,
  data: { q: Float64Array; k: Float64Array; v: Float64Array; w: Float64Array },
  shapes: { q: number[]; k: number[]; v: number[] },
  opts: Parameters<Sdpa>[3],
) {
  const q = param(data.q, shapes.q), k = param(data.k, shapes.k), v = param(data.v, shapes.v);
  const out = fn(q, k, v, opts);
  const o = await out.read();
  const loss = sum(mul(out, f32(data.w, [...out.shape])));
  loss.backward();
  const grads = [await q.grad!.read(), await k.grad!.read(), await v.grad!.read()];
  for (const t of [q, k, v]) {
    t.grad!.dispose();
    t.dispose();
  }
  return { o, grads, shape: out.shape };
}

Deno.test("attentionFused() matches the float64 reference and the composed path (values and gradients)", async () => {
  // [BH split as B, H], Tq, Tk, D, Dv, causal, mask kind
  const cases: [number, number, number, number, number, number, boolean, string][] = [
    [1, 1, 1, 1, 8, 8, false, "none"],
    [1, 2, 7, 7, 8, 8, true, "none"],
    [2, 1, 33, 33, 16, 16, true, "none"],
    [1, 2, 70, 70, 64, 64, false, "keys"],
    [1, 1, 130, 130, 16, 16, true, "none"],
    [2, 2, 7, 33, 16, 8, false, "keys"], // cross attention: extra context keys
    [1, 2, 33, 70, 8, 8, true, "full"], // causal with Tk > Tq, full [Tq, Tk] mask
    [1, 1, 70, 130, 64, 64, true, "keys"],
    [1, 1, 5, 9, 6, 5, false, "rows"], // D, Dv not multiples of 4
  ];
  for (const [B, H, Tq, Tk, D, Dv, causal, maskKind] of cases) {
    const label = `B${B} H${H} Tq${Tq} Tk${Tk} D${D} Dv${Dv}${causal ? " causal" : ""} ${maskKind}`;
    const seed = Tq * 1000 + Tk * 10 + D;
    const data = {
      q: randomArray(B * H * Tq * D, seed + 1, -2, 2),
      k: randomArray(B * H * Tk * D, seed + 2, -2, 2),
      v: randomArray(B * H * Tk * Dv, seed + 3),
      w: randomArray(B * H * Tq * Dv, seed + 4),
    };
    let mask: Tensor | null = null;
    let maskFn: ((bh: number, i: number, j: number) => number) | undefined;
    if (maskKind === "keys") {
      // [B, 1, 1, Tk]: batch 0 drops every third key (never key 0), batch 1 a soft bias.
      const m = new Float32Array(B * Tk);
      for (let j = 0; j < Tk; j++) m[j] = j % 3 === 1 ? -Infinity : 0;
      for (let j = 0; j < Tk * (B - 1); j++) m[Tk + j] = -0.5 + (j % 5) * 0.2;
      mask = tensor(m, [B, 1, 1, Tk]);
      maskFn = (bh, _i, j) => m[Math.floor(bh / H) * Tk + j];
    } else if (maskKind === "full") {
      const m = Float32Array.from(randomArray(Tq * Tk, seed + 5, -1, 1));
      for (let i = 0; i < Tq; i++) m[i * Tk] = -Infinity; // key 0 dropped for every query
      mask = tensor(m, [Tq, Tk]);
      maskFn = (_bh, i, j) => m[i * Tk + j];
    } else if (maskKind === "rows") {
      // [Tq, 1]: a per-query additive bias (cancels in the softmax).
      const m = Float32Array.from({ length: Tq }, (_, i) => i - 2);
      mask = tensor(m, [Tq, 1]);
      maskFn = (_bh, i, _j) => m[i];
    }
    const shapes = { q: [B, H, Tq, D], k: [B, H, Tk, D], v: [B, H, Tk, Dv] };
    const opts = { causal, mask };
    const f = await runPath(attentionFused, data, shapes, opts);
    const r = await runPath(attentionReference, data, shapes, opts);
    assert.deepEqual(f.shape, [B, H, Tq, Dv]);
    assertClose(
      f.o,
      attentionRef(data.q, data.k, data.v, B * H, Tq, Tk, D, Dv, { causal, mask: maskFn }),
      {
        atol: 2e-5,
        label: `fused vs float64 ${label}`,
      },
    );
    assertClose(f.o, r.o, { atol: 2e-5, label: `fused vs composed ${label}` });
    for (let g = 0; g < 3; g++) {
      assertClose(f.grads[g], r.grads[g], {
        atol: 1e-4,
        rtol: 1e-3,
        label: `grad ${"qkv"[g]} fused vs composed ${label}`,
      });
    }
    mask?.dispose();
  }
});

Deno.test("attentionFused() broadcasts batch dimensions and yields NaN for fully masked rows", async () => {
  // k and v shared across heads ([B, 1, Tk, D]); q [B, H, Tq, D].
  const [B, H, Tq, Tk, D] = [2, 3, 7, 33, 8];
  const data = {
    q: randomArray(B * H * Tq * D, 81),
    k: randomArray(B * Tk * D, 82),
    v: randomArray(B * Tk * D, 83),
    w: randomArray(B * H * Tq * D, 84),
  };
  const shapes = { q: [B, H, Tq, D], k: [B, 1, Tk, D], v: [B, 1, Tk, D] };
  const f = await runPath(attentionFused, data, shapes, {});
  const r = await runPath(attentionReference, data, shapes, {});
  assertClose(f.o, r.o, { atol: 2e-5, label: "broadcast fused vs composed" });
  for (let g = 0; g < 3; g++) {
    assertClose(f.grads[g], r.grads[g], { atol: 1e-4, rtol: 1e-3, label: `broadcast grad ${g}` });
  }
  // Query 2 of every head sees only -inf keys: NaN in both paths, other rows unaffected.
  const m = new Float32Array(Tq * Tk);
  for (let j = 0; j < Tk; j++) m[2 * Tk + j] = -Infinity;
  const mask = tensor(m, [Tq, Tk]);
  const Q = f32(data.q, shapes.q), K = f32(data.k, shapes.k), V = f32(data.v, shapes.v);
  const fo = await attentionFused(Q, K, V, { mask }).read();
  const ro = await attentionReference(Q, K, V, { mask }).read();
  for (let i = 0; i < fo.length; i++) {
    const row = Math.floor(i / D) % Tq;
    assert.equal(Number.isNaN(fo[i]), row === 2, `fused NaN at ${i}`);
    assert.equal(Number.isNaN(ro[i]), row === 2, `composed NaN at ${i}`);
    if (row !== 2) assert.ok(Math.abs(fo[i] - ro[i]) < 2e-5, `masked row ${row} at ${i}`);
  }
});

Deno.test("attentionFused() gradients match finite differences (causal, cross, -inf mask)", async () => {
  const inputs = (Tq: number, Tk: number, D: number, s: number) =>
    [[Tq, D], [Tk, D], [Tk, D]].map(([T, d], n) => ({
      data: randomArray(2 * T * d, s + n),
      shape: [1, 2, T, d],
    }));
  await gradCheck((q, k, v) => attentionFused(q, k, v, { causal: true }), inputs(3, 3, 2, 91), {
    label: "fused causal",
  });
  await gradCheck((q, k, v) => attentionFused(q, k, v, { causal: true }), inputs(2, 5, 3, 94), {
    label: "fused causal cross",
  });
  const mask = f32([0, -Infinity, 0.3, -1], [1, 1, 1, 4]);
  await gradCheck((q, k, v) => attentionFused(q, k, v, { mask }), inputs(3, 4, 2, 97), {
    label: "fused masked",
  });
});

Deno.test("scaledDotProductAttention() takes the fused path only where it applies", async () => {
  // D = 160 > 128 falls back to the composed path; results agree with the reference either way.
  const [Tq, Tk] = [5, 6];
  for (const D of [16, 160]) {
    const q = f32(randomArray(Tq * D, 101), [1, Tq, D]);
    const k = f32(randomArray(Tk * D, 102), [1, Tk, D]);
    const v = f32(randomArray(Tk * 4, 103), [1, Tk, 4]);
    assertClose(
      await scaledDotProductAttention(q, k, v, { causal: true }).read(),
      await attentionReference(q, k, v, { causal: true }).read(),
      { atol: 2e-5, label: `sdpa D${D}` },
    );
    if (D > 128) assert.throws(() => attentionFused(q, k, v), /attentionFused: the fused kernel/);
  }
  // Causal with Tk < Tq keeps the composed path's error.
  const q = f32(randomArray(12, 1), [1, 3, 4]), k = f32(randomArray(8, 2), [1, 2, 4]);
  assert.throws(
    () => scaledDotProductAttention(q, k, k, { causal: true }),
    /a causal mask needs key length >= query length/,
  );
});

Deno.test("splitHeads() and mergeHeads() are inverse layouts", async () => {
  const [B, T, H, D] = [2, 3, 2, 4];
  const x = randomArray(B * T * H * D, 71);
  const s = splitHeads(f32(x, [B, T, H * D]), H);
  assert.deepEqual(s.shape, [B, H, T, D]);
  const sv = await s.read();
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        for (let d = 0; d < D; d++) {
          assert.equal(
            sv[((b * H + h) * T + t) * D + d],
            Math.fround(x[(b * T + t) * H * D + h * D + d]),
          );
        }
      }
    }
  }
  const back = mergeHeads(s);
  assert.deepEqual(back.shape, [B, T, H * D]);
  assertClose(await back.read(), x, { atol: 1e-7, label: "merge(split(x))" });
});

Deno.test("softmax and attention reject bad input naming the op and shapes", () => {
  const x = f32(randomArray(12, 1), [3, 4]);
  assert.throws(() => softmax(x, 2), /softmax: axis 2 is out of range for a tensor of rank 2/);
  assert.throws(
    () => logSoftmax(f32([1, 2, 3, 4, 5, 6], [3, 2]), -1, { causal: true }),
    /logSoftmax: a causal mask needs key length >= query length, got shape \[3,2\]/,
  );
  const q = f32(randomArray(8, 2), [1, 1, 2, 4]);
  assert.throws(
    () => scaledDotProductAttention(q, f32(randomArray(6, 3), [1, 1, 2, 3]), q),
    /scaledDotProductAttention: shapes do not match: q \[1,1,2,4\], k \[1,1,2,3\]/,
  );
  assert.throws(
    () => scaledDotProductAttention(q, q, q, { mask: f32([0, 0, 0], [3]) }),
    /scaledDotProductAttention: mask \[3\] does not broadcast to scores \[1,1,2,2\]/,
  );
  assert.throws(
    () => splitHeads(f32(randomArray(12, 4), [1, 2, 6]), 4),
    /splitHeads: cannot split input \[1,2,6\] into 4 heads/,
  );
});
