/**
 * The cross-attention block (`CrossAttentionBlock`: image positions read the condition tokens
 * only) and the U-Net option that places it (`crossAttentionLevels`).
 */
import assert from "node:assert/strict";
import { initBackend, manualSeed, noGrad, ones, scope, tensor } from "../core/tensor/mod.ts";
import { CrossAttentionBlock, UNetDecoder, unetOptions } from "../plugins/decoders/mod.ts";
import {
  assertClose,
  gradCheck,
  hostRandom,
  parameterGradCheck,
  randomArray,
} from "./_support/check.ts";
import { tinyUNetOptions } from "./_support/tiny_unet.ts";

await initBackend();

/** The block in float64 on the host: GroupNorm, q from x, k/v from the tokens, softmax, proj. */
function referenceCrossAttention(
  x: Float64Array,
  context: Float64Array,
  p: Map<string, Float64Array>,
  [B, C, H, W]: number[],
  [S, D]: number[],
  heads: number,
  groups: number,
): Float64Array {
  const N = H * W, cg = C / groups, dh = C / heads;
  const out = Float64Array.from(x);
  const linear = (w: Float64Array, b: Float64Array, v: number[], outF: number): number[] =>
    Array.from(
      { length: outF },
      (_, o) => b[o] + v.reduce((s, vi, i) => s + w[o * v.length + i] * vi, 0),
    );
  for (let b = 0; b < B; b++) {
    const h: number[][] = Array.from({ length: N }, () => new Array(C).fill(0));
    for (let g = 0; g < groups; g++) {
      let mean = 0, sq = 0;
      for (let c = g * cg; c < (g + 1) * cg; c++) {
        for (let n = 0; n < N; n++) mean += x[(b * C + c) * N + n];
      }
      mean /= cg * N;
      for (let c = g * cg; c < (g + 1) * cg; c++) {
        for (let n = 0; n < N; n++) sq += (x[(b * C + c) * N + n] - mean) ** 2;
      }
      const inv = 1 / Math.sqrt(sq / (cg * N) + 1e-5);
      for (let c = g * cg; c < (g + 1) * cg; c++) {
        for (let n = 0; n < N; n++) {
          h[n][c] = (x[(b * C + c) * N + n] - mean) * inv * p.get("norm.weight")![c] +
            p.get("norm.bias")![c];
        }
      }
    }
    const kv = Array.from(
      { length: S },
      (_, s) =>
        linear(
          p.get("contextKv.weight")!,
          p.get("contextKv.bias")!,
          Array.from(context.subarray((b * S + s) * D, (b * S + s + 1) * D)),
          2 * C,
        ),
    );
    for (let n = 0; n < N; n++) {
      const q = linear(p.get("q.weight")!, p.get("q.bias")!, h[n], C);
      const merged = new Array(C).fill(0);
      for (let hd = 0; hd < heads; hd++) {
        const logits = kv.map((row) => {
          let dot = 0;
          for (let i = 0; i < dh; i++) dot += q[hd * dh + i] * row[hd * dh + i];
          return dot / Math.sqrt(dh);
        });
        const top = Math.max(...logits);
        const e = logits.map((l) => Math.exp(l - top));
        const z = e.reduce((s, v) => s + v, 0);
        for (let i = 0; i < dh; i++) {
          merged[hd * dh + i] = kv.reduce(
            (s, row, si) => s + (e[si] / z) * row[C + hd * dh + i],
            0,
          );
        }
      }
      const o = linear(p.get("proj.weight")!, p.get("proj.bias")!, merged, C);
      for (let c = 0; c < C; c++) out[(b * C + c) * N + n] += o[c];
    }
  }
  return out;
}

Deno.test("CrossAttentionBlock matches a float64 reference that attends to the tokens alone", async () => {
  manualSeed(11);
  const [B, C, H, W, S, D, heads, groups] = [2, 8, 3, 2, 5, 6, 2, 4];
  const block = new CrossAttentionBlock(C, heads, D, groups);
  // Every parameter random (the output projection starts at zero), read back for the reference.
  const params = new Map<string, Float64Array>();
  block.namedParameters().forEach(([name, t], i) => {
    const data = randomArray(t.size, 100 + i, -0.6, 0.6);
    t.write(Float32Array.from(data));
    params.set(name, Float64Array.from(Float32Array.from(data)));
  });
  assert.deepEqual(
    [...params.keys()].sort(),
    [
      "contextKv.bias",
      "contextKv.weight",
      "norm.bias",
      "norm.weight",
      "proj.bias",
      "proj.weight",
      "q.bias",
      "q.weight",
    ],
  );
  const x = Float32Array.from(randomArray(B * C * H * W, 1, -2, 2));
  const ctx = Float32Array.from(randomArray(B * S * D, 2, -1, 1));
  const got = await noGrad(() =>
    scope(() => block.forward(tensor(x, [B, C, H, W]), tensor(ctx, [B, S, D])))
  ).read();
  const want = referenceCrossAttention(
    Float64Array.from(x),
    Float64Array.from(ctx),
    params,
    [B, C, H, W],
    [S, D],
    heads,
    groups,
  );
  assertClose(got, want, { atol: 1e-4, rtol: 1e-4, label: "cross-attention" });
  block.dispose();
});

Deno.test("CrossAttentionBlock gradients to the feature map and the tokens match finite differences", async () => {
  manualSeed(12);
  const [B, C, H, W, S, D] = [1, 4, 2, 2, 3, 5];
  const block = new CrossAttentionBlock(C, 2, D, 2);
  block.namedParameters().forEach(([, t], i) => {
    t.write(Float32Array.from(randomArray(t.size, 200 + i, -0.8, 0.8)));
  });
  await gradCheck((x, ctx) => block.forward(x, ctx), [
    { data: randomArray(B * C * H * W, 3, -2, 2), shape: [B, C, H, W] },
    { data: randomArray(B * S * D, 4), shape: [B, S, D] },
  ], { label: "CrossAttentionBlock" });
  block.dispose();
});

Deno.test("CrossAttentionBlock parameter gradients match finite differences", async () => {
  // The test above checks the gradients to the inputs; here every parameter's (GroupNorm, the
  // query projection, the tokens' key/value projection, the output projection) is checked element
  // by element against central differences of a weighted sum of the output.
  manualSeed(13);
  const [B, C, H, W, S, D, heads] = [2, 4, 2, 3, 3, 5, 2];
  const block = new CrossAttentionBlock(C, heads, D, 2);
  block.namedParameters().forEach(([, t], i) => {
    t.write(Float32Array.from(randomArray(t.size, 300 + i, -0.8, 0.8)));
  });
  const x = tensor(Float32Array.from(randomArray(B * C * H * W, 5, -2, 2)), [B, C, H, W]);
  const ctx = tensor(Float32Array.from(randomArray(B * S * D, 6)), [B, S, D]);
  await parameterGradCheck(block.namedParameters(), () => block.forward(x, ctx), {
    label: "CrossAttentionBlock",
  });
  for (const t of [x, ctx]) t.dispose();
  block.dispose();
});

Deno.test("CrossAttentionBlock refuses a call without tokens and a build without a token width", () => {
  const block = new CrossAttentionBlock(8, 2, 6, 4);
  const x = ones([1, 8, 2, 2]);
  assert.throws(() => block.forward(x), /needs condition tokens/);
  x.dispose();
  block.dispose();
  assert.throws(() => new CrossAttentionBlock(8, 2, 0, 4), /contextDim 0/);
  assert.throws(() => new CrossAttentionBlock(8, 3, 6, 4), /heads "3" do not divide/);
});

Deno.test("crossAttentionLevels: blocks after each residual block of the level, nothing else changed at init", async () => {
  const T = 5, VOCAB = 30;
  manualSeed(5);
  const plain = new UNetDecoder(tinyUNetOptions({ attentionLevels: [1] }));
  manualSeed(5);
  const cross = new UNetDecoder(
    tinyUNetOptions({ attentionLevels: [1], crossAttentionLevels: [0] }),
  );
  const plainParams = new Map(plain.namedParameters());
  const added = cross.namedParameters().map(([n]) => n).filter((n) => !plainParams.has(n));
  // Level 0: one residual block down, two up (the mirror path has one more per level).
  assert.deepEqual(
    [...new Set(added.map((n) => n.replace(/\.xattn\..*/, ".xattn")))],
    ["down.0.xattn", "up.2.xattn", "up.3.xattn"],
  );
  // The blocks' initialisation is undone in the generator: every shared parameter is identical.
  for (const [name, p] of cross.namedParameters()) {
    if (!plainParams.has(name)) continue;
    assert.deepEqual(await p.read(), await plainParams.get(name)!.read(), name);
  }
  // Zero output projections: at init the U-Net computes what the one without them does.
  const r = hostRandom(9);
  const B = 2;
  const cond = {
    tokens: {
      ids: tensor(Int32Array.from({ length: B * T }, () => Math.floor(r() * VOCAB)), [B, T], "i32"),
      endIndex: tensor(Int32Array.from([2, 4]), [B], "i32"),
    },
    imageEmbedding: tensor(Float32Array.from({ length: B * 8 }, () => r() * 2 - 1), [B, 8]),
    keep: ones([B]),
  };
  const xt = tensor(Float32Array.from({ length: B * 3 * 64 }, () => r() * 2 - 1), [B, 3, 8, 8]);
  const t = tensor(Float32Array.from([3, 40]), [B]);
  for (const [name, p] of cross.namedParameters()) {
    // The output convs are zero too; give them values so the comparison is not 0 = 0.
    if (name.startsWith("outConv.")) {
      const data = Float32Array.from(randomArray(p.size, 21, -0.2, 0.2));
      p.write(data);
      plainParams.get(name)!.write(data);
    }
  }
  const a = await noGrad(() => scope(() => cross.predictNoise(xt, t, cond))).read();
  const b = await noGrad(() => scope(() => plain.predictNoise(xt, t, cond))).read();
  assert.ok(b.some((v) => v !== 0));
  assertClose(a, b, { atol: 1e-6, rtol: 1e-5, label: "cross-attention U-Net at init" });
  plain.dispose();
  cross.dispose();
});

Deno.test("crossAttentionLevels: a level that does not exist or already has attention is refused", () => {
  assert.throws(
    () => tinyUNetOptions({ crossAttentionLevels: [2] }),
    /level 2 does not exist: channelMults has 2 levels/,
  );
  assert.throws(
    () => tinyUNetOptions({ attentionLevels: [1], crossAttentionLevels: [1] }),
    /level 1 already has attention blocks/,
  );
  assert.deepEqual(unetOptions.parse({}).crossAttentionLevels, []);
});
