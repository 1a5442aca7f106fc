/**
 * Where weights are read from: one small interface with two implementations, the file system
 * (Deno) and `fetch` (a browser, or Deno reading a static web host). A static host cannot list
 * folders and answers "does this exist" only with a 404, so the interface asks for nothing more:
 * bytes, text, and existence of a file. Checkpoint loading (core/train/checkpoint.ts,
 * core/io/sharded.ts) goes through it, so the same loader serves both.
 *
 * @module
 */
import { exists } from "./atomic.ts";
import { isHttpUrl } from "./paths.ts";

/** A missing file or URL (a file-system NotFound or an HTTP 404); the message names it. */
export class NotFoundError extends Error {
  constructor(readonly location: string, message = `"${location}" does not exist`) {
    super(message);
    this.name = "NotFoundError";
  }
}

/** Reads the files of a checkpoint. Paths are joined with "/" (see `joinPath`). */
export interface WeightReader {
  /** The file's bytes; throws `NotFoundError` when it is missing. */
  readBytes(path: string): Promise<Uint8Array>;
  /** The file as UTF-8 text; throws `NotFoundError` when it is missing. */
  readText(path: string): Promise<string>;
  /** Whether the file exists (for a URL: whether it is not a 404). */
  exists(path: string): Promise<boolean>;
  /**
   * Names of a folder's entries, where the source can list folders (the file system); used only
   * for crash recovery, absent over HTTP.
   */
  list?(path: string): Promise<{ name: string; isDirectory: boolean }[]>;
}

/**
 * Files on the local file system through Deno (needs `--allow-read`). A missing permission is
 * never taken for a missing file: it is rethrown with its own message.
 *
 * @example
 * ```ts
 * async function latest(): Promise<string> {
 *   return await fileReader().readText("runs/tiny/clip/latest"); // e.g. "step-00000300"
 * }
 * ```
 */
export function fileReader(): WeightReader {
  const notFound = (path: string, e: unknown): never => {
    if (e instanceof Deno.errors.NotFound) throw new NotFoundError(path);
    throw e;
  };
  return {
    readBytes: (path) => Deno.readFile(path).catch((e) => notFound(path, e)),
    readText: (path) => Deno.readTextFile(path).catch((e) => notFound(path, e)),
    exists, // names a missing permission instead of answering false (atomic.ts)
    async list(path) {
      const out: { name: string; isDirectory: boolean }[] = [];
      for await (const e of Deno.readDir(path)) {
        out.push({ name: e.name, isDirectory: e.isDirectory });
      }
      return out;
    },
  };
}

/**
 * Files over HTTP(S) with `fetch`: paths are URLs (absolute, or relative to `base`, e.g. the
 * page's URL in a browser). 404 means missing; any other failure throws with the URL and status.
 * Existence is asked with a HEAD request, which static hosts answer without the body
 * (https://developer.mozilla.org/en-US/docs/Web/HTTP/Methods/HEAD).
 *
 * @example
 * ```ts
 * async function latest(): Promise<string> {
 *   const reader = fetchReader();
 *   return await reader.readText("http://127.0.0.1:8000/weights/clip/latest");
 * }
 * ```
 */
export function fetchReader(
  options: { base?: string; fetch?: typeof fetch } = {},
): WeightReader {
  const doFetch = options.fetch ?? ((input, init) => fetch(input, init));
  const url = (path: string) => options.base ? new URL(path, options.base).href : path;
  const get = async (path: string): Promise<Response> => {
    const u = url(path);
    let res: Response;
    try {
      res = await doFetch(u);
    } catch (e) {
      throw new Error(`Cannot fetch "${u}": ${(e as Error).message}`);
    }
    if (res.status === 404) {
      await res.body?.cancel();
      throw new NotFoundError(u, `"${u}" was not found (HTTP 404)`);
    }
    if (!res.ok) {
      await res.body?.cancel();
      throw new Error(`Cannot fetch "${u}": HTTP ${res.status} ${res.statusText}`);
    }
    return res;
  };
  return {
    readBytes: async (path) => new Uint8Array(await (await get(path)).arrayBuffer()),
    readText: async (path) => await (await get(path)).text(),
    async exists(path) {
      const u = url(path);
      const res = await doFetch(u, { method: "HEAD" });
      await res.body?.cancel();
      if (res.ok) return true;
      if (res.status === 404) return false;
      throw new Error(`Cannot fetch "${u}": HTTP ${res.status} ${res.statusText}`);
    },
  };
}

/**
 * The reader for a location: `fetchReader` for http(s) URLs and wherever there is no Deno (a
 * browser page or worker, relative to its own URL), else `fileReader`.
 */
export function readerFor(location: string): WeightReader {
  if (typeof Deno === "undefined") {
    return fetchReader({ base: (globalThis as { location?: { href: string } }).location?.href });
  }
  return isHttpUrl(location) ? fetchReader() : fileReader();
}
