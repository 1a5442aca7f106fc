/**
 * Plugin definitions and the registry that holds them (README, "Swapping components").
 *
 * @module
 */
import type { ComponentKinds, Tokenizer } from "./components.ts";
import type { z } from "./deps.ts";

/** Every kind of plugin, in data-flow order. */
export const PLUGIN_KINDS = [
  "tokenizer",
  "textEncoder",
  "imageEncoder",
  "prior",
  "decoder",
  "upsampler",
  "schedule",
  "sampler",
  "dataset",
] as const;

/** One of `PLUGIN_KINDS`. */
export type PluginKind = typeof PLUGIN_KINDS[number];

/** An options schema: a zod object, strict, whose fields have defaults where sensible. */
export type OptionsSchema = z.ZodObject;

/**
 * What `create` receives besides its options, for every kind: the registry it was created from.
 * Open on purpose (a third-party caller may pass more); what each kind is given is typed by
 * `PluginContexts`.
 */
export interface PluginContext {
  /** The registry the plugin was created from. */
  readonly registry?: Registry;
  readonly [key: string]: unknown;
}

/**
 * The sizes a model component takes from the components built before it. The pipeline passes
 * the trained tokenizer's; each is optional so that a component can be built on its own.
 */
export interface SizeContext extends PluginContext {
  /** The tokenizer the component reads ids of. */
  readonly tokenizer?: Tokenizer;
  /** Size of the tokenizer's id space (the embedding table's rows). */
  readonly vocabSize?: number;
  /** Tokens per caption, start and end included. */
  readonly contextLength?: number;
}

/** What a tokenizer plugin's `create` receives: captions to learn from, or a saved vocabulary. */
export interface TokenizerSource extends PluginContext {
  /** Training captions: a new vocabulary is learned from them. */
  readonly captions?: Iterable<string>;
  /** A saved vocabulary (the tokenizer's `toJSON()`), e.g. from a checkpoint; wins over captions. */
  readonly state?: unknown;
}

/** The context each plugin kind's `create` receives (besides `PluginContext`'s registry). */
export interface PluginContexts {
  tokenizer: TokenizerSource;
  textEncoder: SizeContext;
  imageEncoder: SizeContext;
  prior: SizeContext;
  decoder: SizeContext;
  upsampler: Record<never, never>;
  schedule: Record<never, never>;
  sampler: Record<never, never>;
  dataset: Record<never, never>;
}

/** The context a plugin of kind `K` is created with. */
export type PluginContextOf<K extends PluginKind> = PluginContext & PluginContexts[K];

/**
 * A plugin definition (see `definePlugin`): `create` builds the component of its kind,
 * `ComponentKinds[K]` (a plugin may return a subtype with more members).
 */
export interface PluginDefinition<
  K extends PluginKind = PluginKind,
  O extends OptionsSchema = OptionsSchema,
  T = ComponentKinds[K],
> {
  /** The kind of component this plugin makes. */
  readonly kind: K;
  /** Unique within its kind; what configs name in `plugin`. */
  readonly name: string;
  /** One line for `--list-plugins`. */
  readonly description?: string;
  /** Strict zod object with defaults. */
  readonly options: O;
  /**
   * Option keys whose string values are file or folder paths: `loadConfig` resolves relative ones
   * against the config file's folder (as it does plugin modules), so a config works from any
   * working directory.
   */
  readonly pathOptions?: readonly string[];
  /** Builds the component from validated options and the context of its kind. */
  create(options: z.output<O>, context: PluginContextOf<K>): T | Promise<T>;
}

/**
 * Identity helper that types a definition by its kind: `create` receives the options its schema
 * validates and the context of its kind (`PluginContexts`), and must return the kind's component
 * (`ComponentKinds`), so a schedule plugin that returns no `NoiseSchedule` does not compile.
 *
 * @example
 * ```ts
 * import { z } from "./deps.ts";
 * import { NoiseSchedule } from "./diffusion/schedule.ts";
 * const plugin = definePlugin({
 *   kind: "schedule",
 *   name: "constant",
 *   options: z.object({ steps: z.number().int().positive().default(10) }).strict(),
 *   create: (o) => new NoiseSchedule(new Float64Array(o.steps).fill(0.02)),
 * });
 * new Registry().register(plugin);
 * ```
 */
export function definePlugin<
  K extends PluginKind,
  O extends OptionsSchema,
  T extends ComponentKinds[K],
>(
  def: PluginDefinition<K, O, T>,
): PluginDefinition<K, O, T> {
  return def;
}

/**
 * Whether `value` looks like a plugin definition (used to pick definitions out of a module).
 *
 * @example
 * ```ts
 * isPluginDefinition({ kind: "schedule" }); // false
 * ```
 */
export function isPluginDefinition(value: unknown): value is PluginDefinition {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.kind === "string" && (PLUGIN_KINDS as readonly string[]).includes(v.kind) &&
    typeof v.name === "string" && isZodObject(v.options) && typeof v.create === "function";
}

// Duck-typed rather than `instanceof`, so that a plugin module resolving its own copy of zod works.
function isZodObject(value: unknown): boolean {
  const zod = (value as { _zod?: { def?: { type?: unknown } } } | null)?._zod;
  return zod?.def?.type === "object";
}

/**
 * Optimal-string-alignment edit distance (Levenshtein plus adjacent transpositions, so that
 * "unte" is one edit from "unet").
 *
 * @example
 * ```ts
 * editDistance("unte", "unet"); // 1
 * ```
 */
export function editDistance(a: string, b: string): number {
  const m = a.length, n = b.length;
  const d: number[][] = Array.from({ length: m + 1 }, (_, i) => {
    const row = new Array<number>(n + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= n; j++) d[0][j] = j;
  for (let i = 1; i <= m; i++) {
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[m][n];
}

/**
 * The candidate nearest to `name` by edit distance (case-insensitive), or undefined when none is
 * close enough to be a plausible typo.
 *
 * @example
 * ```ts
 * nearestName("chanels", ["channels", "heads"]); // "channels"
 * ```
 */
export function nearestName(name: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  const lower = name.toLowerCase();
  for (const c of candidates) {
    const d = editDistance(lower, c.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  const limit = Math.max(2, Math.floor(name.length / 3));
  return bestDistance <= limit ? best : undefined;
}

/**
 * Renders zod issues as "path: message" strings (one per issue).
 *
 * @example
 * ```ts
 * import { z } from "./deps.ts";
 * const r = z.object({ a: z.number() }).safeParse({ a: "x" });
 * if (!r.success) formatZodIssues(r.error.issues); // ["a: Invalid input: expected number, ..."]
 * ```
 */
export function formatZodIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const path = issue.path.map(String).join(".");
    return path ? `${path}: ${issue.message}` : issue.message;
  });
}

/**
 * Holds plugin definitions by kind and name.
 *
 * @example
 * ```ts
 * const registry = new Registry();
 * registry.list("schedule"); // [] until plugins are registered
 * ```
 */
export class Registry {
  #byKind = new Map<PluginKind, Map<string, PluginDefinition>>();

  /**
   * Adds a definition; throws when its kind and name are already taken.
   *
   * @example
   * ```ts
   * import { z } from "./deps.ts";
   * import type { Sampler } from "./components.ts";
   * const noop: Sampler = { name: "noop", sample: () => { throw new Error("not a real sampler"); } };
   * new Registry().register({ kind: "sampler", name: "x", options: z.object({}).strict(), create: () => noop });
   * ```
   */
  register(def: PluginDefinition): this {
    if (!isPluginDefinition(def)) {
      throw new TypeError(
        `Not a plugin definition: ${
          JSON.stringify(Object.keys(def ?? {}))
        }; expected kind (one of ${PLUGIN_KINDS.join(", ")}), name, options (zod object), create`,
      );
    }
    let names = this.#byKind.get(def.kind);
    if (!names) this.#byKind.set(def.kind, names = new Map());
    if (names.has(def.name)) {
      throw new Error(`A ${def.kind} plugin named "${def.name}" is already registered`);
    }
    names.set(def.name, def);
    return this;
  }

  /**
   * Whether a plugin of this kind and name is registered.
   *
   * @example
   * ```ts
   * new Registry().has("decoder", "unet"); // false
   * ```
   */
  has(kind: PluginKind, name: string): boolean {
    return this.#byKind.get(kind)?.has(name) ?? false;
  }

  /**
   * The definition of a plugin; throws with the valid names and the nearest one on a typo.
   *
   * @example
   * ```ts
   * try {
   *   new Registry().lookup("decoder", "unte");
   * } catch (e) {
   *   (e as Error).message; // 'Unknown decoder plugin "unte". No decoder plugins are registered'
   * }
   * ```
   */
  lookup(kind: PluginKind, name: string): PluginDefinition {
    const def = this.#byKind.get(kind)?.get(name);
    if (def) return def;
    throw new Error(this.unknownPluginMessage(kind, name));
  }

  /**
   * The message `lookup` throws for an unknown name (shared with config validation).
   *
   * @example
   * ```ts
   * new Registry().unknownPluginMessage("decoder", "unte");
   * ```
   */
  unknownPluginMessage(kind: PluginKind, name: string): string {
    if (!(PLUGIN_KINDS as readonly string[]).includes(kind)) {
      return `Unknown plugin kind "${kind}". Valid: ${PLUGIN_KINDS.join(", ")}`;
    }
    const valid = this.names(kind);
    if (valid.length === 0) {
      return `Unknown ${kind} plugin "${name}". No ${kind} plugins are registered`;
    }
    const near = nearestName(name, valid);
    return `Unknown ${kind} plugin "${name}".${near ? ` Did you mean "${near}"?` : ""} Valid: ${
      valid.join(", ")
    }`;
  }

  /**
   * Registered names of one kind, sorted.
   *
   * @example
   * ```ts
   * new Registry().names("schedule"); // []
   * ```
   */
  names(kind: PluginKind): string[] {
    return [...(this.#byKind.get(kind)?.keys() ?? [])].sort();
  }

  /**
   * All definitions, or those of one kind, ordered by kind (data-flow order) then name.
   *
   * @example
   * ```ts
   * new Registry().list("decoder"); // []
   * ```
   */
  list(kind?: PluginKind): PluginDefinition[] {
    const kinds = kind === undefined ? PLUGIN_KINDS : [kind];
    return kinds.flatMap((k) => this.names(k).map((n) => this.#byKind.get(k)!.get(n)!));
  }

  /**
   * Validates `options` against the plugin's schema (filling defaults) and creates the component:
   * typed as the kind's component (`use("schedule", ...)` is a `NoiseSchedule`), or as a subtype
   * named explicitly (`use<DdimSampler>("sampler", "ddim")`) for a plugin's own members.
   *
   * @example
   * ```ts
   * import { z } from "./deps.ts";
   * import { NoiseSchedule } from "./diffusion/schedule.ts";
   * const registry = new Registry().register(definePlugin({
   *   kind: "schedule",
   *   name: "flat",
   *   options: z.object({ steps: z.number().int().positive().default(10) }).strict(),
   *   create: (o) => new NoiseSchedule(new Float64Array(o.steps).fill(0.02)),
   * }));
   * const schedule = await registry.use("schedule", "flat", { steps: 300 }); // a NoiseSchedule
   * schedule.numSteps; // 300
   * ```
   */
  async use<T extends ComponentKinds[K], K extends PluginKind = PluginKind>(
    kind: K,
    name: string,
    options: unknown = {},
    context: PluginContextOf<K> = {} as PluginContextOf<K>,
  ): Promise<T> {
    const def = this.lookup(kind, name);
    const parsed = def.options.safeParse(options ?? {});
    if (!parsed.success) {
      throw new Error(
        `Invalid options for ${kind} plugin "${name}": ${
          formatZodIssues(parsed.error.issues).join("; ")
        }`,
      );
    }
    return await def.create(parsed.data, { registry: this, ...context }) as T;
  }
}
