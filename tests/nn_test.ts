/**
 * nn layers: output shapes, gradient flow to every parameter, float64 references for attention,
 * causality, timestep embeddings, BatchNorm train/eval and deterministic construction.
 */
import assert from "node:assert/strict";
import { assertClose, randomArray } from "./_support/check.ts";
import {
  BatchNorm2d,
  Conv2d,
  ConvTranspose2d,
  Embedding,
  GroupNorm,
  LayerNorm,
  Linear,
  type Module,
  MultiheadAttention,
  timestepEmbedding,
  TransformerBlock,
} from "../core/nn/mod.ts";
import { manualSeed, mul, noGrad, scope, sum, type Tensor, tensor } from "../core/tensor/mod.ts";

/** Reads a float tensor back. */
const rd = async (t: Tensor): Promise<Float32Array> => (await t.read()) as Float32Array;

const input = (shape: number[], seed: number): Tensor =>
  tensor(Float32Array.from(randomArray(shape.reduce((a, b) => a * b, 1), seed)), shape);

/** Backpropagates sum(out * w) for a fixed random w and checks every parameter's gradient. */
async function assertGradFlow(m: Module, run: () => Tensor, label: string): Promise<number[]> {
  scope(() => {
    const out = run();
    sum(mul(out, input([...out.shape], 99))).backward();
  });
  const shape: number[] = [];
  for (const [name, p] of m.namedParameters()) {
    assert.ok(p.grad, `${label}: ${name} got no gradient`);
    const g = await rd(p.grad!);
    assert.ok(g.every(Number.isFinite), `${label}: ${name} has a non-finite gradient`);
    assert.ok(g.some((x) => x !== 0), `${label}: ${name} has an all-zero gradient`);
    p.grad!.dispose();
    p.grad = null;
  }
  return shape;
}

Deno.test("Linear: y = x W^T + b against float64, shape and gradient flow", async () => {
  const fc = new Linear(5, 3);
  const x = input([2, 4, 5], 1);
  const y = fc.forward(x);
  assert.deepEqual(y.shape, [2, 4, 3]);
  const [W, b, X, Y] = await Promise.all([rd(fc.weight), rd(fc.bias!), rd(x), rd(y)]);
  const bound = 1 / Math.sqrt(5);
  assert.ok(
    W.every((w) => Math.abs(w) <= bound) && b.every((v) => Math.abs(v) <= bound),
    "init bound",
  );
  const ref = new Float64Array(24);
  for (let r = 0; r < 8; r++) {
    for (let o = 0; o < 3; o++) {
      let s = b[o];
      for (let i = 0; i < 5; i++) s += X[r * 5 + i] * W[o * 5 + i];
      ref[r * 3 + o] = s;
    }
  }
  assertClose(Y, ref, { label: "linear" });
  await assertGradFlow(fc, () => fc.forward(x, "gelu"), "Linear");
  assert.equal(new Linear(5, 3, { bias: false }).parameters().length, 1);
  for (const t of [x, y]) t.dispose();
  fc.dispose();
});

Deno.test("Conv2d / ConvTranspose2d: output shapes and gradient flow", async () => {
  const conv = new Conv2d(2, 4, 3, { stride: 2, padding: 1 });
  const x = input([2, 2, 6, 6], 2);
  const y = conv.forward(x);
  assert.deepEqual(y.shape, [2, 4, 3, 3]);
  await assertGradFlow(conv, () => conv.forward(x, "silu"), "Conv2d");
  const up = new ConvTranspose2d(4, 3, 4, { stride: 2, padding: 1 });
  const z = up.forward(y);
  assert.deepEqual(z.shape, [2, 3, 6, 6]);
  assert.deepEqual(up.weight.shape, [4, 3, 4, 4]);
  await assertGradFlow(up, () => up.forward(y), "ConvTranspose2d");
  for (const t of [x, y, z]) t.dispose();
  conv.dispose();
  up.dispose();
});

Deno.test("GroupNorm / LayerNorm / Embedding: shapes, normalisation and gradient flow", async () => {
  const gn = new GroupNorm(2, 4);
  const x = input([2, 4, 3, 3], 3);
  const y = gn.forward(x);
  assert.deepEqual(y.shape, [2, 4, 3, 3]);
  const Y = await rd(y);
  // Each (sample, group) block of 2 channels x 9 positions is normalised to mean 0.
  for (let blk = 0; blk < 4; blk++) {
    const s = Y.slice(blk * 18, blk * 18 + 18).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(s / 18) < 1e-4, `group ${blk} mean ${s / 18}`);
  }
  await assertGradFlow(gn, () => gn.forward(x, { silu: true }), "GroupNorm");
  const ln = new LayerNorm(6);
  const h = input([3, 6], 4);
  assert.deepEqual(ln.forward(h).shape, [3, 6]);
  await assertGradFlow(ln, () => ln.forward(h), "LayerNorm");
  const emb = new Embedding(10, 4, { std: 0.02 });
  const ids = tensor(new Int32Array([1, 7, 7, 0]), [2, 2]);
  const e = emb.forward(ids);
  assert.deepEqual(e.shape, [2, 2, 4]);
  const [E, T] = await Promise.all([rd(e), rd(emb.weight)]);
  assertClose(E.slice(4, 8), T.slice(28, 32), { label: "embedding row 7" });
  await assertGradFlow(emb, () => emb.forward(ids), "Embedding");
  for (const t of [x, y, h, ids, e]) t.dispose();
  for (const m of [gn, ln, emb]) m.dispose();
});

/** Float64 reference of MultiheadAttention from read-back weights. */
async function attentionReference(
  attn: MultiheadAttention,
  x: Tensor,
  opts: { context?: Tensor; causal?: boolean; mask?: Float64Array } = {},
): Promise<Float64Array> {
  const [B, T, E] = x.shape;
  const H = attn.heads, D = E / H;
  const X = await rd(x);
  const proj = async (l: Linear, src: Float32Array, rows: number): Promise<Float64Array> => {
    const [W, b] = await Promise.all([rd(l.weight), rd(l.bias!)]);
    const out = new Float64Array(rows * l.outFeatures);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < l.outFeatures; o++) {
        let s = b[o];
        for (let i = 0; i < l.inFeatures; i++) {
          s += src[r * l.inFeatures + i] * W[o * l.inFeatures + i];
        }
        out[r * l.outFeatures + o] = s;
      }
    }
    return out;
  };
  const q = await proj(attn.q, X, B * T);
  const kSelf = await proj(attn.k, X, B * T), vSelf = await proj(attn.v, X, B * T);
  let S = 0, kCtx: Float64Array = new Float64Array(0), vCtx: Float64Array = new Float64Array(0);
  if (opts.context) {
    S = opts.context.shape[1];
    const C = await rd(opts.context);
    kCtx = await proj(attn.kContext!, C, B * S);
    vCtx = await proj(attn.vContext!, C, B * S);
  }
  const Tk = T + S;
  const key = (b: number, j: number, c: number, self: Float64Array, ctx: Float64Array): number =>
    j < T ? self[(b * T + j) * E + c] : ctx[(b * S + j - T) * E + c];
  const merged = new Float64Array(B * T * E);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        const scores = new Float64Array(Tk);
        for (let j = 0; j < Tk; j++) {
          let s = 0;
          for (let d = 0; d < D; d++) {
            s += q[(b * T + i) * E + h * D + d] * key(b, j, h * D + d, kSelf, kCtx);
          }
          s /= Math.sqrt(D);
          if (opts.mask) s += opts.mask[i * Tk + j];
          if (opts.causal && j > i) s = -Infinity;
          scores[j] = s;
        }
        const mx = Math.max(...scores);
        let z = 0;
        for (let j = 0; j < Tk; j++) z += scores[j] = Math.exp(scores[j] - mx);
        for (let d = 0; d < D; d++) {
          let s = 0;
          for (let j = 0; j < Tk; j++) s += (scores[j] / z) * key(b, j, h * D + d, vSelf, vCtx);
          merged[(b * T + i) * E + h * D + d] = s;
        }
      }
    }
  }
  return await proj(attn.out, Float32Array.from(merged), B * T);
}

Deno.test("MultiheadAttention matches a float64 reference (self, causal, masked context)", async () => {
  manualSeed(11);
  const attn = new MultiheadAttention(8, 2, { kvDim: 6 });
  const x = input([2, 3, 8], 5);
  const ctx = input([2, 2, 6], 6);
  const plain = noGrad(() => attn.forward(x));
  assertClose(await rd(plain), await attentionReference(attn, x), { atol: 1e-5, label: "self" });
  const causal = noGrad(() => attn.forward(x, { causal: true }));
  assertClose(await rd(causal), await attentionReference(attn, x, { causal: true }), {
    atol: 1e-5,
    label: "causal",
  });
  // Mask [Tq, Tk] = [3, 5]: query 0 may not see context token 1, query 2 not self token 1.
  const maskData = new Float64Array(15);
  maskData[4] = -Infinity;
  maskData[2 * 5 + 1] = -Infinity;
  maskData[5 + 3] = -0.7;
  const mask = tensor(Float32Array.from(maskData), [3, 5]);
  const withCtx = noGrad(() => attn.forward(x, { context: ctx, mask }));
  assert.deepEqual(withCtx.shape, [2, 3, 8]);
  assertClose(
    await rd(withCtx),
    await attentionReference(attn, x, { context: ctx, mask: maskData }),
    {
      atol: 1e-5,
      label: "context + mask",
    },
  );
  await assertGradFlow(attn, () => attn.forward(x, { context: ctx }), "MultiheadAttention");
  assert.throws(() => attn.forward(x, { context: ctx, causal: true }), /causal/);
  for (const t of [x, ctx, plain, causal, mask, withCtx]) t.dispose();
  attn.dispose();
});

Deno.test("TransformerBlock: shape, gradient flow, causal outputs ignore later tokens", async () => {
  manualSeed(12);
  const block = new TransformerBlock(8, 2, { causal: true, mlpRatio: 2 });
  assert.deepEqual(
    block.namedParameters().map(([n]) => n).slice(0, 4),
    ["ln1.weight", "ln1.bias", "attn.q.weight", "attn.q.bias"],
  );
  const data = randomArray(2 * 4 * 8, 8);
  const x = tensor(Float32Array.from(data), [2, 4, 8]);
  const y = noGrad(() => block.forward(x));
  assert.deepEqual(y.shape, [2, 4, 8]);
  // Change tokens 2 and 3 of both sequences: outputs at positions 0 and 1 must not move.
  const changed = Float64Array.from(data);
  for (let b = 0; b < 2; b++) for (let i = 16; i < 32; i++) changed[b * 32 + i] += 1.5;
  const x2 = tensor(Float32Array.from(changed), [2, 4, 8]);
  const y2 = noGrad(() => block.forward(x2));
  const [Y, Y2] = await Promise.all([rd(y), rd(y2)]);
  for (let b = 0; b < 2; b++) {
    assertClose(Y2.slice(b * 32, b * 32 + 16), Y.slice(b * 32, b * 32 + 16), {
      atol: 1e-6,
      label: "prefix",
    });
    assert.ok(Math.abs(Y2[b * 32 + 24] - Y[b * 32 + 24]) > 1e-3, "later positions do change");
  }
  await assertGradFlow(block, () => block.forward(x), "TransformerBlock");
  for (const t of [x, y, x2, y2]) t.dispose();
  block.dispose();
});

Deno.test("manualSeed + construction gives identical weights", async () => {
  manualSeed(5);
  const a = new TransformerBlock(8, 2);
  manualSeed(5);
  const b = new TransformerBlock(8, 2);
  const pa = a.parameters(), pb = b.parameters();
  assert.equal(pa.length, pb.length);
  for (let i = 0; i < pa.length; i++) assert.deepEqual(await rd(pa[i]), await rd(pb[i]));
  a.dispose();
  b.dispose();
});

Deno.test("timestepEmbedding matches the closed form (cos first, then sin; odd dim zero-padded)", async () => {
  const ts = [0, 1, 17.5, 999];
  const t = tensor(ts, [4]);
  for (const dim of [8, 7]) {
    const e = timestepEmbedding(t, dim);
    assert.deepEqual(e.shape, [4, dim]);
    const half = Math.floor(dim / 2);
    const ref = new Float64Array(4 * dim);
    ts.forEach((tv, b) => {
      for (let j = 0; j < half; j++) {
        const f = Math.exp((-Math.log(10000) * j) / half);
        ref[b * dim + j] = Math.cos(tv * f);
        ref[b * dim + half + j] = Math.sin(tv * f);
      }
    });
    assertClose(await rd(e), ref, { atol: 2e-4, label: `dim ${dim}` });
    e.dispose();
  }
  t.dispose();
});

Deno.test("BatchNorm2d: batch statistics and running updates in training, running stats in eval", async () => {
  const bn = new BatchNorm2d(2, { momentum: 0.5 });
  const data = randomArray(3 * 2 * 2 * 2, 9, -1, 3);
  const x = tensor(Float32Array.from(data), [3, 2, 2, 2]);
  const y = bn.forward(x);
  const Y = await rd(y);
  const [rm, rv] = await Promise.all([rd(bn.runningMean), rd(bn.runningVar)]);
  for (let c = 0; c < 2; c++) {
    const vals: number[] = [];
    for (let n = 0; n < 3; n++) for (let k = 0; k < 4; k++) vals.push(data[n * 8 + c * 4 + k]);
    const mu = vals.reduce((a, b) => a + b, 0) / 12;
    const varB = vals.reduce((a, b) => a + (b - mu) ** 2, 0) / 12;
    for (let n = 0; n < 3; n++) {
      for (let k = 0; k < 4; k++) {
        const i = n * 8 + c * 4 + k;
        assert.ok(Math.abs(Y[i] - (data[i] - mu) / Math.sqrt(varB + 1e-5)) < 1e-4, "train output");
      }
    }
    assert.ok(Math.abs(rm[c] - 0.5 * mu) < 1e-5, "running mean");
    assert.ok(Math.abs(rv[c] - (0.5 + 0.5 * varB * 12 / 11)) < 1e-4, "running var (unbiased)");
  }
  bn.eval();
  const ye = bn.forward(x);
  const Ye = await rd(ye);
  const rm2 = await rd(bn.runningMean);
  assert.deepEqual(rm2, rm, "eval does not update the running mean");
  for (let i = 0; i < 24; i++) {
    const c = Math.floor(i / 4) % 2;
    assert.ok(Math.abs(Ye[i] - (data[i] - rm[c]) / Math.sqrt(rv[c] + 1e-5)) < 1e-4, "eval output");
  }
  bn.train();
  await assertGradFlow(bn, () => bn.forward(x), "BatchNorm2d");
  for (const t of [x, y, ye]) t.dispose();
  bn.dispose();
});
