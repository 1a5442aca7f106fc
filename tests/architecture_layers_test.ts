/**
 * The layering rules of docs/design.md, checked on the import statements of every source file:
 * dependencies run one way, tasks -> pipeline/train/eval -> plugins and datasets -> core ->
 * tensor. Each rule names the files that break it and the import that does.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = normalize(join(dirname(fileURLToPath(import.meta.url)), ".."));

/** Every TypeScript file under `dir` (repository-relative, forward slashes). */
function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of Deno.readDirSync(join(ROOT, rel))) {
      const path = `${rel}/${e.name}`;
      if (e.isDirectory) walk(path);
      else if (e.isFile && e.name.endsWith(".ts")) out.push(path);
    }
  };
  walk(dir);
  return out.sort();
}

/** The repository-relative targets of a file's relative imports and re-exports. */
function relativeImports(file: string): string[] {
  const text = Deno.readTextFileSync(join(ROOT, file));
  const specs = [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\sfrom\s*"(\.{1,2}\/[^"]+)"/g),
    ...text.matchAll(/(?:^|\n)\s*import\s*"(\.{1,2}\/[^"]+)"/g),
    ...text.matchAll(/\bimport\(\s*"(\.{1,2}\/[^"]+)"\s*\)/g),
  ].map((m) => m[1]);
  return specs.map((s) => relative(ROOT, join(ROOT, dirname(file), s)).replaceAll("\\", "/"));
}

/** The top folder of a plugins/ path ("plugins/priors/x.ts" -> "priors"), or null. */
function pluginFolder(path: string): string | null {
  const m = /^plugins\/([^/]+)\//.exec(path);
  return m ? m[1] : null;
}

/**
 * Imports that break a rule on purpose, as `file -> import`. An entry that no longer matches an
 * import fails the test, so the list cannot go stale. None today.
 */
const KNOWN_EXCEPTIONS: readonly string[] = [];

Deno.test("architecture: imports run one way", () => {
  const edges: [string, string][] = [];
  for (const dir of ["core", "plugins", "datasets", "experiments", "tasks"]) {
    for (const file of sourceFiles(dir)) {
      if (file.startsWith("core/tensor/cpu/assembly/")) continue; // AssemblyScript, not Deno
      for (const target of relativeImports(file)) edges.push([file, target]);
    }
  }
  assert.ok(edges.length > 300, `only ${edges.length} imports found; is the parser broken?`);
  const broken: string[] = [];
  const used = new Set<string>();
  const rule = (ok: boolean, from: string, to: string, why: string): void => {
    if (ok) return;
    const edge = `${from} -> ${to}`;
    if (KNOWN_EXCEPTIONS.includes(edge)) used.add(edge);
    else broken.push(`${edge}: ${why}`);
  };
  for (const [from, to] of edges) {
    const top = to.split("/")[0];
    if (from.startsWith("core/")) {
      // Core is the framework: it knows the kinds (core/components.ts), never a plugin or dataset.
      rule(
        !["plugins", "datasets", "tasks", "tests", "tools", "web"].includes(top) &&
          !["mod.ts", "browser.ts"].includes(to),
        from,
        to,
        "core imports only core (plugins reach it through the registry and core/components.ts)",
      );
      // The framework (kinds, registry, config, diffusion, data, CLIP, nn, optim, io) sits below
      // the pipeline, training and evaluation that use it.
      const upper = (p: string): boolean =>
        p === "core/pipeline.ts" || ["core/pipeline/", "core/train/", "core/eval/"]
          .some((d) => p.startsWith(d));
      rule(
        upper(from) || !upper(to),
        from,
        to,
        "core's framework modules do not import the pipeline, training or evaluation",
      );
      // The engine at the bottom: the tensor layer imports nothing of the layers above it.
      if (from.startsWith("core/tensor/")) {
        rule(
          to.startsWith("core/tensor/") || to === "core/deps.ts" || to === "core/host_random.ts",
          from,
          to,
          "core/tensor/ is the bottom layer",
        );
      }
    } else if (from.startsWith("plugins/")) {
      const own = pluginFolder(from);
      const other = pluginFolder(to);
      // plugins/mod.ts is the one place that wires every shipped plugin into a registry.
      const wiring = from === "plugins/mod.ts";
      rule(
        wiring || other === null || other === own,
        from,
        to,
        "plugins of one kind share code through core, not through another plugin folder",
      );
      rule(!["tasks", "tests", "tools", "web"].includes(top), from, to, "plugins sit below tasks");
      rule(!["mod.ts", "browser.ts"].includes(to), from, to, "plugins sit below the entry points");
    } else if (from.startsWith("datasets/")) {
      rule(
        !["plugins", "tasks", "tests", "tools", "web"].includes(top) &&
          !["mod.ts", "browser.ts"].includes(to),
        from,
        to,
        "datasets/ holds data code for plugins and tasks; it imports only core and itself",
      );
    } else if (from.startsWith("tasks/") || from.startsWith("experiments/")) {
      rule(
        !["tests", "tools", "web"].includes(top),
        from,
        to,
        "tasks and experiments are the top layer; they do not import tests, tools or the web page",
      );
    }
  }
  const stale = KNOWN_EXCEPTIONS.filter((e) => !used.has(e));
  assert.deepEqual(broken, [], `imports against the layering:\n  ${broken.join("\n  ")}`);
  assert.deepEqual(stale, [], `known exceptions that no longer occur (remove them):\n  ${stale}`);
});
