import assert from "node:assert/strict";
import {
  affine,
  bernoulli,
  concat,
  engineStats,
  full,
  initBackend,
  manualSeed,
  mul,
  noGrad,
  randn,
  reshape,
  scope,
  sub,
  sum,
  type Tensor,
  tensor,
} from "../core/tensor/mod.ts";
import { Adam } from "../core/optim/mod.ts";
import { builtins } from "../plugins/mod.ts";
import type { DecoderConditioning } from "../core/components.ts";
import { clampGroups, UNetDecoder, type UNetOptions } from "../plugins/decoders/mod.ts";
import { decoderLoss, minSnrWeights } from "../core/diffusion/mod.ts";
import { cosineBetas } from "../plugins/schedules/mod.ts";
import { NoiseSchedule } from "../core/diffusion/mod.ts";
import { generateSplit } from "../datasets/mod.ts";
import { hostRandom } from "./_support/check.ts";
import { tinyUNetOptions } from "./_support/tiny_unet.ts";

await initBackend();

const T = 6; // context length of the tiny configs
const VOCAB = 40;

function tinyOptions(imageSize: number, extra: Record<string, unknown> = {}): UNetOptions {
  return tinyUNetOptions({ imageSize, contextLength: T, vocabSize: VOCAB, ...extra });
}

function conditioning(
  B: number,
  seed: number,
  keep: number[] = new Array(B).fill(1),
): DecoderConditioning {
  const r = hostRandom(seed);
  const ids = Int32Array.from({ length: B * T }, () => Math.floor(r() * VOCAB));
  const end = Int32Array.from({ length: B }, () => 1 + Math.floor(r() * (T - 1)));
  return {
    tokens: { ids: tensor(ids, [B, T], "i32"), endIndex: tensor(end, [B], "i32") },
    imageEmbedding: tensor(Float32Array.from({ length: B * 8 }, () => r() * 2 - 1), [B, 8]),
    keep: tensor(Float32Array.from(keep), [B]),
  };
}

/** Gives every zero-initialised parameter small random values so every path carries signal. */
function perturbZeroInit(model: UNetDecoder, seed: number): void {
  const r = hostRandom(seed);
  for (const [name, p] of model.namedParameters()) {
    if (/(conv2|proj|outConv|nullClip)\./.test(name + ".")) {
      const data = Float32Array.from({ length: p.size }, () => (r() * 2 - 1) * 0.1);
      p.write(data);
    }
  }
}

Deno.test("clampGroups() picks the largest divisor of the channels not above the request", () => {
  assert.equal(clampGroups(32, 64), 32);
  assert.equal(clampGroups(32, 8), 8);
  assert.equal(clampGroups(32, 48), 24);
  assert.equal(clampGroups(4, 6), 3);
  assert.equal(clampGroups(32, 7), 7);
});

Deno.test("UNetDecoder.predictNoise() keeps the input shape at 8x8 and 16x16 with batch 3", async () => {
  for (const size of [8, 16]) {
    for (const upsample of ["transposed", "nearest"]) {
      const model = new UNetDecoder(tinyOptions(size, { upsample }));
      const out = scope(() =>
        model.predictNoise(
          randn([3, 3, size, size]),
          tensor(new Float32Array([0, 7, 99]), [3]),
          conditioning(3, 1),
        )
      );
      assert.deepEqual(out.shape, [3, 3, size, size]);
      // The zero-initialised output conv makes the initial prediction exactly zero.
      assert.ok((await out.read()).every((v) => v === 0));
      out.dispose();
      model.dispose();
    }
  }
});

Deno.test("UNetDecoder rejects a wrong input shape and an indivisible image size", () => {
  const model = new UNetDecoder(tinyOptions(8));
  assert.throws(
    () => scope(() => model.predictNoise(randn([2, 3, 7, 7]), full([2], 1), conditioning(2, 1))),
    /Decoder input has shape \[2,3,7,7\]/,
  );
  model.dispose();
  // The options schema refuses it when a config loads; the constructor checks unparsed options.
  assert.throws(
    () => tinyOptions(6, { channelMults: [1, 2, 4] }),
    /6 is not divisible by 4: channelMults has 3 levels/,
  );
  assert.throws(
    () => new UNetDecoder({ ...tinyOptions(8), imageSize: 6, channelMults: [1, 2, 4] }),
    /Image size "6"/,
  );
});

Deno.test("UNetDecoder gradients reach every parameter (zero-init layers perturbed)", async () => {
  manualSeed(3);
  const model = new UNetDecoder(tinyOptions(8, { attentionLevels: [0, 1] }));
  // At init only the output conv (and the null embeddings' path) can receive a gradient.
  const cond0 = conditioning(3, 2, [1, 0, 1]);
  scope(() => {
    const loss = decoderLoss(model, randn([3, 3, 8, 8]), cond0, new NoiseSchedule(cosineBetas(50)));
    loss.backward();
  });
  const named = model.namedParameters();
  const outGrad = named.find(([n]) => n === "outConv.weight")![1].grad!;
  assert.ok((await scope(() => sum(mul(outGrad, outGrad))).read())[0] > 0);
  for (const [, p] of named) p.grad?.dispose(), p.grad = null;

  perturbZeroInit(model, 4);
  scope(() => {
    const loss = decoderLoss(model, randn([3, 3, 8, 8]), cond0, new NoiseSchedule(cosineBetas(50)));
    loss.backward();
  });
  const missing = named.filter(([, p]) => !p.grad).map(([n]) => n);
  assert.deepEqual(missing, [], `no gradient for ${missing.join(", ")}`);
  const values = await readNorms(named.map(([, p]) => p.grad!));
  const zero = named.filter((_, i) => !(values[i] > 0)).map(([n]) => n);
  assert.deepEqual(zero, [], `zero gradient for ${zero.join(", ")}`);
  model.dispose();
});

/** Squared norms of many tensors with a single readback. */
async function readNorms(grads: Tensor[]): Promise<Float32Array> {
  const t = scope(() => concat(grads.map((g) => reshape(sum(mul(g, g)), [1])), 0));
  const out = await t.read() as Float32Array;
  t.dispose();
  return out;
}

Deno.test("UNetDecoder null condition: keep = 0 rows ignore tokens and CLIP embedding", async () => {
  manualSeed(5);
  const model = new UNetDecoder(tinyOptions(8, { attentionLevels: [0, 1] }));
  perturbZeroInit(model, 6);
  const x = randn([1, 3, 8, 8]);
  const xs = concat([x, x, x, x], 0);
  const t = full([4], 17);
  // Rows 0 and 1 dropped (different captions/embeddings), rows 2 and 3 kept.
  const out = await scope(() => model.predictNoise(xs, t, conditioning(4, 9, [0, 0, 1, 1])))
    .read() as Float32Array;
  const n = 3 * 64;
  const row = (i: number): Float32Array => out.slice(i * n, (i + 1) * n);
  assert.deepEqual(row(0), row(1));
  assert.ok(row(2).some((v, i) => v !== row(3)[i]), "kept rows must depend on the condition");
  assert.ok(row(0).some((v, i) => v !== row(2)[i]));
  x.dispose(), xs.dispose(), t.dispose();
  model.dispose();
});

Deno.test("UNetDecoder conditioning: clip-only ignores the caption, text-only the CLIP embedding", async () => {
  // Thesis section 4.5: one decoder sees CLIP embeddings only, the other captions only.
  manualSeed(11);
  const x = randn([1, 3, 8, 8]);
  const xs = concat([x, x], 0);
  const t = full([2], 23);
  for (const inputs of ["clip", "text"] as const) {
    const model = new UNetDecoder(
      tinyOptions(8, { attentionLevels: [0, 1], conditioning: inputs }),
    );
    perturbZeroInit(model, 12);
    const names = [...model.namedParameters()].map(([n]) => n);
    // Only the parameters of the inputs used exist.
    assert.equal(names.some((n) => n.includes("tokenEmbedding")), inputs === "text", inputs);
    assert.equal(names.some((n) => n.includes("clipProj")), inputs === "clip", inputs);
    // Two rows that differ only in the ignored input predict the same; in the used one, not.
    const a = conditioning(2, 30), b = conditioning(2, 31);
    const mixed: DecoderConditioning = inputs === "clip"
      ? { tokens: b.tokens, imageEmbedding: a.imageEmbedding, keep: a.keep }
      : { tokens: a.tokens, imageEmbedding: b.imageEmbedding, keep: a.keep };
    const predict = (c: DecoderConditioning) =>
      noGrad(() => scope(() => model.predictNoise(xs, t, c))).read();
    assert.deepEqual(await predict(mixed), await predict(a), `${inputs}: ignored input matters`);
    assert.notDeepEqual(await predict(b), await predict(a), `${inputs}: used input is ignored`);
    model.dispose();
  }
  x.dispose(), xs.dispose(), t.dispose();
});

Deno.test("UNetDecoder DALL-E 2 conditioning: caption and CLIP dropped apart, CLIP to the time embedding", async () => {
  // Ramesh et al. 2022, section 2.1: the caption is dropped alone 50% of the time, the CLIP
  // embedding alone 10%, and the embedding's projection is added to the time embedding.
  manualSeed(13);
  const x = randn([1, 3, 8, 8]);
  const xs = concat([x, x], 0);
  const t = full([2], 31);
  const model = new UNetDecoder(tinyOptions(8, { attentionLevels: [0, 1], clipToTime: true }));
  const plain = new UNetDecoder(tinyOptions(8, { attentionLevels: [0, 1] }));
  const names = [...model.namedParameters()].map(([n]) => n);
  assert.ok(names.includes("conditioner.clipPooledProj.weight"), names.join(", "));
  // Linear(clipEmbedDim 8 -> time embedding 4 x 8): weights and bias.
  assert.equal(model.parameterCount() - plain.parameterCount(), 8 * 32 + 32);
  plain.dispose();
  perturbZeroInit(model, 14);
  const a = conditioning(2, 40), b = conditioning(2, 41);
  const ones = tensor(new Float32Array([1, 1]), [2]), zeros2 = tensor(new Float32Array(2), [2]);
  const predict = (c: DecoderConditioning) =>
    noGrad(() => scope(() => model.predictNoise(xs, t, c))).read();
  const full0 = await predict({ ...a, keep: zeros2 });
  // keepText = 0: the caption no longer matters, the embedding still does.
  const noText = {
    tokens: a.tokens,
    imageEmbedding: a.imageEmbedding,
    keep: ones,
    keepText: zeros2,
  };
  assert.deepEqual(await predict({ ...noText, tokens: b.tokens }), await predict(noText));
  assert.notDeepEqual(
    await predict({ ...noText, imageEmbedding: b.imageEmbedding }),
    await predict(noText),
  );
  // keepClip = 0: the embedding no longer matters (tokens nor time embedding), the caption does.
  const noClip = {
    tokens: a.tokens,
    imageEmbedding: a.imageEmbedding,
    keep: ones,
    keepClip: zeros2,
  };
  assert.deepEqual(
    await predict({ ...noClip, imageEmbedding: b.imageEmbedding }),
    await predict(noClip),
  );
  assert.notDeepEqual(await predict({ ...noClip, tokens: b.tokens }), await predict(noClip));
  // Both dropped apart is the null condition that guidance samples with (keep = 0).
  assert.deepEqual(await predict({ ...a, keep: ones, keepText: zeros2, keepClip: zeros2 }), full0);
  assert.notDeepEqual(await predict(a), full0);
  assert.throws(
    () => model.encodeConditioning({ ...a, keepText: tensor(new Float32Array(3), [3]) }),
    /keepText has shape \[3\]; expected \[2\]/,
  );
  for (const v of [ones, zeros2, x, xs, t]) v.dispose();
  model.dispose();
});

Deno.test("UNetDecoder.encodeConditioning(): encoded once, the same prediction as raw conditioning", async () => {
  manualSeed(8);
  const model = new UNetDecoder(tinyOptions(8, { attentionLevels: [0, 1] }));
  perturbZeroInit(model, 3);
  const cond = conditioning(2, 4, [1, 0]);
  const x = randn([2, 3, 8, 8]);
  const t = full([2], 40);
  const raw = await noGrad(() => scope(() => model.predictNoise(x, t, cond))).read();
  const encoded = noGrad(() => model.encodeConditioning(cond));
  const fromEncoded = await noGrad(() => scope(() => model.predictNoise(x, t, encoded))).read();
  assert.deepEqual(fromEncoded, raw);
  assert.throws(
    () => scope(() => model.predictNoise(concat([x, x], 0), full([4], 40), encoded)),
    /Encoded conditioning has 2 rows/,
  );
  model.dispose();
});

Deno.test("unet plugin: thesis defaults, context vocabSize wins, parameter count", async () => {
  const registry = builtins();
  const model = await registry.use<UNetDecoder>("decoder", "unet", {}, { vocabSize: 100 });
  assert.equal(model.options.vocabSize, 100);
  assert.deepEqual(model.options.channelMults, [1, 2, 4]);
  assert.equal(model.imageSize, 32);
  assert.equal(model.prediction, "eps"); // the thesis's noise prediction unless asked
  // Thesis preset (1 residual block per level): 12.1M parameters (thesis Table 4.3: ~10M).
  const count = model.parameterCount();
  console.log(`thesis-preset U-Net parameters: ${count}`);
  assert.ok(count > 11e6 && count < 13e6, `${count}`);
  model.dispose();
  await assert.rejects(
    registry.use("decoder", "unet", { chanels: 3 }),
    /Invalid options for decoder plugin "unet"/,
  );
  await assert.rejects(
    registry.use("decoder", "unet", { prediction: "x0" }),
    /Invalid options for decoder plugin "unet"/,
  );
});

/** Words -> ids (1 = end token, 0 = padding) for the training test's captions. */
function tokenize(captions: string[], vocab: Map<string, number>): DecoderConditioning["tokens"] {
  const ids = new Int32Array(captions.length * T), end = new Int32Array(captions.length);
  captions.forEach((c, b) => {
    const words = c.toLowerCase().split(/\W+/).filter(Boolean).slice(0, T - 1);
    words.forEach((w, i) => {
      if (!vocab.has(w)) vocab.set(w, 2 + (vocab.size % (VOCAB - 2)));
      ids[b * T + i] = vocab.get(w)!;
    });
    ids[b * T + words.length] = 1;
    end[b] = words.length;
  });
  return {
    ids: tensor(ids, [captions.length, T], "i32"),
    endIndex: tensor(end, [captions.length], "i32"),
  };
}

Deno.test("decoderLoss() falls when a tiny decoder trains on generated shapes", async () => {
  manualSeed(11);
  const size = 8, B = 8, steps = 80;
  const data = generateSplit({ size, count: 64, seed: "decoder-test" });
  const images = new Float32Array(data.length * 3 * size * size);
  data.forEach((d, n) => {
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < size * size; p++) {
        images[(n * 3 + c) * size * size + p] = d.image[p * 3 + c] / 127.5 - 1;
      }
    }
  });
  const model = new UNetDecoder(tinyOptions(size, { baseChannels: 16, textLayers: 2 }));
  const schedule = new NoiseSchedule(cosineBetas(100));
  const opt = new Adam(model.parameters(), { lr: 1e-3 });
  const vocab = new Map<string, number>();
  const losses: Tensor[] = [];
  let inUse = 0;
  const start = performance.now();
  for (let step = 0; step < steps; step++) {
    const first = (step * B) % data.length;
    const loss = scope(() => {
      const x0 = tensor(
        images.slice(first * 3 * size * size, (first + B) * 3 * size * size),
        [B, 3, size, size],
      );
      const cond: DecoderConditioning = {
        tokens: tokenize(data.slice(first, first + B).map((d) => d.caption), vocab),
        imageEmbedding: randn([B, 8]),
        keep: bernoulli([B], 0.8),
      };
      const l = decoderLoss(model, x0, cond, schedule);
      l.backward();
      opt.step();
      opt.zeroGrad();
      return l;
    });
    losses.push(loss);
    // GPU memory stays flat: only the kept per-step losses accumulate.
    if (step === 10) inUse = engineStats().inUse - losses.length;
    if (step === steps - 1) assert.equal(engineStats().inUse - losses.length, inUse);
  }
  const values = await scope(() => concat(losses.map((l) => reshape(l, [1])), 0)).read();
  const avg = (a: ArrayLike<number>): number => Array.from(a).reduce((s, v) => s + v, 0) / a.length;
  const firstAvg = avg(values.slice(0, 15)), lastAvg = avg(values.slice(-15));
  console.log(
    `decoder loss: first 15 steps ${firstAvg.toFixed(4)}, last 15 ${lastAvg.toFixed(4)} ` +
      `(${steps} steps, ${((performance.now() - start) / steps).toFixed(0)} ms/step)`,
  );
  assert.ok(lastAvg < 0.8 * firstAvg, `loss ${firstAvg} -> ${lastAvg}`);
  for (const l of losses) l.dispose();
  model.dispose();
});

Deno.test("decoderLoss() with minSnrGamma weights each step by min(SNR, gamma) / SNR", async () => {
  const schedule = new NoiseSchedule(cosineBetas(50));
  const w = minSnrWeights(schedule, 5);
  for (const i of [0, 10, 25, 49]) {
    const snr = schedule.alphaBar[i] / (1 - schedule.alphaBar[i]);
    assert.ok(Math.abs(w[i] - Math.min(snr, 5) / snr) < 1e-6 * Math.max(1, w[i]));
  }
  assert.equal(w[49], 1); // pure noise: SNR < gamma keeps weight 1
  assert.ok(w[0] < 0.01); // nearly clean: SNR in the thousands

  manualSeed(8);
  const model = new UNetDecoder(tinyOptions(8));
  perturbZeroInit(model, 9);
  const x0 = randn([2, 3, 8, 8]).keep();
  const cond = conditioning(2, 3);
  for (const i of [3, 40]) {
    // Same seed, same steps: the noise is the same, so the weighted loss is w_i times L_simple.
    const loss = async (gamma: number | null) => {
      manualSeed(11);
      const l = scope(() =>
        decoderLoss(model, x0, cond, schedule, {
          timesteps: full([2], i),
          minSnrGamma: gamma,
        })
      );
      const v = (await l.read())[0];
      l.dispose();
      return v;
    };
    const plain = await loss(null), weighted = await loss(5);
    assert.ok(Math.abs(weighted - w[i] * plain) <= 1e-4 * plain, `step ${i}`);
  }
  model.dispose();
});

Deno.test("decoderLoss() with prediction v scores the velocity, min-SNR weighted as eps in x_0 terms", async () => {
  const schedule = new NoiseSchedule(cosineBetas(50));
  const wEps = minSnrWeights(schedule, 5), wV = minSnrWeights(schedule, 5, "v");
  for (const i of [0, 10, 25, 49]) {
    const snr = schedule.alphaBar[i] / (1 - schedule.alphaBar[i]);
    assert.ok(Math.abs(wV[i] - Math.min(snr, 5) / (snr + 1)) < 1e-6);
    // The v error is the eps error / sqrt(abar) (Salimans & Ho 2022): weights differ by abar.
    assert.ok(Math.abs(wV[i] - wEps[i] * schedule.alphaBar[i]) < 1e-6 * Math.max(1, wEps[i]));
  }
  const x0 = randn([2, 3, 4, 4]).keep();
  const cond = conditioning(2, 3);
  for (const i of [3, 30, 49]) {
    const ab = schedule.alphaBar[i];
    // A fixed "network" eps_hat(x_t) and the same estimate written as a velocity:
    // v_hat = sqrt(abar) eps_hat - sqrt(1 - abar) x0_hat = (eps_hat - sqrt(1 - abar) x_t) / sqrt(abar).
    const epsHat = (xt: Tensor) => affine(xt, 0.3, 0.1);
    const asEps = { predictNoise: (xt: Tensor) => epsHat(xt) };
    const asV = {
      predictNoise: (xt: Tensor) =>
        affine(sub(epsHat(xt), affine(xt, Math.sqrt(1 - ab), 0)), 1 / Math.sqrt(ab), 0),
    };
    const loss = async (
      net: typeof asEps,
      prediction: "eps" | "v",
      minSnrGamma: number | null,
    ) => {
      manualSeed(11); // the same noise for every call
      const l = scope(() =>
        decoderLoss(net, x0, cond, schedule, { timesteps: full([2], i), minSnrGamma, prediction })
      );
      const v = (await l.read())[0];
      l.dispose();
      return v;
    };
    const eps = await loss(asEps, "eps", null), v = await loss(asV, "v", null);
    assert.ok(
      Math.abs(v - eps / ab) <= 1e-3 * v,
      `step ${i}: L_v ${v} vs L_eps / abar ${eps / ab}`,
    );
    const eps5 = await loss(asEps, "eps", 5), v5 = await loss(asV, "v", 5);
    assert.ok(Math.abs(v5 - eps5) <= 1e-3 * eps5, `step ${i}: min-SNR ${v5} vs ${eps5}`);
  }
  x0.dispose();
});
