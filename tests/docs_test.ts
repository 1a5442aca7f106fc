/**
 * The documentation works as written (README.md, docs/tasks.md, the tasks' --help): every
 * `deno run` command they spell parses, every task has a section listing the flags its --help
 * lists, the quick start writes under ignored folders, and mod.ts exports what plugin authors
 * need. The README's library snippet is run as written in tests/url_import_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { builtins } from "../plugins/mod.ts";
import { exists } from "../core/io/mod.ts";
import * as mod from "../mod.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const TASKS = [
  "train",
  "sample",
  "eval",
  "export",
  "dataset",
  "bench",
  "serve",
  "experiment",
  "report",
];
const COMMON = new Set(["--help", "--debug", "--backend"]);

/** Runs Deno with `args` from the repository root; returns the exit code and output. */
async function deno(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function help(task: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return deno(["run", "-A", join(ROOT, "tasks", `${task}.ts`), "--help"]);
}

/** The text of `## <title>` up to the next `## ` heading. */
function section(markdown: string, title: string): string | undefined {
  const parts = markdown.split(/^## /m);
  return parts.find((p) => p.split("\n")[0].trim() === title);
}

const flags = (text: string): Set<string> => new Set(text.match(/--[a-z][a-z-]*/g) ?? []);

Deno.test("every `deno run ... tasks/X.ts` command in the docs and in --help runs as spelled", async () => {
  const sources: [string, string][] = [
    ["README.md", await Deno.readTextFile(join(ROOT, "README.md"))],
    ["docs/tasks.md", await Deno.readTextFile(join(ROOT, "docs/tasks.md"))],
    ["train --help", (await help("train")).stdout],
  ];
  let count = 0;
  for (const [where, text] of sources) {
    // Permissions spelled on the command line, then the task file: run it with --help.
    for (const m of text.matchAll(/deno run((?:\s+-[-\w]+(?:=[^\s`]+)?)*)\s+(tasks\/\w+\.ts)/g)) {
      const perms = m[1].trim().split(/\s+/).filter(Boolean);
      const r = await deno(["run", ...perms, join(ROOT, m[2]), "--help"]);
      assert.equal(r.code, 0, `${where}: "${m[0]}" fails: ${r.stderr.split("\n")[0]}`);
      count++;
    }
  }
  assert.ok(count >= 2, `${count} commands found`);
});

Deno.test("docs/tasks.md has a section per task listing every flag of its --help", async () => {
  const docs = await Deno.readTextFile(join(ROOT, "docs/tasks.md"));
  for (const task of TASKS) {
    const text = section(docs, task);
    assert.ok(text, `docs/tasks.md has no "## ${task}" section`);
    const h = await help(task);
    assert.equal(h.code, 0, h.stderr);
    const listed = [...flags(h.stdout)].filter((f) => !COMMON.has(f));
    assert.ok(listed.length > 0, `${task} --help lists no flags`);
    const missing = listed.filter((f) => !flags(text).has(f));
    assert.deepEqual(missing, [], `${task}: flags of --help missing from its docs section`);
    // And the other way: the section's command synopsis names no flag the task does not know.
    const synopsis = /```sh\n([\s\S]*?)```/.exec(text)?.[1] ?? "";
    const unknown = [...flags(synopsis)].filter((f) => !flags(h.stdout).has(f));
    assert.deepEqual(unknown, [], `${task}: flags in the docs synopsis unknown to --help`);
  }
});

Deno.test("docs/tasks.md describes the shipped weights as shipped", async () => {
  const docs = await Deno.readTextFile(join(ROOT, "docs/tasks.md"));
  if (await exists(join(ROOT, "weights/default"))) {
    assert.doesNotMatch(docs, /none are\s+shipped|no (pretrained\s+)?weights are\s+shipped/i);
    assert.match(section(docs, "sample") ?? "", /weights\/default/);
  }
});

Deno.test("the README's quick start writes under ignored folders (out/, runs/, data/), not the root", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const quick = /```sh\n([\s\S]*?)```/.exec(section(readme, "Quick start") ?? "")?.[1] ?? "";
  const sampleLines = quick.split("\n").filter((l) => /^deno task sample /.test(l));
  assert.ok(sampleLines.length > 0);
  // sample writes sample.png in the working folder unless told otherwise.
  for (const line of sampleLines) assert.match(line, /--out /, line);
  const outs = [...quick.matchAll(/--out (\S+)/g)].map((m) => m[1]);
  assert.ok(outs.length >= 3, outs.join(" "));
  for (const out of outs) assert.match(out, /^(out|runs|data)\//, out);
  const ignored = (await Deno.readTextFile(join(ROOT, ".gitignore"))).split("\n");
  for (const rule of ["/out/*", "runs/", "/data/"]) assert.ok(ignored.includes(rule), rule);
  // out/ exists in a fresh clone (it holds a tracked .gitkeep), so --out out/x.png works at once.
  assert.ok(await exists(join(ROOT, "out", ".gitkeep")));
});

Deno.test("mod.ts exports zod (z) for plugin authors, the copy the registry validates with", () => {
  const plugin = mod.definePlugin({
    kind: "schedule",
    name: "from-mod-z",
    options: mod.z.object({ steps: mod.z.number().int().positive().default(7) }).strict(),
    create: (o) => o.steps as never, // a stand-in: a number, not a schedule
  });
  const registry = builtins();
  registry.register(plugin);
  assert.equal(registry.lookup("schedule", "from-mod-z").options.parse({}).steps, 7);
  assert.ok(mod.isPluginDefinition(plugin));
});
