/**
 * Bundles the web page's code (web/main.ts, web/worker.ts) for browsers with `deno bundle`
 * (built into Deno 2.x, esbuild underneath; https://docs.deno.com/runtime/reference/cli/bundle/),
 * so no bundler needs to be pinned or installed. Output: one ES module per entry.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** The repository root (where deno.json and the lock file are). */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");

/** The page's entry points, by output name. */
export const WEB_ENTRIES: Record<string, string> = {
  "main.js": "web/main.ts",
  "worker.js": "web/worker.ts",
};

/**
 * Bundles every web entry into `outDir` (minified, browser platform) and returns the output
 * sizes in bytes. Throws with deno bundle's own message on failure.
 */
export async function bundleWeb(outDir: string): Promise<Record<string, number>> {
  await Deno.mkdir(outDir, { recursive: true });
  const sizes: Record<string, number> = {};
  for (const [out, entry] of Object.entries(WEB_ENTRIES)) {
    const target = `${outDir}/${out}`;
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "bundle",
        "--quiet",
        "--platform=browser",
        "--minify",
        `--config=${ROOT}/deno.json`,
        "-o",
        target,
        `${ROOT}/${entry}`,
      ],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    if (code !== 0) {
      const msg = new TextDecoder().decode(stderr).split("\n").find((l) => /error/i.test(l));
      throw new Error(`Bundling ${entry} failed: ${msg?.trim() ?? `deno bundle exited ${code}`}`);
    }
    sizes[out] = (await Deno.stat(target)).size;
  }
  return sizes;
}
