/**
 * Third-party plugin modules (loaded by path or URL and registered) and the `--list-plugins`
 * text.
 *
 * @module
 */
import { resolveModuleUrl } from "../io/paths.ts";
import { z } from "../deps.ts";
import { isPluginDefinition, type PluginDefinition, type Registry } from "../registry.ts";

/**
 * Imports a module by path (relative to `baseDir`) or URL and registers every plugin definition
 * it exports (directly or in exported arrays). Definitions already registered as the same object
 * are skipped, so loading a module twice is harmless.
 *
 * @example
 * ```ts
 * import { Registry } from "../registry.ts";
 * async function load(registry: Registry) {
 *   await loadPluginModule(registry, "./my_schedule.ts");
 *   await loadPluginModule(registry, "https://example.com/plugins/mod.ts"); // needs --allow-import
 * }
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
 * import { z } from "../deps.ts";
 * import { NoiseSchedule } from "../diffusion/schedule.ts";
 * import { definePlugin, Registry } from "../registry.ts";
 * const registry = new Registry().register(definePlugin({
 *   kind: "schedule",
 *   name: "flat",
 *   description: "Constant betas",
 *   options: z.object({ steps: z.number().int().default(10).describe("Steps T") }).strict(),
 *   create: (o) => new NoiseSchedule(new Float64Array(o.steps).fill(0.02)),
 * }));
 * describePlugins(registry); // "schedule/flat  Constant betas\n    steps: integer = 10  Steps T"
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
