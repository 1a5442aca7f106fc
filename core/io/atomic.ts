/**
 * Crash-safe file writes: the data goes to a temporary file in the target's directory, is flushed
 * to disk, and only then renamed over the target. A rename within one directory is atomic on
 * POSIX file systems, so readers see either the old file or the complete new one, never a
 * half-written file.
 *
 * @module
 */

import { basenamePath as basename, dirnamePath as dirname, joinPath as join } from "./paths.ts";

/** Bytes to write: one buffer, or chunks (sync or async) streamed without concatenation. */
export type WriteSource = Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** A fresh temporary path beside `path`, hidden and unlikely to collide with anything. */
export function tempPathFor(path: string): string {
  const rand = crypto.getRandomValues(new Uint32Array(2));
  const tag = `${rand[0].toString(16)}${rand[1].toString(16)}`;
  return join(dirname(path), `.${basename(path)}.tmp-${tag}`);
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await file.write(bytes.subarray(written));
  }
}

/**
 * Writes `data` to a temporary file beside `path` and fsyncs it, without touching `path`.
 * Returns the temporary path; the caller renames it into place (or removes it). On failure the
 * temporary file is removed and the error rethrown.
 */
export async function writeTempFile(path: string, data: WriteSource): Promise<string> {
  const tmp = tempPathFor(path);
  const file = await Deno.open(tmp, { write: true, createNew: true });
  try {
    if (data instanceof Uint8Array) {
      await writeAll(file, data);
    } else {
      for await (const chunk of data) await writeAll(file, chunk);
    }
    await file.sync();
  } catch (err) {
    file.close();
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  file.close();
  return tmp;
}

/** Flushes a directory entry change (a rename) to disk where the platform allows it. */
export async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // Not every platform can fsync a directory (Windows cannot); the rename is still atomic.
  }
}

/**
 * Writes a file atomically: a temporary file in the same directory is written, fsynced and
 * renamed over `path`. If anything fails (including a chunk source that throws midway), `path`
 * is left exactly as it was and the temporary file is removed.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/x.bin`, new Uint8Array([1, 2, 3]));
 * // Large outputs can be streamed as chunks:
 * await writeFileAtomic(`${dir}/y.bin`, [new Uint8Array([1]), new Uint8Array([2, 3])]);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(path: string, data: WriteSource): Promise<void> {
  const tmp = await writeTempFile(path, data);
  try {
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  await syncDir(dirname(path));
}

/**
 * Writes UTF-8 text atomically (see {@linkcode writeFileAtomic}).
 *
 * @example
 * ```ts
 * import { writeTextAtomic } from "./atomic.ts";
 * const dir = await Deno.makeTempDir();
 * await writeTextAtomic(`${dir}/config.json`, JSON.stringify({ steps: 10 }));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  await writeFileAtomic(path, new TextEncoder().encode(text));
}

/**
 * Whether `path` exists. A missing permission is not taken for a missing path: without
 * `--allow-read` it throws `Deno.errors.NotCapable`, and when the operating system refuses
 * access `Deno.errors.PermissionDenied`, each with a message naming what is missing. Other
 * failures (e.g. a file where a folder was expected) count as absent.
 *
 * @example
 * ```ts
 * if (!(await exists("runs/tiny"))) console.log("no run yet");
 * ```
 */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable) {
      throw new Deno.errors.NotCapable(
        `No read permission for "${path}": run Deno with --allow-read (or -A)`,
        { cause: e },
      );
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new Deno.errors.PermissionDenied(
        `Permission denied reading "${path}": the operating system refused access; ` +
          `check the permissions of the file and its folders`,
        { cause: e },
      );
    }
    return false;
  }
}
