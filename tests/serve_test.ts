// `deno task serve` without a browser: the page, its bundle and the weights over HTTP, GET and
// HEAD only; a port already taken is a one-line usage error that leaves no temporary bundle
// behind (the browser tests drive the page itself, where Chromium is installed).
import assert from "node:assert/strict";
import { dirname } from "node:path";
import { runServe, startWebServer } from "../tasks/serve.ts";

const WEIGHTS = new URL("../weights/cpu-demo", import.meta.url).pathname;

/** The temporary bundle folders `startWebServer` makes, in the system's temporary folder. */
async function tempBundles(): Promise<string[]> {
  const probe = await Deno.makeTempDir();
  await Deno.remove(probe);
  const names: string[] = [];
  for await (const e of Deno.readDir(dirname(probe))) {
    if (e.name.startsWith("unclip-web-")) names.push(e.name);
  }
  return names.sort();
}

Deno.test("serve: the page, its bundle and the weights; a taken port is one line, no bundle left", async () => {
  const before = await tempBundles();
  const server = await startWebServer({ checkpoint: WEIGHTS, port: 0, host: "127.0.0.1" });
  try {
    const page = await fetch(server.url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<form id="form" novalidate>/);
    const main = await fetch(new URL("main.js", server.url));
    assert.equal(main.status, 200);
    assert.equal((await main.arrayBuffer()).byteLength, server.sizes["main.js"]);
    const latest = await fetch(new URL("weights/clip/latest", server.url));
    assert.equal(latest.status, 200);
    assert.equal(
      (await latest.text()).trim(),
      (await Deno.readTextFile(`${WEIGHTS}/clip/latest`)).trim(),
    );
    for (
      const [path, init, status] of [
        ["nope.js", {}, 404],
        ["weights/clip/nope", {}, 404],
        ["", { method: "POST" }, 405],
      ] as const
    ) {
      const r = await fetch(new URL(path, server.url), init);
      await r.body?.cancel();
      assert.equal(r.status, status, `${init.method ?? "GET"} /${path}`);
    }
    const head = await fetch(server.url, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");

    const port = new URL(server.url).port;
    await assert.rejects(
      runServe(["--checkpoint", WEIGHTS, "--port", port], () => {}),
      new RegExp(`^UsageError: Port ${port} is in use; choose another with --port$`),
    );
    // An address that is not this machine's (TEST-NET-1, RFC 5737) is a usage error too.
    await assert.rejects(
      runServe(["--checkpoint", WEIGHTS, "--port", "0", "--host", "192.0.2.1"], () => {}),
      /^UsageError: --host "192\.0\.2\.1" is not an address of this machine; try 127\.0\.0\.1$/,
    );
  } finally {
    await server.close();
  }
  assert.deepEqual(await tempBundles(), before, "every temporary bundle removed");
});
