/**
 * The reranking CLIP (`train.reranker`, core/pipeline/reranker.ts): its settings laid over
 * train.clip, its stage (the clip stage with its own settings), loading it with a run, reranking
 * with it, evaluating and exporting it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError, layRerankerOverClip, validateConfig } from "../core/config.ts";
import { loadConfig } from "../core/config_file.ts";
import { bestOfCandidates, loadPipeline, rerankerScores, textToImage } from "../core/pipeline.ts";
import { noGrad, scope, tensor } from "../core/tensor/mod.ts";
import { loadCheckpoint } from "../core/train/checkpoint.ts";
import { builtins } from "../plugins/mod.ts";
import { runEval } from "../tasks/eval.ts";
import { runExport } from "../tasks/export.ts";
import { runTrain } from "../tasks/train.ts";
import { UsageError } from "../tasks/_cli.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const quiet = { print: () => {} };

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

/** presets/tiny.jsonc on 32 training images, batch 8, with `reranker` as its train.reranker. */
async function tinyConfig(reranker?: Json): Promise<Json> {
  const c = structuredClone(await loadConfig(join(ROOT, "presets/tiny.jsonc"), builtins())) as Json;
  Object.assign(c.components.dataset.options, { trainCount: 32, testCount: 8 });
  c.components.decoderSchedule.options.steps = 20;
  for (const stage of ["clip", "prior", "decoder"]) {
    Object.assign(c.train[stage], { batchSize: 8, logEvery: 1, checkpointEvery: 2 });
  }
  if (reranker) c.train.reranker = reranker;
  else delete c.train.reranker;
  return c;
}

Deno.test("train.reranker: train.clip's settings under its own; absent, no stage; one-line errors", async () => {
  const registry = builtins();
  const base = await tinyConfig();
  assert.equal(validateConfig(base, registry).train.reranker, undefined);
  const c = validateConfig(
    {
      ...base,
      train: { ...base.train, clip: { ...base.train.clip, steps: 7 }, reranker: { grain: 0.1 } },
    },
    registry,
  );
  // Everything but grain is train.clip's (its steps included); grain is the reranker's own.
  assert.deepEqual(c.train.reranker, { ...c.train.clip, grain: 0.1 });
  assert.equal(c.train.reranker!.steps, 7);
  assert.equal(c.train.clip.grain, 0);
  // Its own settings win over train.clip's; nothing else is touched.
  const own = layRerankerOverClip({ train: { clip: { seed: 3, lr: 1 }, reranker: { seed: 5 } } });
  assert.deepEqual(own, { train: { clip: { seed: 3, lr: 1 }, reranker: { seed: 5, lr: 1 } } });
  assert.equal(layRerankerOverClip("x"), "x");
  for (
    const [reranker, message] of [
      [{ ema: 0.9, extraEma: [0.99] }, /train\.reranker\.extraEma: CLIP samples .* remove it/],
      [{ grain: 2 }, /train\.reranker\.grain/],
      [{ stepz: 3 }, /train\.reranker.*stepz/],
    ] as const
  ) {
    assert.throws(
      () => validateConfig({ ...base, train: { ...base.train, reranker } }, registry),
      (e) => e instanceof ConfigError && message.test(e.message),
    );
  }
  // A problem in train.clip is one line, at train.clip, not a second one for the reranker that
  // inherits the setting; the reranker's own problems are its own.
  for (const clip of [{ stepz: 3 }, { lr: -1 }]) {
    const bad = {
      ...base,
      train: { ...base.train, clip: { ...base.train.clip, ...clip }, reranker: { grain: 0.1 } },
    };
    assert.throws(() => validateConfig(bad, registry), (e) => {
      const problems = (e as ConfigError).problems;
      assert.equal(problems.length, 1, problems.join("\n"));
      assert.match(problems[0], /^config: train\.clip/);
      assert.ok(!problems[0].includes("\n"));
      return true;
    });
  }
  // The other stages still refuse the CLIP-only settings, and say where they belong.
  assert.throws(
    () => validateConfig({ ...base, train: { ...base.train, prior: { grain: 0.1 } } }, registry),
    /train\.prior\.grain: .*train\.reranker\.grain/,
  );
});

Deno.test("train reranker: a config without train.reranker is a one-line usage error", async () => {
  const work = await Deno.makeTempDir({ prefix: "unclip-reranker-" });
  try {
    const config = join(work, "config.json");
    await Deno.writeTextFile(config, JSON.stringify(await tinyConfig()));
    await assert.rejects(
      () => runTrain(["reranker", "--config", config, "--out", join(work, "run")], quiet),
      (e) =>
        e instanceof UsageError &&
        /has no train\.reranker, so there is no reranker/.test(e.message),
    );
    await assert.rejects(
      () => runEval(["reranker", "--checkpoint", work], quiet),
      (e) => e instanceof UsageError && /has no reranker\/ stage/.test(e.message),
    );
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test({
  name:
    "reranker: trained as the clip stage with its settings, loaded with the run, reranks, evaluates, exports",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const work = await Deno.makeTempDir({ prefix: "unclip-reranker-" });
    try {
      // Without grain the reranker is the config's CLIP, bit for bit: the stage is the clip stage.
      const same = join(work, "same.json");
      await Deno.writeTextFile(same, JSON.stringify(await tinyConfig({ grain: 0 })));
      const sameRun = join(work, "same");
      await runTrain(["clip", "--config", same, "--out", sameRun, "--max-steps", "2"], quiet);
      await runTrain(["reranker", "--config", same, "--out", sameRun, "--max-steps", "2"], quiet);
      const [clipCkpt, twinCkpt] = await Promise.all(
        ["clip", "reranker"].map((s) => loadCheckpoint(join(sameRun, s), s as "clip")),
      );
      assert.equal(twinCkpt.meta.stage, "reranker");
      assert.equal(twinCkpt.meta.clip?.id, clipCkpt.meta.clip?.id);

      const config = join(work, "config.json");
      // An EMA too, which a CLIP keeps but never samples with: the export must not ship it.
      await Deno.writeTextFile(
        config,
        JSON.stringify(await tinyConfig({ grain: 0.5, seed: 1, ema: 0.9 })),
      );
      const run = join(work, "run");
      const lines: string[] = [];
      const all = await runTrain(["all", "--config", config, "--out", run, "--max-steps", "2"], {
        print: (l) => lines.push(l),
      });
      assert.deepEqual(all!.results.map((r) => [r.stage, r.step]), [
        ["clip", 2],
        ["reranker", 2],
        ["prior", 2],
        ["decoder", 2],
      ]);
      assert.ok(
        lines.some((l) =>
          /^reranker: .*second CLIP.*grain up to 0\.5 \(train\.reranker\.grain\)/.test(l)
        ),
        lines.join("\n"),
      );
      // Its own seed and grain: another CLIP than the run's.
      const ownCkpt = await loadCheckpoint(join(run, "reranker"), "reranker");
      const runClip = await loadCheckpoint(join(run, "clip"), "clip");
      assert.notEqual(ownCkpt.meta.clip?.id, runClip.meta.clip?.id);
      // The prior and decoder train on the run's CLIP, not the reranker.
      const decoderCkpt = await loadCheckpoint(join(run, "decoder"), "decoder");
      assert.equal(decoderCkpt.meta.clip?.id, runClip.meta.clip?.id);
      const resumed = await runTrain(
        ["reranker", "--config", config, "--out", run, "--resume", "--max-steps", "3"],
        quiet,
      );
      assert.deepEqual(resumed!.results.map((r) => [r.stage, r.step]), [["reranker", 3]]);

      const p = await loadPipeline(run, builtins());
      const plain = await loadPipeline(run, builtins(), { reranker: false });
      try {
        assert.ok(p.reranker);
        assert.equal(p.steps.reranker, 3);
        assert.equal(p.config.train.reranker?.grain, 0.5);
        assert.equal(plain.reranker, undefined);
        assert.equal(plain.steps.reranker, undefined);
        // With K candidates the kept one is the reranker's best of them (its own CLIP's best
        // with `reranker: false`). The K candidates are the images of n = K without reranking.
        const caption = "a red circle";
        const K = 6;
        const options = { steps: 2, guidance: 1 };
        let disagreed = false;
        for (let seed = 0; seed < 6; seed++) {
          const drawn = await textToImage(p, [caption], { ...options, n: K, rerank: 1, seed });
          const per = drawn.images.length / K;
          const x = tensor(drawn.images, drawn.shape);
          const scores = noGrad(() =>
            scope(() => rerankerScores(p.reranker!, x, Array(K).fill(caption)))
          );
          x.dispose();
          const mine = bestOfCandidates(await scores.read() as Float32Array, K)[0];
          scores.dispose();
          const kept = await textToImage(p, [caption], { ...options, n: 1, rerank: K, seed });
          assert.deepEqual(kept.images, drawn.images.subarray(mine * per, (mine + 1) * per));
          const theirs = await textToImage(plain, [caption], { ...options, n: 1, rerank: K, seed });
          if (!sameImage(theirs.images, kept.images)) disagreed = true;
        }
        // Two differently trained CLIPs choose differently for some seed: the choice is the
        // reranker's, not the run's CLIP's.
        assert.ok(disagreed, "the reranker and the run's CLIP kept the same candidate every time");
      } finally {
        p.dispose();
        plain.dispose();
      }

      // eval pipeline records which CLIP reranked; eval reranker scores the reranker.
      const evalArgs = ["pipeline", "--checkpoint", run, "--limit", "4", "--steps", "2"];
      const out = join(work, "eval.json");
      const reranking = ["--rerank", "2", "--probe-steps", "2"];
      await runEval([...evalArgs, ...reranking, "--out", out], quiet);
      const rec = JSON.parse(await Deno.readTextFile(out));
      assert.equal(rec.rerank, 2);
      assert.equal(rec.reranker.step, 3);
      assert.equal(rec.reranker.grain, 0.5);
      await runEval([...evalArgs, ...reranking, "--no-reranker"], quiet);
      const noRec = JSON.parse(
        await Deno.readTextFile(join(run, "eval_pipeline_no_reranker_test.json")),
      );
      assert.equal(noRec.reranker, null);
      await assert.rejects(
        () => runEval(["clip", "--checkpoint", run, "--no-reranker"], quiet),
        /--no-reranker is for "eval pipeline" from the prior/,
      );
      const [clipEval] = (await runEval(["reranker", "--checkpoint", run], quiet))!;
      assert.equal(clipEval.path, join(run, "eval_reranker_test.json"));
      assert.equal((clipEval.results as Json).step, 3);

      // Export carries the reranker's trained weights (not the EMA it kept), and it loads.
      const full = join(work, "full");
      await runExport(["--checkpoint", run, "--out", full], quiet.print);
      const trained = await loadCheckpoint(join(run, "reranker"), "reranker");
      const shipped = await loadCheckpoint(join(full, "reranker"), "reranker");
      assert.ok(
        trained.training?.tensors &&
          Object.keys(trained.training.tensors).some((k) => k.startsWith("ema.")),
      );
      for (const [name, t] of Object.entries(trained.weights)) {
        assert.deepEqual(shipped.weights[name].data, t.data, name);
      }
      const exported = join(work, "exported");
      await runExport(["--checkpoint", run, "--out", exported, "--half"], quiet.print);
      const e = await loadPipeline(exported, builtins());
      try {
        assert.equal(e.steps.reranker, 3);
        const x = await textToImage(e, ["a red circle"], { steps: 2, rerank: 2 });
        assert.deepEqual(x.shape, [1, 3, 16, 16]);
      } finally {
        e.dispose();
      }
    } finally {
      await Deno.remove(work, { recursive: true });
    }
  },
});

function sameImage(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
