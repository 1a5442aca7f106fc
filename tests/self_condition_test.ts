// Self-conditioning (Chen et al. 2022, section 3.2; core/diffusion/self_condition.ts): the seeded
// per-step choice, the per-sample x_0 estimate, the training loss's two passes, the U-Net's
// zero-initialised estimate input, and the sampling state that feeds each step the estimate of
// the step before.
import assert from "node:assert/strict";
import {
  affine,
  engineStats,
  full,
  initBackend,
  isGradEnabled,
  manualSeed,
  mul,
  noGrad,
  rand,
  scope,
  type Tensor,
  tensor,
} from "../core/tensor/mod.ts";
import type { Decoder, DecoderConditioning } from "../core/components.ts";
import {
  conditionalPredictor,
  decoderLoss,
  estimateX0,
  guidedPrediction,
  guidedPredictor,
  NoiseSchedule,
  predictX0,
  selfConditionedPredictor,
  selfConditionedStep,
} from "../core/diffusion/mod.ts";
import { decodeImages } from "../core/pipeline/generate.ts";
import type { Components } from "../core/pipeline/load.ts";
import { UNetDecoder } from "../plugins/decoders/mod.ts";
import { DdpmSampler } from "../plugins/samplers/mod.ts";
import { cosineBetas } from "../plugins/schedules/mod.ts";
import { assertClose, hostRandom } from "./_support/check.ts";
import { tinyUNetOptions } from "./_support/tiny_unet.ts";

await initBackend();

const schedule = new NoiseSchedule(cosineBetas(40));

/** A kept copy of `t`, to read after the scope or sampler that made it has freed it. */
function snap(t: Tensor): Tensor {
  return noGrad(() => affine(t, 1, 0)).keep();
}

async function readAndFree(t: Tensor | null): Promise<Float32Array | null> {
  if (!t) return null;
  const data = await t.read() as Float32Array;
  t.dispose();
  return data;
}

function randomTensor(shape: number[], seed: number, scale = 1): Tensor {
  const r = hostRandom(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Float32Array.from({ length: n }, () => (2 * r() - 1) * scale), shape);
}

function conditioning(B: number, seed: number): DecoderConditioning {
  const r = hostRandom(seed);
  return {
    tokens: {
      ids: tensor(Int32Array.from({ length: B * 5 }, () => Math.floor(r() * 30)), [B, 5], "i32"),
      endIndex: tensor(Int32Array.from({ length: B }, () => 1 + Math.floor(r() * 4)), [B], "i32"),
    },
    imageEmbedding: randomTensor([B, 8], seed + 1),
    keep: full([B], 1),
  };
}

Deno.test("selfConditionedStep() picks a seeded fraction of the steps, the same every time", () => {
  const picks = (seed: number, rate: number) =>
    Array.from({ length: 4000 }, (_, step) => selfConditionedStep(seed, step, rate));
  const half = picks(1, 0.5);
  const share = half.filter(Boolean).length / half.length;
  assert.ok(Math.abs(share - 0.5) < 0.03, `share ${share}`);
  assert.deepEqual(picks(1, 0.5), half, "not a pure function of (seed, step)");
  assert.notDeepEqual(picks(2, 0.5), half, "the seed changes nothing");
  assert.ok(picks(1, 0).every((p) => !p) && picks(1, 1).every((p) => p));
  // A lower rate picks a subset of a higher one's steps (the same uniform draw per step).
  picks(1, 0.25).forEach((p, step) => assert.ok(!p || half[step], `step ${step}`));
  assert.throws(() => selfConditionedStep(1, 0, 1.5), /rate "1.5" is not in \[0, 1\]/);
});

Deno.test("estimateX0() is predictX0 at each sample's own step, for eps and v", async () => {
  const steps = [0, 7, 21, 39];
  const xt = randomTensor([4, 3, 2, 2], 3, 1.5);
  const out = randomTensor([4, 3, 2, 2], 4);
  for (const prediction of ["eps", "v"] as const) {
    const batch = await estimateX0(xt, out, tensor(steps, [4]), schedule, prediction).read();
    const xs = await xt.read() as Float32Array, os = await out.read() as Float32Array;
    for (let b = 0; b < 4; b++) {
      const row = (a: Float32Array) => tensor(a.slice(b * 12, (b + 1) * 12), [1, 3, 2, 2]);
      const one = await predictX0(row(xs), row(os), schedule, steps[b], true, prediction).read();
      assertClose(batch.slice(b * 12, (b + 1) * 12), one, { label: `${prediction} row ${b}` });
    }
    assert.ok(batch.every((v) => v >= -1 && v <= 1), "not clamped to the images' range");
  }
});

Deno.test("decoderLoss() with selfCondition scores a pass that reads the first pass's estimate", async () => {
  // A network without parameters whose output depends on the estimate it reads.
  const calls: { xt: Tensor; estimate: Tensor | null; grad: boolean }[] = [];
  const net = {
    predictNoise: (xt: Tensor, _t: Tensor, _c: unknown, estimate?: Tensor) => {
      calls.push({
        xt: snap(xt),
        estimate: estimate ? snap(estimate) : null,
        grad: isGradEnabled(),
      });
      return estimate ? mul(xt, estimate) : mul(xt, full(xt.shape, 0.5));
    },
  };
  const x0 = randomTensor([2, 3, 2, 2], 5, 0.9);
  const t = tensor([5, 30], [2]);
  for (const selfCondition of [false, true]) {
    calls.length = 0;
    manualSeed(9);
    const loss = await scope(() =>
      decoderLoss(net, x0, {}, schedule, { timesteps: t, selfCondition })
    ).read();
    assert.ok(Number.isFinite(loss[0]));
    assert.equal(calls.length, selfCondition ? 2 : 1);
    const scored = calls.at(-1)!;
    assert.ok(scored.grad, "the scored pass must run with gradient");
    if (!selfCondition) {
      assert.equal(scored.estimate, null);
      calls.forEach((c) => c.xt.dispose());
      continue;
    }
    assert.ok(
      !calls[0].grad && calls[0].estimate === null,
      "the estimating pass: no grad, no estimate",
    );
    const xt = calls[0].xt;
    const expected = await estimateX0(xt, mul(xt, full(xt.shape, 0.5)), t, schedule, "eps").read();
    assertClose((await readAndFree(scored.estimate))!, expected, {
      label: "estimate read by the scored pass",
    });
    calls.forEach((c) => c.xt.dispose());
  }
});

Deno.test("the U-Net's estimate input starts at zero and, trained, changes the prediction", async () => {
  const B = 2;
  manualSeed(11);
  const plain = new UNetDecoder(tinyUNetOptions());
  const nextDraws = await rand([4]).read();
  manualSeed(11);
  const selfCond = new UNetDecoder(tinyUNetOptions({ selfCondition: 0.5 }));
  // Its zero-initialised conv leaves the generator where the decoder without it does, so the
  // two train on the same timesteps and noise.
  assert.deepEqual(await rand([4]).read(), nextDraws);
  assert.equal(selfCond.parameterCount() - plain.parameterCount(), 3 * 8 * 9 + 8);
  const xt = randomTensor([B, 3, 8, 8], 12);
  const t = tensor([3, 17], [B]);
  const cond = conditioning(B, 13);
  const estimate = randomTensor([B, 3, 8, 8], 14);
  const run = (m: UNetDecoder, e?: Tensor) => noGrad(() => m.predictNoise(xt, t, cond, e)).read();
  const reference = await run(plain);
  // Zero-initialised: the same function as the decoder without it, whatever the estimate.
  assertClose(await run(selfCond), reference, { label: "no estimate" });
  assertClose(await run(selfCond, estimate), reference, { label: "with an estimate" });
  assertClose(await run(plain, estimate), reference, { label: "plain decoder ignores it" });

  // One gradient step: the estimate's conv learns only when the scored pass read an estimate.
  // (The output conv starts at zero, which would stop every gradient: give it small values.)
  const r = hostRandom(17);
  for (const [name, p] of selfCond.namedParameters()) {
    if (name.startsWith("outConv.")) {
      p.write(Float32Array.from({ length: p.size }, () => (r() * 2 - 1) * 0.1));
    }
  }
  const named = new Map(selfCond.namedParameters());
  const estimateIn = [named.get("selfCondIn.weight")!, named.get("selfCondIn.bias")!];
  for (const selfCondition of [false, true]) {
    scope(() => {
      manualSeed(15);
      const x0 = randomTensor([B, 3, 8, 8], 16, 0.9);
      decoderLoss(selfCond, x0, cond, schedule, { selfCondition }).backward();
    });
    const [weight, bias] = await Promise.all(estimateIn.map(async (p) => {
      const g = await p.grad!.read();
      return Math.max(...Array.from(g, Math.abs));
    }));
    for (const p of selfCond.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
    assert.ok(bias > 0, "the bias gets a gradient on every step");
    if (selfCondition) assert.ok(weight > 0, "no gradient reaches the estimate's weights");
    else assert.equal(weight, 0, "zeros as the estimate cannot move its weights");
  }
  assert.throws(
    () => selfCond.predictNoise(xt, t, cond, randomTensor([B, 3, 4, 4], 1)),
    /estimate has shape \[2,3,4,4\]; expected x_t's \[2,3,8,8\]/,
  );
  plain.dispose();
  selfCond.dispose();
});

Deno.test("selfConditionedPredictor() feeds each step the estimate of the step before", async () => {
  const seen: { timestep: number; xt: Tensor; estimate: Tensor | null; out: Tensor }[] = [];
  const predict = selfConditionedPredictor(
    (xt, timestep, estimate) => {
      const out = mul(xt, full(xt.shape, 0.3 + timestep / 100));
      seen.push({
        timestep,
        xt: snap(xt),
        estimate: estimate ? snap(estimate) : null,
        out: snap(out),
      });
      return out;
    },
    schedule,
    "eps",
  );
  manualSeed(21);
  new DdpmSampler({ steps: 5 }).sample(predict, [1, 3, 2, 2], schedule).dispose();
  assert.equal(seen.length, 5);
  assert.equal(seen[0].estimate, null, "the first step has no estimate");
  for (let k = 1; k < seen.length; k++) {
    const prev = seen[k - 1];
    const expected = await predictX0(prev.xt, prev.out, schedule, prev.timestep, true, "eps")
      .read();
    assertClose((await seen[k].estimate!.read())!, expected, { label: `step ${k}` });
  }
  for (const s of seen) [s.xt, s.out, s.estimate].forEach((t) => t?.dispose());
  // It holds one estimate between calls; release frees it and the next call starts afresh.
  const held = engineStats().inUse;
  predict.release();
  assert.equal(engineStats().inUse, held - 1);
  seen.length = 0;
  scope(() => predict(tensor(new Float32Array(12), [1, 3, 2, 2]), 10));
  assert.equal(seen[0].estimate, null);
  predict.release();
  [seen[0].xt, seen[0].out].forEach((t) => t.dispose());
});

Deno.test("decodeImages() samples a self-conditioned decoder through its estimates; plain predictors refuse it", async () => {
  const estimates: (Tensor | null)[] = [];
  const decoder = {
    imageSize: 2,
    channels: 3,
    selfCondition: 0.5,
    predictNoise: (xt: Tensor, _t: Tensor, _c: unknown, estimate?: Tensor) => {
      estimates.push(estimate ? snap(estimate) : null);
      return mul(xt, full(xt.shape, 0.5));
    },
  } as unknown as Decoder;
  const pipeline = {
    decoder,
    sampler: new DdpmSampler({ steps: 4 }),
    decoderSchedule: schedule,
    // Guidance reads the null condition, trained here at the thesis's rate.
    config: { sampling: { guidance: 2 }, components: { decoder: { options: { nullRate: 0.2 } } } },
  } as unknown as Components;
  const tokens = { ids: full([2, 3], 0, "i32"), endIndex: full([2], 1, "i32") };
  const before = engineStats().inUse;
  manualSeed(5);
  scope(() => decodeImages(pipeline, tokens, full([2, 8], 0.1), {})).dispose();
  assert.equal(engineStats().inUse, before + 3, "the last estimate was not released");
  assert.equal(estimates.length, 4);
  assert.equal(estimates[0], null);
  // Guided: both halves of the doubled batch read the same estimate, the sampler's of [2, 3, 2, 2].
  for (const e of estimates.slice(1)) {
    const data = (await readAndFree(e))!;
    assert.equal(data.length, 48);
    assert.deepEqual(data.slice(0, 24), data.slice(24));
  }
  const cond = conditioning(2, 1);
  const x = full([2, 3, 2, 2], 0);
  assert.throws(() => guidedPredictor(decoder, cond, 2)(x, 3), /self-conditioned/);
  assert.throws(() => conditionalPredictor(decoder, cond)(x, 3), /self-conditioned/);
  // The three-argument form is what selfConditionedPredictor wraps.
  estimates.length = 0;
  scope(() => void guidedPrediction(decoder, cond, 2)(x, 3, null));
  assert.deepEqual(estimates, [null]);
});
