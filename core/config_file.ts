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

/**
 * Reads a config file, loads the plugin modules it names (relative to its folder), and validates
 * it; relative paths in plugin options that name files (`pathOptions`) are resolved against the
 * config file's folder too. Every user error is a `ConfigError`.
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
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new ConfigError(`${path}: config file not found; check the path`);
    }
    throw new ConfigError(`${path}: cannot read config file: ${(e as Error).message}`);
  }
  const raw = parseJsonc(text, path);
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
    for (const key of registry.lookup(kind, c.plugin).pathOptions ?? []) {
      const value = c.options[key];
      if (typeof value === "string" && !isAbsolute(value)) c.options[key] = resolve(base, value);
    }
  }
  return config;
}

// ---------------------------------------------------------------------------------------------
// Rendering and comparison
