/**
 * `deno task bench [--quick] [--batch N] [--only NAME]`: throughput of the hot kernels at the
 * thesis's shapes, with the adapter's name. Every figure is the median of timed repetitions after
 * a warm-up (pipelines compile on first use), measured to GPU completion.
 */
import { parseArgs } from "../core/deps.ts";
import * as T from "../core/tensor/mod.ts";
import { generateSplit } from "../datasets/mod.ts";
import { builtins } from "../core/builtins.ts";
import { loadConfig } from "../core/config.ts";
import {
  createClip,
  createComponent,
  createDecoder,
  createPrior,
  createTokenizer,
} from "../core/pipeline.ts";
import { Adam } from "../core/optim/mod.ts";
import { tokenBatch } from "../plugins/encoders/mod.ts";
import { decoderLoss } from "../plugins/decoders/mod.ts";
import type { NoiseSchedule } from "../plugins/schedules/mod.ts";

interface Result {
  name: string;
  ms: number;
  gflops?: number;
}

async function time(fn: () => void, reps: number): Promise<number> {
  fn(); // warm-up: compiles pipelines
  await T.backend().sync();
  const samples: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    await T.backend().sync();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

function withGrad(...xs: T.Tensor[]): T.Tensor[] {
  for (const x of xs) x.requiresGrad = true;
  return xs;
}

/** Runs forward and backward of `f` on fresh leaves inside a scope. */
function fwdBwd(f: () => T.Tensor): () => void {
  return () =>
    T.scope(() => {
      const out = f();
      T.sum(out).backward();
    });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      batch: { type: "string" },
      only: { type: "string" },
      preset: { type: "string", default: "thesis" },
      "train-batch": { type: "string" },
      reps: { type: "string" },
      json: { type: "string" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(
      `deno task bench [--quick] [--batch N] [--reps N] [--only matmul|conv|attention|data] [--json FILE]

--quick     smaller conv batch (8) and fewer repetitions, for software adapters
--batch N   conv batch size (default 64, the thesis decoder's)`,
    );
    return;
  }
  await T.initBackend();
  console.log(`adapter: ${T.adapterLine()}`);
  const reps = Number(values.reps ?? (values.quick ? 2 : 5));
  const batch = Number(values.batch ?? (values.quick ? 8 : 64));
  const results: Result[] = [];
  const want = (k: string) => !values.only || values.only === k;
  const report = (r: Result) => {
    results.push(r);
    const g = r.gflops !== undefined ? `${r.gflops.toFixed(2).padStart(9)} GFLOP/s` : "";
    console.log(`${r.name.padEnd(44)} ${r.ms.toFixed(2).padStart(10)} ms ${g}`);
  };

  if (want("matmul")) {
    for (const n of values.quick ? [256, 512, 1024] : [256, 512, 1024, 2048, 4096]) {
      const a = T.randn([n, n]), b = T.randn([n, n]);
      const ms = await time(() => T.scope(() => void T.matmul(a, b)), reps);
      report({ name: `matmul ${n}x${n}x${n}`, ms, gflops: (2 * n ** 3) / ms / 1e6 });
      a.dispose();
      b.dispose();
    }
  }
  if (want("conv")) {
    const conv2d = (T as Record<string, unknown>).conv2d as
      | ((x: T.Tensor, w: T.Tensor, b: T.Tensor | null, o: { padding: number }) => T.Tensor)
      | undefined;
    if (conv2d) {
      for (const [c, hw] of [[64, 32], [128, 16], [256, 8]]) {
        const [x, w] = withGrad(
          T.randn([batch, c, hw, hw]),
          T.affine(T.randn([c, c, 3, 3]), 0.05, 0),
        );
        const ms = await time(fwdBwd(() => conv2d(x, w, null, { padding: 1 })), reps);
        // forward 2*B*C*C*9*HW, backward twice that (input and weight gradients)
        const flops = 3 * 2 * batch * c * c * 9 * hw * hw;
        report({
          name: `conv2d 3x3 fwd+bwd B${batch} ${c}x${hw}x${hw}`,
          ms,
          gflops: flops / ms / 1e6,
        });
        x.dispose();
        w.dispose();
      }
    } else {
      console.log("conv2d: not available in this build");
    }
  }
  if (want("attention")) {
    const sdpa = (T as Record<string, unknown>).scaledDotProductAttention as
      | ((q: T.Tensor, k: T.Tensor, v: T.Tensor) => T.Tensor)
      | undefined;
    if (sdpa) {
      const [q, k, v] = withGrad(
        T.randn([1, 1, 1024, 64]),
        T.randn([1, 1, 1024, 64]),
        T.randn([1, 1, 1024, 64]),
      );
      const ms = await time(fwdBwd(() => sdpa(q, k, v)), reps);
      report({ name: "attention fwd+bwd 1024 tokens x 64 ch", ms });
      for (const t of [q, k, v]) t.dispose();
    } else {
      console.log("attention: not available in this build");
    }
  }
  if (want("train")) {
    const preset = values.preset!.includes("/") ? values.preset! : `presets/${values.preset}.jsonc`;
    const trainBatch = values["train-batch"]
      ? Number(values["train-batch"])
      : values.quick
      ? 4
      : undefined;
    for (const r of await trainingSteps(preset, trainBatch, reps)) report(r);
  }
  if (want("data")) {
    const t0 = performance.now();
    generateSplit({ set: 1, split: "train", size: 32 });
    report({ name: "generate dataset 1 train (20k, 32x32)", ms: performance.now() - t0 });
  }
  if (values.json) {
    await Deno.writeTextFile(
      values.json,
      JSON.stringify({ adapter: T.adapterSummary(), batch, results }, null, 2),
    );
  }
}

/**
 * One optimizer step (forward, backward, Adam) of each model of a preset, on random inputs of
 * the preset's shapes. Row names match bench/torch_baseline.py for the ratio table.
 */
async function trainingSteps(
  presetPath: string,
  batchOverride: number | undefined,
  reps: number,
): Promise<Result[]> {
  const registry = builtins();
  const config = await loadConfig(presetPath, registry);
  const samples = generateSplit({ set: 1, split: "train", count: 256, size: 32 });
  const tokenizer = await createTokenizer(config, registry, {
    captions: samples.map((s) => s.caption),
  });
  const captionsFor = (b: number) =>
    Array.from({ length: b }, (_, i) => samples[i % samples.length].caption);
  const results: Result[] = [];
  const stepper = (model: { parameters(): T.Tensor[] }, loss: () => T.Tensor) => {
    const opt = new Adam(model.parameters(), { lr: 1e-4 });
    return () => {
      T.scope(() => loss().backward());
      opt.step();
      opt.zeroGrad();
    };
  };

  const clip = await createClip(config, registry, tokenizer);
  const size = (config.components.imageEncoder.options as { imageSize: number }).imageSize;
  let B = batchOverride ?? config.train.clip.batchSize;
  let images = T.randn([B, 3, size, size]).keep();
  let tokens = tokenBatch(tokenizer, captionsFor(B));
  results.push({
    name: `train step clip B${B}`,
    ms: await time(stepper(clip, () => clip.loss(images, tokens)), reps),
  });
  clip.dispose();
  images.dispose();

  const prior = await createPrior(config, registry, tokenizer);
  const priorSchedule = await createComponent<NoiseSchedule>(config, registry, "priorSchedule");
  B = batchOverride ?? config.train.prior.batchSize;
  const E = prior.embedDim;
  const width = (config.components.textEncoder.options as { width: number }).width;
  const cond = {
    textSequence: T.randn([B, tokenizer.contextLength, width]).keep(),
    textEmbedding: T.randn([B, E]).keep(),
  };
  const imageEmbedding = T.randn([B, E]).keep();
  results.push({
    name: `train step prior B${B}`,
    ms: await time(stepper(prior, () => prior.loss(cond, imageEmbedding, priorSchedule)), reps),
  });
  prior.dispose();

  const decoder = await createDecoder(config, registry, tokenizer);
  const decoderSchedule = await createComponent<NoiseSchedule>(config, registry, "decoderSchedule");
  B = batchOverride ?? config.train.decoder.batchSize;
  images = T.randn([B, decoder.channels, decoder.imageSize, decoder.imageSize]).keep();
  tokens = tokenBatch(tokenizer, captionsFor(B));
  const decoderCond = { tokens, imageEmbedding: T.randn([B, E]).keep(), keep: T.ones([B]).keep() };
  results.push({
    name: `train step decoder B${B}`,
    ms: await time(
      stepper(decoder, () => decoderLoss(decoder, images, decoderCond, decoderSchedule)),
      reps,
    ),
  });
  decoder.dispose();
  return results;
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    console.error(`Error: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
