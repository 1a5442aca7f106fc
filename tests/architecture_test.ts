/**
 * Architecture checks that read the source tree: the tensor engine (`core/tensor/`) is the only
 * code that knows about devices.
 */
import assert from "node:assert/strict";

const ROOT = new URL("..", import.meta.url);

/** Folders never scanned: generated output, dependencies, run directories. */
const SKIP_DIRS = new Set([".git", ".gpu", "node_modules", "runs", "out", "weights", "docs"]);

/** Every .ts/.js file under `dir` (relative to the repository root, with `/`). */
async function sourceFiles(dir = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(new URL(dir || ".", ROOT))) {
    const rel = dir ? `${dir}/${e.name}` : e.name;
    if (e.isDirectory) {
      if (!SKIP_DIRS.has(e.name)) out.push(...await sourceFiles(rel));
    } else if (/\.(ts|js)$/.test(e.name)) out.push(rel);
  }
  return out.sort();
}

/**
 * What only the engine may contain: WebGPU's types (GPUBuffer, GPUDevice, GPUBufferUsage, ...),
 * WGSL source, and calls of the backend object. The engine's own tests, the device tools and
 * the kernel microbenchmarks (`tests/`, `tools/`, `bench/`) are exempt: they test, set up and
 * time the backends.
 */
const ENGINE_ONLY: [string, RegExp][] = [
  ["a WebGPU type", /\bGPU[A-Z][A-Za-z]*\b/],
  [
    "WGSL code",
    /@compute\b|@workgroup_size\b|@group\(|@binding\(|var<(?:storage|uniform|workgroup)\b|array<[fiu]32>|\bbitcast</,
  ],
  ["a backend() call", /\bbackend\(\)/],
];

/** Import specifiers of a module (static and dynamic, type-only included). */
function importsOf(src: string): string[] {
  const out: string[] = [];
  for (const m of src.matchAll(/\b(?:from|import)\s*\(?\s*"([^"]+)"/g)) out.push(m[1]);
  return out;
}

function outsideEngine(path: string): boolean {
  return !["core/tensor/", "tests/", "tools/", "bench/"].some((p) => path.startsWith(p));
}

Deno.test("architecture: the engine boundary", async () => {
  const problems: string[] = [];
  for (const path of (await sourceFiles()).filter(outsideEngine)) {
    const src = await Deno.readTextFile(new URL(path, ROOT));
    src.split("\n").forEach((line, i) => {
      for (const [what, re] of ENGINE_ONLY) {
        if (re.test(line)) problems.push(`${path}:${i + 1} has ${what}: ${line.trim()}`);
      }
    });
    // The engine is reached through its front door only: device buffers, kernels and the
    // backend object live in files that `core/tensor/mod.ts` does not export.
    for (const spec of importsOf(src)) {
      if (!spec.startsWith(".")) continue;
      const target = new URL(spec, new URL(path, ROOT)).href.slice(ROOT.href.length);
      if (target.startsWith("core/tensor/") && target !== "core/tensor/mod.ts") {
        problems.push(`${path} imports ${target} (use core/tensor/mod.ts)`);
      }
    }
  }
  assert.deepEqual(problems, [], "only core/tensor/ may know about devices");
});

/** Runtime imports (type-only ones are erased) between the engine's files. */
async function engineImportGraph(): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  const files = (await sourceFiles("core/tensor")).filter((p) => !p.includes("/assembly/"));
  for (const path of files) {
    const src = await Deno.readTextFile(new URL(path, ROOT));
    const deps: string[] = [];
    for (const m of src.matchAll(/^(import|export)\s+([^;]*?)\s*from\s+"(\.[^"]+)";/gms)) {
      const clause = m[2];
      if (/^type\b/.test(clause)) continue;
      // `import { type A, type B }` is erased too.
      const names = clause.match(/^\{([^}]*)\}$/)?.[1].split(",").map((s) => s.trim())
        .filter(Boolean);
      if (names && names.every((n) => n.startsWith("type "))) continue;
      deps.push(new URL(m[3], new URL(path, ROOT)).href.slice(ROOT.href.length));
    }
    graph.set(path, deps);
  }
  return graph;
}

Deno.test("architecture: the engine has no import cycle", async () => {
  const graph = await engineImportGraph();
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const cycles: string[] = [];
  const visit = (n: string) => {
    state.set(n, "open");
    stack.push(n);
    for (const d of graph.get(n) ?? []) {
      if (!graph.has(d)) continue;
      if (state.get(d) === "open") cycles.push([...stack.slice(stack.indexOf(d)), d].join(" -> "));
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(n, "done");
  };
  for (const n of graph.keys()) if (!state.has(n)) visit(n);
  assert.deepEqual(cycles, []);
});

/**
 * A fresh process that imports one engine file (never `core/tensor/mod.ts`), builds y from a
 * leaf x with that file's op, and prints x's gradient after y.backward(ones).
 */
async function gradientInFreshProcess(file: string, op: string): Promise<string> {
  const engine = new URL("core/tensor/", ROOT).href;
  const code = `
    const ops = await import("${engine}${file}");
    const { initBackend } = await import("${engine}backend.ts");
    const { emptyTensor } = await import("${engine}tensor.ts");
    await initBackend({ backend: "cpu" });
    const x = emptyTensor([3]);
    x.write(new Float32Array([1, 2, 3]));
    x.requiresGrad = true;
    const y = ops.${op};
    const g = emptyTensor(y.shape);
    g.write(new Float32Array(y.size).fill(1));
    y.backward(g);
    console.log(JSON.stringify([...(await x.grad.read())]));
    Deno.exit(0);`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    env: { UNCLIP_BACKEND: "cpu" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return text;
}

Deno.test("architecture: autograd works whichever engine file is imported first", async () => {
  assert.equal(await gradientInFreshProcess("ops/elementwise.ts", "square(x)"), "[2,4,6]");
  assert.equal(await gradientInFreshProcess("ops/reduce.ts", "sum(x)"), "[1,1,1]");
  assert.equal(await gradientInFreshProcess("ops/view.ts", "reshape(x, [3, 1])"), "[1,1,1]");
});

Deno.test("architecture: activations are written once, in core/tensor/kernels/activation.ts", async () => {
  // The formulas' telltale pieces: GELU's constant, the overflow-safe tanh, exp(-x) of the
  // sigmoid and SiLU. (The WebAssembly kernels' SIMD versions live in cpu/assembly/math.ts.)
  const formula = /0\.79788456|safe_tanh\s*\(|Math\.tanh\(|exp\(-[a-z]\)/;
  const files = (await sourceFiles("core/tensor")).filter((p) =>
    p !== "core/tensor/kernels/activation.ts" && !p.startsWith("core/tensor/cpu/assembly/")
  );
  const found: string[] = [];
  for (const path of files) {
    const src = await Deno.readTextFile(new URL(path, ROOT));
    src.split("\n").forEach((line, i) => {
      if (formula.test(line)) found.push(`${path}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(found, []);
});
