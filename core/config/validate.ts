/**
 * Validating configs: the schema check with one-line errors, the sizes several components share
 * (sizes.ts), and comparing two configs.
 *
 * @module
 */
import type { z } from "../deps.ts";
import type { Registry } from "../registry.ts";
import { ConfigError, issueLines, pathString } from "./errors.ts";
import { parseJsonc } from "./jsonc.ts";
import {
  configSchema,
  type ResolvedConfig,
  TRAIN_DEFAULTS,
  type TrainStageConfig,
  trainStageSchema,
} from "./schema.ts";
import { fillSharedSizes, sharedSizeProblems } from "./sizes.ts";

/**
 * Validates an already parsed config object; returns it resolved (defaults filled) or throws a
 * `ConfigError` with one line per problem. Sizes shared between components that the config
 * omits are taken from the components they depend on first (`fillSharedSizes`), and the
 * resolved sizes are checked to agree (`sharedSizeProblems`) unless `crossChecks` is false:
 * stored configs of checkpoints are not re-checked, so that runs trained before these checks
 * keep loading (they state every size, so filling changes nothing in them).
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
  value = fillSharedSizes(value, registry);
  const inherited = inheritedRerankerKeys(value);
  value = layRerankerOverClip(value);
  const result = schema.safeParse(value);
  if (result.success) {
    const config = result.data as ResolvedConfig;
    // The upsampler stage exists exactly when the config has an upsampler.
    if (config.components.upsampler && !config.train.upsampler) {
      const defaults = trainStageSchema(TRAIN_DEFAULTS.upsampler).parse({});
      config.train = { ...config.train, upsampler: defaults as TrainStageConfig };
    } else if (!config.components.upsampler && config.train.upsampler) {
      throw new ConfigError([
        `${sourceName}: train.upsampler: set, but the config has no components.upsampler ` +
        `(add one, or remove train.upsampler)`,
      ]);
    }
    for (const stage of ["clip", "reranker"] as const) {
      if ((config.train[stage]?.extraEma.length ?? 0) > 0) {
        throw new ConfigError([
          `${sourceName}: train.${stage}.extraEma: CLIP samples (and the prior and decoder ` +
          `train) with its trained weights, so further averages of them are never used; remove it`,
        ]);
      }
    }
    for (const stage of ["prior", "decoder", "upsampler"] as const) {
      if (config.train[stage]?.hardNegatives) {
        throw new ConfigError([
          `${sourceName}: train.${stage}.hardNegatives: only CLIP trains on hard-negative ` +
          `captions; remove it (or set train.clip.hardNegatives or train.reranker.hardNegatives)`,
        ]);
      }
      if ((config.train[stage]?.grain ?? 0) > 0) {
        throw new ConfigError([
          `${sourceName}: train.${stage}.grain: only CLIP trains on grained images; remove it ` +
          `(or set train.clip.grain or train.reranker.grain)`,
        ]);
      }
    }
    const lines = options.crossChecks === false
      ? []
      : [...sharedSizeProblems(config), ...samplerStepProblems(config)];
    if (lines.length > 0) throw new ConfigError(lines.map((line) => `${sourceName}: ${line}`));
    return config;
  }
  const lines = result.error.issues
    .flatMap((issue) => withoutInherited(issue, inherited))
    .flatMap((issue) => issueLines(issue, value, schema));
  throw new ConfigError(lines.map((line) => `${sourceName}: ${line}`));
}

/**
 * `train.reranker` (a second CLIP, trained only to rerank) takes every setting it does not give
 * from `train.clip`: the reranking CLIP is the pipeline's CLIP trained with a few changes (e.g.
 * `{ "grain": 0.1 }`). Applied to the raw config before the schema fills defaults, so that a
 * setting is the reranker's own, else train.clip's, else the clip default. Anything not a plain
 * object is left for the schema to refuse.
 *
 * @example
 * ```ts
 * const raw = { train: { clip: { steps: 2500 }, reranker: { grain: 0.1 } } };
 * layRerankerOverClip(raw); // { train: { clip: { steps: 2500 }, reranker: { steps: 2500, grain: 0.1 } } }
 * ```
 */
export function layRerankerOverClip(value: unknown): unknown {
  const settings = rawStageSettings(value);
  if (!settings) return value;
  const { train, clip, reranker } = settings;
  return { ...(value as object), train: { ...train, reranker: { ...clip, ...reranker } } };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** A raw config's `train`, `train.clip` and `train.reranker` objects, when it has a reranker. */
function rawStageSettings(value: unknown): Record<string, Record<string, unknown>> | null {
  if (!isObject(value) || !isObject(value.train) || !isObject(value.train.reranker)) return null;
  const clip = isObject(value.train.clip) ? value.train.clip : {};
  return { train: value.train, clip, reranker: value.train.reranker };
}

/** The `train.clip` keys `layRerankerOverClip` copies into `train.reranker` (not its own). */
function inheritedRerankerKeys(value: unknown): Set<string> {
  const settings = rawStageSettings(value);
  if (!settings) return new Set();
  return new Set(Object.keys(settings.clip).filter((k) => !(k in settings.reranker)));
}

/**
 * A schema problem without the parts in `train.reranker` that come from `train.clip`'s keys
 * (`inherited`): the same problem is reported once, at `train.clip`, where it was written.
 */
function withoutInherited(issue: z.core.$ZodIssue, inherited: Set<string>): z.core.$ZodIssue[] {
  const [train, stage, key] = issue.path;
  if (inherited.size === 0 || train !== "train" || stage !== "reranker") return [issue];
  if (issue.path.length === 2 && issue.code === "unrecognized_keys") {
    const keys = issue.keys.filter((k) => !inherited.has(k));
    return keys.length === 0 ? [] : [{ ...issue, keys }];
  }
  return typeof key === "string" && inherited.has(key) ? [] : [issue];
}

/**
 * The sampler's `steps` must not exceed the decoder schedule's (a sampler respaces the schedule
 * to fewer steps, never more): checked here, since the config is stored with the trained decoder
 * and would otherwise fail at every `sample` and `eval` after training. Plugins without a
 * numeric `steps` option are not compared.
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "./schema.ts";
 * function problems(config: ResolvedConfig): string[] {
 *   return samplerStepProblems(config); // [] or one line naming both options
 * }
 * ```
 */
export function samplerStepProblems(config: ResolvedConfig): string[] {
  const steps = config.components.sampler?.options?.steps;
  const scheduleSteps = config.components.decoderSchedule?.options?.steps;
  if (typeof steps !== "number" || typeof scheduleSteps !== "number" || steps <= scheduleSteps) {
    return [];
  }
  return [
    `components.sampler.options.steps is ${steps} but components.decoderSchedule.options.steps ` +
    `is ${scheduleSteps}; a sampler respaces the schedule to at most its ${scheduleSteps} steps`,
  ];
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
