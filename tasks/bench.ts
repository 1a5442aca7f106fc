/**
 * `deno task bench [--backend auto|webgpu|cpu] [--quick] [--batch N] [--reps N] [--only LIST]
 * [--preset NAME] [--train-batch N] [--json FILE]`: throughput of the hot kernels at the thesis's
 * shapes, of a preset's training steps and of the shipped demo decoder, with the device line.
 * Every figure is the median of timed repetitions after a warm-up (pipelines compile on first
 * use), measured to device completion. A row whose ops fail (for example a kernel the chosen
 * backend lacks) is reported as "failed: <reason>" and the bench goes on. Row names match
 * bench/torch_baseline.py; bench/compare.ts puts the two JSON files side by side.
 */
import { exists, writeTextAtomic } from "../core/io/mod.ts";
import {
  BACKEND_FLAG,
  BACKEND_HELP,
  backendChoice,
  checkOutputFile,
  numberFlag,
  parseFlags,
  runMain,
  UsageError,
} from "./_cli.ts";
import * as T from "../core/tensor/mod.ts";
import { generateSplit } from "../datasets/mod.ts";
import { builtins } from "../plugins/mod.ts";
import { loadConfig } from "../core/config_file.ts";
import {
  createClip,
  createComponent,
  createDecoder,
  createPrior,
  createTokenizer,
  loadPipeline,
} from "../core/pipeline.ts";
import { Adam } from "../core/optim/mod.ts";
import { tokenBatch } from "../core/clip.ts";
import { decoderLoss } from "../core/diffusion/mod.ts";
import { doubleConditioning } from "../core/diffusion/mod.ts";
import type { NoiseSchedule } from "../core/diffusion/mod.ts";

interface Result {
  name: string;
  /** Median milliseconds; NaN when the row failed. */
  ms: number;
  gflops?: number;
  /** Parameter count of the model a training or forward row runs. */
  params?: number;
  /** Why the row failed (its ops threw). */
  error?: string;
}

/** The first shipped model (16x16, presets/cpu-demo.jsonc), kept as the benchmark decoder. */
const DEMO_WEIGHTS = new URL("../weights/cpu-demo", import.meta.url).pathname;
/** Batch of the demo rows: one guided step of `deno task sample --n 8` (cond + uncond). */
const DEMO_BATCH = 16;

async function time(fn: () => void, reps: number): Promise<number> {
  fn(); // warm-up: compiles pipelines
  await T.sync();
  const samples: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    await T.sync();
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

/** The row groups `--only` selects from, in the order they run. */
export const BENCH_GROUPS = ["matmul", "conv", "attention", "train", "demo", "data"] as const;

const USAGE = `Usage: deno task bench [options]

Times the hot kernels at the thesis's shapes, one training step of each model of a preset, and
the 16x16 demo decoder (weights/cpu-demo); every figure is the median of --reps timed runs
after a warm-up.

Options:
${BACKEND_HELP}
  --quick            smaller conv batch (8), train batch 4 and 2 repetitions, for slow devices
  --batch N          conv batch size (default 64, the thesis decoder's; 8 with --quick)
  --reps N           timed repetitions per row (default 5; 2 with --quick)
  --only LIST        comma-separated row groups: ${BENCH_GROUPS.join(",")}
                     ("demo": the shipped demo decoder, forward and training step at batch 16)
  --preset NAME      preset of the "train" rows: a name in presets/ or a path (default thesis)
  --train-batch N    batch size of the "train" rows (default: the preset's; 4 with --quick)
  --json FILE        also write the device line and every row as JSON (compare with
                     bench/compare.ts); its folder is checked before the run
  --debug            print stack traces of errors
  -h, --help         show this help`;

/**
 * The bench task: flags are parsed and checked (numbers, --only groups, the --json folder)
 * before the backend starts; returns the rows measured.
 *
 * @example
 * ```ts
 * await runBench(["--quick", "--only", "matmul", "--reps", "2"]);
 * ```
 */
export async function runBench(args: string[]): Promise<Result[]> {
  const { values, positionals } = parseFlags(args, {
    quick: { type: "boolean" },
    batch: { type: "string" },
    only: { type: "string" },
    preset: { type: "string" },
    "train-batch": { type: "string" },
    reps: { type: "string" },
    json: { type: "string" },
    ...BACKEND_FLAG,
  }, "bench");
  if (values.help) {
    console.log(USAGE);
    return [];
  }
  if (positionals.length > 0) {
    throw new UsageError(`Unexpected argument "${positionals[0]}"; see "deno task bench --help"`);
  }
  const quick = values.quick === true;
  const reps = numberFlag(values, "reps", { integer: true, min: 1 }) ?? (quick ? 2 : 5);
  const batch = numberFlag(values, "batch", { integer: true, min: 1 }) ?? (quick ? 8 : 64);
  const trainBatch = numberFlag(values, "train-batch", { integer: true, min: 1 }) ??
    (quick ? 4 : undefined);
  let only: string[] | undefined;
  if (values.only !== undefined) {
    only = String(values.only).split(",").map((g) => g.trim());
    const unknown = only.filter((g) => !(BENCH_GROUPS as readonly string[]).includes(g));
    if (unknown.length > 0) {
      throw new UsageError(
        `--only: unknown group "${unknown[0]}"; valid: ${BENCH_GROUPS.join(", ")}`,
      );
    }
  }
  const presetName = (values.preset as string | undefined) ?? "thesis";
  const preset = presetName.includes("/") ? presetName : `presets/${presetName}.jsonc`;
  if ((!only || only.includes("train")) && !(await exists(preset))) {
    throw new UsageError(`--preset "${presetName}": "${preset}" does not exist`);
  }
  const json = values.json as string | undefined;
  if (json !== undefined) await checkOutputFile(json, { force: true, flag: "--json" });
  const choice = backendChoice(values);

  // No flag: UNCLIP_BACKEND, else auto (as every task).
  await T.initBackend({ backend: choice });
  const device = T.deviceLine();
  console.log(`device: ${device}`);
  const results: Result[] = [];
  const want = (k: string) => !only || only.includes(k);
  const report = (r: Result) => {
    results.push(r);
    if (r.error !== undefined) {
      console.log(`${r.name.padEnd(44)} failed: ${r.error}`);
      return;
    }
    const g = r.gflops !== undefined ? `${r.gflops.toFixed(2).padStart(9)} GFLOP/s` : "";
    console.log(`${r.name.padEnd(44)} ${r.ms.toFixed(2).padStart(10)} ms ${g}`);
  };
  /** Runs one row; a throw becomes a "failed" row instead of ending the bench. */
  const row = async (name: string, measure: () => Promise<Omit<Result, "name">>) => {
    try {
      report({ name, ...(await measure()) });
    } catch (e) {
      report({ name, ms: NaN, error: errorLine(e) });
    }
  };

  if (want("matmul")) {
    for (const n of quick ? [256, 512, 1024] : [256, 512, 1024, 2048, 4096]) {
      await row(`matmul ${n}x${n}x${n}`, async () => {
        const a = T.randn([n, n]), b = T.randn([n, n]);
        try {
          const ms = await time(() => T.scope(() => void T.matmul(a, b)), reps);
          return { ms, gflops: (2 * n ** 3) / ms / 1e6 };
        } finally {
          a.dispose();
          b.dispose();
        }
      });
    }
  }
  if (want("conv")) {
    const conv2d = (T as Record<string, unknown>).conv2d as
      | ((x: T.Tensor, w: T.Tensor, b: T.Tensor | null, o: { padding: number }) => T.Tensor)
      | undefined;
    if (conv2d) {
      for (const [c, hw] of [[64, 32], [128, 16], [256, 8]]) {
        await row(`conv2d 3x3 fwd+bwd B${batch} ${c}x${hw}x${hw}`, async () => {
          const [x, w] = withGrad(
            T.randn([batch, c, hw, hw]),
            T.affine(T.randn([c, c, 3, 3]), 0.05, 0),
          );
          try {
            const ms = await time(fwdBwd(() => conv2d(x, w, null, { padding: 1 })), reps);
            // forward 2*B*C*C*9*HW, backward twice that (input and weight gradients)
            const flops = 3 * 2 * batch * c * c * 9 * hw * hw;
            return { ms, gflops: flops / ms / 1e6 };
          } finally {
            x.dispose();
            w.dispose();
          }
        });
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
      await row("attention fwd+bwd 1024 tokens x 64 ch", async () => {
        const [q, k, v] = withGrad(
          T.randn([1, 1, 1024, 64]),
          T.randn([1, 1, 1024, 64]),
          T.randn([1, 1, 1024, 64]),
        );
        try {
          return { ms: await time(fwdBwd(() => sdpa(q, k, v)), reps) };
        } finally {
          for (const t of [q, k, v]) t.dispose();
        }
      });
    } else {
      console.log("attention: not available in this build");
    }
  }
  if (want("train")) {
    try {
      for (const r of await trainingSteps(preset, trainBatch, reps)) report(r);
    } catch (e) {
      report({ name: `train steps (${presetName})`, ms: NaN, error: errorLine(e) });
    }
  }
  if (want("demo")) await demoRows(reps, row);
  if (want("data")) {
    await row("generate dataset 1 train (20k, 32x32)", () => {
      const t0 = performance.now();
      generateSplit({ set: 1, split: "train", size: 32 });
      return Promise.resolve({ ms: performance.now() - t0 });
    });
  }
  if (json !== undefined) {
    const summary = {
      backend: T.backendKind(),
      device,
      adapter: T.adapterSummary(),
      date: new Date().toISOString(),
      batch,
      reps,
      results,
    };
    await writeTextAtomic(json, JSON.stringify(summary, null, 2));
  }
  return results;
}

/** The first line of an error's message (a failing row's reason). */
function errorLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

function parameterCount(model: { parameters(): T.Tensor[] }): number {
  return model.parameters().reduce((n, p) => n + p.size, 0);
}

/**
 * The shipped demo decoder (weights/cpu-demo, presets/cpu-demo.jsonc) at batch 16: one forward
 * pass under noGrad exactly as a guided sampling step calls it (8 images, conditional and
 * unconditional halves in one batch), and one training step (decoderLoss, backward, Adam) as
 * `trainingSteps` runs it. Inputs are random of the right shapes; the captions are real.
 */
async function demoRows(
  reps: number,
  row: (name: string, measure: () => Promise<Omit<Result, "name">>) => Promise<void>,
): Promise<void> {
  const forwardName = `decoder forward B${DEMO_BATCH} (cpu-demo)`;
  const trainName = `train step decoder B${DEMO_BATCH} (cpu-demo)`;
  let pipeline;
  try {
    pipeline = await loadPipeline(DEMO_WEIGHTS, builtins());
  } catch (e) {
    for (const name of [forwardName, trainName]) {
      await row(name, () => Promise.reject(new Error(`loading ${DEMO_WEIGHTS}: ${errorLine(e)}`)));
    }
    return;
  }
  const { decoder, tokenizer, decoderSchedule } = pipeline;
  const params = parameterCount(decoder);
  const half = DEMO_BATCH / 2;
  const samples = generateSplit({ set: 1, split: "test", count: half, size: decoder.imageSize });
  const E = pipeline.prior.embedDim;
  const shape = [DEMO_BATCH, decoder.channels, decoder.imageSize, decoder.imageSize];
  const held: T.Tensor[] = [];
  const keep = (t: T.Tensor): T.Tensor => {
    held.push(t.keep());
    return t;
  };
  try {
    // What a guided step sees: x_t, one timestep for all, the captions twice (keep 1 then 0).
    const tokens = tokenBatch(tokenizer, samples.map((s) => s.caption));
    for (const t of [tokens.ids, tokens.endIndex]) keep(t);
    const cond8 = { tokens, imageEmbedding: keep(T.randn([half, E])), keep: keep(T.ones([half])) };
    const cond = T.noGrad(() => doubleConditioning(cond8));
    for (const t of [cond.tokens.ids, cond.tokens.endIndex, cond.imageEmbedding, cond.keep]) {
      keep(t);
    }
    const xt = keep(T.randn(shape));
    const timesteps = keep(T.full([DEMO_BATCH], decoderSchedule.numSteps / 2));
    decoder.eval();
    await row(forwardName, async () => ({
      ms: await time(
        () => T.scope(() => void T.noGrad(() => decoder.predictNoise(xt, timesteps, cond))),
        reps,
      ),
      params,
    }));

    // Training: x_0 and conditioning of batch 16, every row conditional (as trainingSteps).
    decoder.train();
    const trainTokens = tokenBatch(tokenizer, [...samples, ...samples].map((s) => s.caption));
    for (const t of [trainTokens.ids, trainTokens.endIndex]) keep(t);
    const trainCond = {
      tokens: trainTokens,
      imageEmbedding: keep(T.randn([DEMO_BATCH, E])),
      keep: keep(T.ones([DEMO_BATCH])),
    };
    const x0 = keep(T.randn(shape));
    await row(trainName, async () => {
      const opt = new Adam(decoder.parameters(), { lr: 1e-4 });
      const step = () => {
        T.scope(() => decoderLoss(decoder, x0, trainCond, decoderSchedule).backward());
        opt.step();
        opt.zeroGrad();
      };
      return { ms: await time(step, reps), params };
    });
  } finally {
    for (const t of held) t.dispose();
    pipeline.dispose();
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

if (import.meta.main) await runMain(runBench);
