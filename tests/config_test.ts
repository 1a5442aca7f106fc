import assert from "node:assert/strict";
import { z } from "../core/deps.ts";
import { definePlugin, type PluginKind, Registry } from "../core/registry.ts";
import { SCHEDULE_PLUGINS } from "../plugins/schedules/mod.ts";
import { builtins } from "../plugins/mod.ts";
import {
  ConfigError,
  describePlugins,
  diffConfigs,
  parseConfig,
  resolvedConfigJson,
  sharedSizeProblems,
  stripJsonc,
  validateConfig,
} from "../core/config.ts";
import { loadConfig } from "../core/config_file.ts";

/** Only the schedule plugins: the config machinery is tested apart from the shipped models. */
function schedulesOnly(): Registry {
  const r = new Registry();
  for (const def of SCHEDULE_PLUGINS) r.register(def);
  return r;
}

/** The schedules plus a stand-in plugin for every other kind. */
function testRegistry(): Registry {
  const r = schedulesOnly();
  const stub = (kind: PluginKind, name: string) =>
    definePlugin({
      kind,
      name,
      options: z.object({ width: z.number().int().positive().default(64) }).strict(),
      create: (o) => o as never, // a stand-in: its options, not a component
    });
  for (const kind of ["tokenizer", "textEncoder", "imageEncoder", "prior", "sampler", "dataset"]) {
    r.register(stub(kind as PluginKind, "basic"));
  }
  r.register(definePlugin({
    kind: "decoder",
    name: "unet",
    description: "GLIDE-style U-Net",
    options: z.object({
      channels: z.array(z.number().int().positive()).default([64, 128, 256]),
      timeEmbedDim: z.number().int().positive().default(32),
      upsample: z.enum(["transposed", "nearest"]).default("transposed"),
    }).strict(),
    create: (o) => o as never, // a stand-in: its options, not a component
  }));
  return r;
}

const basic = { plugin: "basic" };
const valid = {
  name: "test",
  components: {
    tokenizer: basic,
    textEncoder: basic,
    imageEncoder: basic,
    prior: basic,
    decoder: { plugin: "unet", options: { channels: [32, 64] } },
    sampler: basic,
    dataset: basic,
  },
};
const withDecoder = (decoder: unknown): string =>
  JSON.stringify({ ...valid, components: { ...valid.components, decoder } });

function problems(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    assert.equal(e.message, e.problems.join("\n"));
    return e.problems;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("parseConfig() fills every default", () => {
  const c = parseConfig(JSON.stringify(valid), testRegistry(), "config.json");
  assert.deepEqual(c.components.decoder, {
    plugin: "unet",
    options: { channels: [32, 64], timeEmbedDim: 32, upsample: "transposed" },
  });
  assert.deepEqual(c.components.tokenizer, { plugin: "basic", options: { width: 64 } });
  assert.deepEqual(c.components.priorSchedule, {
    plugin: "cosine",
    options: { steps: 200, s: 0.008, maxBeta: 0.999, logSnrShift: 0 },
  });
  assert.equal(c.components.decoderSchedule.options.steps, 300);
  assert.deepEqual(c.plugins, []);
  assert.equal(c.train.decoder.batchSize, 64);
  assert.equal(c.train.prior.lr, 1e-2);
  assert.equal(c.train.clip.ema, null);
  assert.equal(c.train.decoder.lrSchedule, "constant");
  // The resolved config is a fixed point.
  const again = parseConfig(resolvedConfigJson(c), testRegistry());
  assert.deepEqual(again, c);
});

Deno.test("parseConfig() reports an unknown plugin with a suggestion and the valid names", () => {
  const p = problems(() =>
    parseConfig(withDecoder({ plugin: "unte" }), testRegistry(), "config.json")
  );
  assert.deepEqual(p, [
    'config.json: components.decoder.plugin: unknown plugin "unte"; did you mean "unet"? valid: unet',
  ]);
  const q = problems(() => parseConfig(withDecoder({}), testRegistry(), "c.json"));
  assert.deepEqual(q, ["c.json: components.decoder.plugin: missing plugin name; valid: unet"]);
});

Deno.test("parseConfig() reports a misspelt option key with its path", () => {
  const p = problems(() =>
    parseConfig(
      withDecoder({ plugin: "unet", options: { chanels: [8] } }),
      testRegistry(),
      "c.json",
    )
  );
  assert.deepEqual(p, [
    'c.json: components.decoder.options.chanels: unknown key; did you mean "channels"?',
  ]);
  const top = problems(() =>
    parseConfig(JSON.stringify({ ...valid, trian: {} }), testRegistry(), "c")
  );
  assert.deepEqual(top, ['c: trian: unknown key; did you mean "train"?']);
  const stage = problems(() =>
    parseConfig(
      JSON.stringify({ ...valid, train: { prior: { batchsize: 4 } } }),
      testRegistry(),
      "c",
    )
  );
  assert.deepEqual(stage, ['c: train.prior.batchsize: unknown key; did you mean "batchSize"?']);
});

Deno.test("parseConfig() reports wrong types and values, one line each", () => {
  const text = JSON.stringify({
    ...valid,
    components: {
      ...valid.components,
      decoder: { plugin: "unet", options: { timeEmbedDim: "32", upsample: "nearst" } },
    },
    train: { decoder: { lr: -1, ema: "no" } },
  });
  const p = problems(() => parseConfig(text, testRegistry(), "c.json"));
  assert.deepEqual(p.sort(), [
    'c.json: components.decoder.options.timeEmbedDim: expected number, got string "32"',
    'c.json: components.decoder.options.upsample: expected one of "transposed", "nearest", got string "nearst"; did you mean "nearest"?',
    'c.json: train.decoder.ema: expected number, got string "no"',
    "c.json: train.decoder.lr: too small: expected number to be >0",
  ]);
  const missing = problems(() =>
    parseConfig(JSON.stringify({ components: valid.components }), testRegistry(), "c")
  );
  assert.deepEqual(missing, ["c: name: missing (expected string)"]);
});

Deno.test("parseConfig() checks extraEma: decays in (0, 1), none repeated, only beside an ema", () => {
  const withTrain = (decoder: Record<string, unknown>) =>
    problems(() =>
      parseConfig(JSON.stringify({ ...valid, train: { decoder } }), testRegistry(), "c")
    );
  const ok = parseConfig(
    JSON.stringify({ ...valid, train: { decoder: { ema: 0.999, extraEma: [0.9999, 0.99] } } }),
    testRegistry(),
  );
  assert.deepEqual(ok.train.decoder.extraEma, [0.9999, 0.99]);
  assert.deepEqual(parseConfig(JSON.stringify(valid), testRegistry()).train.prior.extraEma, []);
  assert.deepEqual(withTrain({ ema: 0.999, extraEma: [0.99, 0.999] }), [
    "c: train.decoder.extraEma[1]: 0.999 is listed twice (with `ema` or in extraEma); remove the repeat",
  ]);
  assert.deepEqual(withTrain({ ema: null, extraEma: [0.99] }), [
    "c: train.decoder.extraEma: needs `ema` set too (the EMA sampling uses); set ema or remove extraEma",
  ]);
  assert.equal(withTrain({ extraEma: [1] }).length, 1);
  assert.match(withTrain({ extraEma: [1] })[0], /^c: train\.decoder\.extraEma\[0\]: too big/);
  assert.match(withTrain({ extraEma: 0.99 })[0], /^c: train\.decoder\.extraEma: expected array/);
  // CLIP samples with its trained weights: further averages of it would never be used.
  const clip = problems(() =>
    parseConfig(
      JSON.stringify({ ...valid, train: { clip: { ema: 0.9, extraEma: [0.99] } } }),
      testRegistry(),
      "c",
    )
  );
  assert.equal(clip.length, 1);
  assert.match(clip[0], /^c: train\.clip\.extraEma: CLIP samples .* remove it$/);
  // Hard-negative captions are a CLIP loss: any other stage is told so.
  const hard = problems(() =>
    parseConfig(
      JSON.stringify({ ...valid, train: { decoder: { hardNegatives: true } } }),
      testRegistry(),
      "c",
    )
  );
  assert.deepEqual(hard.length, 1);
  assert.match(hard[0], /^c: train\.decoder\.hardNegatives: only CLIP trains on hard-negative/);
  const on = parseConfig(
    JSON.stringify({ ...valid, train: { clip: { hardNegatives: true } } }),
    testRegistry(),
    "c",
  );
  assert.equal(on.train.clip.hardNegatives, true);
  assert.equal(on.train.decoder.hardNegatives, false);
  // Grain is CLIP's augmentation only, and a standard deviation in [0, 1].
  const grained = (train: Record<string, unknown>) =>
    problems(() => parseConfig(JSON.stringify({ ...valid, train }), testRegistry(), "c"));
  const prior = grained({ prior: { grain: 0.1 } });
  assert.equal(prior.length, 1);
  assert.match(prior[0], /^c: train\.prior\.grain: only CLIP trains on grained images/);
  assert.match(grained({ clip: { grain: -0.1 } })[0], /^c: train\.clip\.grain: too small/);
  assert.match(grained({ clip: { grain: 2 } })[0], /^c: train\.clip\.grain: too big/);
  const grain = parseConfig(
    JSON.stringify({ ...valid, train: { clip: { grain: 0.1 } } }),
    testRegistry(),
    "c",
  );
  assert.equal(grain.train.clip.grain, 0.1);
  assert.equal(grain.train.decoder.grain, 0);
});

Deno.test("parseConfig() says when a kind has no plugins", () => {
  const p = problems(() => parseConfig(JSON.stringify(valid), schedulesOnly(), "c"));
  assert.ok(
    p.some((l) => l.startsWith("c: components.tokenizer: no tokenizer plugins are registered")),
  );
});

Deno.test("parseConfig() accepts JSONC comments and trailing commas", () => {
  const text = `// a comment
  {
    "name": "jsonc", /* inline, with a "quote" */
    "components": {
      "tokenizer": { "plugin": "basic" },
      "textEncoder": { "plugin": "basic", },
      "imageEncoder": { "plugin": "basic" },
      "prior": { "plugin": "basic" },
      "decoder": { "plugin": "unet", "options": { "channels": [1, 2,], } }, // trailing
      "priorSchedule": { "plugin": "linear", "options": { "steps": 100 } },
      "sampler": { "plugin": "basic" },
      "dataset": { "plugin": "basic", "options": { "width": 3 } },
    },
    "train": { "decoder": { "note//not a comment": 1 } },
  }`;
  const p = problems(() => parseConfig(text, testRegistry(), "c.jsonc"));
  assert.deepEqual(p, [
    "c.jsonc: train.decoder.note//not a comment: unknown key; valid keys: batchSize, steps, lr, warmupSteps, lrSchedule, restarts, ema, emaWarmup, extraEma, hardNegatives, grain, gradClip, weightDecay, beta1, beta2, eps, seed, checkpointEvery, keepLast, logEvery",
  ]);
  const c = parseConfig(text.replace(`"note//not a comment": 1`, `"steps": 7`), testRegistry());
  assert.deepEqual(c.components.decoder.options.channels, [1, 2]);
  assert.equal(c.components.priorSchedule.plugin, "linear");
  assert.equal(c.components.dataset.options.width, 3);
  assert.equal(c.train.decoder.steps, 7);
  assert.equal(stripJsonc('{"a": "x,]"}'), '{"a": "x,]"}');
  assert.match(
    problems(() => parseConfig('{\n  "name": \n}', testRegistry(), "bad.json"))[0],
    /^bad\.json: invalid JSON/,
  );
});

Deno.test("loadConfig() registers a third-party plugin module named in plugins", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const deps = new URL("../core/deps.ts", import.meta.url).href;
    await Deno.writeTextFile(
      `${dir}/my_schedule.ts`,
      `import { z } from "${deps}";
export const sqrtSchedule = {
  kind: "schedule",
  name: "sqrt",
  description: "A third-party schedule",
  options: z.object({ steps: z.number().int().positive().default(77), power: z.number().default(0.5) }).strict(),
  create: (o) => o,
};
export const unrelated = 42;
`,
    );
    const config = {
      ...valid,
      plugins: ["./my_schedule.ts"],
      components: { ...valid.components, decoderSchedule: { plugin: "sqrt" } },
    };
    await Deno.writeTextFile(`${dir}/config.jsonc`, JSON.stringify(config));
    const registry = testRegistry();
    const c = await loadConfig(`${dir}/config.jsonc`, registry);
    assert.deepEqual(c.components.decoderSchedule, {
      plugin: "sqrt",
      options: { steps: 77, power: 0.5 },
    });
    assert.ok(registry.has("schedule", "sqrt"));
    // Loading again into the same registry is harmless.
    await loadConfig(`${dir}/config.jsonc`, registry);
    // The plugin's options are validated like any other.
    config.components.decoderSchedule = { plugin: "sqrt", options: { pwoer: 2 } } as never;
    await Deno.writeTextFile(`${dir}/bad.json`, JSON.stringify(config));
    await assert.rejects(() => loadConfig(`${dir}/bad.json`, testRegistry()), {
      message:
        `${dir}/bad.json: components.decoderSchedule.options.pwoer: unknown key; did you mean "power"?`,
    });
    await assert.rejects(
      () => loadConfig(`${dir}/missing.json`, testRegistry()),
      /config file not found/,
    );
    await Deno.writeTextFile(
      `${dir}/nomod.json`,
      JSON.stringify({ ...valid, plugins: ["./nope.ts"] }),
    );
    await assert.rejects(
      () => loadConfig(`${dir}/nomod.json`, testRegistry()),
      (e: Error) =>
        e instanceof ConfigError && e.message.includes("plugins[0]") &&
        e.message.includes("--allow-import"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("describePlugins() lists every plugin with its defaults", () => {
  const r = testRegistry();
  const text = describePlugins(r);
  for (const def of r.list()) {
    assert.ok(text.includes(`${def.kind}/${def.name}`), `${def.kind}/${def.name}`);
    const defaults = def.options.parse({}) as Record<string, unknown>;
    for (const [key, value] of Object.entries(defaults)) {
      assert.ok(
        text.includes(`${key}: `) && text.includes(`= ${JSON.stringify(value)}`),
        `${def.name}.${key}`,
      );
    }
  }
  assert.ok(text.includes("steps: integer = 1000  Number of diffusion steps T"));
  assert.ok(text.includes('upsample: "transposed" | "nearest" = "transposed"'));
});

Deno.test("diffConfigs() lists the dotted paths that differ", () => {
  const a = parseConfig(JSON.stringify(valid), testRegistry());
  const b = parseConfig(
    withDecoder({ plugin: "unet", options: { channels: [32, 128, 256] } }),
    testRegistry(),
  );
  assert.deepEqual(diffConfigs(a, a), []);
  assert.deepEqual(diffConfigs(a, b), [
    "components.decoder.options.channels[1]",
    "components.decoder.options.channels[2]",
  ]);
  assert.deepEqual(diffConfigs({ x: 1 }, { y: 1 }), ["x", "y"]);
});

Deno.test("parseConfig(): Adam's eps is bounded to 1e-12..1 (1e-300 gives NaN updates)", () => {
  for (const eps of [1e-300, 0, 2]) {
    const text = JSON.stringify({ ...valid, train: { prior: { eps } } });
    const p = problems(() => parseConfig(text, testRegistry(), "c.json"));
    assert.equal(p.length, 1, p.join("\n"));
    assert.match(p[0], /^c\.json: train\.prior\.eps: too (small|big)/);
  }
  const ok = parseConfig(
    JSON.stringify({ ...valid, train: { prior: { eps: 1e-12 } } }),
    testRegistry(),
  );
  assert.equal(ok.train.prior.eps, 1e-12);
});

// Sizes shared between components (issue: cross-component sizes were not checked).

const ROOT = new URL("..", import.meta.url).pathname;

/** A config as plain JSON, editable by path. */
type Json = { components: Record<string, { options: Record<string, unknown> }> };

/** The tiny preset as plain JSON, edited by `edit`, written to a temporary file. */
async function editedTiny(dir: string, edit: (c: Json) => void): Promise<string> {
  const c = structuredClone(await loadConfig(`${ROOT}presets/tiny.jsonc`, builtins()));
  edit(c as never);
  const path = `${dir}/config.json`;
  await Deno.writeTextFile(path, JSON.stringify(c));
  return path;
}

Deno.test("loadConfig(): every shipped preset passes the shared-size checks", async () => {
  for (const e of Deno.readDirSync(`${ROOT}presets`)) {
    const c = await loadConfig(`${ROOT}presets/${e.name}`, builtins());
    assert.deepEqual(sharedSizeProblems(c), [], e.name);
  }
});

Deno.test("loadConfig(): sizes shared by components must agree, one line naming both paths", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cases: [string, (c: Json) => void, string[]][] = [
      ["decoder imageSize 32, dataset 16", (c) => c.components.decoder.options.imageSize = 32, [
        "components.decoder.options.imageSize is 32 but components.dataset.options.imageSize is 16; both are the image side in pixels, so state it once (on dataset)",
      ]],
      ["imageEncoder imageSize", (c) => c.components.imageEncoder.options.imageSize = 32, [
        "components.imageEncoder.options.imageSize is 32 but components.dataset.options.imageSize is 16; both are the image side in pixels, so state it once (on dataset)",
      ]],
      ["textEncoder contextLength", (c) => c.components.textEncoder.options.contextLength = 16, [
        "components.textEncoder.options.contextLength is 16 but components.tokenizer.options.contextLength is 33; both are the number of tokens per caption, so state it once (on tokenizer)",
      ]],
      ["prior and decoder contextLength", (c) => {
        c.components.prior.options.contextLength = 40;
        c.components.decoder.options.contextLength = 20;
      }, [
        "components.prior.options.contextLength is 40 but components.tokenizer.options.contextLength is 33; both are the number of tokens per caption, so state it once (on tokenizer)",
        "components.decoder.options.contextLength is 20 but components.tokenizer.options.contextLength is 33; both are the number of tokens per caption, so state it once (on tokenizer)",
      ]],
      ["CLIP embedding size", (c) => {
        c.components.imageEncoder.options.embedDim = 64;
        c.components.prior.options.embedDim = 16;
        c.components.decoder.options.clipEmbedDim = 8;
      }, [
        "components.imageEncoder.options.embedDim is 64 but components.textEncoder.options.embedDim is 32; both are the CLIP embedding size, so state it once (on textEncoder)",
        "components.prior.options.embedDim is 16 but components.textEncoder.options.embedDim is 32; both are the CLIP embedding size, so state it once (on textEncoder)",
        "components.decoder.options.clipEmbedDim is 8 but components.textEncoder.options.embedDim is 32; both are the CLIP embedding size, so state it once (on textEncoder)",
      ]],
      ["text width", (c) => c.components.prior.options.textWidth = 64, [
        "components.prior.options.textWidth is 64 but components.textEncoder.options.width is 32; both are the width of the CLIP text encoding, so state it once (on textEncoder)",
      ]],
      // Checked by the plugins' own schemas, at load rather than when their stage starts.
      ["attention level beyond the levels", (c) => {
        c.components.decoder.options.attentionLevels = [1, 5];
      }, [
        "components.decoder.options.attentionLevels[1]: level 5 does not exist: channelMults has 2 levels (0 to 1)",
      ]],
      ["decoder imageSize 15", (c) => {
        for (const slot of ["dataset", "imageEncoder", "decoder"]) {
          c.components[slot].options.imageSize = 15;
        }
      }, [
        "components.decoder.options.imageSize: 15 is not divisible by 2: channelMults has 2 levels and each level below the first halves the image",
      ]],
      ["decoder heads", (c) => c.components.decoder.options.heads = 3, [
        "components.decoder.options.heads: 3 heads do not divide the 32 channels of level 1",
      ]],
      ["decoder text heads", (c) => c.components.decoder.options.textHeads = 3, [
        "components.decoder.options.textHeads: 3 heads do not divide textWidth 32",
      ]],
      ["caption dropped alone from a CLIP-only decoder", (c) => {
        c.components.decoder.options.conditioning = "clip";
        c.components.decoder.options.textDropRate = 0.5;
        c.components.decoder.options.clipToTime = true;
      }, [
        'components.decoder.options.textDropRate: needs conditioning "clip+text" (it is "clip"); use nullRate',
        'components.decoder.options.clipToTime: needs conditioning "clip+text" (it is "clip")',
      ]],
      ["prior heads", (c) => c.components.prior.options.heads = 3, [
        "components.prior.options.heads: heads must divide width",
      ]],
    ];
    for (const [what, edit, lines] of cases) {
      const path = await editedTiny(dir, edit);
      await assert.rejects(loadConfig(path, builtins()), (e: unknown) => {
        assert.ok(e instanceof ConfigError, `${what}: ${e}`);
        assert.deepEqual(e.problems, lines.map((l) => `${path}: ${l}`), what);
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shared sizes: only options a plugin has are compared; stored configs are not re-checked", () => {
  const r = testRegistry();
  const sized = (kind: PluginKind) =>
    definePlugin({
      kind,
      name: "sized",
      options: z.object({ imageSize: z.number().int().positive().default(16) }).strict(),
      create: (o) => o as never, // a stand-in: its options, not a component
    });
  r.register(sized("dataset"));
  r.register(sized("imageEncoder"));
  // The stand-ins have none of the shared options (their "width" is not a textEncoder width
  // compared with anything): nothing to compare, as for most third-party plugins.
  const c = { ...valid, components: { ...valid.components, dataset: { plugin: "sized" } } };
  assert.equal(parseConfig(JSON.stringify(c), r).components.dataset.options.imageSize, 16);
  const both = {
    ...c,
    components: {
      ...c.components,
      imageEncoder: { plugin: "sized", options: { imageSize: 32 } },
    },
  };
  assert.deepEqual(problems(() => parseConfig(JSON.stringify(both), r, "c.json")), [
    "c.json: components.imageEncoder.options.imageSize is 32 but components.dataset.options.imageSize is 16; both are the image side in pixels, so state it once (on dataset)",
  ]);
  // A checkpoint's stored config is loaded as trained (runs from before the checks keep loading).
  const stored = validateConfig(both, r, "checkpoint", { crossChecks: false });
  assert.equal(stored.components.imageEncoder.options.imageSize, 32);
});

Deno.test('loadConfig(): "extends" lays a variant over its base; bad bases are one-line errors', async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The shipped binding variants: only the decoder's conditioning (and the name) differ.
    const base = await loadConfig(`${ROOT}presets/cpu32.jsonc`, builtins());
    const clipOnly = await loadConfig(`${ROOT}presets/cpu32-clip-only.jsonc`, builtins());
    assert.equal(clipOnly.name, "cpu32-clip-only");
    assert.equal(clipOnly.components.decoder.options.conditioning, "clip");
    assert.deepEqual(
      { ...clipOnly.components.decoder.options, conditioning: "clip+text" },
      base.components.decoder.options,
    );
    assert.deepEqual(clipOnly.train, base.train);
    assert.deepEqual(clipOnly.components.imageEncoder, base.components.imageEncoder);
    // Objects merge, arrays and numbers replace; chains work relative to each file.
    await Deno.mkdir(`${dir}/sub`);
    await Deno.writeTextFile(
      `${dir}/sub/a.jsonc`,
      JSON.stringify({
        extends: `${ROOT}presets/tiny.jsonc`,
        components: { decoder: { options: { channelMults: [1, 2] } } },
      }),
    );
    await Deno.writeTextFile(
      `${dir}/b.jsonc`,
      `// a comment\n{ "extends": "sub/a.jsonc", "name": "b", "train": { "clip": { "steps": 7 } } }`,
    );
    const b = await loadConfig(`${dir}/b.jsonc`, builtins());
    assert.equal(b.name, "b");
    assert.deepEqual(b.components.decoder.options.channelMults, [1, 2]);
    assert.equal(b.train.clip.steps, 7);
    assert.equal(
      b.train.clip.batchSize,
      (await loadConfig(`${ROOT}presets/tiny.jsonc`, builtins())).train.clip.batchSize,
    );
    // A missing base, a cycle, a non-string: one line naming the file and the fix.
    await Deno.writeTextFile(`${dir}/missing.jsonc`, `{ "extends": "nope.jsonc" }`);
    await assert.rejects(
      loadConfig(`${dir}/missing.jsonc`, builtins()),
      (e: Error) =>
        /nope\.jsonc: config file not found \(extended by .*missing\.jsonc\)/.test(e.message),
    );
    await Deno.writeTextFile(`${dir}/x.jsonc`, `{ "extends": "y.jsonc" }`);
    await Deno.writeTextFile(`${dir}/y.jsonc`, `{ "extends": "x.jsonc" }`);
    await assert.rejects(loadConfig(`${dir}/x.jsonc`, builtins()), /"extends" makes a cycle/);
    await Deno.writeTextFile(`${dir}/n.jsonc`, `{ "extends": 3 }`);
    await assert.rejects(
      loadConfig(`${dir}/n.jsonc`, builtins()),
      /"extends" must be the path of another config file/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseConfig() fills sampling.guidance (2) and sampling.rerank (1) and checks them", () => {
  const withSampling = (sampling: unknown) =>
    problems(() => parseConfig(JSON.stringify({ ...valid, sampling }), testRegistry(), "c"));
  assert.deepEqual(parseConfig(JSON.stringify(valid), testRegistry()).sampling, {
    guidance: 2,
    rerank: 1,
  });
  const set = parseConfig(
    JSON.stringify({ ...valid, sampling: { guidance: 2.5, rerank: 3 } }),
    testRegistry(),
  );
  assert.deepEqual(set.sampling, { guidance: 2.5, rerank: 3 });
  assert.match(withSampling({ rerank: 0 })[0], /^c: sampling\.rerank: too small/);
  assert.match(withSampling({ rerank: 1.5 })[0], /^c: sampling\.rerank: expected int/);
  assert.match(withSampling({ rerank: 65 })[0], /^c: sampling\.rerank: too big/);
  assert.equal(withSampling({ guidance: -1 }).length, 1);
  assert.match(withSampling({ guidance: -1 })[0], /^c: sampling\.guidance: too small/);
  assert.match(withSampling({ guidance: "2" })[0], /^c: sampling\.guidance: expected number/);
  assert.deepEqual(withSampling({ guidanse: 2 }), [
    'c: sampling.guidanse: unknown key; did you mean "guidance"?',
  ]);
});
