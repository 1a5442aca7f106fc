/**
 * Headless Chromium driven over the DevTools protocol with a plain WebSocket (no puppeteer):
 * launch with WebGPU on SwiftShader, open a page, evaluate expressions in it.
 * Protocol: https://chromedevtools.github.io/devtools-protocol/ (Runtime.evaluate).
 *
 * @module
 */

/** The Chromium binary, or null when none is installed (tests then skip). */
export async function findChromium(): Promise<string | null> {
  const env = Deno.env.get("CHROMIUM");
  for (
    const path of [env, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
  ) {
    if (!path) continue;
    try {
      if ((await Deno.stat(path)).isFile) return path;
    } catch { /* not here */ }
  }
  return null;
}

/** Flags that give headless Chromium a WebGPU adapter without a GPU (software, SwiftShader). */
export const WEBGPU_FLAGS = [
  "--headless=new",
  "--no-sandbox", // containers run as root, where the sandbox cannot start
  "--enable-unsafe-webgpu",
  "--use-webgpu-adapter=swiftshader",
  "--no-first-run",
  "--no-default-browser-check",
  "--disable-gpu-sandbox",
];

/** A page in a running browser. */
export interface BrowserPage {
  version: string;
  /** Evaluates `expression` in the page (awaiting promises) and returns its JSON value. */
  evaluate<T>(expression: string): Promise<T>;
  /** Console messages and exceptions seen so far. */
  logs: string[];
  /** A PNG of the page as it looks now. */
  screenshot(): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** Launches Chromium on `url` and connects to that page. */
export async function openPage(binary: string, url: string): Promise<BrowserPage> {
  const profile = await Deno.makeTempDir({ prefix: "unclip-chromium-" });
  const child = new Deno.Command(binary, {
    args: [...WEBGPU_FLAGS, `--user-data-dir=${profile}`, "--remote-debugging-port=0", url],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Chromium prints "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on stderr.
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let port = "";
  const deadline = Date.now() + 30_000;
  while (!port && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    port = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(text)?.[1] ?? "";
  }
  // Keep draining stderr so Chromium never blocks on a full pipe.
  (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })().catch(() => {});
  const kill = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* exited */ }
    await child.status;
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  };
  if (!port) {
    await kill();
    throw new Error(`Chromium did not start: ${text.slice(-500)}`);
  }
  const base = `http://127.0.0.1:${port}`;
  const version = (await (await fetch(`${base}/json/version`)).json()).Browser as string;
  type Target = { type: string; url: string; webSocketDebuggerUrl: string };
  let target: Target | undefined;
  for (let i = 0; i < 50 && !target; i++) {
    const list = await (await fetch(`${base}/json/list`)).json() as Target[];
    target = list.find((t) => t.type === "page");
    if (!target) await new Promise((r) => setTimeout(r, 100));
  }
  if (!target) {
    await kill();
    throw new Error("Chromium opened no page");
  }
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((ok, fail) => {
    ws.onopen = ok;
    ws.onerror = () => fail(new Error("DevTools WebSocket failed"));
  });
  let nextId = 1;
  const waiting = new Map<number, (m: Record<string, unknown>) => void>();
  const logs: string[] = [];
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    if (m.id && waiting.has(m.id)) {
      waiting.get(m.id)!(m);
      waiting.delete(m.id);
    } else if (m.method === "Runtime.consoleAPICalled") {
      logs.push(
        `${m.params.type}: ${m.params.args.map((a: { value?: unknown }) => a.value).join(" ")}`,
      );
    } else if (m.method === "Runtime.exceptionThrown") {
      logs.push(
        `exception: ${
          m.params.exceptionDetails?.exception?.description ?? m.params.exceptionDetails?.text
        }`,
      );
    }
  };
  const call = (method: string, params: unknown = {}) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call("Runtime.enable");
  // The page target exists before it has navigated (it may still be about:blank, where WebGPU is
  // missing): wait until the document at `url` has loaded.
  // file: URLs (and about:blank) have the origin "null": compare whole addresses for them.
  const origin = new URL(url).origin;
  const where = origin === "null" ? "location.href" : "location.origin";
  const want = origin === "null" ? new URL(url).href : origin;
  for (let i = 0; i < 300; i++) {
    const m = await call("Runtime.evaluate", {
      expression: `${where} + ' ' + document.readyState`,
      returnByValue: true,
    });
    const value = (m.result as { result?: { value?: string } } | undefined)?.result?.value ?? "";
    if (value === `${want} complete`) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    version,
    logs,
    async evaluate<T>(expression: string): Promise<T> {
      const m = await call("Runtime.evaluate", {
        expression,
        awaitPromise: true,
        returnByValue: true,
      });
      const result = m.result as {
        result?: { value?: unknown };
        exceptionDetails?: { text: string; exception?: { description?: string } };
      } | undefined;
      if (m.error || result?.exceptionDetails) {
        const d = result?.exceptionDetails;
        throw new Error(
          `In the page: ${d?.exception?.description ?? d?.text ?? JSON.stringify(m.error)}`,
        );
      }
      return result?.result?.value as T;
    },
    async screenshot() {
      const m = await call("Page.captureScreenshot", {
        format: "png",
        captureBeyondViewport: true,
      });
      const data = (m.result as { data: string }).data;
      return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    },
    async close() {
      ws.close();
      await kill();
    },
  };
}
