// The multiscale loss (Hoogeboom et al. 2023): values against a host reference, its place in
// decoderLoss beside min-SNR weighting, its gradient, and the config checks of its sides.
import assert from "node:assert/strict";
import {
  add,
  affine,
  full,
  initBackend,
  manualSeed,
  randn,
  scope,
  type Tensor,
  tensor,
} from "../core/tensor/mod.ts";
import {
  decoderLoss,
  minSnrWeights,
  multiscaleError,
  NoiseSchedule,
} from "../core/diffusion/mod.ts";
import { lossOptions } from "../core/train/stages.ts";
import { cosineBetas } from "../plugins/schedules/mod.ts";
import { multiscaleLossProblems } from "../plugins/decoders/loss_options.ts";
import { unetOptions, upsamplerOptions } from "../plugins/decoders/mod.ts";
import type { DecoderConditioning } from "../core/components.ts";
import { assertClose, gradCheck, randomArray } from "./_support/check.ts";

await initBackend();

/** Host reference: per sample, the MSE at full size plus the MSE of the k x k block means. */
function hostMultiscale(
  p: ArrayLike<number>,
  q: ArrayLike<number>,
  shape: number[],
  sizes: number[],
) {
  const [B, C, S] = shape;
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    let total = 0;
    for (const s of [S, ...sizes]) {
      const k = S / s;
      let sum = 0;
      for (let c = 0; c < C; c++) {
        for (let oy = 0; oy < s; oy++) {
          for (let ox = 0; ox < s; ox++) {
            let d = 0;
            for (let y = oy * k; y < (oy + 1) * k; y++) {
              for (let x = ox * k; x < (ox + 1) * k; x++) {
                const i = ((b * C + c) * S + y) * S + x;
                d += p[i] - q[i];
              }
            }
            sum += (d / (k * k)) ** 2;
          }
        }
      }
      total += sum / (C * s * s);
    }
    out.push(total);
  }
  return out;
}

Deno.test("multiscaleError() matches the host reference; no sides is the per-sample MSE", async () => {
  const shape = [2, 3, 8, 8];
  const n = 2 * 3 * 64;
  const p = randomArray(n, 1), q = randomArray(n, 2);
  for (const sizes of [[], [4], [4, 2, 1]]) {
    const err = multiscaleError(
      tensor(Float32Array.from(p), shape),
      tensor(Float32Array.from(q), shape),
      sizes,
    );
    assert.deepEqual(err.shape, [2, 1]);
    assertClose(await err.read(), hostMultiscale(p, q, shape, sizes), {
      label: `sides [${sizes}]`,
    });
    err.dispose();
  }
});

Deno.test("multiscaleError() weighs a coarse error more than grain of the same energy", async () => {
  // Both errors have mean square 1 per pixel: one constant over each 4x4 block, one alternating.
  const S = 8, shape = [1, 1, S, S];
  const coarse = new Float32Array(S * S), grain = new Float32Array(S * S);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      coarse[y * S + x] = (Math.floor(y / 4) + Math.floor(x / 4)) % 2 ? 1 : -1;
      grain[y * S + x] = (y + x) % 2 ? 1 : -1;
    }
  }
  const zeros = tensor(new Float32Array(S * S), shape);
  const at = async (e: Float32Array) =>
    (await multiscaleError(tensor(e, shape), zeros, [4, 2]).read())[0];
  assert.ok(Math.abs((await at(coarse)) - 3) < 1e-6, "a 4x4-block error counts at all three sides");
  assert.ok(Math.abs((await at(grain)) - 1) < 1e-6, "a pixel checkerboard averages away");
});

Deno.test("multiscaleError() gradient matches finite differences", async () => {
  const shape = [1, 2, 4, 4];
  const q = tensor(Float32Array.from(randomArray(32, 5)), shape);
  await gradCheck((p) => multiscaleError(p, q, [2, 1]), [{ data: randomArray(32, 6), shape }], {
    label: "multiscaleError",
  });
});

Deno.test("decoderLoss() with multiscale sides: the batch mean of multiscaleError, min-SNR weighted", async () => {
  const schedule = new NoiseSchedule(cosineBetas(50));
  const x0 = randn([2, 3, 4, 4]).keep();
  const cond = {} as DecoderConditioning;
  // A fixed "network": its prediction depends on x_t only, so the noise decides the error.
  const net = { predictNoise: (xt: Tensor) => affine(xt, 0.5, 0.1) };
  for (const i of [3, 40]) {
    const loss = async (options: { multiscale?: number[] | null; minSnrGamma?: number | null }) => {
      manualSeed(11); // the same noise for every call
      const l = scope(() =>
        decoderLoss(net, x0, cond, schedule, { timesteps: full([2], i), ...options })
      );
      const v = (await l.read())[0];
      l.dispose();
      return v;
    };
    // The reference: the same noise and x_t, scored by multiscaleError directly.
    manualSeed(11);
    const eps = randn([2, 3, 4, 4]);
    const ab = schedule.alphaBar[i];
    const xt = add(affine(x0, Math.sqrt(ab), 0), affine(eps, Math.sqrt(1 - ab), 0));
    const perSample = await multiscaleError(net.predictNoise(xt), eps, [2, 1]).read();
    const expected = (perSample[0] + perSample[1]) / 2;
    const plain = await loss({}), empty = await loss({ multiscale: [] });
    assert.equal(empty, plain, "no sides is L_simple");
    const multi = await loss({ multiscale: [2, 1] });
    assert.ok(Math.abs(multi - expected) <= 1e-4 * expected, `step ${i}: ${multi} vs ${expected}`);
    const weighted = await loss({ multiscale: [2, 1], minSnrGamma: 5 });
    const w = minSnrWeights(schedule, 5)[i];
    assert.ok(Math.abs(weighted - w * expected) <= 1e-4 * w * expected, `step ${i}: min-SNR`);
  }
  x0.dispose();
});

Deno.test("multiscaleLoss sides are checked when the config loads", () => {
  assert.deepEqual(multiscaleLossProblems(32, [16, 8, 4]), []);
  assert.deepEqual(multiscaleLossProblems(32, null), []);
  assert.deepEqual(multiscaleLossProblems(32, [16, 12, 32, 16]), [
    [1, "12 does not divide the image side 32"],
    [2, "32 is not smaller than the image side 32"],
    [3, "16 is listed twice"],
  ]);
  const unet = unetOptions.safeParse({ imageSize: 16, multiscaleLoss: [8, 3] });
  assert.ok(!unet.success);
  assert.match(
    JSON.stringify(unet.error.issues),
    /multiscaleLoss.*3 does not divide the image side 16/,
  );
  const up = upsamplerOptions.safeParse({ imageSize: 16, lowResSize: 8, multiscaleLoss: [16] });
  assert.ok(!up.success);
  assert.match(JSON.stringify(up.error.issues), /16 is not smaller than the image side 16/);
  assert.ok(unetOptions.safeParse({ imageSize: 16, multiscaleLoss: [8, 4] }).success);
  // The trainer passes the sides on to decoderLoss.
  assert.deepEqual(lossOptions({ multiscaleLoss: [8, 4] }).multiscale, [8, 4]);
  assert.equal(lossOptions({}).multiscale, null);
});
