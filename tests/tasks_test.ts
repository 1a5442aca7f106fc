import assert from "node:assert/strict";
import { join } from "node:path";
import { builtins } from "../plugins/mod.ts";
import { ConfigError } from "../core/config.ts";
import { loadConfig } from "../core/config_file.ts";
import { decoderDropRates } from "../core/pipeline.ts";
import { CheckpointError } from "../core/train/checkpoint.ts";
import {
  errorLine,
  guidanceIntervalFlag,
  guidanceText,
  numberFlag,
  parseFlags,
  samplerOptionsFlag,
  UsageError,
} from "../tasks/_cli.ts";
import { createSampler } from "../core/pipeline/build.ts";
import { runEval } from "../tasks/eval.ts";
import { evalCompare } from "../tasks/_eval_compare.ts";
import { runDataset } from "../tasks/dataset.ts";
import { DEFAULT_WEIGHTS, runSample } from "../tasks/sample.ts";
import { runTrain } from "../tasks/train.ts";

const TINY = "presets/tiny.jsonc";

function collect(): { lines: string[]; print: (l: string) => void } {
  const lines: string[] = [];
  return { lines, print: (l) => lines.push(l) };
}

/** Asserts a one-line error of the given class whose message matches `re`. */
function oneLine(cls: new (...a: never[]) => Error, re: RegExp) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.match(errorLine(e), re);
    assert.ok(!errorLine(e).includes("\n"), errorLine(e));
    return true;
  };
}

Deno.test("runTrain() --help prints the usage", async () => {
  const out = collect();
  assert.equal(await runTrain(["--help"], out), null);
  assert.match(
    out.lines.join("\n"),
    /Usage: deno task train <clip\|reranker\|prior\|decoder\|upsampler\|all>/,
  );
  assert.match(out.lines.join("\n"), /--max-minutes/);
});

Deno.test("runTrain() rejects unknown flags, stages and bad numbers in one line", async () => {
  await assert.rejects(runTrain(["clip"]), oneLine(UsageError, /Missing --config/));
  await assert.rejects(
    runTrain(["clip", "--config", TINY, "--bogus"]),
    oneLine(UsageError, /Unknown flag "--bogus"; see "deno task train --help"/),
  );
  await assert.rejects(
    runTrain(["clp", "--config", TINY]),
    oneLine(
      UsageError,
      /Unknown stage "clp"; choose clip, reranker, prior, decoder, upsampler or all/,
    ),
  );
  await assert.rejects(runTrain(["--config", TINY]), oneLine(UsageError, /Missing the stage/));
  await assert.rejects(
    runTrain(["clip", "--config", TINY, "--max-steps", "two"]),
    oneLine(UsageError, /--max-steps "two" is not an integer/),
  );
  await assert.rejects(
    runTrain(["clip", "--config", "nope.jsonc"]),
    oneLine(ConfigError, /nope\.jsonc: config file not found/),
  );
});

Deno.test("runTrain() --print-config prints the resolved config; --list-plugins the plugins", async () => {
  const out = collect();
  await runTrain(["clip", "--config", TINY, "--print-config"], out);
  const printed = JSON.parse(out.lines.join("\n"));
  const config = await loadConfig(TINY, builtins());
  assert.deepEqual(printed.components, config.components);
  assert.deepEqual(printed.train, config.train);

  const list = collect();
  await runTrain(["--list-plugins"], list);
  const text = list.lines.join("\n");
  for (const name of ["tokenizer/bpe", "prior/transformer", "decoder/unet", "dataset/shapes"]) {
    assert.ok(text.includes(name), `missing ${name}`);
  }
  // Printing trains nothing: training flags and unknown stages beside it are refused.
  await assert.rejects(
    runTrain(["clip", "--config", TINY, "--print-config", "--max-steps", "3"], collect()),
    oneLine(UsageError, /--print-config only prints and trains nothing; drop --max-steps/),
  );
  await assert.rejects(
    runTrain(["bogus", "--config", TINY, "--print-config"], collect()),
    oneLine(
      UsageError,
      /Unknown stage "bogus"; choose clip, reranker, prior, decoder, upsampler or all/,
    ),
  );
  await assert.rejects(
    runTrain(["--list-plugins", "--resume"], collect()),
    oneLine(UsageError, /--list-plugins only prints and trains nothing; drop --resume/),
  );
});

Deno.test("runTrain() refuses to overwrite an existing checkpoint without --resume", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(join(dir, "clip", "step-00000005"), { recursive: true });
  await Deno.writeTextFile(join(dir, "clip", "latest"), "step-00000005\n");
  await assert.rejects(
    runTrain(["clip", "--config", TINY, "--out", dir]),
    oneLine(CheckpointError, /already holds a checkpoint; pass --resume/),
  );
  // A corrupt checkpoint is reported before anything is trained or written.
  await assert.rejects(
    runTrain(["clip", "--config", TINY, "--out", dir, "--resume"]),
    oneLine(CheckpointError, /is corrupt/),
  );
  assert.deepEqual([...Deno.readDirSync(join(dir, "clip"))].map((e) => e.name).sort(), [
    "latest",
    "step-00000005",
  ]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runSample() explains that no weights are shipped, and checks its flags", async () => {
  let shipped = true;
  try {
    await Deno.stat(DEFAULT_WEIGHTS);
  } catch {
    shipped = false;
  }
  if (!shipped) {
    await assert.rejects(
      runSample(["a red circle", "--out", join(await Deno.makeTempDir(), "x.png")]),
      oneLine(
        CheckpointError,
        /No pretrained weights are shipped; train them with "deno task train all --config presets\/tiny\.jsonc"/,
      ),
    );
  }
  await assert.rejects(runSample([]), oneLine(UsageError, /Missing the caption/));
  await assert.rejects(runSample(["a", "b"]), oneLine(UsageError, /Expected one caption/));
  await assert.rejects(
    runSample(["a", "--n", "0"]),
    oneLine(UsageError, /--n "0" must be at least 1/),
  );
  await assert.rejects(
    runSample(["a", "--out", "x.jpg"]),
    oneLine(UsageError, /must end in \.png/),
  );
  await assert.rejects(
    runSample(["--image", "in.png", "--prior-steps", "4"]),
    oneLine(UsageError, /--prior-steps does nothing with --image \(no prior runs\); drop it/),
  );
  await assert.rejects(
    runSample(["a", "--guidance", "-1"]),
    oneLine(UsageError, /--guidance "-1" must be at least 0/),
  );
  await assert.rejects(
    runSample(["a", "--out", "/no/such/folder/x.png"]),
    oneLine(UsageError, /Output folder "\/no\/such\/folder" does not exist/),
  );
  await assert.rejects(
    runSample([
      "a",
      "--checkpoint",
      ".",
      "--sampler",
      "ddmp",
      "--out",
      join(Deno.makeTempDirSync(), "x.png"),
    ]),
    oneLine(UsageError, /Unknown sampler plugin "ddmp". Did you mean "ddpm"\?/),
  );
  for (
    const [flag, value, message] of [
      ["--prior-sampler", "dim", /Unknown sampler plugin "dim". Did you mean "ddim"\?/],
      ["--prior-steps", "0", /--prior-steps "0" must be at least 1/],
      ["--prior-guidance", "-1", /--prior-guidance "-1" must be at least 0/],
      ["--prior-candidates", "0", /--prior-candidates "0" must be at least 1/],
      ["--prior-candidates", "65", /--prior-candidates "65" must be at most 64/],
      ["--prior-candidates", "1.5", /--prior-candidates "1.5" is not an integer/],
    ] as const
  ) {
    await assert.rejects(
      runSample([
        "a",
        "--checkpoint",
        ".",
        `${flag}=${value}`,
        "--out",
        join(Deno.makeTempDirSync(), "x.png"),
      ]),
      oneLine(UsageError, message),
    );
  }
  await assert.rejects(
    runSample([
      "a",
      "--checkpoint",
      ".",
      "--backend",
      "gpu",
      "--out",
      join(Deno.makeTempDirSync(), "x.png"),
    ]),
    oneLine(UsageError, /--backend: unknown backend "gpu"; valid: auto, webgpu, cpu/),
  );
  await assert.rejects(
    runTrain(["clip", "--config", TINY, "--backend", "cuda"]),
    oneLine(UsageError, /unknown backend "cuda"; valid: auto, webgpu, cpu/),
  );
  const help = collect();
  await runSample(["--help"], help);
  assert.match(help.lines.join("\n"), /--guidance S/);
  assert.match(help.lines.join("\n"), /--backend NAME/);
  assert.match(help.lines.join("\n"), /--prior-sampler NAME/);
});

Deno.test("runEval() checks what to evaluate, the split and the checkpoint", async () => {
  await assert.rejects(
    runEval(["clp", "--checkpoint", "x"]),
    oneLine(UsageError, /Unknown evaluation "clp"/),
  );
  await assert.rejects(runEval(["clip"]), oneLine(UsageError, /Missing --checkpoint/));
  await assert.rejects(
    runEval(["clip", "--checkpoint", ".", "--split", "train"]),
    oneLine(UsageError, /Unknown split "train"; choose test or zeroshot/),
  );
  const dir = await Deno.makeTempDir();
  await assert.rejects(
    runEval(["clip", "--checkpoint", dir]),
    oneLine(CheckpointError, /does not exist; check the path or train first/),
  );
  await Deno.remove(dir, { recursive: true });
  // A folder that does not exist is named as the checkpoint, not as the output's folder.
  await assert.rejects(
    runEval(["clip", "--checkpoint", join(dir, "nope")]),
    oneLine(UsageError, /Checkpoint folder ".*nope" does not exist; check --checkpoint/),
  );
});

Deno.test("runEval() compare pairs two pipeline results caption by caption, or says why not", async () => {
  const base = JSON.parse(
    await Deno.readTextFile("docs/results/default_sampling/eval_pipeline_test_by_image.json"),
  );
  const dir = await Deno.makeTempDir();
  const write = async (name: string, edit: (r: typeof base) => void): Promise<string> => {
    const r = structuredClone(base);
    edit(r);
    await Deno.writeTextFile(join(dir, name), JSON.stringify(r));
    return join(dir, name);
  };
  const a = await write("a.json", () => {});
  // B: right on the first 8 captions A missed, wrong on the first 2 A got right.
  const b = await write("b.json", (r) => {
    const bits = [...r.probe.generated.exactByImage as string];
    const wrong = bits.flatMap((x, i) => (x === "0" ? [i] : [])).slice(0, 8);
    const right = bits.flatMap((x, i) => (x === "1" ? [i] : [])).slice(0, 2);
    for (const i of wrong) bits[i] = "1";
    for (const i of right) bits[i] = "0";
    r.probe.generated.exactByImage = bits.join("");
    r.probe.generated.exact += 6 / 200;
    r.checkpoint = "runs/other";
    r.prior = { sampler: "ddpm", steps: null, guidance: 2 };
  });
  const out = collect();
  assert.equal(await runEval(["compare", a, b], out), null);
  const text = out.lines.join("\n");
  assert.match(text, /first 200 test captions/);
  assert.match(
    text,
    /B {2}.*runs\/other \(decoder step 7000\), ddpm, guidance 2, seed 0, prior ddpm, prior guidance 2/,
  );
  assert.doesNotMatch(text, /A {2}.*prior guidance/); // recorded before it was, or unguided
  assert.match(
    text,
    /exact: just the captioned colour-shape pairs +32\.50% +35\.50% +\+3\.00 +90\.50%/,
  );
  assert.match(text, /only A right on 2, only B on 8 of 200; B - A = \+3\.00 points/);
  assert.doesNotMatch(text, /figures?: exact/); // neither result splits by figures
  // Results that split the captions by their figures get a row per group.
  const figuresA = await write("fa.json", (r) => {
    const group = (exact: number, colour: number) => ({ exact, colour });
    r.probe.generated.byFigures = { "1": group(0.5, 0.9), "2": group(0.1, 0.4) };
    r.probe.realImages.byFigures = { "1": group(0.96, 1), "2": group(0.84, 1) };
  });
  const figuresB = await write("fb.json", (r) => {
    r.probe.generated.byFigures = {
      "1": { exact: 0.45, colour: 1 },
      "2": { exact: 0.2, colour: 0.5 },
    };
    r.probe.realImages.byFigures = {
      "1": { exact: 0.96, colour: 1 },
      "2": { exact: 0.84, colour: 1 },
    };
  });
  const split = collect();
  await runEval(["compare", figuresA, figuresB], split);
  const splitText = split.lines.join("\n");
  assert.match(splitText, /1 figure: exact +50\.00% +45\.00% +-5\.00 +96\.00%/);
  assert.match(splitText, /2 figures: colours right +40\.00% +50\.00% +\+10\.00 +100\.00%/);
  assert.doesNotMatch(splitText, /counted from the pixels/); // neither result counts them
  // Results that count the figures from the pixels get that row.
  const counted = (right: number) => ({ right, byFigures: {}, threshold: 0.35, minPixels: 3 });
  const countedA = await write("ca.json", (r) => {
    r.probe.figuresCounted = { generated: counted(0.8), realImages: counted(0.97) };
  });
  const countedB = await write("cb.json", (r) => {
    r.probe.figuresCounted = { generated: counted(0.9), realImages: counted(0.97) };
  });
  const pixels = collect();
  await runEval(["compare", countedA, countedB], pixels);
  assert.match(
    pixels.lines.join("\n"),
    /figures counted from the pixels right +80\.00% +90\.00% +\+10\.00 +97\.00%/,
  );
  assert.match(text, /McNemar exact p = 0\.109/); // 2 * (1 + 10 + 45) / 1024
  const same = collect();
  await runEval(["compare", a, a], same);
  assert.match(same.lines.at(-1)!, /A and B agree on all 200 captions/);

  // Lists are paired in order and pooled: (a, b) then (b, a) cancel out.
  const pooled = collect();
  const c = await evalCompare([a, b], [b, a], pooled.print);
  assert.deepEqual([c.items, c.onlyA, c.onlyB, c.difference], [400, 10, 10, 0]);
  const pooledText = pooled.lines.join("\n");
  assert.match(pooledText, /first 200 test captions x 2 result pairs, pooled/);
  assert.match(pooledText, /exact, seed 0: A 32\.50%, B 35\.50% \(\+3\.00\)/);
  assert.match(pooledText, /exact, seed 0: A 35\.50%, B 32\.50% \(-3\.00\)/);
  assert.match(
    pooledText,
    /exact: just the captioned colour-shape pairs +34\.00% +34\.00% +\+0\.00/,
  );
  assert.match(pooledText, /only A right on 10, only B on 10 of 400 caption-result pairs/);
  // A pooled side is described by each file's settings when they differ (b: another checkpoint
  // and a guided prior), by one line with the seeds in order when they agree.
  assert.match(
    pooledText,
    /A {2}.*: mixed settings: [^;]*guidance 2, seed 0; runs\/other .*seed 0, prior ddpm, prior guidance 2$/m,
  );
  const alike = collect();
  await evalCompare([a, a], [b, b], alike.print);
  assert.match(alike.lines.join("\n"), /B {2}.*runs\/other .*guidance 2, seeds 0, 0, prior ddpm/);
  await runEval(["compare", `${a},${b}`, `${b},${a}`], collect());
  await assert.rejects(
    runEval(["compare", `${a},${b}`, a]),
    oneLine(UsageError, /pairs the files of A and B in order: A has 2, B 1/),
  );

  const refusals: [string, (r: typeof base) => void, RegExp][] = [
    ["split.json", (r) => (r.split = "zeroshot"), /of the test split, .* of zeroshot/],
    ["short.json", (r) => {
      r.probe.generated.exactByImage = r.probe.generated.exactByImage.slice(0, 100);
    }, /scores 200 captions, .* 100: evaluate both with the same --limit/],
    ["probe.json", (r) => (r.probe.probe.options.steps = 1), /different probes or on different/],
    ["old.json", (r) => delete r.probe.generated.exactByImage, /no per-caption verdicts/],
    ["clip.json", (r) => (r.what = "clip"), /not an "eval pipeline" result/],
  ];
  for (const [name, edit, re] of refusals) {
    const other = await write(name, edit);
    await assert.rejects(runEval(["compare", a, other]), oneLine(UsageError, re));
    // In a list, a pair's mismatch, or a file unlike the first pair's, is refused as well.
    await assert.rejects(
      runEval(["compare", `${a},${a}`, `${a},${other}`]),
      oneLine(UsageError, re),
    );
    await assert.rejects(
      runEval(["compare", `${a},${other}`, `${a},${other}`]),
      oneLine(UsageError, re),
    );
  }
  await Deno.writeTextFile(join(dir, "bad.json"), "{");
  await assert.rejects(
    runEval(["compare", a, join(dir, "bad.json")]),
    oneLine(UsageError, /is not JSON/),
  );
  await assert.rejects(
    runEval(["compare", a, join(dir, "none.json")]),
    oneLine(UsageError, /not found/),
  );
  for (const args of [["compare", a], ["compare", a, b, "--seed", "1"]]) {
    await assert.rejects(runEval(args), oneLine(UsageError, /takes two eval pipeline JSON/));
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("runDataset() writes a split, and refuses bad flags in one line before any work", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = join(dir, "test8");
    const lines: string[] = [];
    const written = await runDataset([
      "--split",
      "test",
      "--count",
      "8",
      "--size",
      "16",
      "--out",
      out,
    ], {
      print: (l) => lines.push(l),
    });
    assert.equal(written, 8);
    const captions = (await Deno.readTextFile(join(out, "captions.jsonl"))).trim().split("\n");
    assert.equal(captions.length, 8);
    assert.ok(await Deno.stat(join(out, "00007.png")));
    assert.match(lines[0], /^Generating dataset 1, split test: 8 images of 16x16/);
    // --two-figures 1: every image has two figures (the captions name both).
    const twos = join(dir, "twos");
    await runDataset(["--count", "6", "--size", "8", "--two-figures", "1", "--out", twos], {
      print: () => {},
    });
    const twoCaptions = (await Deno.readTextFile(join(twos, "captions.jsonl"))).trim().split("\n");
    assert.equal(twoCaptions.filter((l) => l.includes(" and ")).length, 6);
    for (
      const [args, re] of [
        [["--count", "5000000000"], /--count "5000000000" must be at most 100000/],
        [["--count", "1e3"], /--count "1e3" is not an integer/],
        [["--size", "24"], /Image size "24" is not a power of two between 1 and 128/],
        [["--size-drop", "2"], /--size-drop "2" must be at most 1/],
        [["--two-figures", "1.5"], /--two-figures "1.5" must be at most 1/],
        [["--split", "zeroshot", "--two-figures", "0.7"], /--two-figures is for set 1's train/],
        [["--set", "3"], /Unknown dataset "3"; choose 1 or 2/],
        [["--out", out], /Output folder ".*test8" already exists and is not empty/],
        [["--bogus"], /Unknown flag "--bogus"; see "deno task dataset --help"/],
      ] as const
    ) {
      const given: string[] = [...args];
      const withOut = given.includes("--out") ? given : [...given, "--out", join(dir, "x")];
      await assert.rejects(runDataset(withOut, { print: () => {} }), oneLine(UsageError, re));
    }
    await assert.rejects(runDataset([]), oneLine(UsageError, /Missing --out DIR/));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("errorLine() makes one line of any error", () => {
  assert.equal(errorLine(new Error("Boom\n  at x")), "Error: Boom; at x");
  assert.equal(
    errorLine(new ConfigError(["a.json: x: bad", "a.json: y: bad"])),
    "Error: a.json: x: bad; a.json: y: bad",
  );
  assert.equal(errorLine("plain"), "Error: plain");
});

Deno.test("parseFlags() and numberFlag() parse strictly", () => {
  const { values, positionals } = parseFlags(["clip", "--n", "3"], { n: { type: "string" } }, "t");
  assert.deepEqual(positionals, ["clip"]);
  assert.equal(numberFlag(values, "n", { integer: true }), 3);
  assert.equal(numberFlag(values, "missing"), undefined);
  assert.throws(() => numberFlag({ g: "1.5" }, "g", { integer: true }), /not an integer/);
  assert.throws(() => numberFlag({ g: "-1" }, "g", { positive: true }), /must be positive/);
  assert.throws(() => parseFlags(["--n"], { n: { type: "string" } }, "t"), UsageError);
  // A negative value after its flag is the flag's value, not an "ambiguous" second flag.
  const spec = { g: { type: "string" }, q: { type: "boolean" } } as const;
  assert.deepEqual(parseFlags(["--g", "-1.5", "x"], spec, "t").values.g, "-1.5");
  assert.deepEqual(parseFlags(["--g", "-.5"], spec, "t").values.g, "-.5");
  assert.throws(() => parseFlags(["--q", "-1"], spec, "t"), /Unknown flag "-1"/);
  // An empty value is refused rather than read as "here" (`--out ""`) or as no value.
  assert.throws(
    () => parseFlags(["--g", ""], spec, "t"),
    /^UsageError: --g needs a value; see "deno task t --help"$/,
  );
});

Deno.test("--sampler-options parses KEY=VALUE lists into typed sampler options", () => {
  assert.equal(samplerOptionsFlag({}), undefined);
  assert.deepEqual(
    samplerOptionsFlag({ "sampler-options": "eta=0.5, spacing=uniform,clipDenoised=false" }),
    { eta: 0.5, spacing: "uniform", clipDenoised: false },
  );
  for (const bad of ["eta", "eta=", "=1", "eta=1,,steps=2", "1x=2"]) {
    assert.throws(
      () => samplerOptionsFlag({ "sampler-options": bad }),
      (e) => e instanceof UsageError && /is not KEY=VALUE/.test(e.message),
      bad,
    );
  }
  assert.throws(() => samplerOptionsFlag({ "sampler-options": "eta=1,eta=0" }), /given twice/);
});

Deno.test("--guidance-interval parses LO,HI fractions and rejects anything else; guidanceText names it", () => {
  assert.equal(guidanceIntervalFlag({}), undefined);
  assert.deepEqual(guidanceIntervalFlag({ "guidance-interval": "0.4, 1" }), [0.4, 1]);
  for (const bad of ["0.4", "0.4,", "1,0.4", "0.5,0.5", "-0.1,1", "0,2", "a,b", "0,0.5,1"]) {
    assert.throws(
      () => guidanceIntervalFlag({ "guidance-interval": bad }),
      (e) => e instanceof UsageError && /must be two fractions LO,HI from 0 to 1/.test(e.message),
      bad,
    );
  }
  assert.equal(guidanceText(2, [0.4, 1]), "guidance 2 over t/T 0.4-1");
  assert.equal(guidanceText(2, [0, 1]), "guidance 2", "every step: no interval to name");
  assert.equal(guidanceText(3), "guidance 3");
});

Deno.test("createSampler() applies option overrides over the config's, and checks names", async () => {
  const registry = builtins();
  const config = await loadConfig("presets/cpu32.jsonc", registry); // ddpm, 50 steps
  type WithOptions = { name: string; options: Record<string, unknown> };
  const own = await createSampler(config, registry, undefined, { clampXt: true });
  assert.deepEqual(
    [
      own.name,
      (own as unknown as WithOptions).options.steps,
      (own as unknown as WithOptions).options.clampXt,
    ],
    ["ddpm", 50, true],
  );
  // Another plugin starts from its own defaults, not the config's options.
  const ddim = await createSampler(config, registry, "ddim", { eta: 1 }) as unknown as WithOptions;
  assert.deepEqual([ddim.name, ddim.options.eta, ddim.options.steps], ["ddim", 1, undefined]);
  await assert.rejects(
    () => createSampler(config, registry, "ddim", { etta: 1 }),
    /Sampler "ddim" has no option "etta"; its options are steps, eta, clipDenoised/,
  );
  await assert.rejects(
    () => createSampler(config, registry, "ddim", { eta: "high" }),
    /Invalid options for sampler plugin "ddim": eta/,
  );
});

Deno.test("presets/thesis.jsonc holds the thesis's Appendix A settings", async () => {
  const c = await loadConfig("presets/thesis.jsonc", builtins());
  const o = (slot: keyof typeof c.components) => c.components[slot]!.options;
  assert.deepEqual(
    [
      o("textEncoder").width,
      o("textEncoder").heads,
      o("textEncoder").layers,
      o("textEncoder").embedDim,
    ],
    [64, 16, 8, 256],
  );
  assert.deepEqual([o("prior").width, o("prior").heads, o("prior").layers], [256, 16, 8]);
  assert.deepEqual(
    [
      o("decoder").channelMults,
      o("decoder").baseChannels,
      o("decoder").timeEmbedDim,
      o("decoder").heads,
    ],
    [[1, 2, 4], 64, 32, 8],
  );
  assert.deepEqual([o("decoder").textWidth, o("decoder").textLayers, o("decoder").nullRate], [
    64,
    6,
    0.2,
  ]);
  // Classifier-free guidance drops caption and CLIP together (thesis); DALL-E 2 also apart.
  assert.deepEqual(decoderDropRates(c), { both: 0.2, text: 0, clip: 0 });
  const apart = structuredClone(c);
  Object.assign(apart.components.decoder.options, {
    nullRate: 0,
    textDropRate: 0.5,
    clipDropRate: 0.1,
  });
  assert.deepEqual(decoderDropRates(apart), { both: 0, text: 0.5, clip: 0.1 });
  assert.deepEqual([o("priorSchedule").steps, o("decoderSchedule").steps], [200, 300]);
  assert.equal(c.components.priorSchedule.plugin, "cosine");
  assert.equal(o("tokenizer").contextLength, 33);
  const t = c.train;
  assert.deepEqual([t.clip.batchSize, t.clip.steps, t.clip.lr], [256, 2200, 3e-4]);
  assert.deepEqual([t.prior.batchSize, t.prior.steps, t.prior.lr], [256, 10000, 1e-2]);
  assert.deepEqual([t.decoder.batchSize, t.decoder.steps, t.decoder.lr], [64, 470000, 1e-3]);
  for (const s of [t.clip, t.prior, t.decoder]) assert.deepEqual([s.beta2, s.eps], [0.999, 1e-8]);
});
