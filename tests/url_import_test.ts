/**
 * The library must work when imported from a URL (README "Use it as a library": relative imports only, npm
 * packages through core/deps.ts). The repository is served over HTTP on 127.0.0.1 and a
 * separate Deno process, in a folder without any deno.json, imports mod.ts from there and builds
 * every component of the tiny preset.
 */
import assert from "node:assert/strict";
import { extname, join, normalize } from "node:path";
import { pngSize } from "../core/io/png.ts";

const ROOT = normalize(new URL("..", import.meta.url).pathname);

const TYPES: Record<string, string> = {
  ".ts": "application/typescript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".jsonc": "text/plain; charset=utf-8",
};

/** Serves the repository over HTTP on 127.0.0.1 (node_modules excluded). */
function serveRepository(): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const path = decodeURIComponent(new URL(req.url).pathname);
      const file = normalize(join(ROOT, path));
      if (!file.startsWith(ROOT) || file.includes("node_modules")) {
        return new Response("forbidden", { status: 403 });
      }
      try {
        const body = await Deno.readFile(file);
        return new Response(body, {
          headers: { "content-type": TYPES[extname(file)] ?? "text/plain; charset=utf-8" },
        });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
}

Deno.test({
  name: "mod.ts imported over HTTP builds the tiny preset's components",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const server = serveRepository();
    const host = `127.0.0.1:${server.addr.port}`;
    const base = `http://${host}`;
    const script = `
      const m = await import("${base}/mod.ts");
      await m.initBackend();
      const registry = m.builtins();
      const text = await (await fetch("${base}/presets/tiny.jsonc")).text();
      const config = m.parseConfig(text, registry, "tiny.jsonc");
      const data = m.generateSplit({ count: 32, size: 16 });
      const tokenizer = await m.createTokenizer(config, registry, { captions: data.map((d) => d.caption) });
      const clip = await m.createClip(config, registry, tokenizer);
      const prior = await m.createPrior(config, registry, tokenizer);
      const decoder = await m.createDecoder(config, registry, tokenizer);
      const sampler = await m.createSampler(config, registry);
      const loss = m.scope(() => clip.loss(m.tensor(new Float32Array(2 * 3 * 16 * 16), [2, 3, 16, 16]),
        m.tokenBatch(tokenizer, ["a red circle", "a blue square"])));
      console.log(JSON.stringify({
        clip: clip.parameterCount(), prior: prior.parameterCount(),
        decoder: decoder.parameterCount(), sampler: sampler.name, loss: await loss.item(),
      }));
    `;
    const cwd = await Deno.makeTempDir();
    try {
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "eval",
          `--allow-import=${host}`,
          `--allow-net=${host}`,
          "--allow-env",
          "--allow-read",
          script,
        ],
        cwd,
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).output();
      const stdout = new TextDecoder().decode(out.stdout);
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, `subprocess failed:\n${stderr}`);
      // The CPU backend's worker threads start from an http: import too (no "did not start").
      assert.doesNotMatch(stderr, /did not start/, stderr);
      const result = JSON.parse(stdout.trim().split("\n").at(-1)!);
      assert.ok(result.clip > 0 && result.prior > 0 && result.decoder > 0, stdout);
      assert.equal(result.sampler, "ddpm");
      assert.ok(Number.isFinite(result.loss), stdout);
    } finally {
      await server.shutdown();
      await Deno.remove(cwd, { recursive: true });
    }
  },
});

Deno.test({
  name: "the README's library snippet runs as written, with the command it gives, and saves a PNG",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const readme = await Deno.readTextFile(join(ROOT, "README.md"));
    const lib = readme.split(/^## /m).find((p) => p.startsWith("Use it as a library"))!;
    const code = /```ts\n([\s\S]*?)```/.exec(lib)![1];
    const command = /```sh\n(deno run [^\n]*)\n```/.exec(lib)![1];
    const server = serveRepository();
    const host = `127.0.0.1:${server.addr.port}`;
    const cwd = await Deno.makeTempDir();
    try {
      // The snippet loads runs/tiny (the quick start's run): the shipped 16x16 demo weights (the
      // tiny preset's models) stand in.
      await Deno.mkdir(join(cwd, "runs"));
      await Deno.symlink(join(ROOT, "weights", "cpu-demo"), join(cwd, "runs", "tiny"));
      const [, , ...args] = command.replaceAll("YOUR-HOST", host).split(/\s+/);
      // The test server speaks plain HTTP.
      const source = code.replaceAll("https://YOUR-HOST", `http://${host}`);
      await Deno.writeTextFile(join(cwd, args.at(-1)!), source);
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", ...args],
        cwd,
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, `"${command}" failed:\n${stderr}`);
      assert.doesNotMatch(stderr, /did not start/, stderr);
      const png = await Deno.readFile(join(cwd, "out", "circles.png"));
      // Four 16x16 images in a 2x2 grid with 2-pixel padding.
      assert.deepEqual(pngSize(png), { width: 38, height: 38 });
    } finally {
      await server.shutdown();
      await Deno.remove(cwd, { recursive: true });
    }
  },
});
