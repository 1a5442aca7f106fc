/**
 * Warm restarts (`train.<stage>.restarts`, core/train/cycles.ts): the cycles' steps and learning
 * rates, the config's checks, and, end to end on the tiny preset, that one `train` command with
 * restarts trains bit for bit as the finished run continued by `train --init-from` once per
 * restart, resumed at a cycle's boundary or inside a restart alike.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { builtins } from "../plugins/mod.ts";
import { parseConfig, TRAIN_DEFAULTS, type TrainStageConfig } from "../core/config.ts";
import { loadConfig } from "../core/config_file.ts";
import { loadCheckpoint } from "../core/train/checkpoint.ts";
import {
  cycleAt,
  cycleLearningRate,
  resumeCyclesProblem,
  totalSteps,
  trainCycles,
} from "../core/train/cycles.ts";
import { readMetrics } from "../core/train/metrics.ts";
import { errorLine } from "../tasks/_cli.ts";
import { runTrain, warmupNote } from "../tasks/train.ts";
import { copyDir } from "./_support/files.ts";

const ROOT = new URL("..", import.meta.url).pathname;

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

function decoderTrain(over: Partial<TrainStageConfig>): TrainStageConfig {
  return { ...TRAIN_DEFAULTS.decoder, ...over };
}

Deno.test("trainCycles: the stage's own cycle, then one per restart with its defaults", () => {
  const train = decoderTrain({
    steps: 7000,
    lr: 1e-3,
    warmupSteps: 200,
    restarts: [{ steps: 3000, lr: 5e-4, warmupSteps: 100 }, { steps: 2000 }],
  });
  assert.deepEqual(trainCycles(train), [
    { index: 0, start: 0, steps: 7000, lr: 1e-3, warmupSteps: 200 },
    { index: 1, start: 7000, steps: 3000, lr: 5e-4, warmupSteps: 100 },
    { index: 2, start: 10000, steps: 2000, lr: 1e-3, warmupSteps: 200 },
  ]);
  assert.equal(totalSteps(train), 12000);
  assert.equal(totalSteps(decoderTrain({ steps: 50 })), 50);
  const cycles = trainCycles(train);
  assert.deepEqual([0, 6999, 7000, 9999, 10000, 12000].map((s) => cycleAt(cycles, s).index), [
    0,
    0,
    1,
    1,
    2,
    2,
  ]);
});

Deno.test("cycleLearningRate: warmup and cosine start again at each restart", () => {
  const train = decoderTrain({
    steps: 10,
    lr: 1e-3,
    warmupSteps: 2,
    lrSchedule: "cosine",
    restarts: [{ steps: 6, lr: 4e-4, warmupSteps: 2 }],
  });
  const cycles = trainCycles(train);
  const lr = (s: number) => cycleLearningRate(cycles, "cosine", s);
  assert.equal(lr(0), 5e-4); // 1e-3 * 1 / 2
  assert.equal(lr(1), 1e-3);
  assert.ok(lr(9) < 1e-4); // near the end of the first cosine
  assert.equal(lr(10), 2e-4); // the restart's first warmup step: 4e-4 * 1 / 2
  assert.equal(lr(11), 4e-4);
  // p = (14 - 10 - 2) / (6 - 2) = 0.5: half the peak.
  assert.ok(Math.abs(lr(14) - 2e-4) < 1e-12);
  assert.equal(lr(16), 0);
});

Deno.test("resumeCyclesProblem: the cycles already trained must stay as they were", () => {
  const was = decoderTrain({
    steps: 7000,
    lr: 1e-3,
    warmupSteps: 200,
    restarts: [{ steps: 3000, lr: 5e-4, warmupSteps: 100 }],
  });
  const ok = (now: Partial<TrainStageConfig>, step: number) =>
    assert.equal(resumeCyclesProblem("decoder", was, { ...was, ...now }, step), null);
  const bad = (now: Partial<TrainStageConfig>, step: number, pattern: RegExp) => {
    const why = resumeCyclesProblem("decoder", was, { ...was, ...now }, step);
    assert.ok(why && pattern.test(why), `${why}`);
  };
  ok({}, 8000);
  // In the first cycle, its length may change (as `steps` always could) and restarts are free.
  ok({ steps: 6000, restarts: [] }, 5000);
  // At the first cycle's end: restarts may change, be added or be removed.
  ok({ restarts: [{ steps: 100 }, { steps: 100 }] }, 7000);
  ok({ restarts: [] }, 7000);
  // Inside restart 1: it may be lengthened or shortened to the step, later ones added.
  ok({ restarts: [{ steps: 5000, lr: 5e-4, warmupSteps: 100 }, { steps: 10 }] }, 8000);
  ok({ restarts: [{ steps: 1000, lr: 5e-4, warmupSteps: 100 }] }, 8000);
  bad({ steps: 6000 }, 7000, /first cycle \(train\.decoder\.steps\) ended at step 7000 .* at 6000/);
  bad({ steps: 7500 }, 8000, /after its first cycle .*, whose steps this config changes from 7000/);
  bad({ restarts: [] }, 8000, /step 8000 lies in warm restart 1 \(restarts\[0\]\), which this/);
  bad(
    { restarts: [{ steps: 3000, lr: 1e-4, warmupSteps: 100 }] },
    8000,
    /after warm restart 1 \(restarts\[0\]\), whose lr this config changes from 0.0005 to 0.0001/,
  );
  bad({ restarts: [{ steps: 500, lr: 5e-4, warmupSteps: 100 }] }, 8000, /at 7500; keep/);
  bad({ lr: 2e-3 }, 3000, /whose lr this config changes from 0.001 to 0.002/);
});

Deno.test("warmupNote: a stage whose steps end inside its warmup says so", () => {
  const t = { steps: 5, warmupSteps: 200, lr: 1e-3, lrSchedule: "cosine" };
  assert.equal(
    warmupNote("decoder", t),
    "decoder: note: the 5 steps end inside the 200 warmup steps, so the learning rate stays " +
      "below 0.001 and the cosine decay never starts",
  );
  assert.match(warmupNote("clip", { ...t, lrSchedule: "constant" })!, /stays below 0\.001$/);
  assert.equal(warmupNote("decoder", { ...t, steps: 201 }), null);
});

Deno.test("config: restarts default to none and are checked", async () => {
  const base = structuredClone(
    await loadConfig(join(ROOT, "presets/tiny.jsonc"), builtins()),
  ) as Json;
  assert.deepEqual(base.train.decoder.restarts, []);
  const registry = builtins();
  const parse = (restarts: unknown, lrSchedule = "cosine") => {
    const c = structuredClone(base);
    Object.assign(c.train.decoder, { restarts, lrSchedule, warmupSteps: 10 });
    return parseConfig(JSON.stringify(c), registry);
  };
  assert.deepEqual(parse([{ steps: 20, lr: 5e-4 }]).train.decoder.restarts, [
    { steps: 20, lr: 5e-4 },
  ]);
  const fails = (restarts: unknown, pattern: RegExp) =>
    assert.throws(() => parse(restarts), (e) => pattern.test(errorLine(e)));
  fails([{ steps: 10 }], /restarts\[0\]\.steps.*10 steps leave nothing after 10 warmup steps/);
  fails([{ steps: 20, warmupSteps: 20 }], /restarts\[0\]\.steps/);
  fails([{ steps: 0 }], /restarts\[0\]\.steps/);
  fails([{ steps: 20, lr: -1 }], /restarts\[0\]\.lr/);
  fails([{ steps: 20, momentum: 0.9 }], /restarts\[0\]/);
  // A constant schedule has no cosine to leave room for.
  assert.equal(parse([{ steps: 5 }], "constant").train.decoder.restarts.length, 1);
});

Deno.test({
  name: "train with restarts = the finished run continued by --init-from, resumed anywhere",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const work = await Deno.makeTempDir({ prefix: "unclip-restarts-" });
    const quiet = { print: (_: string) => {} };
    const tiny = structuredClone(
      await loadConfig(join(ROOT, "presets/tiny.jsonc"), builtins()),
    ) as Json;
    tiny.components.dataset.options.trainCount = 32;
    tiny.components.dataset.options.testCount = 8;
    tiny.train.clip.batchSize = 8;
    // Windows and checkpoints of 2 steps across cycles of 3, 2 and 3: each cycle counts its own,
    // and ends with a log line and a kept checkpoint.
    Object.assign(tiny.train.decoder, {
      batchSize: 4,
      steps: 3,
      lr: 1e-3,
      warmupSteps: 1,
      lrSchedule: "cosine",
      extraEma: [0.9],
      logEvery: 2,
      checkpointEvery: 2,
      keepLast: 1,
    });
    const write = async (name: string, decoder: Json): Promise<string> => {
      const c = structuredClone(tiny);
      Object.assign(c.train.decoder, decoder);
      const path = join(work, `${name}.json`);
      await Deno.writeTextFile(path, JSON.stringify(c));
      return path;
    };
    const restarts = [{ steps: 2, lr: 5e-4, warmupSteps: 1 }, { steps: 3, warmupSteps: 2 }];
    const oneCommand = await write("restarts", { restarts });
    const firstCycle = await write("first", {});
    const secondCycle = await write("second", { steps: 2, lr: 5e-4 });
    const thirdCycle = await write("third", { steps: 3, warmupSteps: 2 });

    // One CLIP for every run.
    const clipRun = join(work, "clip-run");
    await runTrain(["clip", "--config", firstCycle, "--out", clipRun, "--max-steps", "2"], quiet);
    const withClip = async (name: string): Promise<string> => {
      const dir = join(work, name);
      await copyDir(join(clipRun, "clip"), join(dir, "clip"));
      return dir;
    };
    const decoder = (config: string, out: string, ...extra: string[]) =>
      runTrain(["decoder", "--config", config, "--out", out, ...extra], quiet);

    // The recipe as three runs: a finished run, then --init-from it twice.
    const b1 = await withClip("b1");
    const b2 = await withClip("b2");
    const b3 = await withClip("b3");
    await decoder(firstCycle, b1);
    await decoder(secondCycle, b2, "--init-from", b1);
    await decoder(thirdCycle, b3, "--init-from", b2);

    // The same in one command.
    const a = await withClip("a");
    const lines: string[] = [];
    const r = await runTrain(["decoder", "--config", oneCommand, "--out", a], {
      print: (l) => lines.push(l),
    });
    assert.deepEqual(r?.results.map((x) => [x.step, x.reason]), [[8, "done"]]);
    // Each cycle's end is kept beside the last keepLast (1) checkpoints.
    const folders = [...Deno.readDirSync(join(a, "decoder"))].map((e) => e.name).sort();
    assert.deepEqual(folders.filter((n) => n.startsWith("step-")), [
      "step-00000003",
      "step-00000005",
      "step-00000008",
    ]);
    assert.ok(
      lines.includes(
        "decoder: warm restart 1 of 2 at step 3: from the EMA weights, 2 steps at lr 0.0005 " +
          "after 1 warmup steps; a fresh optimizer and EMA",
      ),
      lines.join("\n"),
    );
    assert.ok(lines.some((l) => l.includes("then 2 warm restarts (2 at lr 0.0005 (1 warmup)")));

    // Stopped at each cycle's end and inside a restart, resumed each time.
    const c = await withClip("c");
    await decoder(oneCommand, c, "--max-steps", "3");
    await decoder(oneCommand, c, "--max-steps", "4", "--resume");
    await decoder(oneCommand, c, "--max-steps", "5", "--resume");
    await decoder(oneCommand, c, "--resume");

    const tensors = async (dir: string) => {
      const ckpt = await loadCheckpoint(join(dir, "decoder"), "decoder");
      const out: Record<string, Float32Array> = {};
      for (const [k, v] of Object.entries(ckpt.weights)) out[k] = v.data as Float32Array;
      for (const [k, v] of Object.entries(ckpt.training!.tensors)) {
        if (k.startsWith("ema")) out[k] = v.data as Float32Array; // ema.* and ema[0.9].*
      }
      return { step: ckpt.meta.step, out };
    };
    const expected = await tensors(b3);
    assert.equal(expected.step, 3);
    for (const dir of [a, c]) {
      const got = await tensors(dir);
      assert.equal(got.step, 8);
      assert.deepEqual(Object.keys(got.out).sort(), Object.keys(expected.out).sort());
      for (const [k, v] of Object.entries(expected.out)) {
        assert.deepEqual(got.out[k], v, `${dir}: ${k} differs from the --init-from recipe's`);
      }
    }
    // Loss by loss, the three runs' curves end to end (the resumed run's windows end where it
    // stopped, so only its weights are compared).
    const curve = async (dir: string) =>
      (await readMetrics(join(dir, "decoder", "metrics.jsonl"))).map((m) => [m.loss, m.lr]);
    const threeRuns = [...await curve(b1), ...await curve(b2), ...await curve(b3)];
    assert.deepEqual(await curve(a), threeRuns);
    assert.deepEqual(
      (await readMetrics(join(a, "decoder", "metrics.jsonl"))).map((m) => m.step),
      [2, 3, 5, 7, 8],
    );

    // A finished run given one more restart goes on with it; one whose trained cycles changed
    // is refused before anything is written.
    const more = await write("more", { restarts: [...restarts, { steps: 2 }] });
    const again: string[] = [];
    await runTrain(["decoder", "--config", more, "--out", a, "--resume"], {
      print: (l) => again.push(l),
    });
    assert.ok(again.some((l) => l.startsWith("decoder: warm restart 3 of 3 at step 8:")));
    assert.equal((await loadCheckpoint(join(a, "decoder"), "decoder")).meta.step, 10);
    const changed = await write("changed", {
      restarts: [{ ...restarts[0], steps: 3 }, restarts[1], { steps: 2 }],
    });
    await assert.rejects(
      runTrain(["decoder", "--config", changed, "--out", a, "--resume"], quiet),
      (e) =>
        /after warm restart 1 \(restarts\[0\]\), whose steps this config changes from 2 to 3/
          .test(errorLine(e)),
    );
    await Deno.remove(work, { recursive: true });
  },
});
