/**
 * Loading a config file from disk (Deno only): reading it, loading the plugin modules it names
 * relative to its folder, and making file-naming options absolute. Kept apart from config.ts so
 * that the sampling path, which only validates configs stored in checkpoints, imports no
 * `node:path` (not available in browsers).
 *
 * @module
 */
import { dirname, isAbsolute, resolve } from "node:path";
import type { Registry } from "./registry.ts";
import {
  COMPONENT_SLOTS,
  type ComponentSlot,
  ConfigError,
  loadPluginModule,
  parseJsonc,
  type ResolvedConfig,
  validateConfig,
} from "./config.ts";

/** Relative module paths ("./x.ts", "../x.ts") as opposed to URLs and bare names. */
const RELATIVE = /^\.\.?[\\/]/;

/** Is `v` a plain JSON object (not an array, not null)? */
function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * `over` laid over `base`: objects merge key by key (recursively), anything else (numbers,
 * strings, arrays such as `channelMults`) replaces the base's value.
 *
 * @example
 * ```ts
 * mergeConfig({ a: { b: 1, c: [1, 2] } }, { a: { c: [3] } }); // { a: { b: 1, c: [3] } }
 * ```
 */
export function mergeConfig(base: unknown, over: unknown): unknown {
  if (!isObject(base) || !isObject(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in base ? mergeConfig(base[k], v) : v;
  return out;
}

/**
 * Reads a config file as JSON; a top-level `"extends": "base.jsonc"` (relative to the file) loads
 * that config first and lays this one over it (`mergeConfig`), so a variant states only what it
 * changes. Relative plugin modules of a base config stay relative to the base's folder.
 */
async function readConfigTree(path: string, chain: readonly string[]): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const via = chain.length ? ` (extended by ${chain.at(-1)})` : "";
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError(`${path}: config file not found${via}; check the path`);
    }
    throw new ConfigError(`${path}: cannot read config file${via}: ${(e as Error).message}`);
  }
  const raw = parseJsonc(text, path);
  if (!isObject(raw) || !("extends" in raw)) return raw;
  const { extends: parent, ...own } = raw;
  if (typeof parent !== "string" || parent.trim() === "") {
    throw new ConfigError(
      `${path}: "extends" must be the path of another config file, relative to this one`,
    );
  }
  const parentPath = resolve(dirname(resolve(path)), parent);
  const seen = [...chain, resolve(path)];
  if (seen.includes(parentPath)) {
    throw new ConfigError(
      `${path}: "extends" makes a cycle (${[...seen, parentPath].join(" -> ")}); remove one`,
    );
  }
  const base = await readConfigTree(parentPath, seen);
  if (isObject(base) && Array.isArray(base.plugins)) {
    const baseDir = dirname(parentPath);
    base.plugins = base.plugins.map((p) =>
      typeof p === "string" && RELATIVE.test(p) ? resolve(baseDir, p) : p
    );
  }
  return mergeConfig(base, own);
}

/**
 * Reads a config file, loads the plugin modules it names (relative to its folder), and validates
 * it; relative paths in plugin options that name files (`pathOptions`) are resolved against the
 * config file's folder too (the folder of the file given, also for options it inherits through
 * `"extends"`). Every user error is a `ConfigError`.
 *
 * @example
 * ```ts
 * import type { Registry } from "./registry.ts";
 * async function tiny(registry: Registry) {
 *   return await loadConfig("presets/tiny.jsonc", registry);
 * }
 * ```
 */
export async function loadConfig(path: string, registry: Registry): Promise<ResolvedConfig> {
  const raw = await readConfigTree(path, []);
  const plugins = (raw as { plugins?: unknown } | null)?.plugins;
  if (Array.isArray(plugins)) {
    const problems: string[] = [];
    for (const [i, spec] of plugins.entries()) {
      if (typeof spec !== "string") continue; // reported by validation
      try {
        await loadPluginModule(registry, spec, dirname(resolve(path)));
      } catch (e) {
        problems.push(`${path}: plugins[${i}]: ${(e as Error).message}`);
      }
    }
    if (problems.length) throw new ConfigError(problems);
  }
  const config = validateConfig(raw, registry, path);
  // Paths in options (a plugin's `pathOptions`, e.g. the folder dataset's splits) are relative to
  // the config file like its plugin modules, not to the working directory, and are kept absolute
  // so that checkpoints (which store the config) work from any folder.
  const base = dirname(resolve(path));
  for (const [slot, kind] of Object.entries(COMPONENT_SLOTS)) {
    const c = config.components[slot as ComponentSlot];
    if (!c) continue; // an optional slot the config leaves out
    for (const key of registry.lookup(kind, c.plugin).pathOptions ?? []) {
      const value = c.options[key];
      if (typeof value === "string" && !isAbsolute(value)) c.options[key] = resolve(base, value);
    }
  }
  return config;
}

// ---------------------------------------------------------------------------------------------
// Rendering and comparison
