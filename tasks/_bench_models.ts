/**
 * The model rows of `deno task bench`: one optimizer step of each model of a preset at its
 * shapes, the shipped demo decoder's forward pass and training step at the batch a guided
 * sampling step runs (inputs are random tensors of the right shapes), and the whole sampling of 8
 * images with weights/default.
 * @module
 */
import * as T from "../core/tensor/mod.ts";
import { generateSplit } from "../datasets/mod.ts";
import { builtins } from "../plugins/mod.ts";
import type { ResolvedConfig } from "../core/config.ts";
import type { Tokenizer } from "../core/components.ts";
import type { Registry } from "../core/registry.ts";
import {
  createClip,
  createComponent,
  createDecoder,
  createPrior,
  createSampler,
  createTokenizer,
  createUpsampler,
  decoderRerank,
  loadPipeline,
  textToImage,
} from "../core/pipeline.ts";
import { Adam, gradNorm } from "../core/optim/mod.ts";
import { tokenBatch } from "../core/clip.ts";
import { decoderLoss, doubleConditioning, upsamplerLoss } from "../core/diffusion/mod.ts";
import type { NoiseSchedule } from "../core/diffusion/mod.ts";
import { failureReason, type Result, type RowRunner, time } from "./_bench_kernels.ts";

/** The first shipped model (16x16, presets/cpu-demo.jsonc), kept as the benchmark decoder. */
const DEMO_WEIGHTS = new URL("../weights/cpu-demo", import.meta.url).pathname;
/** The default weights, what `deno task sample` uses without --checkpoint. */
const DEFAULT_WEIGHTS = new URL("../weights/default", import.meta.url).pathname;
/** The faster setting the sample rows time beside the weights' own sampler (docs/training.md). */
const FAST_SAMPLER = { name: "dpm-solver++-sde", steps: 15 };
/** Batch of the demo rows: one guided step of `deno task sample --n 8` (cond + uncond). */
const DEMO_BATCH = 16;

function parameterCount(model: { parameters(): T.Tensor[] }): number {
  return model.parameters().reduce((n, p) => n + p.size, 0);
}

/**
 * The shipped demo decoder (weights/cpu-demo, presets/cpu-demo.jsonc) at batch 16: one forward
 * pass under noGrad exactly as a guided sampling step calls it (8 images, conditional and
 * unconditional halves in one batch), and one training step (decoderLoss, backward, Adam) as
 * `trainingSteps` runs it. Inputs are random of the right shapes; the captions are real.
 */
export async function demoRows(
  reps: number,
  row: RowRunner,
): Promise<void> {
  const forwardName = `decoder forward B${DEMO_BATCH} (cpu-demo)`;
  const trainName = `train step decoder B${DEMO_BATCH} (cpu-demo)`;
  let pipeline;
  try {
    pipeline = await loadPipeline(DEMO_WEIGHTS, builtins());
  } catch (e) {
    for (const name of [forwardName, trainName]) {
      await row(
        name,
        () => Promise.reject(new Error(`loading ${DEMO_WEIGHTS}: ${failureReason(e)}`)),
      );
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
      ...(await time(
        () => T.scope(() => void T.noGrad(() => decoder.predictNoise(xt, timesteps, cond))),
        reps,
      )),
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
      return { ...(await time(step, reps)), params };
    });
  } finally {
    for (const t of held) t.dispose();
    pipeline.dispose();
  }
}

/**
 * `deno task sample "a large red circle" --n 8` without its process start and PNG writing: the
 * whole `textToImage` of 8 images (tokenizer, CLIP, the prior with 2 candidates, the guided
 * decoder at batch 16) with weights/default, once with the sampling its config sets (sampler and
 * CLIP reranking) and once with SDE-DPM-Solver++(2M) over 15 steps without reranking. Issue 16's
 * target is under 10 s on the 2-core machine.
 */
export async function sampleRows(reps: number, row: RowRunner): Promise<void> {
  let pipeline;
  try {
    pipeline = await loadPipeline(DEFAULT_WEIGHTS, builtins());
  } catch (e) {
    await row(
      "sample 8 images (weights/default)",
      () => Promise.reject(new Error(`loading ${DEFAULT_WEIGHTS}: ${failureReason(e)}`)),
    );
    return;
  }
  try {
    const own = pipeline.config.components.sampler;
    const fast = {
      ...pipeline,
      sampler: await createSampler(pipeline.config, pipeline.registry, FAST_SAMPLER.name),
    };
    // The stored default reranks when its config says so (sampling.rerank); the fast row never.
    const rerank = decoderRerank(pipeline, {});
    const settings = [
      {
        name: `${own.plugin} ${own.options?.steps ?? "all"}` +
          (rerank > 1 ? `, best of ${rerank} by CLIP` : ""),
        p: pipeline,
        options: {},
      },
      {
        name: `${FAST_SAMPLER.name} ${FAST_SAMPLER.steps}`,
        p: fast,
        options: { steps: FAST_SAMPLER.steps, rerank: 1 },
      },
    ];
    for (const { name, p, options } of settings) {
      await row(`sample 8 images (weights/default, ${name})`, async () => ({
        ...(await time(() => textToImage(p, ["a large red circle"], { n: 8, ...options }), reps)),
      }));
    }
  } finally {
    pipeline.dispose();
  }
}

/** `--profile`: the op table of each model's clipped training step (core/tensor/profiler.ts). */
export interface StepProfileOptions {
  /** One row per op and set of input shapes. */
  byShape: boolean;
  /** Rows printed per table. */
  limit: number;
}

/**
 * A preset's decoder, its noise schedule and one training batch of random images and CLIP image
 * embeddings (E wide) at its shapes, with the tokens of real `captions` (one per image) and every
 * condition kept: what the `train` rows (and bench/subpixel_upsampling.ts) step.
 */
export async function decoderBatch(
  config: ResolvedConfig,
  registry: Registry,
  tokenizer: Tokenizer,
  captions: string[],
  E: number,
) {
  const decoder = await createDecoder(config, registry, tokenizer);
  const decoderSchedule = await createComponent<NoiseSchedule>(config, registry, "decoderSchedule");
  const B = captions.length;
  const images = T.randn([B, decoder.channels, decoder.imageSize, decoder.imageSize]).keep();
  const decoderCond = {
    tokens: tokenBatch(tokenizer, captions),
    imageEmbedding: T.randn([B, E]).keep(),
    keep: T.ones([B]).keep(),
  };
  return { decoder, decoderSchedule, images, decoderCond };
}

/**
 * One optimizer step (forward, backward, Adam) of each model of a preset (the upsampler too when
 * it has one), on random inputs of the preset's shapes. Row names match bench/torch_baseline.py
 * for the ratio table. With `profile`, `reps` more clipped steps of each model run under the op
 * profiler and its table (per-step means) is printed after the model's rows.
 */
export async function trainingSteps(
  config: ResolvedConfig,
  registry: Registry,
  batchOverride: number | undefined,
  reps: number,
  profile?: StepProfileOptions,
): Promise<Result[]> {
  const samples = generateSplit({ set: 1, split: "train", count: 256, size: 32 });
  const tokenizer = await createTokenizer(config, registry, {
    captions: samples.map((s) => s.caption),
  });
  const captionsFor = (b: number) =>
    Array.from({ length: b }, (_, i) => samples[i % samples.length].caption);
  const results: Result[] = [];
  /** Two rows per model: forward, backward and Adam; then the same with clipping by the global
   * norm (1, the presets' `gradClip`) as the train loop does it (`gradNorm`, folded into Adam). */
  const stepRows = async (
    name: string,
    model: { parameters(): T.Tensor[] },
    loss: () => T.Tensor,
  ): Promise<void> => {
    for (const maxNorm of [null, 1]) {
      const opt = new Adam(model.parameters(), { lr: 1e-4 });
      const update = () =>
        opt.step(
          undefined,
          maxNorm === null ? undefined : { norm: gradNorm(model.parameters()), maxNorm },
        );
      const step = (ops?: T.OpProfile) => {
        T.scope(() => {
          loss().backward();
          if (ops) ops.section("optimizer update (Adam)", update);
          else update();
        });
        opt.zeroGrad();
      };
      const rowName = maxNorm === null ? name : `${name} + grad clip`;
      try {
        results.push({ name: rowName, ...(await time(() => step(), reps)) });
        // The clipped step is the one the train loop takes (the presets' gradClip).
        if (profile && maxNorm !== null) {
          const { profile: ops } = T.profileOps((open) => {
            for (let r = 0; r < reps; r++) step(open);
          }, { byShape: profile.byShape });
          console.log(`${rowName}: ${ops.format({ perStep: reps, limit: profile.limit })}\n`);
        }
      } finally {
        opt.dispose();
      }
    }
  };

  const clip = await createClip(config, registry, tokenizer);
  const size = (config.components.imageEncoder.options as { imageSize: number }).imageSize;
  let B = batchOverride ?? config.train.clip.batchSize;
  let images = T.randn([B, 3, size, size]).keep();
  const tokens = tokenBatch(tokenizer, captionsFor(B));
  await stepRows(`train step clip B${B}`, clip, () => clip.loss(images, tokens));
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
  await stepRows(
    `train step prior B${B}`,
    prior,
    () => prior.loss(cond, imageEmbedding, priorSchedule),
  );
  prior.dispose();

  B = batchOverride ?? config.train.decoder.batchSize;
  const { decoder, decoderSchedule, decoderCond, ...batch } = await decoderBatch(
    config,
    registry,
    tokenizer,
    captionsFor(B),
    E,
  );
  images = batch.images;
  await stepRows(
    `train step decoder B${B}`,
    decoder,
    () => decoderLoss(decoder, images, decoderCond, decoderSchedule),
  );
  // A self-conditioned decoder's other steps add a pass without gradient that estimates x_0
  // (a `selfCondition` share of them; the row above is the rest).
  if ((decoder.selfCondition ?? 0) > 0) {
    await stepRows(
      `train step decoder B${B} self-cond`,
      decoder,
      () => decoderLoss(decoder, images, decoderCond, decoderSchedule, { selfCondition: true }),
    );
  }
  decoder.dispose();
  images.dispose();

  // DALL-E 2's cascade: the upsampler's step on images of the final size, conditioned on their
  // own area-downsampled, augmented versions (as `train upsampler` does).
  if (config.components.upsampler) {
    const up = await createUpsampler(config, registry);
    B = batchOverride ?? config.train.upsampler?.batchSize ?? B;
    const x0 = T.randn([B, up.channels, up.imageSize, up.imageSize]).keep();
    await stepRows(`train step upsampler B${B}`, up, () => upsamplerLoss(up, x0, decoderSchedule));
    up.dispose();
    x0.dispose();
  }
  return results;
}
