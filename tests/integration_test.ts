/**
 * End to end on whatever adapter is present (llvmpipe in CI): train all three stages of the
 * tiny preset for a few steps, sample a PNG, resume exactly, stop on --max-minutes and Ctrl-C,
 * refuse corrupt and foreign checkpoints, and train a decoder step with a noise schedule from
 * a third-party plugin file. Shapes and step counts are kept small so that the file runs in a
 * few minutes on a CPU adapter.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { builtins } from "../plugins/mod.ts";
import { loadConfig } from "../core/config_file.ts";
import { decodePngRgb, encodeRgbPng, exists } from "../core/io/mod.ts";
import { generateSplit } from "../datasets/mod.ts";
import { SHAPES } from "../datasets/shapes.ts";
import { CheckpointError, loadCheckpoint } from "../core/train/checkpoint.ts";
import { type MetricsRecord, readMetrics } from "../core/train/metrics.ts";
import { trainLoop } from "../core/train/loop.ts";
import { setupStage } from "../core/train/stages.ts";
import { engineStats } from "../core/tensor/mod.ts";
import { imagesToNchw } from "../core/data/images.ts";
import {
  imageVariations,
  inputImageSize,
  loadPipeline,
  reconstructImages,
} from "../core/pipeline.ts";
import { errorLine } from "../tasks/_cli.ts";
import { copyDir } from "./_support/files.ts";
import { runEval } from "../tasks/eval.ts";
import { runExport } from "../tasks/export.ts";
import { runSample } from "../tasks/sample.ts";
import { runTrain } from "../tasks/train.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const WORK = await Deno.makeTempDir({ prefix: "unclip-integration-" });
const quiet = { print: (_: string) => {} };

// deno-lint-ignore no-explicit-any
type Json = Record<string, any>;

/** The tiny preset, smaller still: 64 training images, a loss line per step. */
async function writeConfig(path: string, edit: (c: Json) => void = () => {}): Promise<string> {
  const c = structuredClone(await loadConfig(join(ROOT, "presets/tiny.jsonc"), builtins())) as Json;
  c.components.dataset.options.trainCount = 64;
  c.components.dataset.options.testCount = 16;
  for (const stage of ["clip", "prior", "decoder"]) {
    Object.assign(c.train[stage], { logEvery: 1, checkpointEvery: 2, keepLast: 2 });
  }
  edit(c);
  await Deno.writeTextFile(path, JSON.stringify(c, null, 2));
  return path;
}

const CONFIG = await writeConfig(join(WORK, "config.json"));
const RUN = join(WORK, "run");

/** `sample` with `args` into WORK/name: the PNG's pixels and the lines it printed. */
async function drawSample(args: string[], name: string) {
  const lines: string[] = [];
  const out = join(WORK, name);
  await runSample([...args, "--out", out], { print: (l) => lines.push(l) });
  return { png: decodePngRgb(await Deno.readFile(out)).data, lines };
}

function losses(records: MetricsRecord[], from: number): [number, number][] {
  return records.filter((r) => r.step > from).map((r) => [r.step, r.loss]);
}

Deno.test({
  name: "integration: train all, sample, resume, stops, bad checkpoints, plugin schedule",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    await t.step("train all --max-steps 4 trains and saves every stage", async () => {
      const r = await runTrain(
        ["all", "--config", CONFIG, "--out", RUN, "--max-steps", "4"],
        quiet,
      );
      assert.ok(r);
      assert.deepEqual(r.results.map((x) => [x.stage, x.step, x.reason]), [
        ["clip", 4, "max-steps"],
        ["prior", 4, "max-steps"],
        ["decoder", 4, "max-steps"],
      ]);
      for (const stage of ["clip", "prior", "decoder"]) {
        const dir = join(RUN, stage);
        assert.equal((await Deno.readTextFile(join(dir, "latest"))).trim(), "step-00000004");
        const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
        assert.deepEqual(names, ["latest", "metrics.jsonl", "step-00000002", "step-00000004"]);
        const m = await readMetrics(join(dir, "metrics.jsonl"));
        assert.deepEqual(m.map((x) => x.step), [1, 2, 3, 4]);
        assert.ok(m.every((x) => Number.isFinite(x.loss) && x.stage === stage));
      }
    });

    await t.step("sample writes a PNG grid of the right size", async () => {
      const out = join(WORK, "sample.png");
      const r = await runSample(
        ["a red circle", "--checkpoint", RUN, "--n", "2", "--steps", "2", "--out", out],
        quiet,
      );
      assert.ok(r);
      const png = decodePngRgb(await Deno.readFile(out));
      // Two 16x16 images side by side with 2-pixel padding: 2 * 16 + 3 * 2 by 16 + 2 * 2.
      assert.deepEqual([png.width, png.height], [38, 20]);
      assert.deepEqual([r.width, r.height, r.count], [38, 20, 2]);
    });

    await t.step("sample --sampler-options sets the sampler's options", async () => {
      const out = join(WORK, "ddim_eta.png");
      const lines: string[] = [];
      const args = ["a red circle", "--checkpoint", RUN, "--n", "1", "--steps", "2"];
      await runSample(
        [...args, "--sampler", "ddim", "--sampler-options", "eta=1", "--out", out],
        { print: (l) => lines.push(l) },
      );
      assert.ok(lines.some((l) => /sampler ddim \(eta=1\)/.test(l)), lines.join("\n"));
      assert.ok((await Deno.stat(out)).size > 0);
      await assert.rejects(
        () => runSample([...args, "--sampler-options", "etta=1", "--out", out, "--force"], quiet),
        /Sampler "ddpm" has no option "etta"; its options are steps, clipDenoised, clampXt/,
      );
    });

    await t.step("sample --guidance-interval guides part of the steps", async () => {
      const args = ["a red circle", "--checkpoint", RUN, "--n", "1", "--steps", "4"];
      const draw = (extra: string[], name: string) => drawSample([...args, ...extra], name);
      const every = await draw([], "gi_every.png");
      const same = await draw(["--guidance-interval", "0,1"], "gi_same.png");
      const part = await draw(["--guidance-interval", "0.5,1"], "gi_part.png");
      assert.deepEqual(same.png, every.png, "0,1 is every step, the default");
      assert.notDeepEqual(part.png, every.png, "unguided low-noise steps change the image");
      assert.ok(
        part.lines.some((l) => /guidance 2 over t\/T 0\.5-1,/.test(l)),
        part.lines.join("\n"),
      );
    });

    await t.step("sample --image decodes variations of an input PNG", async () => {
      // A 32x32 shapes image: twice the decoder's side, so it is box-downsampled to 16x16.
      const [img] = generateSplit({ split: "test", count: 1, size: 32 });
      const input = join(WORK, "input.png");
      await Deno.writeFile(input, encodeRgbPng(img.image, 32, 32));
      const out = join(WORK, "variations.png");
      const r = await runSample(
        ["--image", input, "--checkpoint", RUN, "--n", "2", "--steps", "2", "--out", out],
        quiet,
      );
      const png = decodePngRgb(await Deno.readFile(out));
      // Two images (the same shapes as above, so no new GPU pipelines): 38 x 20.
      assert.deepEqual([png.width, png.height, r?.count], [38, 20, 2]);
    });

    await t.step("a too-long caption is a one-line error and writes nothing", async () => {
      const out = join(WORK, "long.png");
      await assert.rejects(
        runSample(["a red circle and ".repeat(8), "--checkpoint", RUN, "--out", out], quiet),
        (e) => /longer than the context length 33/.test(errorLine(e)),
      );
      await assert.rejects(Deno.stat(out), Deno.errors.NotFound);
    });

    await t.step("resume continues the same loss curve (clip and decoder)", async () => {
      const full = {
        clip: await readMetrics(join(RUN, "clip", "metrics.jsonl")),
        decoder: await readMetrics(join(RUN, "decoder", "metrics.jsonl")),
      };
      const b = join(WORK, "resumed");
      await runTrain(["clip", "--config", CONFIG, "--out", b, "--max-steps", "2"], quiet);
      const r = await runTrain([
        "clip",
        "--config",
        CONFIG,
        "--out",
        b,
        "--max-steps",
        "4",
        "--resume",
      ], quiet);
      assert.equal(r?.results[0].step, 4);
      const clip = await readMetrics(join(b, "clip", "metrics.jsonl"));
      assert.deepEqual(clip.map((x) => x.step), [1, 2, 3, 4]);
      assert.deepEqual(losses(clip, 2), losses(full.clip, 2));

      // The decoder resumes on the very CLIP the uninterrupted run used.
      const d = join(WORK, "resumed-decoder");
      await copyDir(join(RUN, "clip"), join(d, "clip"));
      await runTrain(["decoder", "--config", CONFIG, "--out", d, "--max-steps", "2"], quiet);
      await runTrain(
        ["decoder", "--config", CONFIG, "--out", d, "--max-steps", "4", "--resume"],
        quiet,
      );
      const dec = await readMetrics(join(d, "decoder", "metrics.jsonl"));
      assert.deepEqual(losses(dec, 2), losses(full.decoder, 2));
    });

    await t.step("--init-from starts a stage from another run's EMA weights", async () => {
      // Another seed and loss: without --init-from its decoder would start far from RUN's.
      const config = await writeConfig(join(WORK, "finetune.json"), (c) => {
        c.train.decoder.seed = 7;
        c.components.decoder.options.minSnrGamma = 5;
      });
      const d = join(WORK, "finetune");
      await copyDir(join(RUN, "clip"), join(d, "clip"));
      const lines: string[] = [];
      const args = ["decoder", "--config", config, "--out", d, "--init-from", RUN];
      await runTrain([...args, "--max-steps", "1"], { print: (l) => lines.push(l) });
      const source = await loadCheckpoint(join(RUN, "decoder"), "decoder");
      const tuned = await loadCheckpoint(join(d, "decoder"), "decoder");
      assert.ok(
        lines.includes(
          `decoder: starts from the EMA weights of ${source.dir} (its step 4); optimizer, ` +
            "EMA, step count and learning-rate schedule start afresh",
        ),
        lines.join("\n"),
      );
      assert.equal(tuned.meta.step, 1);
      assert.deepEqual(tuned.meta.initFrom, { dir: source.dir, step: 4 });
      // One Adam step moves each weight by at most about lr = 1e-3 from where it started.
      let worst = 0;
      for (const [name, entry] of Object.entries(tuned.weights)) {
        const from = (source.training!.tensors[`ema.${name}`] ?? source.weights[name])
          .data as Float32Array;
        const now = entry.data as Float32Array;
        for (let i = 0; i < now.length; i++) worst = Math.max(worst, Math.abs(now[i] - from[i]));
      }
      assert.ok(worst > 0 && worst < 1.5e-3, `largest change ${worst}`);

      // Resumed, the run keeps the record of where it started.
      await runTrain(["decoder", "--config", config, "--out", d, "--max-steps", "2", "--resume"], {
        print: (l) => lines.push(l),
      });
      const resumed = await loadCheckpoint(join(d, "decoder"), "decoder");
      assert.equal(resumed.meta.step, 2);
      assert.deepEqual(resumed.meta.initFrom, { dir: source.dir, step: 4 });

      // A run whose CLIP is not the source's is told so.
      const e = join(WORK, "finetune-other-clip");
      await copyDir(join(RUN, "clip"), join(e, "clip"));
      await Deno.writeTextFile(join(e, "clip", "latest"), "step-00000002\n");
      const notes: string[] = [];
      await runTrain(
        ["decoder", "--config", config, "--out", e, "--init-from", join(RUN, "decoder")]
          .concat("--max-steps", "1"),
        { print: (l) => notes.push(l) },
      );
      assert.ok(
        notes.some((l) =>
          /^decoder: note: .* was trained with CLIP step 4 .*, this run's is step 2/.test(l)
        ),
        notes.join("\n"),
      );

      const fails = (extra: string[], out: string, pattern: RegExp) =>
        assert.rejects(
          runTrain(["decoder", "--config", config, "--out", out, ...extra], quiet),
          (err) => pattern.test(errorLine(err)),
        );
      const f = join(WORK, "finetune-bad");
      await copyDir(join(RUN, "clip"), join(f, "clip"));
      await fails(["--init-from", join(WORK, "nowhere")], f, /holds no decoder checkpoint/);
      await fails(
        ["--init-from", join(RUN, "clip")],
        f,
        /is a "clip" checkpoint, expected "decoder"/,
      );
      await fails(
        ["--init-from", f],
        f,
        /names the --out folder itself; to continue a run use --resume/,
      );
      assert.deepEqual([...Deno.readDirSync(f)].map((x) => x.name), ["clip"]);
      // Without a CLIP in --out the error names the source run's to copy.
      const g = join(WORK, "finetune-no-clip");
      await fails(
        ["--init-from", RUN],
        g,
        new RegExp(
          `or copy the CLIP of the --init-from run \\(cp -r ${join(RUN, "clip")} ${g}/\\)`,
        ),
      );
      await assert.rejects(Deno.stat(g), Deno.errors.NotFound);
    });

    await t.step(
      "--init-from into a self-conditioned decoder: the new input starts at zero",
      async () => {
        const config = await writeConfig(join(WORK, "selfcond.json"), (c) => {
          c.components.decoder.options.selfCondition = 0.5;
        });
        const d = join(WORK, "selfcond");
        await copyDir(join(RUN, "clip"), join(d, "clip"));
        await copyDir(join(RUN, "prior"), join(d, "prior"));
        const lines: string[] = [];
        await runTrain(
          ["decoder", "--config", config, "--out", d, "--init-from", RUN, "--max-steps", "2"],
          { print: (l) => lines.push(l) },
        );
        const source = await loadCheckpoint(join(RUN, "decoder"), "decoder");
        assert.ok(
          lines.includes(
            `decoder: 2 tensors are not in ${source.dir} and keep their seeded initialisation: ` +
              "selfCondIn.weight, selfCondIn.bias",
          ),
          lines.join("\n"),
        );
        assert.ok(lines.some((l) => l.endsWith("self-conditioned on 50% of the steps")));
        const tuned = await loadCheckpoint(join(d, "decoder"), "decoder");
        assert.deepEqual(tuned.weights["selfCondIn.weight"].shape, [16, 3, 3, 3]);
        // `sample` feeds it its estimates (core/pipeline/generate.ts) and draws the images.
        const args = ["a red circle", "--checkpoint", d, "--n", "2", "--steps", "3"];
        const { png } = await drawSample(args, "selfcond.png");
        assert.equal(png.length, 38 * 20 * 3);
        // The other way round, the extra tensors are refused: nothing would read them.
        const plain = join(WORK, "selfcond-back");
        await copyDir(join(RUN, "clip"), join(plain, "clip"));
        await assert.rejects(
          runTrain(["decoder", "--config", CONFIG, "--out", plain, "--init-from", d], quiet),
          (err) => /does not fit the model: .*unexpected \["selfCondIn/.test(errorLine(err)),
        );
      },
    );

    await t.step(
      "extraEma keeps further EMAs (added on resume too) and export --ema ships one",
      async () => {
        const full = await readMetrics(join(RUN, "decoder", "metrics.jsonl"));
        const config = (extraEma: number[]) =>
          writeConfig(join(WORK, `extra-ema-${extraEma.join("-")}.json`), (c) => {
            c.train.decoder.extraEma = extraEma;
          });
        const d = join(WORK, "extra-ema");
        for (const stage of ["clip", "prior"]) await copyDir(join(RUN, stage), join(d, stage));
        await runTrain(
          ["decoder", "--config", await config([0.05]), "--out", d, "--max-steps", "2"],
          quiet,
        );
        const lines: string[] = [];
        await runTrain(
          ["decoder", "--config", await config([0.05, 0.9]), "--out", d, "--max-steps", "4"]
            .concat("--resume"),
          { print: (l) => lines.push(l) },
        );
        assert.ok(lines.some((l) => /EMA 0\.99 \+ 0\.05 \+ 0\.9,/.test(l)), lines.join("\n"));
        // The tiny preset's 300 steps end long before its 0.99 takes over from the warm-up.
        assert.ok(
          lines.some((l) =>
            /^decoder: EMA 0\.99 stays in the warm-up, .* for all 300 steps \(0\.99 needs 890\); "emaWarmup": false uses it/
              .test(l)
          ),
          lines.join("\n"),
        );
        assert.ok(
          lines.includes(
            "decoder: EMA 0.9 is not in the checkpoint; it starts at step 2, from these " +
              "weights, without warm-up",
          ),
          lines.join("\n"),
        );
        // The further EMAs only watch: the loss curve is the plain run's.
        const dec = await readMetrics(join(d, "decoder", "metrics.jsonl"));
        assert.deepEqual(losses(dec, 0), losses(full, 0));
        const ckpt = await loadCheckpoint(join(d, "decoder"), "decoder");
        assert.deepEqual(JSON.parse(ckpt.training!.metadata.extra_emas), [
          { decay: 0.05, updates: 4, warmup: true },
          { decay: 0.9, updates: 2, warmup: false },
        ]);

        const printed: string[] = [];
        const out = join(WORK, "extra-ema-export");
        await runExport(["--checkpoint", d, "--out", out, "--ema", "0.05"], (l) => printed.push(l));
        assert.ok(
          printed.some((l) => /^decoder: wrote .* \(EMA 0\.05\)$/.test(l)),
          printed.join("\n"),
        );
        assert.ok(
          printed.some((l) => /^prior: wrote .* \(EMA 0\.99\)$/.test(l)),
          printed.join("\n"),
        );
        assert.ok(printed.some((l) => /^clip: wrote .* \(trained weights\)$/.test(l)));
        const exported = await loadCheckpoint(join(out, "decoder"), "decoder");
        // Every parameter is the 0.05 average (buffers keep their values), not the 0.99 one. (A
        // decay above the warm-up's (1 + n) / (10 + n), 0.1-0.31 over these four updates, would
        // give the same average as 0.99 here: hence 0.05.)
        const training = ckpt.training!.tensors;
        let differs = 0;
        for (const [name, entry] of Object.entries(exported.weights)) {
          const shadow = training[`ema[0.05].${name}`] ?? ckpt.weights[name];
          assert.deepEqual(entry.data, shadow.data, name);
          if (
            training[`ema.${name}`] && String(entry.data) !== String(training[`ema.${name}`].data)
          ) {
            differs++;
          }
        }
        assert.ok(differs > 0);
        // A decay no stage kept, or no decay at all: one line, nothing written.
        const none = join(WORK, "extra-ema-none");
        await assert.rejects(
          () => runExport(["--checkpoint", d, "--out", none, "--ema", "0.7"], quiet.print),
          /No stage of ".*" kept an EMA of decay 0\.7 \(clip: none; prior: 0\.99; decoder: 0\.05, 0\.9, 0\.99\); .*\(nothing was written\)$/,
        );
        await assert.rejects(
          () => runExport(["--checkpoint", d, "--out", none, "--ema", "1"], quiet.print),
          /--ema must be an EMA decay between 0 and 1 \(such as 0\.9999\), got "1"/,
        );
        assert.equal(await Deno.stat(none).catch(() => null), null);
        const parent = [...Deno.readDirSync(WORK)].map((e) => e.name);
        assert.ok(!parent.some((n) => n.includes("tmp-export")), parent.join(", "));
        // Dropping a decay from the config on resume says so.
        const more: string[] = [];
        await runTrain(
          ["decoder", "--config", await config([0.9, 0.995]), "--out", d, "--max-steps", "5"]
            .concat("--resume"),
          { print: (l) => more.push(l) },
        );
        assert.ok(
          more.includes(
            "decoder: EMA 0.05 is in the checkpoint but not in extraEma; no longer kept",
          ),
          more.join("\n"),
        );
        // Only the warmed-up decay the 300 steps never reach is named: 0.9 (started on the resume
        // before) and 0.995 (on this one) have no warm-up.
        assert.ok(
          more.some((l) =>
            /^decoder: EMA 0\.99 stays in the warm-up, .*\(0\.99 needs 890\); "emaWarmup": false uses it/
              .test(l)
          ),
          more.join("\n"),
        );
        const last = await loadCheckpoint(join(d, "decoder"), "decoder");
        assert.deepEqual(JSON.parse(last.training!.metadata.extra_emas), [
          { decay: 0.9, updates: 3, warmup: false },
          { decay: 0.995, updates: 1, warmup: false },
        ]);
      },
    );

    await t.step("--max-minutes and an interrupt stop after a step and save", async () => {
      const out = join(WORK, "stopped");
      const r = await runTrain([
        "clip",
        "--config",
        CONFIG,
        "--out",
        out,
        "--max-minutes",
        "0.00001",
      ], quiet);
      assert.deepEqual([r?.results[0].reason, r?.results[0].step], ["max-minutes", 1]);
      assert.equal((await Deno.readTextFile(join(out, "clip", "latest"))).trim(), "step-00000001");
      const lines: string[] = [];
      const r2 = await runTrain(
        ["clip", "--config", CONFIG, "--out", out, "--resume"],
        { print: (l) => lines.push(l), stopFlag: { stop: true } },
      );
      assert.deepEqual([r2?.results[0].reason, r2?.results[0].step], ["interrupted", 2]);
      assert.ok(
        lines.some((l) => /^Interrupted: clip saved at step 2 .* continue with --resume$/.test(l)),
      );
    });

    await t.step("Ctrl-C (SIGINT) in the CLI finishes the step, saves and exits 0", async () => {
      const out = join(WORK, "sigint");
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", join(ROOT, "tasks/train.ts"), "clip", "--config", CONFIG, "--out", out],
        stdout: "piped",
        stderr: "null",
        env: { NO_COLOR: "1" },
      }).spawn();
      let text = "";
      const decoder = new TextDecoder();
      const reader = child.stdout.getReader();
      while (!/step +\d+\/300/.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
      }
      child.kill("SIGINT");
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += decoder.decode(value);
      }
      const status = await child.status;
      assert.equal(status.code, 0, text);
      const m = /Interrupted: clip saved at step (\d+) in (\S+); continue with --resume/.exec(text);
      assert.ok(m, text);
      assert.equal(
        (await Deno.readTextFile(join(out, "clip", "latest"))).trim(),
        `step-${m[1].padStart(8, "0")}`,
      );
    });

    await t.step("a checkpoint from another config is refused, listing the fields", async () => {
      const other = await writeConfig(join(WORK, "other.json"), (c) => {
        c.components.textEncoder.options.layers = 2;
        c.train.clip.lr = 0.5;
      });
      const before = await Deno.readTextFile(join(RUN, "clip", "latest"));
      await assert.rejects(
        runTrain(["clip", "--config", other, "--out", RUN, "--resume"], quiet),
        (e) => {
          assert.ok(e instanceof CheckpointError);
          assert.match(
            errorLine(e),
            /^Error: Checkpoint ".*step-00000004" was trained with another config; differing fields: components\.textEncoder\.options\.layers, train\.clip\.lr\. /,
          );
          return true;
        },
      );
      // The prior stage reads this CLIP, so it is refused there too.
      const fresh = join(WORK, "fresh");
      await copyDir(join(RUN, "clip"), join(fresh, "clip"));
      await assert.rejects(
        runTrain(["prior", "--config", other, "--out", fresh], quiet),
        /was trained with another config; differing fields: components\.textEncoder\.options\.layers\./,
      );
      assert.equal(await Deno.readTextFile(join(RUN, "clip", "latest")), before);
    });

    await t.step(
      "a checkpoint saved before an option existed resumes with its default",
      async () => {
        // `conditioning` came after the first decoders were trained: their stored config lacks it,
        // and its default ("clip+text") is what they were trained with.
        const old = join(WORK, "older-version");
        await copyDir(join(RUN, "clip"), join(old, "clip"));
        await copyDir(join(RUN, "decoder"), join(old, "decoder"));
        const index = join(old, "decoder", "step-00000004", "model.safetensors.index.json");
        const json = JSON.parse(await Deno.readTextFile(index));
        const stored = JSON.parse(json.metadata.config);
        assert.equal(stored.components.decoder.options.conditioning, "clip+text");
        delete stored.components.decoder.options.conditioning;
        json.metadata.config = JSON.stringify(stored);
        await Deno.writeTextFile(index, JSON.stringify(json));
        const r = await runTrain(
          ["decoder", "--config", CONFIG, "--out", old, "--max-steps", "5", "--resume"],
          quiet,
        );
        assert.deepEqual(r?.results.map((x) => [x.stage, x.step]), [["decoder", 5]]);
      },
    );

    await t.step(
      "a corrupt checkpoint is a one-line error (in-process and from the CLI)",
      async () => {
        const bad = join(WORK, "corrupt");
        await copyDir(join(RUN, "clip"), join(bad, "clip"));
        const step = join(bad, "clip", "step-00000004");
        const shard = [...Deno.readDirSync(step)].find((e) => e.name.startsWith("model-"))!.name;
        const bytes = await Deno.readFile(join(step, shard));
        await Deno.writeFile(join(step, shard), bytes.subarray(0, 100));
        await assert.rejects(
          runEval(["clip", "--checkpoint", bad, "--limit", "4"], quiet),
          (e) => e instanceof CheckpointError && /is corrupt/.test(errorLine(e)),
        );
        const cli = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", join(ROOT, "tasks/eval.ts"), "clip", "--checkpoint", bad],
          stdout: "piped",
          stderr: "piped",
          env: { NO_COLOR: "1" },
        }).output();
        const stderr = new TextDecoder().decode(cli.stderr).split("\n")
          .filter((l) => l.trim() !== "" && !/XDG_RUNTIME_DIR/i.test(l));
        assert.equal(cli.code, 1);
        assert.equal(stderr.length, 1, stderr.join("\n"));
        assert.match(stderr[0], /^Error: Checkpoint ".*" is corrupt: /);
      },
    );

    await t.step("eval clip, prior and pipeline print tables and write JSON", async () => {
      const out = join(WORK, "eval.json");
      const lines: string[] = [];
      const r = (await runEval(["clip", "--checkpoint", RUN, "--out", out], {
        print: (l) => lines.push(l),
      }))?.[0];
      assert.equal(r?.path, out);
      const json = JSON.parse(await Deno.readTextFile(out));
      assert.equal(json.clip.count, 16);
      assert.equal(json.thesis.top1, 0.8371);
      assert.ok(lines.some((l) => /top-1 accuracy .* 83\.71%/.test(l)));
      // Shapes data: retrieval is also scored against every caption true of the image.
      assert.ok(json.clip.top1AnyTrue >= json.clip.top1, JSON.stringify(json.clip));
      assert.ok(json.clip.top1Ceiling > 0 && json.clip.top1Ceiling <= 1);
      assert.ok(lines.some((l) => /top-1 ceiling \(true captions tied\)/.test(l)));
      // --limit beyond the split is a usage error (the pipeline's default 200 is not).
      await assert.rejects(
        runEval(["clip", "--checkpoint", RUN, "--limit", "17"], quiet),
        (e) => /--limit 17 is more than the 16 images of the test split/.test(errorLine(e)),
      );

      // Two captions keep the prior and decoder batches at the shapes sampling already used.
      const prior = (await runEval(["prior", "--checkpoint", RUN, "--limit", "2"], quiet))?.[0];
      const p = prior?.results.prior as Record<string, number>;
      assert.ok(Number.isFinite(p.textSimilarity) && Number.isFinite(p.imageSimilarity));
      assert.equal((prior?.results.thesis as Record<string, number>).imageSimilarity, 0.906);
      // The spread: two samples of a caption compared; two captions of 16 images need not repeat.
      const spread = prior?.results.spread as { samples: number; imagePairs: number };
      assert.ok(spread.samples > -1 && spread.samples <= 1 + 1e-6, JSON.stringify(spread));
      assert.ok(Number.isInteger(spread.imagePairs) && spread.imagePairs >= 0);
      const pipe = (await runEval(
        // A few probe steps: the probe's own accuracy is tested in probe_test.ts.
        ["pipeline", "--checkpoint", RUN, "--limit", "2", "--steps", "2", "--probe-steps", "20"],
        quiet,
      ))?.[0];
      const g = pipe?.results.generated as Record<string, number>;
      assert.equal(g.count, 2);
      assert.ok(g.top1 >= 0 && g.top1 <= 1 && g.top5 === 1); // top-5 of 2 captions
      const stored = JSON.parse(await Deno.readTextFile(join(RUN, "eval_pipeline_test.json")));
      assert.ok(stored.metric);
      assert.deepEqual(stored.guidanceInterval, [0, 1]); // the default: every step
      // The prior's sampling: ancestral DDPM over its own steps, unguided, best of 2.
      assert.deepEqual(stored.prior, { sampler: "ddpm", steps: null, guidance: 1, candidates: 2 });
      await assert.rejects(
        () => runEval(["prior", "--checkpoint", RUN, "--guidance-interval", "0.4,1"], quiet),
        /--guidance-interval is for "eval pipeline", not "prior"/,
      );
      // A flag the evaluation reads nothing from is refused before any work, not ignored.
      for (
        const [args, re] of [
          [["clip", "--steps", "4"], /--steps does nothing in "eval clip"; drop it/],
          [["prior", "--guidance", "3"], /--guidance does nothing in "eval prior"; drop it/],
          [["probe", "--seed", "1"], /--seed does nothing in "eval probe"; drop it/],
          [
            ["pipeline", "--from", "image", "--prior-steps", "4"],
            /--prior-steps does nothing in "eval pipeline --from image"; drop it/,
          ],
        ] as const
      ) {
        await assert.rejects(() => runEval([...args, "--checkpoint", RUN], quiet), re);
      }
      // The probe's per-shape breakdown is stored beside its rates.
      const byShape: Record<string, { captions: number }> = stored.probe.generated.byShape;
      assert.deepEqual(Object.keys(byShape).sort(), [...SHAPES].sort());
      // Two captions, each naming one or two shapes.
      const named = Object.values(byShape).reduce((n, s) => n + s.captions, 0);
      assert.ok(named >= 2 && named <= 4, `${named}`);
      // And per captioned figure count: the two captions, split by their figures.
      const byFigures: Record<string, { images: number }> = stored.probe.generated.byFigures;
      assert.equal(Object.values(byFigures).reduce((n, g) => n + g.images, 0), 2);
      // And the figures counted from the pixels, for the generated and the real images.
      const counted = stored.probe.figuresCounted;
      for (const side of [counted.generated, counted.realImages]) {
        const groups: { images: number }[] = Object.values(side.byFigures);
        assert.equal(groups.reduce((n, g) => n + g.images, 0), 2);
        assert.ok(side.right >= 0 && side.right <= 1);
      }
    });

    await t.step(
      "eval pipeline --seeds writes one result per seed and pools them",
      async () => {
        const lines: string[] = [];
        const args = ["pipeline", "--checkpoint", RUN, "--limit", "2", "--steps", "2"];
        const out = join(RUN, "seeds.json");
        const runs = await runEval(
          [...args, "--probe-steps", "20", "--seeds", "0-1", "--out", out],
          { print: (line) => lines.push(line) },
        );
        // Seed 0 keeps the plain name (as weights/default's files do), seed 1 has _seed1.
        const paths = [join(RUN, "seeds.json"), join(RUN, "seeds_seed1.json")];
        assert.deepEqual(runs?.map((r) => r.path), paths);
        assert.deepEqual(runs?.map((r) => r.results.seed), [0, 1]);
        // Seed 0 of the list is the plain run's seed 0 (the step above), image for image.
        const single = JSON.parse(await Deno.readTextFile(join(RUN, "eval_pipeline_test.json")));
        const first = JSON.parse(await Deno.readTextFile(paths[0]));
        assert.equal(first.probe.generated.exactByImage, single.probe.generated.exactByImage);
        assert.equal(first.generated.top1, single.generated.top1);
        const text = lines.join("\n");
        assert.match(text, /Pooled over 2 seeds of the first 2 test captions/);
        assert.match(text, /exact, seed 1: /);
        assert.match(text, new RegExp(`eval compare ${paths.join(",")} `));
        // Every file is checked before any work: one that exists stops the run, nothing written.
        await Deno.writeTextFile(join(RUN, "kept_seed1.json"), "{}");
        await assert.rejects(
          () => runEval([...args, "--seeds", "0,1", "--out", join(RUN, "kept.json")], quiet),
          /kept_seed1\.json/,
        );
        assert.equal(await exists(join(RUN, "kept.json")), false);
        // A single run at seed S != 0 has the same default name as that seed of --seeds.
        const seedOne = join(RUN, "eval_pipeline_test_seed1.json");
        await Deno.writeTextFile(seedOne, "{}");
        await assert.rejects(
          () => runEval([...args, "--seed", "1"], quiet),
          /eval_pipeline_test_seed1\.json/,
        );
        await Deno.remove(seedOne);
        await assert.rejects(
          () => runEval([...args, "--seed", "2", "--seeds", "0-1"], quiet),
          /--seed and --seeds both name the noise seed/,
        );
        await assert.rejects(
          () => runEval(["clip", "--checkpoint", RUN, "--seeds", "0-1"], quiet),
          /--seeds is for "eval pipeline", not "clip"/,
        );
      },
    );

    await t.step(
      "eval pipeline --from image|variations decodes the real images' embeddings",
      async () => {
        for (const from of ["image", "variations"]) {
          const r = (await runEval(
            [
              ...["pipeline", "--checkpoint", RUN, "--limit", "2", "--steps", "2", "--from", from],
              ...["--probe-steps", "20"], // the probe the step above trained
            ],
            quiet,
          ))?.[0];
          assert.equal(r?.path, join(RUN, `eval_pipeline_${from}_test.json`));
          assert.equal(r?.results.from, from);
          assert.equal(r?.results.prior, null); // no prior ran
          assert.equal((r?.results.generated as Record<string, number>).count, 2);
        }
        assert.equal(
          JSON.parse(await Deno.readTextFile(join(RUN, "eval_pipeline_test.json"))).from,
          "prior",
        );
        await assert.rejects(
          () => runEval(["pipeline", "--checkpoint", RUN, "--from", "text"], quiet),
          /Unknown --from "text"; choose prior, image, variations/,
        );
        await assert.rejects(
          () => runEval(["pipeline", "--checkpoint", RUN, "--from", "downsampled"], quiet),
          /--from downsampled runs a cascade's upsampler, and .* has none/,
        );
        await assert.rejects(
          () => runEval(["prior", "--checkpoint", RUN, "--from", "image"], quiet),
          /--from is for "eval pipeline", not "prior"/,
        );
        await assert.rejects(
          () =>
            runEval([
              ...["pipeline", "--checkpoint", RUN, "--upsampler-steps", "3"],
              ...["--out", join(RUN, "eval_never_written.json")],
            ], quiet),
          /--upsampler-steps: .* has no upsampler\/ stage; drop the flag/,
        );
        await assert.rejects(
          () => runEval(["clip", "--checkpoint", RUN, "--upsampler-augment", "0.2"], quiet),
          /--upsampler-augment is for "eval pipeline", not "clip"/,
        );
        // The library path: one image's embedding decoded with an empty caption is a variation.
        const p = await loadPipeline(RUN, builtins());
        try {
          const S = inputImageSize(p);
          const item = imagesToNchw(generateSplit({ split: "test", size: S, count: 1 }));
          const options = { steps: 3, seed: 7 };
          const a = await reconstructImages(p, item, [""], options);
          const b = await imageVariations(p, item, { ...options, n: 1 });
          assert.deepEqual(a.images, b.images);
          const captioned = await reconstructImages(p, item, ["a red circle"], options);
          assert.notDeepEqual(captioned.images, a.images);
          await assert.rejects(
            () => reconstructImages(p, item, ["", ""], options),
            /expects 2 image/,
          );
        } finally {
          p.dispose();
        }
      },
    );

    await t.step("--raw-decoder loads the decoder's raw weights instead of their EMA", async () => {
      const ema = await loadPipeline(RUN, builtins());
      const raw = await loadPipeline(RUN, builtins(), { rawDecoder: true });
      try {
        assert.equal(ema.decoderWeights, "ema");
        assert.equal(raw.decoderWeights, "raw");
        // The tiny preset's EMA (0.99) after 4 steps is not the weights themselves.
        const a = await ema.decoder.parameters()[0].read();
        const b = await raw.decoder.parameters()[0].read();
        assert.notDeepEqual(Array.from(a), Array.from(b));
      } finally {
        ema.dispose();
        raw.dispose();
      }
      const r = (await runEval(
        [
          ...["pipeline", "--checkpoint", RUN, "--limit", "2", "--steps", "2", "--raw-decoder"],
          ...["--probe-steps", "20"], // the probe the steps above trained
        ],
        quiet,
      ))?.[0];
      assert.equal(r?.path, join(RUN, "eval_pipeline_raw_test.json"));
      assert.equal(r?.results.decoderWeights, "raw");
      assert.equal(
        JSON.parse(await Deno.readTextFile(join(RUN, "eval_pipeline_test.json"))).decoderWeights,
        "ema",
      );
      await assert.rejects(
        () => runEval(["clip", "--checkpoint", RUN, "--raw-decoder"], quiet),
        /--raw-decoder is for "eval pipeline", not "clip"/,
      );
      // An exported model keeps only the EMA: asking for the raw weights is an error.
      const exported = join(WORK, "exported");
      await runExport(["--checkpoint", RUN, "--out", exported], quiet.print);
      // The cached probe travels with the export, so scoring it does not train the probe again.
      for (const file of ["probe.json", "probe.safetensors"]) {
        assert.deepEqual(
          await Deno.readFile(join(exported, "probe", file)),
          await Deno.readFile(join(RUN, "probe", file)),
        );
      }
      await assert.rejects(
        () => loadPipeline(exported, builtins(), { rawDecoder: true }),
        (e) => e instanceof CheckpointError && /has only the EMA/.test(e.message),
      );
      // Its weights are the EMA the export wrote, and say so.
      const fromExport = await loadPipeline(exported, builtins());
      try {
        assert.equal(fromExport.decoderWeights, "ema");
        const a = await fromExport.decoder.parameters()[0].read();
        const ema2 = await loadPipeline(RUN, builtins());
        try {
          assert.deepEqual(Array.from(a), Array.from(await ema2.decoder.parameters()[0].read()));
        } finally {
          ema2.dispose();
        }
      } finally {
        fromExport.dispose();
      }
    });

    await t.step("--late-decoder hands the low-noise steps to another run's decoder", async () => {
      // WORK/finetune: RUN's CLIP, a decoder fine-tuned from RUN's (the --init-from step).
      const tuned = join(WORK, "finetune");
      const args = ["a red circle", "--checkpoint", RUN, "--n", "2", "--steps", "4"];
      const draw = (extra: string[], name: string) => drawSample([...args, ...extra], name);
      const alone = await draw([], "late_alone.png");
      const itself = await draw(["--late-decoder", RUN, "--late-below", "0.5"], "late_self.png");
      const late = await draw(["--late-decoder", tuned, "--late-below", "0.5"], "late_tuned.png");
      const all = await draw(["--late-decoder", tuned, "--late-below", "1"], "late_all.png");
      assert.deepEqual(itself.png, alone.png, "the run's own decoder as the late one: no change");
      assert.notDeepEqual(late.png, alone.png, "another decoder below t/T 0.5 changes the images");
      assert.notDeepEqual(late.png, all.png, "the early steps are still the run's decoder's");
      assert.ok(
        late.lines.some((l) =>
          l.includes(`${join(tuned, "decoder")}`) && /below t\/T = 0\.5/.test(l)
        ),
        late.lines.join("\n"),
      );
      const p = await loadPipeline(RUN, builtins(), { lateDecoder: { dir: tuned, below: 0.8 } });
      try {
        assert.equal(p.lateDecoder?.below, 0.8);
        assert.equal(p.lateDecoder?.step, 2);
      } finally {
        p.dispose();
      }
      const r = (await runEval(
        [
          ...["pipeline", "--checkpoint", RUN, "--limit", "2", "--steps", "2"],
          ...["--late-decoder", tuned, "--late-below", "0.8", "--probe-steps", "20"],
        ],
        quiet,
      ))?.[0];
      assert.equal(r?.path, join(RUN, "eval_pipeline_late_test.json"));
      const recorded = r?.results.lateDecoder as { dir: string; step: number; below: number };
      assert.deepEqual({ step: recorded.step, below: recorded.below }, { step: 2, below: 0.8 });
      assert.ok(recorded.dir.startsWith(join(tuned, "decoder")), recorded.dir);
      const refused = (extra: string[], pattern: RegExp) =>
        assert.rejects(
          runSample([...args, ...extra, "--out", join(WORK, "late_bad.png")], quiet),
          (e) => pattern.test(errorLine(e)),
        );
      await refused(["--late-below", "0.5"], /--late-below needs --late-decoder DIR/);
      await refused(["--late-decoder", tuned, "--late-below", "1.5"], /must be at most 1/);
      await refused(["--late-decoder", tuned, "--late-below", "0"], /must be positive/);
      await refused(
        ["--late-decoder", join(WORK, "nowhere")],
        /Late decoder ".*nowhere" holds no decoder checkpoint/,
      );
      // Its decoder was trained on another CLIP (step 2 of RUN's CLIP run, not step 4).
      await refused(
        ["--late-decoder", join(WORK, "finetune-other-clip")],
        /cannot share the run's reverse process: it was trained with CLIP step 2 .*CLIP is step 4/,
      );
      await assert.rejects(
        () => runEval(["clip", "--checkpoint", RUN, "--late-decoder", tuned], quiet),
        /--late-decoder is for "eval pipeline", not "clip"/,
      );
    });

    await t.step(
      "a noise schedule from a third-party plugin file trains a decoder step",
      async () => {
        const dir = join(WORK, "plugin");
        await Deno.mkdir(dir);
        const registryUrl = pathToFileURL(join(ROOT, "core/registry.ts")).href;
        const depsUrl = pathToFileURL(join(ROOT, "core/deps.ts")).href;
        const scheduleUrl = pathToFileURL(join(ROOT, "plugins/schedules/mod.ts")).href;
        await Deno.writeTextFile(
          join(dir, "my_schedule.ts"),
          `import { definePlugin } from "${registryUrl}";
import { z } from "${depsUrl}";
import { NoiseSchedule } from "${scheduleUrl}";
// A constant-beta schedule: beta_t = beta for every t.
export const constantSchedule = definePlugin({
  kind: "schedule",
  name: "test-constant",
  options: z.object({ steps: z.number().int().positive().default(10), beta: z.number().default(0.05) }).strict(),
  create: (o) => new NoiseSchedule(new Float64Array(o.steps).fill(o.beta)),
});
`,
        );
        const config = await writeConfig(join(dir, "config.json"), (c) => {
          c.plugins = ["./my_schedule.ts"];
          c.components.decoderSchedule = { plugin: "test-constant", options: { steps: 20 } };
        });
        await copyDir(join(RUN, "clip"), join(dir, "run", "clip"));
        const r = await runTrain(
          ["decoder", "--config", config, "--out", join(dir, "run"), "--max-steps", "1"],
          quiet,
        );
        assert.equal(r?.results[0].step, 1);
        assert.ok(Number.isFinite(r?.results[0].lastLoss));
        const ckpt = JSON.parse(
          await Deno.readTextFile(
            join(dir, "run", "decoder", "step-00000001", "model.safetensors.index.json"),
          ),
        );
        const stored = JSON.parse(ckpt.metadata.config);
        assert.equal(stored.components.decoderSchedule.plugin, "test-constant");
        assert.equal(stored.plugins[0], join(dir, "my_schedule.ts"));
      },
    );

    await t.step(
      "a decoder training step allocates no new GPU buffers after the first",
      async () => {
        const dir = join(WORK, "memory");
        await copyDir(join(RUN, "clip"), join(dir, "clip"));
        const registry = builtins();
        const config = await loadConfig(CONFIG, registry);
        const setup = await setupStage("decoder", { config, registry, outDir: dir });
        const created: number[] = [];
        try {
          await trainLoop({
            stage: "decoder",
            config,
            setup,
            stageDir: join(dir, "decoder"),
            maxSteps: 5,
            print: () => {},
            onStep: () => created.push(engineStats().created),
          });
        } finally {
          setup.dispose();
        }
        // Step 1 warms the pool and step 2 the first checkpoint's staging buffer.
        assert.equal(created.length, 5);
        assert.equal(created[4], created[1], `buffers created after each step: ${created}`);
      },
    );

    await Deno.remove(WORK, { recursive: true });
  },
});
