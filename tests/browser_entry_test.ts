// The browser entry (browser.ts, and through it the sampling path: pipeline, checkpoint loading,
// io) and the web worker must import no node: module, which browsers do not have. `deno info
// --json` gives the whole module graph, static and dynamic imports marked
// (https://docs.deno.com/runtime/reference/cli/info/).
import assert from "node:assert/strict";

/**
 * The one dynamic node: import allowed: the CPU backend starts worker threads with it, and only
 * when it is chosen (a browser runs initBackend({ backend: "webgpu" }); bundlers keep a dynamic
 * import as a runtime import, never executed there).
 */
const ALLOWED_DYNAMIC = new Set(["core/tensor/cpu/threads.ts -> node:worker_threads"]);

async function nodeImports(entry: string): Promise<{ static: string[]; dynamic: string[] }> {
  const root = new URL("../", import.meta.url);
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const graph = JSON.parse(new TextDecoder().decode(stdout)) as {
    modules: { specifier: string; dependencies?: { specifier: string; isDynamic?: boolean }[] }[];
  };
  const out = { static: [] as string[], dynamic: [] as string[] };
  for (const m of graph.modules) {
    for (const d of m.dependencies ?? []) {
      if (!d.specifier.startsWith("node:")) continue;
      const edge = `${m.specifier.replace(root.href, "")} -> ${d.specifier}`;
      (d.isDynamic ? out.dynamic : out.static).push(edge);
    }
  }
  return out;
}

for (const entry of ["browser.ts", "web/worker.ts", "web/main.ts", "core/pipeline.ts"]) {
  Deno.test(`${entry} reaches no node: module (browsers have none)`, async () => {
    const found = await nodeImports(entry);
    assert.deepEqual(found.static, [], `static node: imports from ${entry}`);
    assert.deepEqual(found.dynamic.filter((e) => !ALLOWED_DYNAMIC.has(e)), []);
  });
}
