/**
 * Compiles WGSL modules in Chromium's WebGPU (Tint) and lists every compile error, so that what
 * Deno's implementation (Naga) accepts is checked against the other major one. The modules come
 * from a test run with `UNCLIP_WGSL_DUMP=DIR` (core/tensor/webgpu_backend.ts writes one file per
 * compiled module):
 *
 * ```sh
 * UNCLIP_BACKEND=webgpu UNCLIP_WGSL_DUMP=/tmp/wgsl deno test -A tests/ops_conv_test.ts
 * deno run -A tools/wgsl_sweep.ts /tmp/wgsl
 * ```
 *
 * Errors come from `GPUShaderModule.getCompilationInfo()`
 * (https://www.w3.org/TR/webgpu/#dom-gpushadermodule-getcompilationinfo). Exit code 1 on any.
 *
 * @module
 */
import { findChromium, openPage } from "../tests/_support/chromium.ts";

/** One module's errors. */
export interface SweepResult {
  name: string;
  errors: string[];
}

/** Compiles `modules` (name -> WGSL) in a Chromium page and returns those with errors. */
export async function sweepWgsl(
  chromium: string,
  modules: Record<string, string>,
): Promise<{ version: string; failures: SweepResult[]; compiled: number }> {
  // WebGPU exists only in secure contexts (https://www.w3.org/TR/webgpu/#navigator-gpu), which
  // http://127.0.0.1 is and about:blank is not: serve a blank page locally.
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response("<!doctype html><title>sweep</title>", {
        headers: { "content-type": "text/html" },
      }),
  );
  const page = await openPage(chromium, `http://127.0.0.1:${server.addr.port}/`);
  try {
    await page.evaluate(`(async () => {
      const adapter = await navigator.gpu.requestAdapter();
      globalThis.sweepDevice = await adapter.requestDevice();
      return true;
    })()`);
    const failures: SweepResult[] = [];
    const entries = Object.entries(modules);
    for (let i = 0; i < entries.length; i += 50) {
      const chunk = Object.fromEntries(entries.slice(i, i + 50));
      const found = await page.evaluate<SweepResult[]>(`(async () => {
        const out = [];
        for (const [name, code] of Object.entries(${JSON.stringify(chunk)})) {
          const module = sweepDevice.createShaderModule({ code });
          const info = await module.getCompilationInfo();
          const errors = info.messages.filter((m) => m.type === "error")
            .map((m) => m.lineNum + ":" + m.linePos + " " + m.message);
          if (errors.length) out.push({ name, errors });
        }
        return out;
      })()`);
      failures.push(...found);
    }
    return { version: page.version, failures, compiled: entries.length };
  } finally {
    await page.close();
    await server.shutdown();
  }
}

if (import.meta.main) {
  const dir = Deno.args[0];
  if (!dir) {
    console.error(
      "Usage: deno run -A tools/wgsl_sweep.ts DIR (modules dumped by UNCLIP_WGSL_DUMP)",
    );
    Deno.exit(1);
  }
  const chromium = await findChromium();
  if (!chromium) {
    console.error("Error: Chromium is not installed (apt-get install chromium)");
    Deno.exit(1);
  }
  const modules: Record<string, string> = {};
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".wgsl")) {
      modules[e.name] = await Deno.readTextFile(`${dir}/${e.name}`);
    }
  }
  const t0 = performance.now();
  const { version, failures, compiled } = await sweepWgsl(chromium, modules);
  for (const f of failures) console.log(`${f.name}: ${f.errors.join(" | ")}`);
  console.log(
    `${compiled} modules compiled in ${version} in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s: ` +
      `${failures.length} with errors`,
  );
  Deno.exit(failures.length ? 1 : 0);
}
