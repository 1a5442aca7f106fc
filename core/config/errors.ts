/**
 * Config errors: `ConfigError`, and the rendering of zod issues as one line per problem that
 * names the config path and suggests the nearest valid name ("did you mean ...?").
 *
 * @module
 */
import type { z } from "../deps.ts";
import { nearestName } from "../registry.ts";

/** A problem a user can fix in their config. `message` holds one line per problem. */
export class ConfigError extends Error {
  /** One line per problem, each already prefixed with the source name. */
  readonly problems: string[];

  /**
   * @example
   * ```ts
   * const error = new ConfigError(["config.json: name: missing (expected string)"]);
   * error.problems.length; // 1
   * ```
   */
  constructor(problems: string | string[]) {
    const list = typeof problems === "string" ? [problems] : problems;
    super(list.join("\n"));
    this.name = "ConfigError";
    this.problems = list;
  }
}

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

/**
 * A config path as users write it: dotted keys, array indices in brackets.
 *
 * @example
 * ```ts
 * pathString(["components", "decoder", "options", "channelMults", 1]);
 * // "components.decoder.options.channelMults[1]"
 * ```
 */
export function pathString(path: readonly PropertyKey[]): string {
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

/**
 * The lines of one zod issue of `input` against `schema`: "path: problem", with the valid
 * choices, or the nearest valid name, for unknown plugins, keys and enum values.
 *
 * @example
 * ```ts
 * import { z } from "../deps.ts";
 * const schema = z.object({ channels: z.number() }).strict();
 * const input = { chanels: 1, channels: 2 };
 * const r = schema.safeParse(input);
 * if (!r.success) issueLines(r.error.issues[0], input, schema);
 * // ['chanels: unknown key; did you mean "channels"?']
 * ```
 */
export function issueLines(issue: z.core.$ZodIssue, input: unknown, schema: z.ZodType): string[] {
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
