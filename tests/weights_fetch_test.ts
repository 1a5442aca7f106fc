// Weights over fetch: the shipped weights served by a local static server (which, like any
// static host, cannot list folders and answers a missing file with 404) load through
// fetchReader and sample exactly the images the file reader gives.
import assert from "node:assert/strict";
import {
  builtins,
  CheckpointError,
  fetchReader,
  fileReader,
  initBackend,
  loadPipeline,
  NotFoundError,
  textToImage,
} from "../browser.ts";

const WEIGHTS = new URL("../weights/cpu-demo/", import.meta.url);

/** A static file server for `root` on 127.0.0.1 (GET and HEAD; 404 for anything missing). */
function serveStatic(root: URL) {
  const requests: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    requests.push(`${req.method} ${path}`);
    if (path.includes("..")) return new Response("bad", { status: 400 });
    try {
      const body = await Deno.readFile(new URL(`.${path}`, root));
      return new Response(req.method === "HEAD" ? null : body);
    } catch {
      return new Response("missing", { status: 404 });
    }
  });
  return { server, requests, url: `http://127.0.0.1:${server.addr.port}` };
}

Deno.test("fetchReader: bytes, text, existence by 404, errors naming the URL", async () => {
  const { server, url } = serveStatic(WEIGHTS);
  try {
    const reader = fetchReader();
    assert.equal((await reader.readText(`${url}/clip/latest`)).trim(), "step-00001500");
    assert.equal(await reader.exists(`${url}/clip/latest`), true);
    assert.equal(await reader.exists(`${url}/clip/nope`), false);
    await assert.rejects(() => reader.readBytes(`${url}/nope.bin`), (e: Error) => {
      assert(e instanceof NotFoundError);
      assert.match(e.message, /nope\.bin" was not found \(HTTP 404\)/);
      return true;
    });
    // Relative paths resolve against base (a page's URL in a browser).
    const rel = fetchReader({ base: `${url}/clip/` });
    assert.equal((await rel.readText("latest")).trim(), "step-00001500");
  } finally {
    await server.shutdown();
  }
});

Deno.test("loadPipeline over http samples the same images as from files", async () => {
  await initBackend();
  const { server, url, requests } = serveStatic(WEIGHTS);
  try {
    const opts = { n: 1, steps: 3, seed: 11, guidance: 2 };
    const fromFiles = await loadPipeline(WEIGHTS.pathname, builtins(), { reader: fileReader() });
    const a = await textToImage(fromFiles, ["a large red circle"], opts);
    fromFiles.dispose();
    const overHttp = await loadPipeline(`${url}/`, builtins(), { reader: fetchReader() });
    const b = await textToImage(overHttp, ["a large red circle"], opts);
    overHttp.dispose();
    assert.deepEqual(b.shape, a.shape);
    assert.deepEqual(b.images, a.images);
    assert(requests.some((r) => r.endsWith(".safetensors")), "weights came over HTTP");
    // A missing checkpoint: one line naming the URL that was not there.
    await assert.rejects(
      () => loadPipeline(`${url}/missing/`, builtins(), { reader: fetchReader() }),
      (e: Error) => {
        assert(e instanceof CheckpointError);
        assert.match(e.message, /missing\/clip\/latest" was not found \(HTTP 404\)/);
        return true;
      },
    );
  } finally {
    await server.shutdown();
  }
});
