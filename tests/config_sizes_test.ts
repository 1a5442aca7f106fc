/**
 * Sizes several components share are stated once in a config (core/config/sizes.ts): an omitted
 * dependent option takes its owner's value, a contradiction is one line naming both paths, a
 * third-party plugin only gets the sizes its schema declares, and the shipped presets resolve to
 * the configs their shipped weights were trained with.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { z } from "../core/deps.ts";
import { definePlugin, type PluginKind } from "../core/registry.ts";
import { builtins } from "../plugins/mod.ts";
import {
  ConfigError,
  diffConfigs,
  fillSharedSizes,
  parseConfig,
  parseJsonc,
  type ResolvedConfig,
  sharedSizeProblems,
  sharedSizesFor,
  validateConfig,
} from "../core/config.ts";
import { loadConfig } from "../core/config_file.ts";
import { STAGE_SLOTS } from "../core/pipeline.ts";
import { configMismatch, loadCheckpoint } from "../core/train/checkpoint.ts";
import { exists } from "../core/io/mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/**
 * Every option of `SHARED_SIZES` (`CASCADE_SIZES` with an upsampler) with the owner's value, as
 * [consumer path, value, owner value].
 */
function flows(config: ResolvedConfig): [string, unknown, unknown][] {
  return sharedSizesFor(config.components).flatMap(({ owner, consumers }) =>
    consumers.map(([slot, key]): [string, unknown, unknown] => [
      `${slot}.${key}`,
      config.components[slot]?.options[key],
      config.components[owner[0]]?.options[owner[1]],
    ])
  );
}

/** The shipped plugins with each size stated once, on its owner; `over` replaces components. */
function onceConfig(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "once",
    components: {
      tokenizer: { plugin: "bpe", options: { vocabSize: 300, contextLength: 20 } },
      textEncoder: { plugin: "transformer", options: { width: 48, heads: 4, embedDim: 40 } },
      imageEncoder: { plugin: "resnet" },
      prior: { plugin: "transformer", options: { width: 64, heads: 4 } },
      decoder: { plugin: "unet", options: { textWidth: 32, textHeads: 4 } },
      sampler: { plugin: "ddpm" },
      dataset: { plugin: "shapes", options: { imageSize: 16 } },
      ...over,
    },
  };
}

function problems(f: () => unknown): string[] {
  try {
    f();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${e}`);
    return e.problems;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("shared sizes: stated once, on the owner, each flows into every component that depends on it", () => {
  const c = parseConfig(JSON.stringify(onceConfig()), builtins(), "once.json");
  const o = (slot: keyof typeof c.components) => c.components[slot]!.options;
  assert.deepEqual(
    [o("textEncoder").contextLength, o("prior").contextLength, o("decoder").contextLength],
    [20, 20, 20],
  );
  assert.deepEqual(
    [o("imageEncoder").embedDim, o("prior").embedDim, o("decoder").clipEmbedDim],
    [40, 40, 40],
  );
  assert.equal(o("prior").textWidth, 48);
  assert.deepEqual([o("imageEncoder").imageSize, o("decoder").imageSize], [16, 16]);
  // The decoder's own text transformer width is not the CLIP text width: it stays as stated.
  assert.equal(o("decoder").textWidth, 32);
  for (const [path, value, owner] of flows(c)) assert.equal(value, owner, path);
  // An owner that omits the size passes its plugin's default on (the tokenizer's 33 tokens).
  const tokenizer = { plugin: "bpe", options: { vocabSize: 300 } };
  const d = parseConfig(JSON.stringify(onceConfig({ tokenizer })), builtins());
  assert.equal(d.components.prior.options.contextLength, 33);
  // Stating a size again with the same value is allowed (stored configs state every size).
  const again = onceConfig();
  (again.components as Record<string, { options: Record<string, unknown> }>).prior.options
    .embedDim = 40;
  assert.equal(
    parseConfig(JSON.stringify(again), builtins()).components.prior.options.embedDim,
    40,
  );
});

Deno.test("shared sizes: the raw config is not modified, and malformed parts are left to the schema", () => {
  const raw = onceConfig();
  const before = structuredClone(raw);
  const filled = fillSharedSizes(raw, builtins()) as { components: Record<string, unknown> };
  assert.deepEqual(raw, before);
  assert.deepEqual(filled.components.imageEncoder, {
    plugin: "resnet",
    options: { embedDim: 40, imageSize: 16 },
  });
  for (const odd of [null, 3, "x", { components: [] }, { components: { decoder: "unet" } }]) {
    assert.deepEqual(fillSharedSizes(odd, builtins()), odd);
  }
  // A wrong owner value is one schema error, not also a mismatch per consumer.
  const bad = onceConfig({ dataset: { plugin: "shapes", options: { imageSize: "16" } } });
  assert.deepEqual(problems(() => parseConfig(JSON.stringify(bad), builtins(), "c.json")), [
    'c.json: components.dataset.options.imageSize: expected number, got string "16"',
  ]);
});

Deno.test("shared sizes: a contradiction is one line naming both paths and values", () => {
  const cases: [string, Record<string, unknown>, string][] = [
    [
      "prior embedDim",
      { prior: { plugin: "transformer", options: { width: 64, heads: 4, embedDim: 128 } } },
      "components.prior.options.embedDim is 128 but components.textEncoder.options.embedDim is 40; both are the CLIP embedding size, so state it once (on textEncoder)",
    ],
    [
      "decoder imageSize",
      { decoder: { plugin: "unet", options: { textWidth: 32, textHeads: 4, imageSize: 32 } } },
      "components.decoder.options.imageSize is 32 but components.dataset.options.imageSize is 16; both are the image side in pixels, so state it once (on dataset)",
    ],
    [
      "against the owner's default",
      {
        tokenizer: { plugin: "bpe", options: { vocabSize: 300 } },
        textEncoder: { plugin: "transformer", options: { contextLength: 20 } },
      },
      "components.textEncoder.options.contextLength is 20 but components.tokenizer.options.contextLength is 33; both are the number of tokens per caption, so state it once (on tokenizer)",
    ],
  ];
  for (const [what, over, line] of cases) {
    const text = JSON.stringify(onceConfig(over));
    assert.deepEqual(
      problems(() => parseConfig(text, builtins(), "c.json")),
      [`c.json: ${line}`],
      what,
    );
  }
  // Checkpoints' stored configs are loaded as trained, without the cross-checks.
  const stored = onceConfig(cases[0][1]);
  const config = validateConfig(stored, builtins(), "checkpoint", { crossChecks: false });
  assert.equal(config.components.prior.options.embedDim, 128);
});

Deno.test("shared sizes: a third-party plugin only gets the sizes its schema declares", () => {
  const registry = builtins();
  const plugin = (kind: PluginKind, options: z.ZodObject) =>
    definePlugin({ kind, name: "mine", options, create: (o) => o as never });
  // A prior without the shared options: nothing is injected into its strict schema.
  registry.register(plugin("prior", z.object({ depth: z.number().default(2) }).strict()));
  const prior = { plugin: "mine" };
  const c = parseConfig(JSON.stringify(onceConfig({ prior })), registry);
  assert.deepEqual(c.components.prior.options, { depth: 2 });
  // An image encoder that declares only the image side gets that one.
  registry.register(
    plugin("imageEncoder", z.object({ imageSize: z.number().int().default(64) }).strict()),
  );
  const d = parseConfig(JSON.stringify(onceConfig({ imageEncoder: { plugin: "mine" } })), registry);
  assert.deepEqual(d.components.imageEncoder.options, { imageSize: 16 });
  // A tokenizer without contextLength: the first component that states it takes its place.
  registry.register(
    plugin("tokenizer", z.object({ vocabSize: z.number().int().default(300) }).strict()),
  );
  const e = parseConfig(
    JSON.stringify(onceConfig({
      tokenizer: { plugin: "mine" },
      textEncoder: { plugin: "transformer", options: { width: 48, heads: 4, contextLength: 12 } },
    })),
    registry,
  );
  assert.deepEqual([
    e.components.prior.options.contextLength,
    e.components.decoder.options.contextLength,
  ], [12, 12]);
  // A dataset whose default image side differs passes that default on.
  registry.register(
    plugin("dataset", z.object({ imageSize: z.number().int().default(8) }).strict()),
  );
  const f = parseConfig(JSON.stringify(onceConfig({ dataset: { plugin: "mine" } })), registry);
  assert.deepEqual([
    f.components.imageEncoder.options.imageSize,
    f.components.decoder.options.imageSize,
  ], [8, 8]);
});

Deno.test('shared sizes: an "extends" variant changes a size once and every consumer follows', async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "wide.jsonc");
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        extends: join(ROOT, "presets/tiny.jsonc"),
        name: "wide",
        components: { textEncoder: { options: { embedDim: 48 } } },
      }),
    );
    const c = await loadConfig(path, builtins());
    assert.deepEqual(
      [c.components.imageEncoder, c.components.prior, c.components.decoder].map((x) =>
        x.options.embedDim ?? x.options.clipEmbedDim
      ),
      [48, 48, 48],
    );
    assert.deepEqual(sharedSizeProblems(c), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("shipped presets state each shared size once, and every consumer resolves to its owner", async () => {
  for (const e of Deno.readDirSync(join(ROOT, "presets"))) {
    const path = join(ROOT, "presets", e.name);
    const raw = parseJsonc(await Deno.readTextFile(path), e.name) as {
      components?: Record<string, { options?: Record<string, unknown> }>;
    };
    for (const { consumers } of sharedSizesFor(raw.components)) {
      for (const [slot, key] of consumers) {
        const stated = raw.components?.[slot]?.options?.[key];
        assert.equal(stated, undefined, `${e.name}: components.${slot}.options.${key} is stated`);
      }
    }
    const c = await loadConfig(path, builtins());
    for (const [at, value, owner] of flows(c)) assert.equal(value, owner, `${e.name}: ${at}`);
  }
});

Deno.test("the experiment configs recorded in docs/results still load and resolve", async () => {
  // Each measured recipe keeps its config beside its results; a renamed or retyped option would
  // otherwise leave a documented command that no longer runs.
  const results = join(ROOT, "docs", "results");
  let checked = 0;
  for (const folder of Deno.readDirSync(results)) {
    if (!folder.isDirectory) continue;
    for (const e of Deno.readDirSync(join(results, folder.name))) {
      if (!e.name.endsWith(".jsonc")) continue;
      const c = await loadConfig(join(results, folder.name, e.name), builtins());
      assert.deepEqual(sharedSizeProblems(c), [], `${folder.name}/${e.name}`);
      checked++;
    }
  }
  assert.ok(checked >= 10, `only ${checked} configs found under docs/results`);
});

Deno.test("the GPU decoder sweep's configs load, resolve and train a decoder only", async () => {
  // tools/gpu/run.sh --sweep trains each on weights/default's CLIP and prior, on a machine where a
  // config error would cost a call of the 15 lent minutes.
  const sweep = join(ROOT, "tools", "gpu", "sweep");
  const names = [...Deno.readDirSync(sweep)].map((e) => e.name).filter((n) => n.endsWith(".jsonc"));
  assert.ok(names.length >= 4, names.join(" "));
  const base = await loadConfig(join(ROOT, "presets", "cpu32-dalle2-7k.jsonc"), builtins());
  for (const name of names) {
    const c = await loadConfig(join(sweep, name), builtins());
    assert.deepEqual(sharedSizeProblems(c), [], name);
    // The base's CLIP and prior are reused as they are: only the decoder and its training differ.
    for (const slot of ["tokenizer", "textEncoder", "imageEncoder", "prior", "dataset"] as const) {
      assert.deepEqual(c.components[slot], base.components[slot], `${name}: ${slot}`);
    }
    assert.deepEqual(c.train.clip, base.train.clip, `${name}: train.clip`);
  }
});

Deno.test("shipped presets resolve to the configs their shipped weights were trained with", async () => {
  const shipped: [string, string][] = [
    ["cpu32", "cpu32"],
    ["cpu-demo", "cpu-demo"],
    ["default", "cpu32-default"],
  ];
  for (const [weights, preset] of shipped) {
    const current = await loadConfig(join(ROOT, "presets", `${preset}.jsonc`), builtins());
    // A reranking CLIP ships where the preset trains one (train.reranker), and only there.
    const reranks = current.train.reranker !== undefined;
    assert.equal(await exists(join(ROOT, "weights", weights, "reranker")), reranks, weights);
    const stages = ["clip", ...(reranks ? ["reranker"] as const : []), "prior", "decoder"] as const;
    for (const stage of stages) {
      const dir = join(ROOT, "weights", weights, stage);
      const latest = (await Deno.readTextFile(join(dir, "latest"))).trim();
      const index = JSON.parse(
        await Deno.readTextFile(join(dir, latest, "model.safetensors.index.json")),
      );
      const stored = validateConfig(JSON.parse(index.metadata.config), builtins(), "stored", {
        crossChecks: false,
      });
      // The decoder's stored sampler is the weights' default one (loadPipeline samples with it).
      const slots = stage === "decoder"
        ? [...STAGE_SLOTS[stage], "sampler" as const]
        : STAGE_SLOTS[stage];
      for (const slot of slots) {
        assert.deepEqual(
          diffConfigs(stored.components[slot], current.components[slot]),
          [],
          `weights/${weights}/${stage}: components.${slot}`,
        );
      }
      // The reranker's training settings are the preset's (train.reranker over train.clip).
      if (stage === "reranker") {
        assert.deepEqual(configMismatch(stored, current, [], "reranker"), [], weights);
      }
      // The decoder's stored sampling defaults are what sample and eval use for the weights.
      if (stage === "decoder") {
        assert.deepEqual(stored.sampling, current.sampling, `weights/${weights}: sampling`);
      }
    }
  }
});

// weights/default's recipe as three commands (weights/default/README.md): `train all` with the
// first cycle's config, then `train decoder --init-from` the run before with the cycle config,
// twice. presets/cpu32-default.jsonc is the same in one command.
const DEFAULT_FIRST_CYCLE = "docs/results/decoder_xattn16/xattn16.jsonc";
const DEFAULT_CYCLE = "docs/results/recipe_xattn16_short/cycle_xattn16_2500.jsonc";

Deno.test("weights/default's decoder was trained by the cycle config, from a finished cycle of it", async () => {
  // The third cycle started from the second's last step (2,500), which started from the first's
  // (7,000; docs/results/recipe_xattn16_short).
  const [cycle, first] = await Promise.all(
    [DEFAULT_CYCLE, DEFAULT_FIRST_CYCLE].map((p) => loadConfig(join(ROOT, p), builtins())),
  );
  assert.deepEqual(diffConfigs(cycle.components, first.components), []);
  assert.deepEqual(cycle.sampling, first.sampling);
  const { meta } = await loadCheckpoint(join(ROOT, "weights", "default", "decoder"), "decoder");
  // (Train settings added since count as their defaults, as when a run is resumed.)
  assert.deepEqual(configMismatch(meta.config, cycle, [], "decoder"), []);
  assert.equal(meta.step, cycle.train.decoder.steps);
  assert.equal(meta.initFrom?.step, cycle.train.decoder.steps);
});

Deno.test("the one-command recipes are their three commands in one", async () => {
  // Each is its first cycle's config with two restarts, each the cycle config's schedule; every
  // other setting is the first cycle's, as it is the cycle config's (the test above).
  const recipes: [string, string, string][] = [
    ["presets/cpu32-default.jsonc", DEFAULT_FIRST_CYCLE, DEFAULT_CYCLE],
    [
      "presets/cpu32-dalle2-7k-restarts.jsonc",
      "presets/cpu32-dalle2-7k.jsonc",
      "presets/cpu32-dalle2-7k-cycle2.jsonc",
    ],
  ];
  // The sampling defaults (the decoder's sampler and `sampling`) train nothing: a preset may
  // store ones measured after its weights were trained (docs/results/default_xattn_sampling).
  const trained = ({ sampler: _, ...components }: ResolvedConfig["components"]) => components;
  for (const paths of recipes) {
    const [recipe, first, cycle] = await Promise.all(
      paths.map((p) => loadConfig(join(ROOT, p), builtins())),
    );
    const name = paths[0];
    assert.deepEqual(diffConfigs(trained(recipe.components), trained(first.components)), [], name);
    assert.deepEqual(diffConfigs(cycle.components, first.components), [], name);
    assert.deepEqual(recipe.train.clip, first.train.clip, name);
    assert.deepEqual(recipe.train.prior, first.train.prior, name);
    const { restarts, ...decoder } = recipe.train.decoder;
    assert.deepEqual({ ...decoder, restarts: [] }, first.train.decoder, name);
    const { steps, lr, warmupSteps } = cycle.train.decoder;
    assert.deepEqual(restarts, [{ steps, lr, warmupSteps }, { steps, lr, warmupSteps }], name);
    const schedule = { steps: 0, lr: 0, warmupSteps: 0, checkpointEvery: 0 };
    assert.deepEqual(
      { ...cycle.train.decoder, ...schedule },
      { ...first.train.decoder, ...schedule },
      name,
    );
  }
});
