/**
 * Configs: JSONC files validated by a zod schema assembled from the plugin registry, with
 * one-line errors that point at the offending path and suggest the nearest valid name.
 *
 * @module
 */
import { resolveModuleUrl } from "./io/paths.ts";
import { z } from "./deps.ts";
import {
  isPluginDefinition,
  nearestName,
  type PluginDefinition,
  type PluginKind,
  type Registry,
} from "./registry.ts";

/** A problem a user can fix in their config. `message` holds one line per problem. */
export class ConfigError extends Error {
  /** One line per problem, each already prefixed with the source name. */
  readonly problems: string[];

  /**
   * @example
   * ```ts
   * throw new ConfigError(["config.json: name: missing (expected string)"]);
   * ```
   */
  constructor(problems: string | string[]) {
    const list = typeof problems === "string" ? [problems] : problems;
    super(list.join("\n"));
    this.name = "ConfigError";
    this.problems = list;
  }
}

/** The component slots of a config and the plugin kind each takes. */
export const COMPONENT_SLOTS = {
  tokenizer: "tokenizer",
  textEncoder: "textEncoder",
  imageEncoder: "imageEncoder",
  prior: "prior",
  decoder: "decoder",
  priorSchedule: "schedule",
  decoderSchedule: "schedule",
  sampler: "sampler",
  dataset: "dataset",
} as const satisfies Record<string, PluginKind>;

/** A key of `components`. */
export type ComponentSlot = keyof typeof COMPONENT_SLOTS;

/** A resolved component: the plugin name and its full options (defaults filled). */
export interface ComponentConfig {
  plugin: string;
  options: Record<string, unknown>;
}

/** Hyperparameters of one training stage. */
export interface TrainStageConfig {
  batchSize: number;
  steps: number;
  lr: number;
  warmupSteps: number;
  lrSchedule: "constant" | "cosine";
  /** EMA decay of the weights, or null for no EMA. */
  ema: number | null;
  /** Global gradient-norm clip, or null for none. */
  gradClip: number | null;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  seed: number;
  checkpointEvery: number;
  keepLast: number;
  logEvery: number;
}

/** The training stages. */
export type TrainStage = "clip" | "prior" | "decoder";

/** A fully resolved config, as returned by `parseConfig` and `loadConfig`. */
export interface ResolvedConfig {
  $schema?: string;
  name: string;
  plugins: string[];
  components: Record<ComponentSlot, ComponentConfig>;
  train: Record<TrainStage, TrainStageConfig>;
}

const COMMON_TRAIN = {
  warmupSteps: 0,
  lrSchedule: "constant",
  gradClip: 1,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  seed: 0,
  keepLast: 3,
  logEvery: 50,
} as const;

/** Per-stage training defaults (the thesis's Appendix A). */
export const TRAIN_DEFAULTS: Readonly<Record<TrainStage, TrainStageConfig>> = {
  clip: { ...COMMON_TRAIN, batchSize: 256, steps: 2200, lr: 3e-4, ema: null, checkpointEvery: 500 },
  prior: {
    ...COMMON_TRAIN,
    batchSize: 256,
    steps: 10000,
    lr: 1e-2,
    ema: 0.9999,
    checkpointEvery: 1000,
  },
  decoder: {
    ...COMMON_TRAIN,
    batchSize: 64,
    steps: 470000,
    lr: 1e-3,
    ema: 0.9999,
    checkpointEvery: 5000,
  },
};

/**
 * What a config `name` may be: it names the default run folder `runs/<name>`, so it must stay one
 * plain folder name (a name like "../../escape" would write outside the project). 1 to 64
 * letters, digits, ".", "_" and "-", starting with a letter or digit, without "..".
 */
export const CONFIG_NAME: RegExp = /^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Schedule slots default to the thesis's cosine schedules (200 prior, 300 decoder steps). */
const SLOT_DEFAULTS: Partial<Record<ComponentSlot, ComponentConfig>> = {
  priorSchedule: { plugin: "cosine", options: { steps: 200 } },
  decoderSchedule: { plugin: "cosine", options: { steps: 300 } },
};

function trainStageSchema(d: TrainStageConfig): z.ZodType {
  const int = z.number().int();
  return z.object({
    batchSize: int.positive().default(d.batchSize),
    steps: int.positive().default(d.steps),
    lr: z.number().positive().default(d.lr),
    warmupSteps: int.nonnegative().default(d.warmupSteps),
    lrSchedule: z.enum(["constant", "cosine"]).default(d.lrSchedule),
    ema: z.number().gt(0).lt(1).nullable().default(d.ema)
      .describe("EMA decay of the weights used for sampling (with warmup), or null"),
    gradClip: z.number().positive().nullable().default(d.gradClip),
    weightDecay: z.number().nonnegative().default(d.weightDecay)
      .describe("AdamW's decoupled weight decay (applied to every parameter)"),
    beta1: z.number().gte(0).lt(1).default(d.beta1),
    beta2: z.number().gte(0).lt(1).default(d.beta2),
    eps: z.number().min(1e-12).max(1).default(d.eps)
      .describe("Adam's epsilon, 1e-12 to 1 (smaller values underflow to NaN updates)"),
    seed: int.nonnegative().default(d.seed),
    checkpointEvery: int.positive().default(d.checkpointEvery),
    keepLast: int.positive().default(d.keepLast),
    logEvery: int.positive().default(d.logEvery),
  }).strict().prefault({});
}

function componentSchema(registry: Registry, kind: PluginKind): z.ZodType {
  const defs = registry.list(kind);
  if (defs.length === 0) {
    return z.unknown().superRefine((_, ctx) => {
      ctx.addIssue({
        code: "custom",
        message: `no ${kind} plugins are registered; name a module that defines one in "plugins"`,
      });
    });
  }
  const options = defs.map((def) =>
    z.object({
      plugin: z.literal(def.name),
      options: def.options.prefault({} as never),
    }).strict()
  );
  return z.discriminatedUnion("plugin", options as unknown as [z.ZodObject, ...z.ZodObject[]]);
}

/**
 * The config schema for the plugins in `registry`: per component slot, a discriminated union on
 * `plugin` over the registered plugins of its kind, each with its strict options schema.
 *
 * @example
 * ```ts
 * // const result = configSchema(builtins()).safeParse(JSON.parse(text));
 * ```
 */
export function configSchema(registry: Registry): z.ZodType {
  const components: Record<string, z.ZodType> = {};
  for (const [slot, kind] of Object.entries(COMPONENT_SLOTS)) {
    let schema = componentSchema(registry, kind);
    const fallback = SLOT_DEFAULTS[slot as ComponentSlot];
    if (fallback && registry.has(kind, fallback.plugin)) schema = schema.prefault(fallback);
    components[slot] = schema;
  }
  return z.object({
    $schema: z.string().optional(),
    name: z.string().regex(CONFIG_NAME, {
      error: (issue) =>
        `${JSON.stringify(issue.input)} is not a safe run-folder name (it names runs/<name>); ` +
        `use 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit, without ".."`,
    }),
    plugins: z.array(z.string().min(1)).default([]),
    components: z.object(components).strict(),
    train: z.object({
      clip: trainStageSchema(TRAIN_DEFAULTS.clip),
      prior: trainStageSchema(TRAIN_DEFAULTS.prior),
      decoder: trainStageSchema(TRAIN_DEFAULTS.decoder),
    }).strict().prefault({} as never),
  }).strict();
}

/**
 * A JSON Schema of the config for editors (`"$schema"` in a config file).
 *
 * @example
 * ```ts
 * // await Deno.writeTextFile("config.schema.json", JSON.stringify(configJsonSchema(builtins())));
 * ```
 */
export function configJsonSchema(registry: Registry): Record<string, unknown> {
  return z.toJSONSchema(configSchema(registry), { io: "input", unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
}

// ---------------------------------------------------------------------------------------------
// JSONC

/**
 * JSON with comments (`//`, `/* *\/`) and trailing commas, turned into plain JSON. Comments and
 * removed commas become spaces, so line and column numbers are unchanged.
 *
 * @example
 * ```ts
 * JSON.parse(stripJsonc('{ "a": 1, // one\n }')); // { a: 1 }
 * ```
 */
export function stripJsonc(text: string): string {
  const out = text.split("");
  const n = text.length;
  let i = 0;
  let lastComma = -1; // index of a comma that may turn out to be trailing
  while (i < n) {
    const c = text[i];
    if (c === '"') {
      lastComma = -1;
      i++;
      while (i < n && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      i++;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < n && text[i] !== "\n") out[i++] = " ";
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      const stop = end < 0 ? n : end + 2;
      for (; i < stop; i++) if (text[i] !== "\n") out[i] = " ";
    } else {
      if (c === ",") lastComma = i;
      else if ((c === "}" || c === "]") && lastComma >= 0) out[lastComma] = " ";
      if (!/\s/.test(c) && c !== ",") lastComma = -1;
      i++;
    }
  }
  return out.join("");
}

/**
 * Parses JSONC text; a syntax error becomes a `ConfigError` with the line and column.
 *
 * @example
 * ```ts
 * parseJsonc("{ /* c *\/ \"a\": [1, 2,], }", "x.jsonc"); // { a: [1, 2] }
 * ```
 */
export function parseJsonc(text: string, sourceName = "config"): unknown {
  const plain = stripJsonc(text);
  try {
    return JSON.parse(plain);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const pos = /position (\d+)/.exec(message);
    let where = "";
    if (pos) {
      const before = plain.slice(0, Number(pos[1])).split("\n");
      where = ` at line ${before.length}, column ${before[before.length - 1].length + 1}`;
    }
    throw new ConfigError(`${sourceName}: invalid JSON${where}: ${message.split("\n")[0]}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Validation and error messages

interface AnyDef {
  type: string;
  innerType?: unknown;
  in?: unknown;
  shape?: Record<string, unknown>;
  options?: unknown[];
  discriminator?: string;
  element?: unknown;
  valueType?: unknown;
  values?: unknown[];
}

function defOf(schema: unknown): AnyDef | undefined {
  return (schema as { _zod?: { def?: AnyDef } } | undefined)?._zod?.def;
}

const WRAPPERS = new Set(["default", "prefault", "optional", "nullable", "readonly", "catch"]);

/** Strips wrappers and picks the discriminated-union branch that `value` selects. */
function unwrap(schema: unknown, value: unknown): unknown {
  for (let guard = 0; guard < 32; guard++) {
    const def = defOf(schema);
    if (!def) return undefined;
    if (WRAPPERS.has(def.type)) schema = def.innerType;
    else if (def.type === "pipe") schema = def.in;
    else if (def.type === "union" && def.discriminator) {
      const key = (value as Record<string, unknown> | undefined)?.[def.discriminator];
      schema = def.options?.find((o) =>
        defOf(defOf(o)?.shape?.[def.discriminator!])?.values?.includes(key)
      );
    } else return schema;
  }
  return schema;
}

function schemaAt(root: unknown, path: readonly PropertyKey[], input: unknown): unknown {
  let schema: unknown = root;
  let value = input;
  for (const seg of path) {
    const def = defOf(unwrap(schema, value));
    if (def?.type === "object") schema = def.shape?.[String(seg)];
    else if (def?.type === "array") schema = def.element;
    else if (def?.type === "record") schema = def.valueType;
    else return undefined;
    value = (value as Record<PropertyKey, unknown> | undefined)?.[seg];
  }
  return unwrap(schema, value);
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const seg of path) v = (v as Record<PropertyKey, unknown> | undefined)?.[seg];
  return v;
}

function pathString(path: readonly PropertyKey[]): string {
  let s = "";
  for (const seg of path) {
    s += typeof seg === "number" ? `[${seg}]` : (s ? "." : "") + String(seg);
  }
  return s;
}

function show(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  const json = JSON.stringify(value) ?? String(value);
  return `${typeof value} ${json.length > 40 ? json.slice(0, 37) + "..." : json}`;
}

function suggest(name: unknown, valid: readonly string[]): string {
  const near = typeof name === "string" ? nearestName(name, valid) : undefined;
  return near ? `; did you mean "${near}"?` : "";
}

function issueLines(issue: z.core.$ZodIssue, input: unknown, schema: z.ZodType): string[] {
  const path = issue.path;
  const p = pathString(path);
  const at = (s: string): string => (p ? `${p}: ${s}` : s);
  const value = valueAt(input, path);
  switch (issue.code) {
    case "invalid_union": {
      const disc = (issue as { discriminator?: string }).discriminator;
      const options = ((issue as { options?: unknown[] }).options ?? []).map(String);
      if (disc !== undefined) {
        const valid = `valid: ${options.join(", ")}`;
        if (value === undefined) return [at(`missing plugin name; ${valid}`)];
        return [at(`unknown plugin ${JSON.stringify(value)}${suggest(value, options)} ${valid}`)];
      }
      return [at(issue.message)];
    }
    case "unrecognized_keys": {
      const keys = Object.keys(defOf(schemaAt(schema, path, input))?.shape ?? {});
      return issue.keys.map((key) => {
        const near = nearestName(key, keys);
        const hint = near
          ? `did you mean "${near}"?`
          : keys.length
          ? `valid keys: ${keys.join(", ")}`
          : "no keys are allowed here";
        return `${pathString([...path, key])}: unknown key; ${hint}`;
      });
    }
    case "invalid_type":
      return [
        at(
          value === undefined
            ? `missing (expected ${issue.expected})`
            : `expected ${issue.expected}, got ${show(value)}`,
        ),
      ];
    case "invalid_value": {
      const values = issue.values.map((v) => JSON.stringify(v));
      const strings = issue.values.filter((v): v is string => typeof v === "string");
      return [
        at(`expected one of ${values.join(", ")}, got ${show(value)}${suggest(value, strings)}`),
      ];
    }
    default: {
      const m = issue.message;
      return [at(m.charAt(0).toLowerCase() + m.slice(1))];
    }
  }
}

/**
 * Sizes that several components must agree on, as [slot, option] pairs. Each plugin checks its
 * own options, but nothing else sees across components: a decoder imageSize 32 with a dataset
 * imageSize 16 trained on 16x16 images and sampled 32x32 ones, and a textEncoder contextLength
 * differing from the tokenizer's was silently overridden. Options a plugin does not have are
 * skipped, so third-party plugins with other options are not constrained.
 */
export const SHARED_SIZES: readonly {
  what: string;
  at: readonly (readonly [ComponentSlot, string])[];
}[] = [
  {
    what: "number of tokens per caption",
    at: [
      ["tokenizer", "contextLength"],
      ["textEncoder", "contextLength"],
      ["prior", "contextLength"],
      ["decoder", "contextLength"],
    ],
  },
  {
    what: "CLIP embedding size",
    at: [
      ["textEncoder", "embedDim"],
      ["imageEncoder", "embedDim"],
      ["prior", "embedDim"],
      ["decoder", "clipEmbedDim"],
    ],
  },
  // The prior reads the CLIP text encoding [B, T, W]. (The decoder's textWidth is the width of
  // its own text transformer, which reads tokens, so it is free.)
  {
    what: "width of the CLIP text encoding",
    at: [["textEncoder", "width"], ["prior", "textWidth"]],
  },
  {
    what: "image side in pixels",
    at: [["dataset", "imageSize"], ["imageEncoder", "imageSize"], ["decoder", "imageSize"]],
  },
];

/**
 * One line per `SHARED_SIZES` mismatch: each option present compared with the first present
 * one of its group, e.g. `components.decoder.options.imageSize (32) must equal
 * components.dataset.options.imageSize (16); both are the image side in pixels`.
 *
 * @example
 * ```ts
 * sharedSizeProblems(config); // [] for every shipped preset
 * ```
 */
export function sharedSizeProblems(config: ResolvedConfig): string[] {
  const lines: string[] = [];
  for (const { what, at } of SHARED_SIZES) {
    const present = at.flatMap(([slot, key]) => {
      const value = config.components[slot]?.options?.[key];
      return typeof value === "number"
        ? [{ path: `components.${slot}.options.${key}`, value }]
        : [];
    });
    const ref = present[0];
    for (const p of present.slice(1)) {
      if (p.value === ref.value) continue;
      lines.push(
        `${p.path} (${p.value}) must equal ${ref.path} (${ref.value}); both are the ${what}`,
      );
    }
  }
  return lines;
}

/**
 * Validates an already parsed config object; returns it resolved (defaults filled) or throws a
 * `ConfigError` with one line per problem. Sizes shared between components are checked too
 * (`sharedSizeProblems`) unless `crossChecks` is false: stored configs of checkpoints are not
 * re-checked, so that runs trained before these checks keep loading.
 *
 * @example
 * ```ts
 * // const config = validateConfig(checkpointMetadata.config, builtins(), "checkpoint");
 * ```
 */
export function validateConfig(
  value: unknown,
  registry: Registry,
  sourceName = "config",
  options: { crossChecks?: boolean } = {},
): ResolvedConfig {
  const schema = configSchema(registry);
  const result = schema.safeParse(value);
  if (result.success) {
    const config = result.data as ResolvedConfig;
    const lines = options.crossChecks === false ? [] : sharedSizeProblems(config);
    if (lines.length > 0) throw new ConfigError(lines.map((line) => `${sourceName}: ${line}`));
    return config;
  }
  const lines = result.error.issues.flatMap((issue) => issueLines(issue, value, schema));
  throw new ConfigError(lines.map((line) => `${sourceName}: ${line}`));
}

/**
 * Parses JSON or JSONC config text and validates it against the registry's plugins.
 *
 * @example
 * ```ts
 * // parseConfig('{ "name": "x", "components": { ... } }', builtins(), "config.json");
 * // ConfigError: config.json: components.decoder.plugin: unknown plugin "unte"; did you mean "unet"? valid: unet
 * ```
 */
export function parseConfig(
  text: string,
  registry: Registry,
  sourceName = "config",
): ResolvedConfig {
  return validateConfig(parseJsonc(text, sourceName), registry, sourceName);
}

// ---------------------------------------------------------------------------------------------
// Third-party plugin modules

/**
 * Imports a module by path (relative to `baseDir`) or URL and registers every plugin definition
 * it exports (directly or in exported arrays). Definitions already registered as the same object
 * are skipped, so loading a module twice is harmless.
 *
 * @example
 * ```ts
 * // await loadPluginModule(registry, "./my_schedule.ts");
 * // await loadPluginModule(registry, "https://example.com/plugins/mod.ts"); // needs --allow-import
 * ```
 */
export async function loadPluginModule(
  registry: Registry,
  specifier: string,
  baseDir?: string,
): Promise<PluginDefinition[]> {
  // Without node:path (not in browsers): a URL stays, a path resolves against baseDir, else the
  // working directory (Deno), else the page (a browser).
  const url = resolveModuleUrl(
    specifier,
    baseDir ?? (typeof Deno !== "undefined" ? Deno.cwd() : globalThis.location?.href ?? "/"),
  );
  let mod: Record<string, unknown>;
  try {
    mod = await import(url);
  } catch (e) {
    const reason = (e instanceof Error ? e.message : String(e)).split("\n")[0];
    throw new Error(
      `Cannot load plugin module "${specifier}" (${url}): ${reason}. Check the path or URL; ` +
        `importing from a URL needs Deno's import permission (-A, as deno task uses, or ` +
        `--allow-import=example.com without -A) and a local file needs --allow-read`,
    );
  }
  const defs = Object.values(mod).flatMap((v) => (Array.isArray(v) ? v : [v]))
    .filter(isPluginDefinition);
  if (defs.length === 0) {
    throw new Error(
      `Plugin module "${specifier}" exports no plugin definitions; ` +
        `export objects made with definePlugin (kind, name, options, create)`,
    );
  }
  const added: PluginDefinition[] = [];
  for (const def of new Set(defs)) {
    if (registry.has(def.kind, def.name) && registry.lookup(def.kind, def.name) === def) continue;
    try {
      registry.register(def);
    } catch (e) {
      throw new Error(`Plugin module "${specifier}": ${(e as Error).message}`);
    }
    added.push(def);
  }
  return added;
}

function describeType(s: Record<string, unknown>): string {
  if (Array.isArray(s.enum)) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (Array.isArray(s.anyOf)) {
    return (s.anyOf as Record<string, unknown>[]).map(describeType).join(" | ");
  }
  if (s.type === "array" && s.items && typeof s.items === "object") {
    return `${describeType(s.items as Record<string, unknown>)}[]`;
  }
  if (Array.isArray(s.type)) return s.type.join(" | ");
  return typeof s.type === "string" ? s.type : "any";
}

/**
 * Every registered plugin with its options, types, defaults and descriptions, for
 * `--list-plugins`.
 *
 * @example
 * ```ts
 * // console.log(describePlugins(builtins()));
 * // schedule/cosine  Cosine schedule (Nichol & Dhariwal 2021, eq. 17)
 * //     steps: integer = 1000  Number of diffusion steps T
 * ```
 */
export function describePlugins(registry: Registry): string {
  const lines: string[] = [];
  for (const def of registry.list()) {
    lines.push(`${def.kind}/${def.name}${def.description ? `  ${def.description}` : ""}`);
    const json = z.toJSONSchema(def.options, { io: "input", unrepresentable: "any" }) as {
      properties?: Record<string, Record<string, unknown>>;
      required?: string[];
    };
    const props = Object.entries(json.properties ?? {});
    if (props.length === 0) lines.push("    (no options)");
    for (const [key, prop] of props) {
      const dflt = "default" in prop
        ? ` = ${JSON.stringify(prop.default)}`
        : json.required?.includes(key)
        ? " (required)"
        : "";
      const desc = typeof prop.description === "string" ? `  ${prop.description}` : "";
      lines.push(`    ${key}: ${describeType(prop)}${dflt}${desc}`);
    }
  }
  return lines.join("\n");
}

/**
 * The resolved config as pretty JSON, for `--print-config` and checkpoint metadata.
 *
 * @example
 * ```ts
 * // console.log(resolvedConfigJson(config));
 * ```
 */
export function resolvedConfigJson(config: ResolvedConfig): string {
  return JSON.stringify(config, null, 2) + "\n";
}

/**
 * Dotted paths (arrays as `[i]`) at which two configs differ, e.g. to refuse a checkpoint that
 * was trained with another config.
 *
 * @example
 * ```ts
 * diffConfigs({ a: { b: 1, c: 2 } }, { a: { b: 1, c: 3 } }); // ["a.c"]
 * ```
 */
export function diffConfigs(a: unknown, b: unknown): string[] {
  const out: string[] = [];
  const walk = (x: unknown, y: unknown, path: PropertyKey[]): void => {
    if (Object.is(x, y)) return;
    const isObj = (v: unknown): v is Record<string, unknown> =>
      typeof v === "object" && v !== null && !Array.isArray(v);
    if (Array.isArray(x) && Array.isArray(y)) {
      for (let i = 0; i < Math.max(x.length, y.length); i++) walk(x[i], y[i], [...path, i]);
    } else if (isObj(x) && isObj(y)) {
      const keys = new Set([...Object.keys(x), ...Object.keys(y)]);
      for (const k of keys) walk(x[k], y[k], [...path, k]);
    } else {
      out.push(pathString(path));
    }
  };
  walk(a, b, []);
  return out;
}
