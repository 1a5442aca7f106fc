/**
 * `deno task experiment` and `deno task report` (issue 12): every experiment runs on a copy of
 * the shipped weights with tiny limits, the report is self-contained, and bad input is a
 * one-line error (subprocesses, as a user meets it). Also the CLIP-space helpers they use.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cosine, lerp, nearest, pca, slerp } from "../core/eval/embed.ts";
import { exists } from "../core/io/mod.ts";
import { runExperiment } from "../tasks/experiment.ts";
import { runReport } from "../tasks/report.ts";
import { assertOneLineError, type Cli, cli as runTask } from "./_support/cli.ts";
import { findChromium, openPage } from "./_support/chromium.ts";
import { copyDir } from "./_support/files.ts";

const ROOT = new URL("..", import.meta.url).pathname;
// The 16x16 demo weights: small enough that all four experiments run in seconds.
const SHIPPED = join(ROOT, "weights", "cpu-demo");

/** A throwaway copy of the shipped weights (experiments and the probe write into the run). */
async function copyWeights(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "unclip-exp-" });
  await copyDir(SHIPPED, dir);
  return dir;
}

/** A task run with one CPU thread (the experiments' tests keep the machine usable). */
function cli(task: string, args: string[]): Promise<Cli> {
  return runTask(task, args, { env: { UNCLIP_CPU_THREADS: "1" } });
}

const quiet = { print: () => {} };

Deno.test("slerp, lerp, pca and nearest", () => {
  const a = [3, 0, 0], b = [0, 2, 0];
  assert.deepEqual([...slerp(a, b, 0)], [1, 0, 0]);
  const mid = slerp(a, b, 0.5);
  assert.ok(Math.abs(Math.hypot(...mid) - 1) < 1e-12, "slerp stays on the unit sphere");
  assert.ok(Math.abs(mid[0] - Math.SQRT1_2) < 1e-12 && Math.abs(mid[1] - Math.SQRT1_2) < 1e-12);
  assert.ok(Math.abs(cosine(slerp(a, b, 1), b) - 1) < 1e-12);
  assert.deepEqual([...lerp([0, 2], [2, 0], 0.25)], [0.5, 1.5]);
  // Variance 9 along x, 1 along y, 0 along z: PC1 explains 90%, PC2 10%.
  const rows = [[3, 0, 0], [-3, 0, 0], [0, 1, 0], [0, -1, 0]].flatMap((r) => [r, r]);
  const fit = pca(rows, 2);
  assert.ok(Math.abs(fit.explained[0] - 0.9) < 1e-12 && Math.abs(fit.explained[1] - 0.1) < 1e-12);
  assert.ok(Math.abs(Math.abs(fit.project([3, 0, 0])[0]) - 3) < 1e-12);
  assert.deepEqual(nearest([1, 0], [[0, 1], [1, 0.1], [-1, 0], [1, 0.5]], 2).map((n) => n.index), [
    1,
    3,
  ]);
});

Deno.test("experiment: bad input is one line and exit 1, before any work", async () => {
  const run = await copyWeights();
  try {
    assertOneLineError(
      await cli("experiment", ["nonsense", "--checkpoint", run]),
      /Unknown experiment "nonsense"; choose guidance, pca, interpolate, arithmetic, textdiff, binding, knn or zeroshot/,
    );
    assertOneLineError(await cli("experiment", ["pca"]), /Missing --checkpoint DIR/);
    assertOneLineError(
      await cli("experiment", ["pca", "--checkpoint", run, "--scales", "1,2"]),
      /--scales does not apply to experiment "pca" \(only to guidance\)/,
    );
    // Shared flags only where they do something: pca draws nothing, interpolate no caption.
    assertOneLineError(
      await cli("experiment", ["pca", "--checkpoint", run, "--steps", "4"]),
      /--steps does not apply to experiment "pca", which draws no image \(only to guidance, interpolate, arithmetic, textdiff, binding, knn, zeroshot\)/,
    );
    assertOneLineError(
      await cli("experiment", ["interpolate", "--checkpoint", run, "--rerank", "2"]),
      /--rerank does not apply to experiment "interpolate", which draws no caption to rerank against \(only to guidance, binding, knn, zeroshot\)/,
    );
    assertOneLineError(
      await cli("experiment", ["textdiff", "--checkpoint", run, "--prior-steps", "4"]),
      /--prior-steps does not apply to experiment "textdiff", which samples no prior \(only to guidance, arithmetic, binding, knn, zeroshot\)/,
    );
    assertOneLineError(
      await cli("experiment", ["pca", "--checkpoint", run, "--bogus"]),
      /Unknown flag "--bogus"; see "deno task experiment --help"/,
    );
    assertOneLineError(
      await cli("experiment", ["pca", "--checkpoint", run, "--limit", "2"]),
      /--limit "2" must be at least 4/,
    );
    assertOneLineError(
      await cli("experiment", ["pca", "--checkpoint", run, "--limit", "100000"]),
      /--limit 100000 is more than the 256 images of the test split; use --limit 256 or less/,
    );
    assertOneLineError(
      await cli("experiment", ["guidance", "--checkpoint", run, "--scales", "1,x", "--limit", "4"]),
      /--scales "1,x" must be a comma-separated list of numbers/,
    );
    assertOneLineError(
      await cli("experiment", ["binding", "--checkpoint", run]),
      /Experiment "binding" compares decoders: pass --clip-only DIR and\/or --text-only DIR/,
    );
    assertOneLineError(
      await cli("experiment", ["binding", "--checkpoint", run, "--text-only", join(run, "nope")]),
      /--text-only ".*nope" has no "clip" stage; copy clip\/ and prior\/ from/,
    );
    assertOneLineError(
      await cli("experiment", ["arithmetic", "--checkpoint", run, "--equations", "a red circle"]),
      /Equation "a red circle" needs one "=" followed by the expected caption/,
    );
    assertOneLineError(
      await cli("experiment", ["textdiff", "--checkpoint", run, "--ratios", "0,2"]),
      /--ratios "0,2" must be a comma-separated list of numbers from 0 to 1/,
    );
    assertOneLineError(
      await cli("experiment", ["arithmetic", "--checkpoint", run, "--n", "3,4"]),
      /--n "3,4" must be an integer from 1 to 256$/,
    );
    assertOneLineError(
      await cli("experiment", ["guidance", "--checkpoint", run, "--rerank", "65"]),
      /--rerank "65" must be at most 64/,
    );
    // A run with CLIP only: guidance needs the prior, named with the command that trains it.
    const clipOnly = await Deno.makeTempDir();
    await Deno.rename(join(run, "prior"), join(clipOnly, "prior"));
    assertOneLineError(
      await cli("experiment", ["guidance", "--checkpoint", run]),
      /has no "prior" stage, which experiment "guidance" needs; train it with "deno task train prior/,
    );
    await Deno.rename(join(clipOnly, "prior"), join(run, "prior"));
    // An output folder with results is kept without --force.
    const out = join(run, "experiments", "pca");
    await Deno.mkdir(out, { recursive: true });
    await Deno.writeTextFile(join(out, "pca.json"), "{}");
    assertOneLineError(
      await cli("experiment", ["pca", "--checkpoint", run]),
      /already holds results; pass --force to overwrite them/,
    );
    assert.equal(await Deno.readTextFile(join(out, "pca.json")), "{}");
    assertOneLineError(await cli("report", ["--checkpoint", join(run, "nope")]), /does not exist/);
    assertOneLineError(
      await cli("report", ["--checkpoint", run, "--no-run", "--limit", "8", "--force"]),
      /--no-run runs no experiment, so --limit does nothing; drop it/,
    );
    assertOneLineError(
      await cli("report", ["--checkpoint", run, "--clip-only", join(run, "nope"), "--force"]),
      /--clip-only ".*nope" does not exist; name a run folder/,
    );
    assertOneLineError(
      await cli("report", ["--checkpoint", run, "--limit", "abc", "--force"]),
      /--limit "abc" is not an integer/,
    );
    assert.ok(!(await exists(join(run, "experiments", "guidance"))), "no experiment ran");
    assertOneLineError(
      await cli("report", ["--checkpoint", SHIPPED, "--out", run, "--no-run"]),
      /No experiments in .* yet, nor training logs \(<stage>\/metrics\.jsonl\) to chart; run e\.g\. "deno task experiment guidance/,
    );
    // Training logs without experiments: a report of the loss curves, the experiments listed
    // as not run.
    const logs = await Deno.makeTempDir();
    await Deno.mkdir(join(logs, "decoder"));
    const lines = [1, 2, 3].map((step) => JSON.stringify({ step, loss: 1 / step }));
    await Deno.writeTextFile(join(logs, "decoder", "metrics.jsonl"), lines.join("\n") + "\n");
    const curves = await runReport(["--checkpoint", logs, "--no-run"], { print: () => {} });
    assert.deepEqual(curves?.experiments, []);
    assert.ok(curves?.missing.includes("guidance"));
    assert.match(await Deno.readTextFile(join(logs, "report.md")), /report_loss\.svg/);
    assert.match(await Deno.readTextFile(join(logs, "report_loss.svg")), /decoder loss/);
    await Deno.remove(logs, { recursive: true });
  } finally {
    await Deno.remove(run, { recursive: true });
  }
});

/** Probe flags that train the probe once, in seconds (same options: cached for the rest). */
const PROBE = ["--probe-steps", "3", "--probe-images", "128"];

/** A decoder trained for 2 steps on the run's CLIP with `conditioning`, in a run of its own. */
async function variantRun(run: string, conditioning: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: `unclip-${conditioning}-` });
  for (const stage of ["clip", "prior"]) {
    await Deno.mkdir(join(dir, stage));
    for await (const e of Deno.readDir(join(run, stage))) {
      if (e.isDirectory) {
        await Deno.mkdir(join(dir, stage, e.name));
        for await (const f of Deno.readDir(join(run, stage, e.name))) {
          await Deno.copyFile(join(run, stage, e.name, f.name), join(dir, stage, e.name, f.name));
        }
      } else await Deno.copyFile(join(run, stage, e.name), join(dir, stage, e.name));
    }
  }
  const config = join(dir, "variant.jsonc");
  await Deno.writeTextFile(
    config,
    JSON.stringify({
      extends: join(ROOT, "presets", "cpu-demo.jsonc"),
      name: `demo-${conditioning.replace("+", "-")}`,
      components: { decoder: { options: { conditioning } } },
      train: { decoder: { steps: 2, batchSize: 4, logEvery: 1 } },
    }),
  );
  const { runTrain } = await import("../tasks/train.ts");
  await runTrain(["decoder", "--config", config, "--out", dir], quiet);
  return dir;
}

Deno.test("experiment: every experiment runs on the shipped weights (tiny limits); report.html is self-contained", async () => {
  const run = await copyWeights();
  try {
    const g = await runExperiment([
      "guidance",
      "--checkpoint",
      run,
      "--limit",
      "8",
      "--steps",
      "4",
      "--scales",
      "1,2.5",
      "--rerank",
      "2",
      "--probe-steps",
      "3",
      "--probe-images",
      "128",
    ], quiet);
    const gr = g!.report.results as Record<string, unknown> & { scales: Record<string, number>[] };
    assert.deepEqual(gr.scales.map((s) => s.scale), [1, 2.5]);
    // --rerank reaches the decoding and both records (the run's and the sweep's).
    assert.equal(g!.report.rerank, 2);
    assert.equal(gr.rerank, 2);
    for (const s of gr.scales) {
      for (const k of ["fid", "kid", "precision", "recall", "f1", "probeExact"]) {
        assert.ok(Number.isFinite(s[k]), `${k} = ${s[k]}`);
      }
      assert.ok(s.fid >= 0 && s.precision >= 0 && s.precision <= 1 && s.recall <= 1);
    }
    assert.equal((gr.metricNames as Record<string, string>).fid, "FID(clip-image)");
    for (const f of ["guidance.json", "guidance.svg", "samples_s1.png", "samples_s2.5.png"]) {
      assert.ok(await exists(join(run, "experiments", "guidance", f)), f);
    }

    const p = await runExperiment(["pca", "--checkpoint", run, "--limit", "32"], quiet);
    const ev = (p!.report.results as { explainedVariance: { pc1: number; pc2: number } })
      .explainedVariance;
    assert.ok(ev.pc1 >= ev.pc2 && ev.pc2 > 0 && ev.pc1 + ev.pc2 <= 1, JSON.stringify(ev));

    const i = await runExperiment(
      ["interpolate", "--checkpoint", run, "--steps", "4", "--frames", "3", "--mode", "lerp"],
      quiet,
    );
    const frames = (i!.report.results as { frames: { t: number }[] }).frames;
    assert.deepEqual(frames.map((f) => f.t), [0, 0.5, 1]);

    const k = await runExperiment(
      ["knn", "--checkpoint", run, "--limit", "4", "--steps", "4", "--train-limit", "64"],
      quiet,
    );
    const rows = (k!.report.results as { rows: { neighbours: { distance: number }[] }[] }).rows;
    assert.equal(rows.length, 4);
    for (const r of rows) {
      assert.equal(r.neighbours.length, 3);
      assert.ok(r.neighbours[0].distance <= r.neighbours[2].distance);
    }

    const a = await runExperiment([
      "arithmetic",
      "--checkpoint",
      run,
      "--steps",
      "3",
      "--n",
      "2",
      "--equations",
      "a red square - red + blue = a blue square",
      ...PROBE,
    ], quiet);
    const eq = (a!.report.results as { equations: Record<string, unknown>[] }).equations;
    assert.equal(eq.length, 1);
    assert.deepEqual(eq[0].terms, [
      { sign: 1, caption: "a red square" },
      { sign: -1, caption: "red" },
      { sign: 1, caption: "blue" },
    ]);
    const cosines = eq[0].cosineToExpected as { arithmetic: number; direct: number };
    assert.ok(Math.abs(cosines.arithmetic) <= 1 && Math.abs(cosines.direct) <= 1);

    const t = await runExperiment(
      ["textdiff", "--checkpoint", run, "--steps", "3", "--n", "1", "--ratios", "0,0.5", ...PROBE],
      quiet,
    );
    const tr = t!.report.results as { steps: { r: number; probeTo: number }[]; to: string };
    assert.deepEqual(tr.steps.map((s) => s.r), [0, 0.5]);
    assert.ok(tr.steps.every((s) => s.probeTo >= 0 && s.probeTo <= 1));

    const clipOnly = await variantRun(run, "clip"), textOnly = await variantRun(run, "text");
    try {
      const b = await runExperiment([
        "binding",
        "--checkpoint",
        run,
        "--clip-only",
        clipOnly,
        "--text-only",
        textOnly,
        "--steps",
        "2",
        "--limit",
        "4",
        ...PROBE,
      ], quiet);
      const br = b!.report.results as {
        decoders: { conditioning: string; twoObjects: { images: number; misbound: number } }[];
      };
      assert.deepEqual(br.decoders.map((d) => d.conditioning), ["clip+text", "clip", "text"]);
      for (const d of br.decoders) {
        assert.equal(d.twoObjects.images, 4);
        assert.ok(d.twoObjects.misbound >= 0 && d.twoObjects.misbound <= 1);
      }
    } finally {
      await Deno.remove(clipOnly, { recursive: true });
      await Deno.remove(textOnly, { recursive: true });
    }

    const z = await runExperiment(
      ["zeroshot", "--checkpoint", run, "--steps", "2", "--limit", "4", ...PROBE],
      quiet,
    );
    const zr = z!.report.results as {
      unseenPairs: { captions: number };
      rephrased: { example: { rephrased: string } };
      threeObjects: { pairDrawn: number[] };
    };
    assert.equal(zr.unseenPairs.captions, 4);
    assert.match(zr.rephrased.example.rephrased, / that is [a-z]+$/);
    assert.equal(zr.threeObjects.pairDrawn.length, 3);

    // Running again needs --force; with it the results are replaced.
    await assert.rejects(
      runExperiment(["pca", "--checkpoint", run, "--limit", "32"], quiet),
      /already holds results/,
    );
    await runExperiment(["pca", "--checkpoint", run, "--limit", "16", "--force"], quiet);

    // A training log (exported weights keep none): the report plots it.
    await Deno.writeTextFile(
      join(run, "clip", "metrics.jsonl"),
      [1, 2, 3].map((step) => JSON.stringify({ stage: "clip", step, loss: 3 / step })).join("\n"),
    );
    // The report runs what is missing (here pca, removed) with the flags it is given, each to
    // the experiments that take it (pca takes --limit, not --steps or --rerank).
    await Deno.remove(join(run, "experiments", "pca"), { recursive: true });
    const rep = await runReport(
      ["--checkpoint", run, "--limit", "16", "--steps", "2", "--rerank", "2"],
      quiet,
    );
    assert.deepEqual(rep!.experiments, [
      "guidance",
      "pca",
      "interpolate",
      "arithmetic",
      "textdiff",
      "binding",
      "knn",
      "zeroshot",
    ]);
    assert.deepEqual(rep!.missing, []);
    const html = await Deno.readTextFile(rep!.html);
    assert.match(html, /^<!DOCTYPE html>/);
    assert.match(html, /not comparable with\s+the thesis's \(Inception\) numbers|NOT comparable/);
    // Self-contained: every image a data URL, nothing referenced by path or URL.
    const srcs = [...html.matchAll(/\ssrc="([^"]*)"/g)].map((m) => m[1]);
    // 2 sample grids, interpolate, arithmetic, textdiff, 3 binding grids, knn, 4 zeroshot grids.
    assert.equal(srcs.length, 13);
    for (const s of srcs) assert.ok(s.startsWith("data:image/png;base64,"), s.slice(0, 40));
    assert.ok(!/\shref="(?!#)/.test(html), "no links to files");
    // Every SVG figure inline: guidance, pca x2, interpolate, arithmetic, textdiff, binding,
    // zeroshot, the training loss.
    assert.equal((html.match(/<svg[\s>]/g) ?? []).length, 9);
    assert.match(html, /Training loss/);
    assert.equal((html.match(/<section/g) ?? []).length, (html.match(/<\/section>/g) ?? []).length);
    const md = await Deno.readTextFile(rep!.markdown);
    assert.match(md, /\| s \| FID\(clip-image\) \|/);
    assert.match(md, /\(experiments\/guidance\/guidance\.svg\)/);
    await assert.rejects(runReport(["--checkpoint", run], quiet), /already exists; pass --force/);

    // The page as a reader sees it: Chromium decodes every inlined PNG and lays out every chart.
    const chromium = await findChromium();
    if (chromium) {
      const page = await openPage(chromium, `file://${rep!.html}`);
      try {
        const seen = await page.evaluate<{ images: number; decoded: number; svgs: number }>(
          `new Promise((done) => {
            const check = () => {
              const imgs = [...document.images];
              // The tab opens on about:blank: wait for the report itself, then its images.
              if (
                !location.href.startsWith("file:") || !document.querySelector("h1") ||
                document.readyState !== "complete" || imgs.some((i) => !i.complete)
              ) {
                return setTimeout(check, 50);
              }
              done({
                images: imgs.length,
                decoded: imgs.filter((i) => i.naturalWidth > 0).length,
                svgs: [...document.querySelectorAll("svg")]
                  .filter((s) => s.getBoundingClientRect().width > 0).length,
              });
            };
            check();
          })`,
        );
        assert.deepEqual(seen, { images: 13, decoded: 13, svgs: 9 });
      } finally {
        await page.close();
      }
    } else {
      console.log("SKIP report in Chromium: Chromium is not installed");
    }
  } finally {
    await Deno.remove(run, { recursive: true });
  }
});
