import assert from "node:assert/strict";
import { join } from "node:path";
import type { ResolvedConfig } from "../core/config.ts";
import { f16ToF32 } from "../core/io/mod.ts";
import { Linear } from "../core/nn/mod.ts";
import { Module } from "../core/nn/module.ts";
import { Adam, Ema } from "../core/optim/mod.ts";
import { initBackend, manualSeed, mean, scope, square, tensor } from "../core/tensor/mod.ts";
import {
  assertSameClip,
  CHECKPOINT_FORMAT_VERSION,
  CheckpointError,
  type CheckpointMeta,
  clipIdentity,
  configMismatch,
  exportInferenceCheckpoint,
  listSteps,
  loadCheckpoint,
  loadModuleWeights,
  loadTrainingState,
  readTensors,
  resolveStepDir,
  type ResumeState,
  saveCheckpoint,
  stepDirName,
  weightsHash,
} from "../core/train/checkpoint.ts";
import { MetricsLog, readMetrics } from "../core/train/metrics.ts";
import { formatDuration, progressLine, RateMeter } from "../core/train/progress.ts";

await initBackend();

class Tiny extends Module {
  readonly a: Linear;
  readonly b: Linear;
  constructor() {
    super();
    this.a = this.addModule("a", new Linear(4, 8));
    this.b = this.addModule("b", new Linear(8, 2));
  }
}

const CONFIG = {
  name: "t",
  plugins: [],
  components: { tokenizer: { plugin: "bpe", options: { vocabSize: 300 } } },
  train: { clip: { lr: 1e-3, steps: 10, logEvery: 5 } },
} as unknown as ResolvedConfig;

function resumeState(step: number): ResumeState {
  return { step, rng: { seed: 1, counter: 7 }, loaderStep: step, hostSeed: 3, elapsedSeconds: 1.5 };
}

/** One Adam step on a fixed input so that moments and EMA are non-trivial. */
function trainOnce(model: Tiny, opt: Adam, ema: Ema): void {
  scope(() => {
    const x = tensor(new Float32Array([1, 2, 3, 4, -1, 0, 1, 2]), [2, 4]);
    const loss = mean(square(model.b.forward(model.a.forward(x, "relu"))));
    loss.backward();
    opt.step(1e-2);
    opt.zeroGrad();
    ema.update();
  });
}

async function flat(ts: readonly { size: number }[] & Parameters<typeof readTensors>[0]) {
  return (await readTensors(ts)).map((b) => Array.from(new Float32Array(b)));
}

async function saveTiny(
  dir: string,
  step: number,
  keepLast = 3,
  maxShardBytes?: number,
  meta: Partial<CheckpointMeta> = {},
) {
  manualSeed(step);
  const model = new Tiny();
  const opt = new Adam(model.parameters(), { lr: 1e-2 });
  const ema = new Ema(model.parameters(), 0.9);
  trainOnce(model, opt, ema);
  const path = await saveCheckpoint({
    stageDir: dir,
    meta: {
      formatVersion: CHECKPOINT_FORMAT_VERSION,
      stage: "clip",
      step,
      config: CONFIG,
      tokenizer: { format: "x" },
      ...meta,
    },
    model,
    optimizer: opt,
    ema,
    resume: resumeState(step),
    keepLast,
    maxShardBytes,
  });
  return { path, model, opt, ema };
}

Deno.test("saveCheckpoint() and loadCheckpoint() round-trip weights, Adam, EMA and resume state", async () => {
  const dir = await Deno.makeTempDir();
  const { path, model, opt, ema } = await saveTiny(dir, 5);
  assert.equal(path, join(dir, stepDirName(5)));
  assert.equal((await Deno.readTextFile(join(dir, "latest"))).trim(), "step-00000005");
  const ckpt = await loadCheckpoint(dir, "clip");
  assert.equal(ckpt.meta.step, 5);
  assert.equal(ckpt.meta.formatVersion, CHECKPOINT_FORMAT_VERSION);
  assert.deepEqual(ckpt.meta.config, CONFIG);
  assert.deepEqual(ckpt.meta.tokenizer, { format: "x" });
  assert.deepEqual(ckpt.resume, resumeState(5));

  manualSeed(99);
  const fresh = new Tiny();
  const opt2 = new Adam(fresh.parameters(), { lr: 1e-2 });
  const ema2 = new Ema(fresh.parameters(), 0.9);
  loadModuleWeights(fresh, ckpt);
  loadTrainingState(ckpt, fresh, opt2, ema2);
  assert.deepEqual(await flat(fresh.parameters()), await flat(model.parameters()));
  assert.equal(opt2.stepCount, 1);
  assert.deepEqual(await flat(opt2.stateDict().m), await flat(opt.stateDict().m));
  assert.deepEqual(await flat(opt2.stateDict().v), await flat(opt.stateDict().v));
  assert.deepEqual(await flat(ema2.stateDict().shadow), await flat(ema.stateDict().shadow));
  assert.equal(ema2.updates, 1);

  // With ema: true the shadow weights replace the parameters (for sampling).
  loadModuleWeights(fresh, ckpt, { ema: true });
  assert.deepEqual(await flat(fresh.parameters()), await flat(ema.stateDict().shadow));
  for (const x of [model, fresh]) x.dispose();
  for (const x of [opt, opt2, ema, ema2]) x.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("exportInferenceCheckpoint() keeps the EMA weights, in float32 or float16", async () => {
  const dir = await Deno.makeTempDir();
  const { model, opt, ema } = await saveTiny(join(dir, "run"), 3, 3, undefined, {
    stage: "decoder",
  });
  const shadow = (await flat(ema.stateDict().shadow)).flat();
  for (const half of [false, true]) {
    const out = join(dir, half ? "half" : "full");
    await exportInferenceCheckpoint(join(dir, "run"), out, { half });
    const ckpt = await loadCheckpoint(out, "decoder");
    assert.equal(ckpt.training, null);
    assert.equal(ckpt.meta.step, 3);
    assert.equal(ckpt.meta.exportedWeights, "ema");
    // Exporting the export again keeps the label (its shadow weights are its only weights).
    const again = join(dir, half ? "half-again" : "full-again");
    await exportInferenceCheckpoint(out, again, { half });
    assert.equal((await loadCheckpoint(again, "decoder")).meta.exportedWeights, "ema");
    manualSeed(5);
    const fresh = new Tiny();
    loadModuleWeights(fresh, ckpt, { ema: true });
    const got = (await flat(fresh.parameters())).flat();
    // float16 keeps 11 significant bits: relative error below 2^-11.
    got.forEach((v, i) =>
      assert.ok(Math.abs(v - shadow[i]) <= (half ? Math.abs(shadow[i]) / 2048 + 1e-7 : 0))
    );
    fresh.dispose();
  }
  await assert.rejects(
    exportInferenceCheckpoint(join(dir, "run"), join(dir, "full")),
    CheckpointError,
  );
  model.dispose();
  opt.dispose();
  ema.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("further EMAs (extraEma): saved beside the EMA, resumed, started afresh or dropped, exported by decay", async () => {
  const dir = await Deno.makeTempDir();
  // A decoder whose config's EMA decay is 0.9 (what the export writes by default).
  const config = { ...CONFIG, train: { ...CONFIG.train, decoder: { ema: 0.9 } } } as ResolvedConfig;
  manualSeed(11);
  const model = new Tiny();
  const opt = new Adam(model.parameters(), { lr: 1e-2 });
  const ema = new Ema(model.parameters(), 0.9);
  const slow = new Ema(model.parameters(), 0.99, { warmup: true });
  const fast = new Ema(model.parameters(), 0.5);
  // 0.55 shares 0.5's leading digits: its key must not be taken for 0.5's.
  const near = new Ema(model.parameters(), 0.55);
  for (let i = 0; i < 3; i++) {
    trainOnce(model, opt, ema);
    slow.update();
    if (i === 0) fast.update();
    if (i === 2) near.update();
  }
  await saveCheckpoint({
    stageDir: join(dir, "run"),
    meta: {
      formatVersion: CHECKPOINT_FORMAT_VERSION,
      step: 3,
      config,
      tokenizer: null,
      stage: "decoder",
    },
    model,
    optimizer: opt,
    ema,
    extraEmas: [slow, fast, near],
    resume: resumeState(3),
    keepLast: 3,
  });
  const ckpt = await loadCheckpoint(join(dir, "run"), "decoder");
  assert.deepEqual(JSON.parse(ckpt.training!.metadata.extra_emas), [
    { decay: 0.99, updates: 3, warmup: true },
    { decay: 0.5, updates: 1, warmup: false },
    { decay: 0.55, updates: 1, warmup: false },
  ]);
  const trained = await flat(model.parameters());
  const shadows = {
    ema: await flat(ema.stateDict().shadow),
    slow: await flat(slow.stateDict().shadow),
    fast: await flat(fast.stateDict().shadow),
    near: await flat(near.stateDict().shadow),
  };
  // The averages differ from each other and from the weights (else the test proves nothing).
  for (const [a, b] of [["slow", "ema"], ["slow", "fast"], ["fast", "near"]] as const) {
    assert.notDeepEqual(shadows[a], shadows[b], `${a} vs ${b}`);
  }
  assert.notDeepEqual(shadows.slow, trained);

  // Resume: a saved further EMA comes back with its count and warm-up; one the checkpoint lacks
  // (added to the config since) starts from the restored weights without warm-up; saved ones no
  // longer configured are reported as dropped.
  manualSeed(12);
  const fresh = new Tiny();
  const slow2 = new Ema(fresh.parameters(), 0.99);
  const added = new Ema(fresh.parameters(), 0.999, { warmup: true });
  loadModuleWeights(fresh, ckpt);
  const extras = loadTrainingState(ckpt, fresh, null, null, [slow2, added]);
  assert.deepEqual(extras, { started: [0.999], dropped: [0.5, 0.55] });
  assert.deepEqual([slow2.updates, slow2.warmup], [3, true]);
  assert.deepEqual(await flat(slow2.stateDict().shadow), shadows.slow);
  assert.deepEqual([added.updates, added.warmup, added.currentDecay()], [0, false, 0.999]);
  assert.deepEqual(await flat(added.stateDict().shadow), trained);

  // Export: the config's EMA (its decay recorded), a further one by its decay (kept when the export
  // is exported again), the config's EMA when asked for its own decay or for one not kept.
  const exported = async (name: string, emaDecay?: number) => {
    const out = join(dir, name);
    const done = await exportInferenceCheckpoint(join(dir, "run"), out, { emaDecay });
    const loaded = await loadCheckpoint(out, "decoder");
    const m = new Tiny();
    loadModuleWeights(m, loaded);
    const values = await flat(m.parameters());
    m.dispose();
    return { done, meta: loaded.meta, values };
  };
  const plain = await exported("plain");
  assert.deepEqual(plain.values, shadows.ema);
  assert.deepEqual(plain.done.keptDecays, [0.5, 0.55, 0.9, 0.99]);
  assert.deepEqual([plain.done.weights, plain.done.emaDecay, plain.meta.exportedEmaDecay], [
    "ema",
    0.9,
    0.9,
  ]);
  const picked = await exported("slow", 0.99);
  assert.deepEqual(picked.values, shadows.slow);
  assert.deepEqual([picked.done.emaDecay, picked.meta.exportedEmaDecay], [0.99, 0.99]);
  const again = await exportInferenceCheckpoint(join(dir, "slow"), join(dir, "again"));
  assert.deepEqual([again.weights, again.emaDecay, again.keptDecays], ["ema", 0.99, [0.99]]);
  assert.deepEqual((await exported("fast", 0.5)).values, shadows.fast);
  assert.deepEqual((await exported("near", 0.55)).values, shadows.near);
  for (const [name, decay] of [["own", 0.9], ["missing", 0.7]] as const) {
    const got = await exported(name, decay);
    assert.deepEqual(got.values, shadows.ema, name);
    assert.equal(got.done.emaDecay, 0.9, name);
  }

  // A corrupt state list is reported, not guessed around.
  const broken = {
    ...ckpt,
    training: { ...ckpt.training!, metadata: { ...ckpt.training!.metadata } },
  };
  broken.training.metadata.extra_emas = "[1]";
  assert.throws(
    () => loadTrainingState(broken, fresh, null, null, [slow2]),
    (e: Error) => e instanceof CheckpointError && /extra_emas is not a list/.test(e.message),
  );
  for (const x of [model, fresh]) x.dispose();
  for (const x of [opt, ema, slow, fast, near, slow2, added]) x.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("CLIP identity: clip checkpoints record step and weights hash; prior/decoder the CLIP they trained with", async () => {
  const dir = await Deno.makeTempDir();
  const disposeAll = (x: { model: Tiny; opt: Adam; ema: Ema }) => {
    x.model.dispose();
    x.opt.dispose();
    x.ema.dispose();
  };
  try {
    // A clip checkpoint's identity is computed from what is saved (whatever the caller passes).
    const a = await saveTiny(join(dir, "a", "clip"), 2, 3, undefined, { clip: { step: 9 } });
    disposeAll(a);
    const clipA = await loadCheckpoint(join(dir, "a", "clip"), "clip");
    assert.deepEqual(clipA.meta.clip, { step: 2, id: weightsHash(clipA.weights) });
    assert.match(clipA.meta.clip!.id!, /^[0-9a-f]{64}$/);
    // The same weights saved again (a re-save, a deterministic retrain) keep the id; others not.
    disposeAll(await saveTiny(join(dir, "same"), 2));
    assert.deepEqual((await loadCheckpoint(join(dir, "same"))).meta.clip, clipA.meta.clip);
    disposeAll(await saveTiny(join(dir, "b", "clip"), 4));
    const clipB = await loadCheckpoint(join(dir, "b", "clip"), "clip");
    assert.notEqual(clipB.meta.clip!.id, clipA.meta.clip!.id);

    // A decoder records the identity it is given; export keeps it, and CLIP's own.
    disposeAll(
      await saveTiny(join(dir, "a", "decoder"), 5, 3, undefined, {
        stage: "decoder",
        clip: clipIdentity(clipA),
      }),
    );
    const decoder = await loadCheckpoint(join(dir, "a", "decoder"), "decoder");
    assert.deepEqual(decoder.meta.clip, clipA.meta.clip);
    for (const stage of ["clip", "decoder"] as const) {
      await exportInferenceCheckpoint(join(dir, "a", stage), join(dir, "x", stage), { half: true });
      const exported = await loadCheckpoint(join(dir, "x", stage), stage);
      assert.deepEqual(exported.meta.clip, clipA.meta.clip, stage);
    }
    // CLIP is exported with the weights the prior and decoder trained with (not its EMA).
    const exportedClip = await loadCheckpoint(join(dir, "x", "clip"), "clip");
    const trained = clipA.weights["a.weight"].data as Float32Array;
    const shadow = clipA.training!.tensors["ema.a.weight"].data as Float32Array;
    const got = f16ToF32(exportedClip.weights["a.weight"].data as Uint16Array);
    const near = (x: Float32Array) => got.every((v, i) => Math.abs(v - x[i]) <= 1e-3);
    assert.ok(near(trained) && !near(shadow));
    assertSameClip([decoder], exportedClip, join(dir, "x"));

    // The same CLIP passes; another is refused in one line saying what to retrain.
    assertSameClip([decoder], clipA, join(dir, "a"));
    const run = join(dir, "a");
    const idA = clipA.meta.clip!.id!.slice(0, 12);
    const idB = clipB.meta.clip!.id!.slice(0, 12);
    assert.throws(
      () => assertSameClip([decoder], clipB, run, "my.jsonc"),
      (err: unknown) => {
        assert.ok(err instanceof CheckpointError);
        assert.equal(
          err.message,
          `decoder in ${run} was trained with CLIP step 2 (id ${idA}) but ${run}/clip is now ` +
            `step 4 (id ${idB}); retrain the decoder (move ${run}/decoder away, then: ` +
            `deno task train decoder --config my.jsonc --out ${run})`,
        );
        return true;
      },
    );
    const prior = { ...decoder, meta: { ...decoder.meta, stage: "prior" as const } };
    assert.throws(
      () => assertSameClip([prior, decoder], clipB, run),
      new RegExp(
        `^CheckpointError: prior and decoder in ${run} were trained with CLIP step 2 \\(id ${idA}\\) ` +
          `but .*; retrain the prior and the decoder \\(move ${run}/prior and ${run}/decoder away, ` +
          `then: deno task train prior --config FILE --out ${run} && deno task train decoder`,
      ),
    );

    // Checkpoints from before identities were recorded: nothing to compare, no error.
    const legacy = { ...decoder, meta: { ...decoder.meta, clip: undefined } };
    assertSameClip([legacy], clipB, run);
    // A CLIP without an id (saved before): only the step is compared.
    const legacyClip = { ...clipA, meta: { ...clipA.meta, clip: undefined } };
    assert.deepEqual(clipIdentity(legacyClip), { step: 2 });
    assertSameClip([decoder], legacyClip, run);
    const legacyClipB = { ...clipB, meta: { ...clipB.meta, clip: undefined } };
    assert.throws(() => assertSameClip([decoder], legacyClipB, run), /is now step 4; retrain/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("saveCheckpoint() keeps only the last N step folders and shards at the limit", async () => {
  const dir = await Deno.makeTempDir();
  for (const step of [1, 2, 3, 4]) {
    const { model, opt, ema } = await saveTiny(dir, step, 2, 64);
    model.dispose();
    opt.dispose();
    ema.dispose();
  }
  assert.deepEqual(await listSteps(dir), [3, 4]);
  const files = [...Deno.readDirSync(join(dir, stepDirName(4)))].map((e) => e.name).sort();
  // 4 tensors of 16..128 bytes with a 64-byte limit: several shards plus the index.
  assert.ok(
    files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f)).length >= 3,
    files.join(),
  );
  assert.ok(files.includes("model.safetensors.index.json"));
  assert.ok(files.includes("training.safetensors"));
  assert.ok(files.includes("resume.json"));
  assert.equal((await loadCheckpoint(dir)).meta.step, 4);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadCheckpoint() ignores an unfinished save and follows latest", async () => {
  const dir = await Deno.makeTempDir();
  const { model, opt, ema } = await saveTiny(dir, 1);
  // A crash during a later save leaves a hidden temporary folder; latest still names step 1.
  await Deno.mkdir(join(dir, ".step-00000002.tmp-dead"));
  await Deno.writeTextFile(join(dir, ".step-00000002.tmp-dead", "junk"), "x");
  assert.equal(await resolveStepDir(dir), join(dir, stepDirName(1)));
  assert.deepEqual(await listSteps(dir), [1]);
  model.dispose();
  opt.dispose();
  ema.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("resolveStepDir() falls back to the previous copy of a step being re-saved", async () => {
  const dir = await Deno.makeTempDir();
  const { model, opt, ema } = await saveTiny(dir, 1);
  // A crash between the two renames of a re-save: the step folder is gone, its old copy remains.
  const old = join(dir, `.${stepDirName(1)}.tmp-abc-old`);
  await Deno.rename(join(dir, stepDirName(1)), old);
  assert.equal(await resolveStepDir(dir), old);
  const loaded = await loadCheckpoint(dir, "clip");
  assert.equal(loaded.meta.step, 1);
  model.dispose();
  opt.dispose();
  ema.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadCheckpoint() reports missing, corrupt and foreign checkpoints in one line", async () => {
  const dir = await Deno.makeTempDir();
  const oneLine = (re: RegExp) => (e: unknown): boolean => {
    assert.ok(e instanceof CheckpointError, String(e));
    assert.ok(!e.message.includes("\n"), e.message);
    assert.match(e.message, re);
    return true;
  };
  await assert.rejects(loadCheckpoint(join(dir, "nope")), oneLine(/does not exist/));
  await assert.rejects(loadCheckpoint(dir), oneLine(/no "latest" file/));

  const { model, opt, ema } = await saveTiny(dir, 1);
  model.dispose();
  opt.dispose();
  ema.dispose();
  await assert.rejects(loadCheckpoint(dir, "decoder"), oneLine(/is a "clip" checkpoint/));

  const step = join(dir, stepDirName(1));
  const shard = [...Deno.readDirSync(step)].find((e) => e.name.startsWith("model-"))!.name;
  const bytes = await Deno.readFile(join(step, shard));
  await Deno.writeFile(join(step, shard), bytes.subarray(0, bytes.length - 10));
  await assert.rejects(loadCheckpoint(dir), oneLine(/is corrupt/));

  await Deno.writeTextFile(join(dir, "latest"), "garbage\n");
  await assert.rejects(loadCheckpoint(dir), oneLine(/pointer .* is corrupt/));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadCheckpoint() refuses another format version", async () => {
  const dir = await Deno.makeTempDir();
  const { model, opt, ema } = await saveTiny(dir, 1);
  model.dispose();
  opt.dispose();
  ema.dispose();
  const index = join(dir, stepDirName(1), "model.safetensors.index.json");
  const json = JSON.parse(await Deno.readTextFile(index));
  json.metadata.format_version = "999";
  await Deno.writeTextFile(index, JSON.stringify(json));
  await assert.rejects(loadCheckpoint(dir), /format version 999/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadModuleWeights() rejects weights of another architecture", async () => {
  const dir = await Deno.makeTempDir();
  const { model, opt, ema } = await saveTiny(dir, 1);
  const ckpt = await loadCheckpoint(dir);
  const other = new Linear(3, 3);
  assert.throws(() => loadModuleWeights(other, ckpt), /does not fit the model/);
  for (const x of [model, other]) x.dispose();
  opt.dispose();
  ema.dispose();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("configMismatch() lists differing fields, ignoring logging cadence and the step total", () => {
  const a = structuredClone(CONFIG);
  const b = structuredClone(CONFIG) as unknown as {
    components: { tokenizer: { options: { vocabSize: number } } };
    train: { clip: { lr: number; logEvery: number; steps: number; extraEma: number[] } };
  };
  b.train.clip.logEvery = 1;
  b.train.clip.steps += 1000; // a resumed run may be extended or shortened
  b.train.clip.extraEma = [0.9999]; // a further EMA may be added (it starts at the resumed step)
  assert.deepEqual(configMismatch(a, b as unknown as ResolvedConfig, ["tokenizer"], "clip"), []);
  // A checkpoint written before a train setting existed trained with its default.
  const old = structuredClone(CONFIG) as unknown as { train: { clip: Record<string, unknown> } };
  delete old.train.clip.hardNegatives;
  const off = structuredClone(CONFIG), hn = structuredClone(CONFIG);
  off.train.clip.hardNegatives = false;
  assert.deepEqual(
    configMismatch(old as unknown as ResolvedConfig, off, ["tokenizer"], "clip"),
    [],
  );
  hn.train.clip.hardNegatives = true;
  assert.deepEqual(configMismatch(old as unknown as ResolvedConfig, hn, ["tokenizer"], "clip"), [
    "train.clip.hardNegatives",
  ]);
  b.components.tokenizer.options.vocabSize = 400;
  b.train.clip.lr = 1;
  assert.deepEqual(configMismatch(a, b as unknown as ResolvedConfig, ["tokenizer"], "clip"), [
    "components.tokenizer.options.vocabSize",
    "train.clip.lr",
  ]);
  // Without a train stage only the components count.
  assert.deepEqual(configMismatch(a, b as unknown as ResolvedConfig, ["tokenizer"]), [
    "components.tokenizer.options.vocabSize",
  ]);
});

Deno.test("MetricsLog.open() drops lines after the resumed step; readMetrics() skips torn lines", async () => {
  const dir = await Deno.makeTempDir();
  const path = join(dir, "metrics.jsonl");
  const rec = (step: number) => ({
    stage: "clip",
    step,
    loss: step / 10,
    lr: 1e-3,
    stepsPerSecond: 1,
    elapsedSeconds: step,
    time: "t",
  });
  const log = await MetricsLog.open(path);
  for (const s of [1, 2, 3, 4]) await log.append(rec(s));
  await Deno.writeTextFile(path, '{"stage": "cl', { append: true });
  assert.deepEqual((await readMetrics(path)).map((r) => r.step), [1, 2, 3, 4]);
  await MetricsLog.open(path, { truncateAfter: 2 });
  assert.deepEqual((await readMetrics(path)).map((r) => r.step), [1, 2]);
  assert.deepEqual(await readMetrics(join(dir, "missing.jsonl")), []);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("progressLine() shows step, loss, rate and ETA", () => {
  assert.equal(formatDuration(185), "3m05s");
  assert.equal(formatDuration(3720), "1h02m");
  assert.equal(formatDuration(Infinity), "?");
  const line = progressLine({
    stage: "clip",
    step: 10,
    target: 100,
    loss: 1.5,
    lr: 3e-4,
    stepsPerSecond: 2,
  });
  assert.match(line, /step {2}10\/100/);
  assert.match(line, /loss 1\.5000/);
  assert.match(line, /2\.00 steps\/s/);
  assert.match(line, /ETA 45s/);
});

Deno.test("RateMeter: steps per second per window, a reset leaves a pause out", () => {
  const meter = new RateMeter(0, 0);
  assert.equal(meter.lap(50, 10_000), 5); // 50 steps in 10 s
  // A checkpoint written from 10 s to 30 s: without the reset the next window would read
  // 50 steps in 30 s.
  meter.reset(50, 30_000);
  assert.equal(meter.lap(100, 40_000), 5);
  assert.equal(meter.lap(100, 40_000), 0); // an empty window reads 0, not NaN
});
