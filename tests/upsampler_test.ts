/**
 * DALL-E 2's cascade (issue 16): the U-Net upsampler's shapes and gradients, the conditioning
 * augmentation, a loss that falls, the `upsampler` stage of `deno task train` (train, resume),
 * the pipeline sampling through it, and the config's one-line errors. Models are tiny
 * (8x8 -> 16x16, widths 8-16) so that the file runs in seconds on a CPU.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  concat,
  full,
  initBackend,
  manualSeed,
  mean,
  mul,
  noGrad,
  randn,
  reshape,
  scope,
  square,
  sub,
  sum,
  type Tensor,
  tensor,
} from "../core/tensor/mod.ts";
import { Adam } from "../core/optim/mod.ts";
import {
  augmentLowRes,
  decoderLoss,
  downsampleArea,
  NoiseSchedule,
} from "../core/diffusion/mod.ts";
import { UNetUpsampler, upsamplerOptions } from "../plugins/decoders/mod.ts";
import { cosineBetas } from "../plugins/schedules/mod.ts";
import { builtins } from "../plugins/mod.ts";
import { loadConfig } from "../core/config_file.ts";
import { ConfigError, validateConfig } from "../core/config.ts";
import {
  imageVariations,
  loadPipeline,
  outputImageSize,
  textToImage,
  upsampleImages,
  upsampleRealImages,
} from "../core/pipeline.ts";
import { decodeEmbeddings } from "../core/eval/embed.ts";
import { runEval } from "../tasks/eval.ts";
import { enlargeBlocks } from "../core/data/images.ts";
import { generateSplit } from "../datasets/mod.ts";
import { runTrain } from "../tasks/train.ts";
import { runSample } from "../tasks/sample.ts";
import { runExport } from "../tasks/export.ts";
import { hostRandom, param } from "./_support/check.ts";
import { assertOneLineError, cli } from "./_support/cli.ts";
import { tinyCascadeConfig } from "./_support/cascade.ts";

await initBackend();

const ROOT = new URL("..", import.meta.url).pathname;
const quiet = { print: (_: string) => {} };

function tinyUpsampler(overrides: Record<string, unknown> = {}): UNetUpsampler {
  return new UNetUpsampler(upsamplerOptions.parse({
    imageSize: 16,
    lowResSize: 8,
    baseChannels: 8,
    channelMults: [1, 2],
    timeEmbedDim: 8,
    groups: 4,
    ...overrides,
  }));
}

/** Squared norms of many tensors with a single readback. */
async function readNorms(grads: Tensor[]): Promise<Float32Array> {
  const t = scope(() => concat(grads.map((g) => reshape(sum(mul(g, g)), [1])), 0));
  const out = await t.read() as Float32Array;
  t.dispose();
  return out;
}

Deno.test("UNetUpsampler: [B, 3, 16, 16] out; every parameter and the low-res image get gradients", async () => {
  manualSeed(1);
  const up = tinyUpsampler({ attentionLevels: [1] });
  const r = hostRandom(2);
  // Zero-initialised output layers would stop every gradient but the output conv's.
  for (const [name, p] of up.namedParameters()) {
    if (/(conv2|proj|outConv)\./.test(name + ".")) {
      p.write(Float32Array.from({ length: p.size }, () => (r() * 2 - 1) * 0.1));
    }
  }
  const lowRes = param(Array.from({ length: 2 * 3 * 64 }, () => r() * 2 - 1), [2, 3, 8, 8]);
  const out = scope(() =>
    up.predictNoise(randn([2, 3, 16, 16]), full([2], 5), {
      lowRes,
      level: full([2], 0.1),
    })
  );
  assert.deepEqual(out.shape, [2, 3, 16, 16]);
  out.dispose();
  scope(() => {
    const level = tensor(Float32Array.of(0, 0.3), [2]);
    const cond = { lowRes, level };
    decoderLoss(up, randn([2, 3, 16, 16]), cond, new NoiseSchedule(cosineBetas(50))).backward();
  });
  const named = up.namedParameters();
  const missing = named.filter(([, p]) => !p.grad).map(([n]) => n);
  assert.deepEqual(missing, [], `no gradient for ${missing.join(", ")}`);
  const norms = await readNorms([...named.map(([, p]) => p.grad!), lowRes.grad!]);
  const zero = [...named.map(([n]) => n), "lowRes"].filter((_, i) => !(norms[i] > 0));
  assert.deepEqual(zero, [], `zero gradient for ${zero.join(", ")}`);
  assert.ok(named.some(([n]) => n === "midAttn.qkv.weight"));
  assert.ok(named.every(([n]) => !n.includes("contextKv")), "self-attention only");
  assert.throws(
    () => up.predictNoise(randn([1, 3, 16, 16]), full([1], 0), { lowRes, level: full([1], 0) }),
    /Low-resolution input has shape \[2,3,8,8\]; expected \[1, 3, 8, 8\]/,
  );
  up.dispose();
  lowRes.dispose();
});

Deno.test("augmentLowRes: level 0 is the identity, noise keeps the variance, blur smooths", async () => {
  manualSeed(4);
  const x = randn([4, 3, 8, 8]);
  const diff = async (a: Tensor, b: Tensor): Promise<number> =>
    (await scope(() => mean(square(sub(a, b)))).read())[0];
  const msq = async (a: Tensor): Promise<number> => (await scope(() => mean(square(a))).read())[0];
  const zero = full([4], 0);
  for (const kind of ["noise", "blur", "none"] as const) {
    const y = augmentLowRes(x, zero, kind);
    assert.ok(await diff(x, y) < 1e-10, kind);
  }
  const noisy = augmentLowRes(x, full([4], 0.5), "noise");
  assert.ok(Math.abs(await msq(noisy) - await msq(x)) < 0.15, "variance preserved");
  assert.ok(await diff(noisy, x) > 0.1);
  // A blur of white noise lowers its energy; more blur lowers it further.
  const b1 = await msq(augmentLowRes(x, full([4], 0.3), "blur"));
  const b2 = await msq(augmentLowRes(x, full([4], 1), "blur"));
  assert.ok(b2 < b1 && b1 < await msq(x), `${b2} < ${b1}`);
  // Area downsampling averages 2x2 blocks.
  const ramp = tensor(Float32Array.from({ length: 16 }, (_, i) => i), [1, 1, 4, 4]);
  assert.deepEqual(Array.from(await downsampleArea(ramp, 2).read()), [2.5, 4.5, 10.5, 12.5]);
});

Deno.test("upsampler: the loss falls over 30 steps on 8 shape images", async () => {
  manualSeed(7);
  const size = 16, B = 8, steps = 30;
  const data = generateSplit({ size, count: B, seed: "upsampler-test" });
  const images = new Float32Array(B * 3 * size * size);
  data.forEach((d, n) => {
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < size * size; p++) {
        images[(n * 3 + c) * size * size + p] = d.image[p * 3 + c] / 127.5 - 1;
      }
    }
  });
  const up = tinyUpsampler({ baseChannels: 16 });
  const schedule = new NoiseSchedule(cosineBetas(100));
  const opt = new Adam(up.parameters(), { lr: 2e-3 });
  const losses: Tensor[] = [];
  for (let step = 0; step < steps; step++) {
    losses.push(scope(() => {
      const x0 = tensor(images, [B, 3, size, size]);
      const level = full([B], 0.1);
      const lowRes = augmentLowRes(downsampleArea(x0, 8), level, "noise");
      const l = decoderLoss(up, x0, { lowRes, level }, schedule);
      l.backward();
      opt.step();
      opt.zeroGrad();
      return l;
    }));
  }
  const values = await scope(() => concat(losses.map((l) => reshape(l, [1])), 0)).read();
  const avg = (a: ArrayLike<number>): number => Array.from(a).reduce((s, v) => s + v, 0) / a.length;
  const first = avg(values.slice(0, 8)), last = avg(values.slice(-8));
  assert.ok(last < 0.8 * first, `loss ${first} -> ${last}`);
  for (const l of losses) l.dispose();
  up.dispose();
});

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

Deno.test({
  name: "train upsampler: the stage trains and resumes; the pipeline samples 16x16 through it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const work = await Deno.makeTempDir({ prefix: "unclip-upsampler-" });
    try {
      const config = join(work, "config.json");
      await Deno.writeTextFile(config, JSON.stringify(await tinyCascadeConfig()));
      const run = join(work, "run");
      const lines: string[] = [];
      const all = await runTrain(["all", "--config", config, "--out", run, "--max-steps", "2"], {
        print: (l) => lines.push(l),
      });
      assert.deepEqual(all!.results.map((r) => [r.stage, r.step]), [
        ["clip", 2],
        ["prior", 2],
        ["decoder", 2],
        ["upsampler", 2],
      ]);
      assert.ok(lines.some((l) => /decoder: trains at 8x8 .* from 16/.test(l)), lines.join("\n"));
      const resumed = await runTrain(
        ["upsampler", "--config", config, "--out", run, "--resume", "--max-steps", "4"],
        quiet,
      );
      assert.deepEqual(resumed!.results.map((r) => [r.stage, r.step]), [["upsampler", 4]]);

      const p = await loadPipeline(run, builtins());
      try {
        assert.equal(p.upsampler?.imageSize, 16);
        assert.equal(p.steps.upsampler, 4);
        const big = await textToImage(p, ["a red circle"], { steps: 2, seed: 1 });
        assert.deepEqual(big.shape, [1, 3, 16, 16]);
        assert.ok(big.images.every(Number.isFinite));
        // The upsampler runs the decoder's sampler with `steps`, or with `upsamplerSteps`.
        const seen: (number | undefined)[] = [];
        const sample = p.sampler.sample.bind(p.sampler);
        p.sampler.sample = (predict, shape, schedule, opts) => {
          seen.push(opts?.steps);
          return sample(predict, shape, schedule, opts);
        };
        await textToImage(p, ["a red circle"], { steps: 2 });
        await textToImage(p, ["a red circle"], { steps: 2, upsamplerSteps: 3 });
        assert.deepEqual(seen, [2, 2, 2, 3]);
        p.sampler.sample = sample;
        const small = await textToImage(p, ["a red circle"], { steps: 2, upsample: false });
        assert.deepEqual(small.shape, [1, 3, 8, 8]);
        // CLIP reranks the decoder's 8x8 candidates enlarged to its 16x16 input.
        const reranked = await textToImage(p, ["a red circle"], {
          steps: 2,
          upsample: false,
          rerank: 2,
        });
        assert.deepEqual(reranked.shape, [1, 3, 8, 8]);
        // The experiments' decoding from given embeddings goes through the upsampler too.
        assert.equal(outputImageSize(p), 16);
        const z = Array.from({ length: p.clip.embedDim }, (_, i) => Math.sin(i + 1));
        const decoded = await decodeEmbeddings(p, [z], { steps: 2 });
        assert.equal(decoded.length, 3 * 16 * 16);
        // Variations take an image at CLIP's side (the final 16), not the decoder's 8.
        const image = new Float32Array(3 * 16 * 16);
        const vars = await imageVariations(p, image, { n: 1, steps: 2 });
        assert.deepEqual(vars.shape, [1, 3, 16, 16]);
      } finally {
        p.dispose();
      }
      const plain = await loadPipeline(run, builtins(), { upsampler: false });
      assert.equal(plain.upsampler, undefined);
      assert.equal(outputImageSize(plain), 8);
      assert.deepEqual((await textToImage(plain, ["a red circle"], { steps: 2 })).shape, [
        1,
        3,
        8,
        8,
      ]);
      plain.dispose();
      // The sample task writes the upsampled images, or the decoder's with --no-upsampler.
      const png = (name: string): string[] => [
        "a red circle",
        ...["--checkpoint", run, "--n", "1", "--steps", "2", "--out", join(work, name)],
      ];
      const withUp = await runSample(png("up.png"), { print: () => {} });
      const without = await runSample([...png("plain.png"), "--no-upsampler"], { print: () => {} });
      assert.ok(withUp!.width > without!.width, `${withUp!.width} vs ${without!.width}`);
      // --upsampler-augment reaches the upsampler: a clean condition gives other pixels.
      await runSample([...png("clean.png"), "--upsampler-augment", "0"], { print: () => {} });
      assert.notDeepEqual(
        await Deno.readFile(join(work, "clean.png")),
        await Deno.readFile(join(work, "up.png")),
      );
      await assert.rejects(
        runSample([...png("x.png"), "--no-upsampler", "--upsampler-steps", "3"], quiet),
        /--upsampler-steps: --no-upsampler runs no upsampler; drop the flag/,
      );
      await assert.rejects(
        runSample([...png("x.png"), "--upsampler-steps", "0"], quiet),
        /--upsampler-steps/,
      );
      await assert.rejects(
        runSample([...png("x.png"), "--no-upsampler", "--upsampler-augment", "0.2"], quiet),
        /--upsampler-augment: --no-upsampler runs no upsampler; drop the flag/,
      );
      await assert.rejects(
        runSample([...png("x.png"), "--upsampler-augment", "1.5"], quiet),
        /--upsampler-augment "1.5" must be at most 1/,
      );
      // eval pipeline scores the upsampled images against the split's (16x16) real ones.
      const pipe = (await runEval(
        ["pipeline", "--checkpoint", run, "--limit", "2", "--steps", "2", ...[
          "--probe-steps",
          "20",
          "--probe-images",
          "64",
        ]],
        quiet,
      ))?.[0];
      assert.equal((pipe?.results.generated as Record<string, number>).count, 2);
      // The upsampler alone on real images: its condition is their area average at the
      // decoder's side, sampled as the cascade samples (same seed, same images).
      const up = await loadPipeline(run, builtins());
      try {
        const real = Float32Array.from({ length: 2 * 3 * 16 * 16 }, (_, i) => Math.sin(i / 7));
        const got = await upsampleRealImages(up, real, 2, { steps: 2, seed: 5 });
        assert.deepEqual(got.shape, [2, 3, 16, 16]);
        manualSeed(5);
        const expected = await noGrad(() =>
          upsampleImages(
            up.upsampler!,
            downsampleArea(tensor(real, [2, 3, 16, 16]), 8),
            up.sampler,
            up.upsamplerSchedule!,
            { steps: 2 },
          )
        ).read();
        assert.deepEqual(got.images, expected);
        await assert.rejects(
          () => upsampleRealImages(up, real.subarray(0, 3 * 8 * 8), 1),
          /expected 1 image\(s\) of 3x16x16/,
        );
        // A level above the trained augmentMax is refused, not embedded.
        await assert.rejects(
          () => upsampleRealImages(up, real, 2, { steps: 2, upsamplerAugment: 0.9 }),
          /augmentation level must lie in \[0, 0\.\d+\], the levels it trained on/,
        );
      } finally {
        up.dispose();
      }
      const ceiling = (await runEval(
        [
          ...["pipeline", "--checkpoint", run, "--limit", "2", "--steps", "2"],
          ...["--from", "downsampled", "--probe-steps", "20", "--probe-images", "64"],
        ],
        quiet,
      ))?.[0];
      assert.equal(ceiling?.path, join(run, "eval_pipeline_downsampled_test.json"));
      assert.equal(ceiling?.results.from, "downsampled");
      assert.equal((ceiling?.results.generated as Record<string, number>).count, 2);
      // No decoder ran: no guidance recorded; the upsampler's steps and augmentation are.
      assert.equal(ceiling?.results.guidance, null);
      assert.deepEqual(ceiling?.results.upsampler, { steps: 2, augment: 0.1 });
      // --upsampler-augment reaches the upsampler: a clean condition gives other images.
      const clean = (await runEval(
        [
          ...["pipeline", "--checkpoint", run, "--limit", "2", "--steps", "2"],
          ...["--from", "downsampled", "--upsampler-augment", "0"],
          ...["--probe-steps", "20", "--probe-images", "64", "--out", join(work, "clean.json")],
        ],
        quiet,
      ))?.[0];
      assert.deepEqual(clean?.results.upsampler, { steps: 2, augment: 0 });
      const cosine = (r: typeof clean) =>
        (r?.results.generated as Record<string, number>).meanCosine;
      assert.notEqual(cosine(clean), cosine(ceiling));
      await assert.rejects(
        () =>
          runEval(
            ["pipeline", "--checkpoint", run, "--from", "downsampled", "--guidance", "3"],
            quiet,
          ),
        /--guidance is for the decoder, and --from downsampled runs none/,
      );
      // --no-upsampler scores the cascade's decoder alone: its 8x8 images as 2x2 blocks.
      const alone = (await runEval(
        [
          ...["pipeline", "--checkpoint", run, "--limit", "2", "--steps", "2", "--no-upsampler"],
          ...["--probe-steps", "20", "--probe-images", "64"],
        ],
        quiet,
      ))?.[0];
      assert.equal(alone?.path, join(run, "eval_pipeline_no_upsampler_test.json"));
      assert.equal(alone?.results.enlargedFrom, 8);
      assert.equal(alone?.results.upsampler, null);
      assert.equal(pipe?.results.enlargedFrom, null);
      assert.notEqual(cosine(alone), cosine(pipe));
      for (
        const [extra, message] of [
          [
            ["--from", "downsampled"],
            /--from downsampled scores the upsampler; drop --no-upsampler/,
          ],
          [["--upsampler-steps", "3"], /--upsampler-steps: --no-upsampler runs no upsampler/],
        ] as const
      ) {
        await assert.rejects(
          () => runEval(["pipeline", "--checkpoint", run, "--no-upsampler", ...extra], quiet),
          message,
        );
      }
      await assert.rejects(
        () => runEval(["clip", "--checkpoint", run, "--no-upsampler"], quiet),
        /--no-upsampler is for "eval pipeline", not "clip"/,
      );
      // Export carries the upsampler, and the exported run samples through it.
      const exported = join(work, "exported");
      await runExport(["--checkpoint", run, "--out", exported], quiet.print);
      const e = await loadPipeline(exported, builtins());
      try {
        assert.equal(e.steps.upsampler, 4);
        const x = await textToImage(e, ["a red circle"], { steps: 2 });
        assert.deepEqual(x.shape, [1, 3, 16, 16]);
      } finally {
        e.dispose();
      }
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});

Deno.test("enlargeBlocks() repeats each pixel of each channel as a block", () => {
  // Two channels of a 2x2 image -> 4x4.
  const image = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(
    [...enlargeBlocks(image, 2, 4)],
    [
      ...[1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4],
      ...[5, 5, 6, 6, 5, 5, 6, 6, 7, 7, 8, 8, 7, 7, 8, 8],
    ],
  );
  assert.deepEqual(enlargeBlocks(image, 2, 2), image);
  assert.throws(() => enlargeBlocks(image, 2, 3), /Cannot enlarge 8 values of side 2 to 3/);
});

Deno.test("upsampler config: defaults filled, one-line errors for wrong sizes and stray stages", async () => {
  const registry = builtins();
  const base = await tinyCascadeConfig();
  const ok = validateConfig(structuredClone(base), registry, "c.json");
  assert.equal(ok.components.decoder.options.imageSize, 8);
  assert.equal(ok.components.upsampler?.options.imageSize, 16);
  assert.equal(ok.train.upsampler?.lr, 1e-3); // a default filled in
  const noTrain = structuredClone(base);
  delete noTrain.train.upsampler;
  assert.equal(validateConfig(noTrain, registry).train.upsampler?.batchSize, 64);
  const plain = structuredClone(base);
  delete plain.components.upsampler;
  delete plain.train.upsampler;
  delete plain.components.decoder.options.imageSize;
  assert.equal(validateConfig(plain, registry).train.upsampler, undefined);

  const error = (edit: (c: Json) => void): string => {
    const c = structuredClone(base);
    edit(c);
    try {
      validateConfig(c, registry, "c.json");
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      return e.message;
    }
    throw new Error("no error");
  };
  const oneLine = (m: string, re: RegExp): void => {
    assert.equal(m.split("\n").length, 1, m);
    assert.match(m, re);
  };
  oneLine(
    error((c) => c.components.upsampler.options.lowResSize = 6),
    /^c\.json: components\.upsampler\.options\.lowResSize: 6 must divide imageSize 16/,
  );
  oneLine(
    error((c) => c.components.upsampler.plugin = "unte"),
    /components\.upsampler\.plugin: .*did you mean "unet"/,
  );
  oneLine(
    error((c) => c.components.upsampler.options.lowresSize = 8),
    /components\.upsampler\.options\.lowresSize: unknown key; did you mean "lowResSize"/,
  );
  oneLine(
    error((c) => c.components.decoder.options.imageSize = 16),
    /components\.decoder\.options\.imageSize is 16 but components\.upsampler\.options\.lowResSize is 8/,
  );
  oneLine(
    error((c) => c.components.upsampler.options.imageSize = 32),
    /components\.upsampler\.options\.imageSize is 32 but components\.dataset\.options\.imageSize is 16/,
  );
  oneLine(
    error((c) => delete c.components.upsampler),
    /train\.upsampler: set, but the config has no components\.upsampler/,
  );
  oneLine(error((c) => c.train.upsampeler = {}), /train\.upsampeler.*did you mean "upsampler"/);
  // Sampling conditions at a level it trained on.
  oneLine(
    error((c) =>
      Object.assign(c.components.upsampler.options, { augmentMax: 0.2, sampleAugment: 0.3 })
    ),
    /upsampler\.options\.sampleAugment: 0\.3 is above augmentMax 0\.2, the highest level trained/,
  );
  oneLine(
    error((c) =>
      Object.assign(c.components.upsampler.options, { augment: "none", sampleAugment: 0.1 })
    ),
    /sampleAugment: 0\.1 but augment is "none" \(trained at level 0 only\); set it to 0/,
  );
  // The decoder's sampler respaces its schedule to at most that many steps.
  oneLine(
    error((c) => c.components.sampler = { plugin: "ddim", options: { steps: 5000 } }),
    /components\.sampler\.options\.steps is 5000 but components\.decoderSchedule\.options\.steps is \d+/,
  );
});

Deno.test("presets/cpu16-up32.jsonc: cpu32 with a 16x16 decoder and a 16 -> 32 upsampler", async () => {
  const c = await loadConfig(join(ROOT, "presets/cpu16-up32.jsonc"), builtins());
  const cpu32 = await loadConfig(join(ROOT, "presets/cpu32.jsonc"), builtins());
  assert.equal(c.components.decoder.options.imageSize, 16);
  assert.equal(c.components.upsampler?.options.imageSize, 32);
  assert.equal(c.components.imageEncoder.options.imageSize, 32);
  assert.deepEqual(c.components.prior, cpu32.components.prior);
  assert.deepEqual(c.components.textEncoder, cpu32.components.textEncoder);
  assert.deepEqual(c.components.imageEncoder, cpu32.components.imageEncoder);
  assert.deepEqual(
    { ...c.components.decoder.options, imageSize: 32 },
    cpu32.components.decoder.options,
  );
  assert.equal(c.train.upsampler?.steps, 2000);
});

Deno.test("train upsampler: a config without an upsampler is a one-line error", async () => {
  const r = await cli("train", ["upsampler", "--config", "presets/cpu32.jsonc"]);
  assertOneLineError(r, /has no components\.upsampler, so there is no upsampler stage to train/);
});
