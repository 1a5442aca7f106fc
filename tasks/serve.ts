/**
 * `deno task serve [--checkpoint DIR] [--port N] [--host ADDR]`: bundles the web page (web/) and
 * serves it with a checkpoint's weights, so a browser with WebGPU samples on the user's GPU.
 * Binds 127.0.0.1 unless --host says otherwise: the server reads files, so it stays local
 * by default.
 *
 * @module
 */
import { join, normalize, resolve } from "node:path";
import { bundleWeb, ROOT } from "./_bundle.ts";
import { numberFlag, parseFlags, runMain, UsageError } from "./_cli.ts";
import { DEFAULT_WEIGHTS } from "./sample.ts";

const USAGE = `Usage: deno task serve [--checkpoint DIR] [--port N] [--host ADDR]

Bundles the web page (web/) and serves it with a checkpoint's sampling weights; open the URL it
prints in a browser with WebGPU (Chrome or Edge 113+).

Options:
  --checkpoint DIR   the run folder to serve (default: the shipped weights/default)
  --port N           TCP port (default 8000; 0 picks a free one)
  --host ADDR        address to bind (default 127.0.0.1: this machine only)
  --debug            print stack traces of errors
  -h, --help         show this help`;

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  json: "application/json",
  png: "image/png",
};

/** A running server. */
export interface WebServer {
  url: string;
  /** Bytes of each bundled file. */
  sizes: Record<string, number>;
  close(): Promise<void>;
  finished: Promise<void>;
}

/**
 * A file under `root` for a URL path, or null for anything outside it. Decoded first so that
 * "%2e%2e" cannot climb out.
 */
function within(root: string, urlPath: string): string | null {
  let rel: string;
  try {
    rel = decodeURIComponent(urlPath);
  } catch {
    return null;
  }
  if (rel.includes("\0")) return null;
  const path = normalize(join(root, rel));
  return path === root || path.startsWith(root + "/") || path.startsWith(root + "\\") ? path : null;
}

async function fileResponse(path: string | null, head: boolean): Promise<Response> {
  try {
    if (path && (await Deno.stat(path)).isFile) {
      const type = TYPES[path.slice(path.lastIndexOf(".") + 1)] ?? "application/octet-stream";
      const headers = { "content-type": type, "cache-control": "no-store" };
      if (head) return new Response(null, { headers });
      return new Response((await Deno.open(path)).readable, { headers });
    }
  } catch { /* missing or unreadable: 404 */ }
  return new Response(head ? null : "Not found\n", { status: 404 });
}

/**
 * Bundles the page and starts serving it; `checkpoint` is served under /weights/.
 *
 * @example
 * ```ts
 * async function serveOnce(): Promise<void> {
 *   const server = await startWebServer({ checkpoint: "weights/default", port: 0, host: "127.0.0.1" });
 *   console.log(server.url);
 *   await server.close();
 * }
 * ```
 */
export async function startWebServer(
  options: { checkpoint: string; port: number; host: string; bundleDir?: string },
): Promise<WebServer> {
  const bundleDir = options.bundleDir ?? await Deno.makeTempDir({ prefix: "unclip-web-" });
  // The temporary bundle goes with the server, or now if it never starts (e.g. port in use).
  const removeBundle = () =>
    options.bundleDir
      ? Promise.resolve()
      : Deno.remove(bundleDir, { recursive: true }).catch(() => {});
  let sizes: Record<string, number>, server: Deno.HttpServer<Deno.NetAddr>;
  try {
    sizes = await bundleWeb(bundleDir);
    server = serveBundle(options, resolve(options.checkpoint), bundleDir, sizes);
  } catch (e) {
    await removeBundle();
    throw e;
  }
  const host = options.host.includes(":") ? `[${options.host}]` : options.host;
  return {
    url: `http://${host}:${server.addr.port}/`,
    sizes,
    finished: server.finished,
    async close() {
      await server.shutdown();
      await removeBundle();
    },
  };
}

/** The HTTP server of `startWebServer`: the page, its bundle and the weights, GET and HEAD only. */
function serveBundle(
  options: { port: number; host: string },
  weights: string,
  bundleDir: string,
  sizes: Record<string, number>,
): Deno.HttpServer<Deno.NetAddr> {
  const page = join(ROOT, "web", "index.html");
  return Deno.serve({
    hostname: options.host,
    port: options.port,
    onListen: () => {},
  }, (req) => {
    const { pathname } = new URL(req.url);
    if (req.method !== "GET" && req.method !== "HEAD") {
      return new Response("Method not allowed\n", { status: 405 });
    }
    const head = req.method === "HEAD";
    if (pathname === "/" || pathname === "/index.html") return fileResponse(page, head);
    if (pathname.startsWith("/weights/")) {
      return fileResponse(within(weights, pathname.slice("/weights/".length)), head);
    }
    const name = pathname.slice(1);
    return fileResponse(name in sizes ? join(bundleDir, name) : null, head);
  });
}

/** The serve task: validates flags, starts the server, prints its URL, serves until Ctrl-C. */
export async function runServe(
  args: string[],
  print: (line: string) => void = console.log,
): Promise<WebServer | null> {
  const { values, positionals } = parseFlags(args, {
    checkpoint: { type: "string" },
    port: { type: "string" },
    host: { type: "string" },
  }, "serve");
  if (values.help) {
    print(USAGE);
    return null;
  }
  if (positionals.length) {
    throw new UsageError(`Unexpected argument "${positionals[0]}"; see "deno task serve --help"`);
  }
  const port = numberFlag(values, "port", { integer: true, min: 0, max: 65535 }) ?? 8000;
  const host = (values.host as string | undefined) ?? "127.0.0.1";
  if (!/^[A-Za-z0-9.:-]+$/.test(host)) throw new UsageError(`--host "${host}" is not an address`);
  const checkpoint = (values.checkpoint as string | undefined) ?? DEFAULT_WEIGHTS;
  for (const stage of ["clip", "prior", "decoder"]) {
    try {
      await Deno.stat(join(checkpoint, stage, "latest"));
    } catch {
      throw new UsageError(
        `--checkpoint "${checkpoint}" has no ${stage}/latest; point it at a trained run folder`,
      );
    }
  }
  let server: WebServer;
  try {
    server = await startWebServer({ checkpoint, port, host });
  } catch (e) {
    if (e instanceof Deno.errors.AddrInUse) {
      throw new UsageError(`Port ${port} is in use; choose another with --port`);
    }
    if (e instanceof Deno.errors.AddrNotAvailable) {
      throw new UsageError(`--host "${host}" is not an address of this machine; try 127.0.0.1`);
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new UsageError(
        `Port ${port} needs privileges to bind; choose one above 1023 with --port`,
      );
    }
    throw e;
  }
  const kb = Object.entries(server.sizes).map(([f, b]) => `${f} ${(b / 1024).toFixed(0)} KiB`);
  print(`Serving ${checkpoint} with the web page (${kb.join(", ")})`);
  print(`Open ${server.url} in a browser with WebGPU; Ctrl-C stops.`);
  return server;
}

if (import.meta.main) {
  await runMain(async (args) => {
    const server = await runServe(args);
    if (server) await server.finished;
  });
}
