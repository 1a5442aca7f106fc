/**
 * Reliability guarantees of the command-line tasks (issue 15), each checked in a subprocess as a
 * user meets it: nothing is overwritten without `--force`, a failed export leaves nothing
 * behind, train runs lock their folder, and bad values are one-line usage errors before any
 * work.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { builtins } from "../plugins/mod.ts";
import { parseConfig } from "../core/config.ts";
import { loadConfig } from "../core/config_file.ts";
import { exists } from "../core/io/mod.ts";
import {
  type Components,
  imageVariations,
  loadPipeline,
  revalidateStoredConfig,
  textToImage,
  unseenWords,
} from "../core/pipeline.ts";
import { loadCheckpoint } from "../core/train/checkpoint.ts";
import { initBackend } from "../core/tensor/mod.ts";
import { BpeTokenizer, shortCaption } from "../plugins/tokenizers/bpe.ts";
import { MAX_SEEDS, numberFlag, seedFlag, seedsFlag, UsageError } from "../tasks/_cli.ts";
import { hugePng } from "./_support/huge_png.ts";
import { assertOneLineError, cli } from "./_support/cli.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const SHIPPED = join(ROOT, "weights", "default");
/** The preset the shipped weights were trained with (the last stage's, for --resume checks). */
const SHIPPED_PRESET = join(ROOT, "presets", "cpu32-default.jsonc");

Deno.test("seeds: decimal integers 0..2^32-1 only; 4294967296 and 0x10 are usage errors", async () => {
  assert.equal(seedFlag({}), 0);
  assert.equal(seedFlag({ seed: "4294967295" }), 4294967295);
  for (const bad of ["4294967296", "0x10", "1e3", "-1", "1.5", " 7", ""]) {
    assert.throws(() => seedFlag({ seed: bad }), UsageError, bad);
  }
  // --seeds: seeds and ranges in the order given, each as --seed takes it.
  assert.equal(seedsFlag({}), undefined);
  assert.deepEqual(seedsFlag({ seeds: "0-4" }), [0, 1, 2, 3, 4]);
  assert.deepEqual(seedsFlag({ seeds: "7,2,0-1" }), [7, 2, 0, 1]);
  assert.deepEqual(seedsFlag({ seeds: "4294967295" }), [4294967295]);
  for (
    const [bad, why] of [
      ["0-", /comma-separated/],
      ["0x1", /comma-separated/],
      ["1, 2", /comma-separated/],
      ["", /comma-separated/],
      ["4-2", /range 4-2, which runs backwards/],
      ["0-2,1", /seed 1 twice/],
      ["4294967296", /above 4294967295/],
      [`0-${MAX_SEEDS}`, /more than 100 seeds/],
    ] as const
  ) {
    assert.throws(
      () => seedsFlag({ seeds: bad }),
      (e) => e instanceof UsageError && why.test(e.message),
    );
  }
  assert.throws(() => numberFlag({ n: "0x10" }, "n", { integer: true }), /not an integer/);
  assert.throws(() => numberFlag({ n: "1e3" }, "n", { integer: true }), /not an integer/);
  assert.throws(() => numberFlag({ n: "9" }, "n", { integer: true, max: 8 }), /at most 8/);
  for (const seed of ["4294967296", "0x10"]) {
    const r = await cli("sample", ["a red circle", "--seed", seed, "--out", "/tmp/x.png"]);
    assertOneLineError(
      r,
      new RegExp(`--seed "${seed}" must be a decimal integer from 0 to 4294967295`),
    );
    assert.ok(!r.stdout.includes("Device:"), "failed before starting the backend");
  }
  const e = await cli("eval", ["clip", "--checkpoint", SHIPPED, "--seed", "0x10"]);
  assertOneLineError(e, /--seed "0x10" must be a decimal integer/);
});

Deno.test("sample: an existing --out is kept without --force; an unwritable folder fails first", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const png = join(dir, "existing.png");
    await Deno.writeTextFile(png, "mine");
    const r = await cli("sample", ["a red circle", "--n", "1", "--out", png]);
    assertOneLineError(
      r,
      /Output file ".*existing\.png" already exists; pass --force to overwrite it/,
    );
    assert.ok(!r.stdout.includes("Device:"), "refused before starting the backend");
    assert.equal(await Deno.readTextFile(png), "mine");

    // /proc accepts no new files, even for root: found before any sampling work.
    const ro = await cli("sample", ["a red circle", "--n", "1", "--out", "/proc/x.png"]);
    assertOneLineError(ro, /Output folder "\/proc" is not writable/);
    assert.ok(!ro.stdout.includes("Device:"), "refused before starting the backend");
    await Deno.mkdir(join(dir, "d.png"));
    const folder = await cli("sample", ["a red circle", "--out", join(dir, "d.png"), "--force"]);
    assertOneLineError(folder, /Output file ".*d\.png" is a folder/);
    await Deno.remove(join(dir, "d.png"));

    const forced = await cli("sample", [
      "a red circle",
      "--n",
      "1",
      "--steps",
      "2",
      "--out",
      png,
      "--force",
    ]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /Wrote 1 image/);
    assert.notEqual(await Deno.readTextFile(png).catch(() => ""), "mine");
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["existing.png"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Every file under `dir` with its bytes, for before/after comparisons. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  const walk = async (d: string, rel: string): Promise<void> => {
    for await (const e of Deno.readDir(d)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(join(d, e.name), r);
      else files.set(r, Array.from(await Deno.readFile(join(d, e.name))).join(","));
    }
  };
  await walk(dir, "");
  return files;
}

async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isDirectory) await copyDir(join(from, e.name), join(to, e.name));
    else await Deno.copyFile(join(from, e.name), join(to, e.name));
  }
}

Deno.test("eval: an existing result JSON (the shipped ones too) is kept without --force", async () => {
  const before = await snapshot(SHIPPED);
  const r = await cli("eval", ["clip", "--checkpoint", "weights/default", "--limit", "8"]);
  assertOneLineError(
    r,
    /Output file "weights\/default\/eval_clip_test\.json" already exists; pass --force/,
  );
  assert.ok(!r.stdout.includes("Device:"), "refused before starting the backend");
  assert.deepEqual(await snapshot(SHIPPED), before);

  const dir = await Deno.makeTempDir();
  try {
    await copyDir(SHIPPED, dir);
    const old = await Deno.readTextFile(join(dir, "eval_clip_test.json"));
    const forced = await cli("eval", ["clip", "--checkpoint", dir, "--limit", "8", "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    const now = JSON.parse(await Deno.readTextFile(join(dir, "eval_clip_test.json")));
    assert.notEqual(JSON.stringify(now), old);
    assert.equal(now.limit, 8);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("export: refuses an --out that holds these stages; a failed export writes nothing", async () => {
  const before = await snapshot(SHIPPED);
  const self = await cli("export", ["--checkpoint", SHIPPED, "--out", SHIPPED]);
  assertOneLineError(
    self,
    /--out ".*" already holds clip, prior, decoder, reranker, eval_clip_test\.json/,
  );
  assert.deepEqual(await snapshot(SHIPPED), before);

  const work = await Deno.makeTempDir();
  try {
    // An --out shaped like weights/default whose steps differ from the run's: kept as is.
    const dst = join(work, "dst");
    await copyDir(SHIPPED, dst);
    const latest = (await Deno.readTextFile(join(dst, "clip", "latest"))).trim();
    await Deno.rename(join(dst, "clip", latest), join(dst, "clip", "step-00000001"));
    await Deno.writeTextFile(join(dst, "clip", "latest"), "step-00000001\n");
    const shipped = await snapshot(dst);
    const r = await cli("export", ["--checkpoint", SHIPPED, "--out", dst]);
    assertOneLineError(r, /already holds clip, prior, decoder.*nothing was written/);
    assert.deepEqual(await snapshot(dst), shipped);

    // A run without a prior: the export fails after clip, and nothing is left behind.
    const src = join(work, "src");
    await copyDir(join(SHIPPED, "clip"), join(src, "clip"));
    const failed = await cli("export", ["--checkpoint", src, "--out", join(work, "new")]);
    assertOneLineError(failed, /prior/);
    assert.deepEqual([...Deno.readDirSync(work)].map((e) => e.name).sort(), ["dst", "src"]);

    // A good export into a new folder, and into a folder holding only a README.
    const ok = await cli("export", ["--checkpoint", SHIPPED, "--out", join(work, "new"), "--half"]);
    assert.equal(ok.code, 0, ok.stderr);
    const names = [...Deno.readDirSync(join(work, "new"))].map((e) => e.name).sort();
    assert.deepEqual(
      names,
      // The stages, the eval results and the cached probe travel; README, report.md and
      // experiments/ do not.
      [...before.keys()].filter((k) => /^eval_[^/]*\.json$/.test(k))
        .concat(["clip", "decoder", "prior", "probe", "reranker"]).sort(),
    );
    await Deno.mkdir(join(work, "readme"));
    await Deno.writeTextFile(join(work, "readme", "README.md"), "mine");
    const into = await cli("export", ["--checkpoint", SHIPPED, "--out", join(work, "readme")]);
    assert.equal(into.code, 0, into.stderr);
    assert.equal(await Deno.readTextFile(join(work, "readme", "README.md")), "mine");
    assert.ok(await Deno.stat(join(work, "readme", "decoder", "latest")));
    assert.deepEqual([...Deno.readDirSync(work)].map((e) => e.name).sort(), [
      "dst",
      "new",
      "readme",
      "src",
    ]);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("a too-long caption's error quotes its first 60 characters, not all of it", async () => {
  const caption = "a red circle ".repeat(7700); // about 100 KB
  const r = await cli("sample", [caption, "--out", join(await Deno.makeTempDir(), "x.png")]);
  assertOneLineError(r, /^Error: Caption "a red circle a red .{41}\.\.\." is \d+ tokens, longer/);
  assert.ok(r.stderr.length < 200, `${r.stderr.length} characters`);
  const short = new BpeTokenizer([], { vocabSize: 260, contextLength: 4 });
  assert.throws(() => short.encode("hello"), /^Error: Caption "hello" is \d+ tokens/);
  assert.equal(shortCaption("x".repeat(61)), "x".repeat(60) + "...");
  assert.equal(shortCaption("🙂".repeat(60)), "🙂".repeat(60));
});

Deno.test("bench: bad --reps, --batch, --only and --json are one-line usage errors before any work", async () => {
  const cases: [string[], RegExp][] = [
    [["--reps", "0"], /--reps "0" must be at least 1/],
    [["--batch", "0"], /--batch "0" must be at least 1/],
    [["--train-batch=0"], /--train-batch "0" must be at least 1/],
    [["--reps", "0x2"], /--reps "0x2" is not an integer/],
    [
      ["--only", "foo"],
      /--only: unknown group "foo"; valid: matmul, conv, attention, train, demo, sample, data/,
    ],
    [["--only", "matmul,"], /--only: unknown group ""/],
    [["--json", "/no/such/folder/b.json"], /Output folder "\/no\/such\/folder" does not exist/],
    [["--json", "/proc/b.json"], /Output folder "\/proc" is not writable/],
    [["--bogus"], /Unknown flag "--bogus"; see "deno task bench --help"/],
    [["--backend", "gpu"], /unknown backend "gpu"/],
    [["--timing", "fast"], /--timing "fast": use synced or pipelined/],
    // A preset that does not load fails before the backend starts, not as a "failed" row.
    [
      ["--preset", "tests/fixtures/no-such.jsonc"],
      /"tests\/fixtures\/no-such\.jsonc" does not exist/,
    ],
    [["--preset", "deno.json"], /^Error: --preset "deno\.json": deno\.json: /],
  ];
  for (const [args, re] of cases) {
    const r = await cli("bench", args);
    assertOneLineError(r, re);
    assert.equal(r.stdout, "", `${args.join(" ")}: nothing runs`);
  }
  const help = await cli("bench", ["--help"]);
  for (
    const flag of ["--reps", "--batch", "--only", "--timing", "--preset", "--train-batch", "--json"]
  ) {
    assert.ok(help.stdout.includes(flag), flag);
  }
  const dir = await Deno.makeTempDir();
  try {
    const json = join(dir, "b.json");
    const ok = await cli("bench", ["--quick", "--only", "matmul", "--reps", "1", "--json", json]);
    assert.equal(ok.code, 0, ok.stderr);
    const rows = JSON.parse(await Deno.readTextFile(json)).results;
    assert.ok(rows.length > 0 && rows.every((r: { ms: number }) => r.ms > 0), ok.stdout);
    // pipelined: the host's recording time and the launches per repetition beside each kernel row
    const piped = await cli("bench", [
      "--quick",
      "--only",
      "matmul",
      "--reps",
      "1",
      "--timing",
      "pipelined",
      "--json",
      json,
    ]);
    assert.equal(piped.code, 0, piped.stderr);
    const pipedRows: { name: string; ms: number; hostMs?: number; dispatches?: number }[] =
      JSON.parse(await Deno.readTextFile(json)).results;
    assert.equal(pipedRows[0].name, "sync round trip");
    const matmuls = pipedRows.filter((r) => r.name.startsWith("matmul"));
    assert.equal(matmuls.length, 3, "the --quick matmul rows");
    for (const r of matmuls) {
      assert.ok(r.hostMs! > 0 && r.dispatches === 1, JSON.stringify(r));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A resolved config as plain, editable JSON. */
interface ConfigJson {
  plugins: string[];
  components: Record<string, { plugin: string; options: Record<string, unknown> }>;
  train: Record<string, Record<string, unknown>>;
}

/** The tiny preset with 64 training images and a progress line per step, edited by `edit`. */
async function tinyConfig(
  dir: string,
  edit: (c: ConfigJson) => void = () => {},
  name = "config.json",
): Promise<string> {
  const c = structuredClone(
    await loadConfig(join(ROOT, "presets/tiny.jsonc"), builtins()),
  ) as unknown as ConfigJson;
  Object.assign(c.components.dataset.options, { trainCount: 64, testCount: 16 });
  for (const stage of ["clip", "prior", "decoder"]) {
    Object.assign(c.train[stage], { logEvery: 1, checkpointEvery: 2, keepLast: 2 });
  }
  edit(c);
  const path = join(dir, name);
  await Deno.writeTextFile(path, JSON.stringify(c, null, 2));
  return path;
}

/** A pid that surely ran and ended. */
async function deadPid(): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), { args: ["eval", ""] }).spawn();
  await child.status;
  return child.pid;
}

Deno.test("train: one run per folder (lock with the pid); stale locks are recovered; released on every exit", async () => {
  const work = await Deno.makeTempDir();
  try {
    const config = await tinyConfig(work);
    const out = join(work, "run");
    const lockPath = join(out, "train.lock");
    const train = (args: string[]) =>
      cli("train", ["clip", "--config", config, "--out", out, ...args]);

    // A live holder (this test process): refused in one line naming its pid, nothing written.
    await Deno.mkdir(out);
    await Deno.writeTextFile(lockPath, `pid ${Deno.pid}\n`);
    const held = await train(["--max-steps", "1"]);
    assertOneLineError(held, new RegExp(`is in use by another train run \\(pid ${Deno.pid};`));
    assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name), ["train.lock"]);
    assert.equal(await Deno.readTextFile(lockPath), `pid ${Deno.pid}\n`);

    // A dead holder: recovered with a note; the run trains and removes its lock at the end.
    const dead = await deadPid();
    await Deno.writeTextFile(lockPath, `pid ${dead}\n`);
    const stale = await train(["--max-steps", "1"]);
    assert.equal(stale.code, 0, stale.stderr);
    assert.match(stale.stdout, new RegExp(`recovered a stale lock of pid ${dead} \\(no longer`));
    assert.equal((await Deno.readTextFile(join(out, "clip", "latest"))).trim(), "step-00000001");
    await assert.rejects(Deno.stat(lockPath), Deno.errors.NotFound);

    // Two real runs: the second is refused naming the first's pid; Ctrl-C releases the lock.
    await Deno.remove(join(out, "clip"), { recursive: true });
    const first = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", join(ROOT, "tasks/train.ts"), "clip", "--config", config, "--out", out],
      cwd: ROOT,
      env: { NO_COLOR: "1", UNCLIP_BACKEND: "cpu" },
      stdout: "piped",
      stderr: "null",
    }).spawn();
    let text = "";
    const reader = first.stdout.getReader();
    const dec = new TextDecoder();
    while (!/step +\d+\/300/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value);
    }
    const second = await train(["--resume"]);
    assertOneLineError(second, new RegExp(`is in use by another train run \\(pid ${first.pid};`));
    first.kill("SIGINT");
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += dec.decode(value);
    }
    assert.equal((await first.status).code, 0, text);
    assert.match(text, /Interrupted: clip saved at step/);
    await assert.rejects(Deno.stat(lockPath), Deno.errors.NotFound);

    // An error after the lock was taken releases it too.
    const again = await train([]);
    assertOneLineError(again, /already holds a checkpoint; pass --resume/);
    await assert.rejects(Deno.stat(lockPath), Deno.errors.NotFound);
    const fresh = join(work, "fresh");
    const noClip = await cli("train", ["prior", "--config", config, "--out", fresh]);
    assert.equal(noClip.code, 1, noClip.stdout);
    await assert.rejects(Deno.stat(join(fresh, "train.lock")), Deno.errors.NotFound);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("sample: --n is bounded (at most 1024) with a usage error before any work", async () => {
  for (const n of ["100000", "1025"]) {
    const r = await cli("sample", ["a red circle", "--n", n, "--out", "/tmp/unused-n.png"]);
    assertOneLineError(r, new RegExp(`--n "${n}" must be at most 1024`));
    assert.ok(!r.stdout.includes("Device:"), "refused before starting the backend");
  }
});

Deno.test("library API: n, captions and options are validated at the public surface", async () => {
  // Validation comes before any use of the pipeline, so an empty stand-in suffices.
  const p = {} as Components;
  const call = (captions: unknown, options: unknown) =>
    textToImage(p, captions as string[], options as Record<string, unknown>);
  for (const n of [0, -1, 1.5, NaN, 1025, "2"]) {
    await assert.rejects(call(["a red circle"], { n }), RangeError, `n ${String(n)}`);
    await assert.rejects(
      call(["a red circle"], { n }),
      /Option "n" must be an integer from 1 to 1024/,
    );
    await assert.rejects(
      imageVariations(p, new Float32Array(3), { n } as Record<string, unknown>),
      /Option "n" must be an integer from 1 to 1024/,
    );
  }
  await assert.rejects(call([], {}), /Captions must be a non-empty array of strings, got an empty/);
  await assert.rejects(call("a red circle", {}), /Captions must be a non-empty array/);
  await assert.rejects(call([undefined], {}), /Caption 0 must be a string, got undefined/);
  await assert.rejects(call(["a", 3], {}), /Caption 1 must be a string, got number/);
  await assert.rejects(call(["a", "b"], { n: 600 }), /1200 images, more than 1024 per call/);
  await assert.rejects(call(["a"], { guidance: NaN }), /"guidance" must be a finite number >= 0/);
  await assert.rejects(call(["a"], { guidance: Infinity }), /"guidance" must be a finite number/);
  await assert.rejects(call(["a"], { steps: 0 }), /"steps" must be an integer from 1/);
  await assert.rejects(call(["a"], { candidates: 0.5 }), /"candidates" must be an integer from 1/);
  await assert.rejects(call(["a"], { seed: -1 }), /"seed" must be an integer from 0 to 4294967295/);
  await assert.rejects(
    imageVariations(p, new Float32Array(3), { caption: 7 } as Record<string, unknown>),
    /Option "caption" must be a string, got number/,
  );
});

Deno.test({
  name: "exists(): a missing --allow-read is an error naming the permission, not a missing path",
  permissions: { read: false },
  fn: async () => {
    await assert.rejects(
      exists(SHIPPED),
      Deno.errors.NotCapable,
      `No read permission for "${SHIPPED}": run Deno with --allow-read`,
    );
    // A library user is told about the permission, not about a CLI flag.
    await assert.rejects(loadPipeline(SHIPPED, builtins()), /--allow-read/);
  },
});

Deno.test("exists(): true for a path, false for a missing one", async () => {
  assert.equal(await exists(SHIPPED), true);
  assert.equal(await exists(join(SHIPPED, "no-such-file")), false);
  assert.equal(await exists(join(SHIPPED, "README.md", "below-a-file")), false);
});

/** Overwrites every weight of a safetensors file's F16 data with NaN (0x7e00). */
async function poisonF16(path: string): Promise<void> {
  const bytes = await Deno.readFile(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  for (let i = 8 + n; i + 1 < bytes.length; i += 2) {
    bytes[i] = 0x00;
    bytes[i + 1] = 0x7e;
  }
  await Deno.writeFile(path, bytes);
}

Deno.test("sample: NaN weights or a NaN guidance fail with a one-line error naming the cause", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = join(dir, "run");
    await copyDir(SHIPPED, run);
    const step = join(
      run,
      "decoder",
      (await Deno.readTextFile(join(run, "decoder", "latest"))).trim(),
    );
    await poisonF16(join(step, "model-00001-of-00001.safetensors"));
    const out = join(dir, "x.png");
    const args = ["a red circle", "--n", "1", "--steps", "2", "--checkpoint", run, "--out", out];
    const r = await cli("sample", args);
    assertOneLineError(
      r,
      /Sampling produced NaN: the decoder checkpoint's weights hold NaN\/Inf \(first: ".+"\); retrain the decoder/,
    );
    assert.equal(await exists(out), false, "no image written");
    for (const g of ["NaN", "Infinity", "-1"]) {
      const bad = await cli("sample", [...args.slice(0, 5), `--guidance=${g}`, "--out", out]);
      assertOneLineError(bad, new RegExp(`--guidance "${g}" (is not a number|must be at least 0)`));
      assert.ok(!bad.stdout.includes("Device:"), "rejected before starting the backend");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Deletes the recorded CLIP identity from every checkpoint of a run (as saved before it existed). */
async function forgetClipIdentities(run: string): Promise<void> {
  for (const stage of ["clip", "prior", "decoder"]) {
    for (const e of Deno.readDirSync(join(run, stage))) {
      const index = join(run, stage, e.name, "model.safetensors.index.json");
      if (!e.isDirectory || !(await exists(index))) continue;
      const json = JSON.parse(await Deno.readTextFile(index));
      delete json.metadata.clip;
      await Deno.writeTextFile(index, JSON.stringify(json));
    }
  }
}

Deno.test("a prior or decoder trained with another CLIP is refused (train --resume, sample, eval, exports), naming what to retrain", async () => {
  const work = await Deno.makeTempDir();
  try {
    const config = await tinyConfig(work);
    const run = join(work, "run");
    const all = await cli("train", ["all", "--config", config, "--out", run, "--max-steps", "2"]);
    assert.equal(all.code, 0, all.stderr);
    const before = (await loadCheckpoint(join(run, "clip"), "clip")).meta.clip!;
    assert.equal(before.step, 2);
    for (const stage of ["prior", "decoder"] as const) {
      assert.deepEqual((await loadCheckpoint(join(run, stage), stage)).meta.clip, before, stage);
    }

    // CLIP is resumed after the prior and decoder were trained: they no longer fit it.
    const more = await cli("train", [
      "clip",
      ...["--config", config, "--out", run, "--max-steps", "4", "--resume"],
    ]);
    assert.equal(more.code, 0, more.stderr);
    const now = (await loadCheckpoint(join(run, "clip"), "clip")).meta.clip!;
    assert.equal(now.step, 4);
    const was = `CLIP step 2 \\(id ${before.id!.slice(0, 12)}\\)`;
    const is = `${run}/clip is now step 4 \\(id ${now.id!.slice(0, 12)}\\)`;
    const resume = await cli("train", [
      "prior",
      ...["--config", config, "--out", run, "--max-steps", "4", "--resume"],
    ]);
    assertOneLineError(
      resume,
      new RegExp(
        `^Error: prior in ${run} was trained with ${was} but ${is}; retrain the prior ` +
          `\\(move ${run}/prior away, then: deno task train prior --config ${config} --out ${run}\\)$`,
      ),
    );
    assert.ok(!resume.stdout.includes("Device:"), "refused before starting the backend");
    const png = join(work, "x.png");
    const sampling = ["a red circle", "--n", "1", "--steps", "2", "--out", png];
    const sample = await cli("sample", [...sampling, "--checkpoint", run]);
    assertOneLineError(
      sample,
      new RegExp(
        `^Error: prior and decoder in ${run} were trained with ${was} but ${is}; retrain the ` +
          `prior and the decoder \\(move ${run}/prior and ${run}/decoder away, then: ` +
          `deno task train prior --config FILE --out ${run} && deno task train decoder`,
      ),
    );
    assert.equal(await exists(png), false);
    const evalPrior = await cli("eval", ["prior", "--checkpoint", run, "--limit", "8"]);
    assertOneLineError(evalPrior, new RegExp(`^Error: prior in ${run} was trained with ${was}`));

    // Exports keep every stage's identity (CLIP's own id included), so the check still works.
    const exported = join(work, "exported");
    const ex = await cli("export", ["--checkpoint", run, "--out", exported, "--half"]);
    assert.equal(ex.code, 0, ex.stderr);
    for (const stage of ["clip", "prior", "decoder"] as const) {
      const a = await loadCheckpoint(join(run, stage), stage);
      const b = await loadCheckpoint(join(exported, stage), stage);
      assert.deepEqual(b.meta.clip, a.meta.clip, stage);
    }
    const fromExport = await cli("sample", [...sampling, "--checkpoint", exported]);
    assertOneLineError(fromExport, /^Error: prior and decoder in .*exported were trained with/);

    // Checkpoints saved before identities were recorded resume and load, unchecked.
    await forgetClipIdentities(run);
    const old = await cli("train", [
      "prior",
      ...["--config", config, "--out", run, "--max-steps", "3", "--resume"],
    ]);
    assert.equal(old.code, 0, old.stderr);
    assert.equal(old.stderr, "");
    const ok = await cli("sample", [...sampling, "--checkpoint", run]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stderr, "");
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("train: sizes components share must agree, checked at config load before any work", async () => {
  const work = await Deno.makeTempDir();
  try {
    const cases: [(c: ConfigJson) => void, RegExp][] = [
      [
        (c) => c.components.decoder.options.imageSize = 32,
        /: components\.decoder\.options\.imageSize is 32 but components\.dataset\.options\.imageSize is 16; both are the image side in pixels, so state it once \(on dataset\)$/,
      ],
      [
        (c) => c.components.textEncoder.options.contextLength = 16,
        /: components\.textEncoder\.options\.contextLength is 16 but components\.tokenizer\.options\.contextLength is 33;/,
      ],
      [
        (c) => c.components.decoder.options.attentionLevels = [5],
        /: components\.decoder\.options\.attentionLevels\[0\]: level 5 does not exist: channelMults has 2 levels \(0 to 1\)$/,
      ],
    ];
    for (const [edit, re] of cases) {
      const config = await tinyConfig(work, edit, "bad.json");
      const out = join(work, "run");
      const r = await cli("train", ["all", "--config", config, "--out", out]);
      assertOneLineError(r, re);
      assert.equal(r.stdout, "", "nothing ran");
      assert.equal(await exists(out), false, "nothing written");
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("train: a dataset plugin returning images of the wrong byte length is refused, naming it and the image", async () => {
  const work = await Deno.makeTempDir();
  try {
    const deps = new URL("../core/deps.ts", import.meta.url).href;
    // 16x16 images, except image 3 which has 800 bytes instead of 768 (the rest was ignored).
    await Deno.writeTextFile(
      join(work, "broken_dataset.ts"),
      `import { z } from "${deps}";
export const broken = {
  kind: "dataset",
  name: "broken",
  options: z.object({ imageSize: z.number().int().positive().default(16) }).strict(),
  create: (o) => ({
    imageSize: o.imageSize,
    flip: false,
    split: (_name, limit) =>
      Promise.resolve(Array.from({ length: Math.min(limit ?? 32, 32) }, (_, i) => ({
        image: new Uint8Array(i === 3 ? 800 : o.imageSize * o.imageSize * 3).fill(i * 7),
        width: o.imageSize,
        height: o.imageSize,
        caption: i % 2 ? "a red circle" : "a blue square",
      }))),
  }),
};
`,
    );
    const config = await tinyConfig(work, (c) => {
      c.plugins = ["./broken_dataset.ts"];
      c.components.dataset = { plugin: "broken", options: { imageSize: 16 } };
    });
    const out = join(work, "run");
    const r = await cli("train", ["clip", "--config", config, "--out", out, "--max-steps", "1"]);
    assertOneLineError(
      r,
      /^Error: Dataset "broken", train split: image 3 has 800 bytes; expected 16 x 16 x 3 = 768$/,
    );
    assert.equal(await exists(join(out, "clip")), false, "no checkpoint written");
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test('config names are safe folder names: "../../escape" is refused before writing anything', async () => {
  const registry = builtins();
  const tiny = await Deno.readTextFile(join(ROOT, "presets/tiny.jsonc"));
  const named = (name: string) => tiny.replace(/"name": "tiny"/, `"name": ${JSON.stringify(name)}`);
  for (const ok of ["tiny", "cpu-demo", "Run_2.1", "a".repeat(64)]) {
    assert.equal(parseConfig(named(ok), registry, "c.jsonc").name, ok);
  }
  for (
    const bad of ["../../escape", "a/b", "..", "a..b", ".hidden", "-x", "", "a b", "a".repeat(65)]
  ) {
    assert.throws(
      () => parseConfig(named(bad), registry, "c.jsonc"),
      (e: Error) => e.message.startsWith(`c.jsonc: name: ${JSON.stringify(bad)} is not a safe`),
      bad,
    );
  }
  // Checkpoints saved before the rule keep loading: their name only labels the run.
  const stored = parseConfig(tiny, registry, "c.jsonc");
  const old = await revalidateStoredConfig({ ...stored, name: "my run" }, registry, "ckpt");
  assert.equal(old.name, "my run");

  // The CLI: one line naming `name`, exit 1, and runs/../../escape (outside cwd) never made.
  const work = await Deno.makeTempDir();
  try {
    const cwd = join(work, "a", "b");
    await Deno.mkdir(cwd, { recursive: true });
    const config = join(work, "escape.json");
    const c = JSON.parse(await Deno.readTextFile(await tinyConfig(work)));
    await Deno.writeTextFile(config, JSON.stringify({ ...c, name: "../../escape" }));
    const r = await cli("train", ["clip", "--config", config, "--max-steps", "1"], { cwd });
    assertOneLineError(
      r,
      /escape\.json: name: "\.\.\/\.\.\/escape" is not a safe run-folder name \(it names runs\/<name>\)/,
    );
    assert.equal(await exists(join(work, "a", "escape")), false);
    assert.deepEqual([...Deno.readDirSync(cwd)], []);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("sample --image: a PNG declaring 12000x12000 is refused from its header, before any work", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const big = join(dir, "big.png");
    await Deno.writeFile(big, hugePng(12000));
    const r = await cli("sample", ["--image", big, "--out", join(dir, "x.png")]);
    assertOneLineError(
      r,
      /Input image ".*big\.png" is 12000x12000 pixels, more than the limit of 4096x4096/,
    );
    assert.ok(!r.stdout.includes("Device:"), "refused before starting the backend");
    const text = join(dir, "text.png");
    await Deno.writeTextFile(text, "not a png");
    const t = await cli("sample", ["--image", text, "--out", join(dir, "x.png")]);
    assertOneLineError(t, /Input image ".*text\.png" is not a PNG file/);
    assert.ok(!t.stdout.includes("Device:"), "refused before starting the backend");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("train --resume of exported weights (no training state): one line, exit 1, backend never started", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const run = join(dir, "run");
    await copyDir(SHIPPED, run);
    const before = await snapshot(run);
    const r = await cli("train", [
      "clip",
      "--config",
      SHIPPED_PRESET,
      "--out",
      run,
      "--resume",
    ]);
    // Exit code 1, not a crash in the GPU driver (139) after the error.
    assertOneLineError(
      r,
      /Checkpoint ".*run\/clip\/step-\d+" holds no optimizer state \(exported weights keep none\), so --resume cannot continue it; train without --resume into another --out/,
    );
    assert.ok(!r.stdout.includes("Device:"), "checked before starting the backend");
    assert.deepEqual(await snapshot(run), before, "nothing written (lock removed)");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Records `words` as the training words of every stage's tokenizer in a copy of a run. */
async function withTrainingWords(run: string, words: string[]): Promise<void> {
  for (const stage of ["clip", "prior", "decoder"]) {
    const latest = (await Deno.readTextFile(join(run, stage, "latest"))).trim();
    const index = join(run, stage, latest, "model.safetensors.index.json");
    const json = JSON.parse(await Deno.readTextFile(index));
    json.metadata.tokenizer = JSON.stringify({ ...JSON.parse(json.metadata.tokenizer), words });
    await Deno.writeTextFile(index, JSON.stringify(json));
  }
}

Deno.test("sample warns about caption words never seen in training; old checkpoints stay silent", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const args = (ckpt: string) => [
      "a purple dragon 🙂",
      "--n",
      "1",
      "--steps",
      "2",
      "--checkpoint",
      ckpt,
      "--out",
      join(dir, "x.png"),
      "--force",
    ];
    // weights/default predates recording the training words: no warning is possible, none given.
    const old = await cli("sample", args(SHIPPED));
    assert.equal(old.code, 0, old.stderr);
    assert.equal(old.stderr, "");
    const run = join(dir, "run");
    await copyDir(SHIPPED, run);
    await withTrainingWords(run, ["a", "circle", "purple", "red"]);
    const r = await cli("sample", args(run));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, 'Warning: words never seen in training: "dragon", "🙂"\n');
    assert.match(r.stdout, /Wrote 1 image/);
    // The library reports the same words with the images.
    await initBackend();
    const p = await loadPipeline(run, builtins());
    try {
      assert.deepEqual(unseenWords(p, ["a red circle", "a purple dragon"]), ["dragon"]);
      const out = await textToImage(p, ["a purple dragon"], { steps: 2, priorSteps: 2 });
      assert.deepEqual(out.unseenWords, ["dragon"]);
    } finally {
      p.dispose();
    }
    const shipped = await loadPipeline(SHIPPED, builtins());
    try {
      assert.equal(unseenWords(shipped, ["a purple dragon"]), undefined);
    } finally {
      shipped.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
