/**
 * Validating configs: the schema check with one-line errors, the sizes several components must
 * agree on, and comparing two configs.
 *
 * @module
 */
import type { Registry } from "../registry.ts";
import { ConfigError, issueLines, pathString } from "./errors.ts";
import { parseJsonc } from "./jsonc.ts";
import { type ComponentSlot, configSchema, type ResolvedConfig } from "./schema.ts";

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
 * import type { ResolvedConfig } from "./schema.ts";
 * function problems(config: ResolvedConfig): string[] {
 *   return sharedSizeProblems(config); // [] for every shipped preset
 * }
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
 * import type { Registry } from "../registry.ts";
 * function fromCheckpoint(stored: unknown, registry: Registry) {
 *   return validateConfig(stored, registry, "checkpoint", { crossChecks: false });
 * }
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
 * import { Registry } from "../registry.ts";
 * try {
 *   parseConfig('{ "name": "x", "components": {} }', new Registry(), "config.json");
 * } catch (e) {
 *   (e as Error).message; // "config.json: components.tokenizer: ..." (one line per problem)
 * }
 * ```
 */
export function parseConfig(
  text: string,
  registry: Registry,
  sourceName = "config",
): ResolvedConfig {
  return validateConfig(parseJsonc(text, sourceName), registry, sourceName);
}

/**
 * The resolved config as pretty JSON, for `--print-config` and checkpoint metadata.
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "./schema.ts";
 * function print(config: ResolvedConfig): void {
 *   console.log(resolvedConfigJson(config));
 * }
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
