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

const ROOT = new URL("..", import.meta.url).pathname;
// The 16x16 demo weights: small enough that all four experiments run in seconds.
const SHIPPED = join(ROOT, "weights", "cpu-demo");

/** A throwaway copy of the shipped weights (experiments and the probe write into the run). */
async function copyWeights(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "unclip-exp-" });
  const copy = async (from: string, to: string): Promise<void> => {
    await Deno.mkdir(to, { recursive: true });
    for await (const e of Deno.readDir(from)) {
      if (e.isDirectory) await copy(join(from, e.name), join(to, e.name));
      else await Deno.copyFile(join(from, e.name), join(to, e.name));
    }
  };
  await copy(SHIPPED, dir);
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
      /Unknown experiment "nonsense"; choose guidance, pca, interpolate or knn/,
    );
    assertOneLineError(await cli("experiment", ["pca"]), /Missing --checkpoint DIR/);
    assertOneLineError(
      await cli("experiment", ["pca", "--checkpoint", run, "--scales", "1,2"]),
      /--scales does not apply to experiment "pca" \(only to guidance\)/,
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
      await cli("report", ["--checkpoint", SHIPPED, "--out", run]),
      /No experiments in .* yet; run e\.g\. "deno task experiment guidance/,
    );
  } finally {
    await Deno.remove(run, { recursive: true });
  }
});

Deno.test("experiment: all four run on the shipped weights (tiny limits); report.html is self-contained", async () => {
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
      "--probe-steps",
      "3",
      "--probe-images",
      "128",
    ], quiet);
    const gr = g!.report.results as Record<string, unknown> & { scales: Record<string, number>[] };
    assert.deepEqual(gr.scales.map((s) => s.scale), [1, 2.5]);
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
    const rep = await runReport(["--checkpoint", run], quiet);
    assert.deepEqual(rep!.experiments, ["guidance", "pca", "interpolate", "knn"]);
    const html = await Deno.readTextFile(rep!.html);
    assert.match(html, /^<!DOCTYPE html>/);
    assert.match(html, /not comparable with\s+the thesis's \(Inception\) numbers|NOT comparable/);
    // Self-contained: every image a data URL, nothing referenced by path or URL.
    const srcs = [...html.matchAll(/\ssrc="([^"]*)"/g)].map((m) => m[1]);
    assert.equal(srcs.length, 4, "PNG figures: 2 sample grids, interpolate.png, knn.png");
    for (const s of srcs) assert.ok(s.startsWith("data:image/png;base64,"), s.slice(0, 40));
    assert.ok(!/\shref="(?!#)/.test(html), "no links to files");
    // Every SVG figure inline: guidance, pca x2, interpolate, the training loss.
    assert.equal((html.match(/<svg[\s>]/g) ?? []).length, 5);
    assert.match(html, /Training loss/);
    assert.equal((html.match(/<section/g) ?? []).length, (html.match(/<\/section>/g) ?? []).length);
    const md = await Deno.readTextFile(rep!.markdown);
    assert.match(md, /\| s \| FID\(clip-image\) \|/);
    assert.match(md, /\(experiments\/guidance\/guidance\.svg\)/);
    await assert.rejects(runReport(["--checkpoint", run], quiet), /already exists; pass --force/);
  } finally {
    await Deno.remove(run, { recursive: true });
  }
});
