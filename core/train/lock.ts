/**
 * One writer per run folder: `train` holds `<out>/train.lock` (created atomically, holding the
 * pid) while it runs. A second writer gets a one-line error naming the holder's pid; a lock whose
 * process is gone (a crash, a kill -9) is taken over with a note.
 *
 * @module
 */
import { join } from "node:path";

/** The lock file's name inside a run folder. */
export const LOCK_FILE = "train.lock";

/** Another live process holds the run folder. */
export class LockError extends Error {
  /** The holder's pid, when the lock file names one. */
  readonly pid: number | null;
  /**
   * @example
   * ```ts
   * const error = new LockError("runs/tiny is in use", 1234);
   * error.pid; // 1234
   * ```
   */
  constructor(message: string, pid: number | null) {
    super(message);
    this.name = "LockError";
    this.pid = pid;
  }
}

/** A held lock; `release()` removes the lock file if it is still ours (idempotent). */
export interface RunLock {
  path: string;
  release(): void;
}

/**
 * Whether a process with this pid runs: `/proc/<pid>` on Linux; elsewhere (no /proc) the lock
 * is assumed live, and the error names the file to remove.
 */
export function processAlive(pid: number): boolean {
  if (pid === Deno.pid) return true;
  try {
    Deno.statSync("/proc/self");
  } catch {
    return true; // no /proc to ask: do not steal the lock
  }
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

function readHolder(path: string): { pid: number | null; ageMs: number } | null {
  try {
    const text = Deno.readTextFileSync(path);
    const m = /^pid (\d+)$/m.exec(text);
    const mtime = Deno.statSync(path).mtime?.getTime() ?? Date.now();
    return { pid: m ? Number(m[1]) : null, ageMs: Date.now() - mtime };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null; // released meanwhile
    throw e;
  }
}

function tryCreate(path: string): boolean {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { write: true, createNew: true });
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) return false;
    throw e;
  }
  try {
    const text = `pid ${Deno.pid}\nstarted ${new Date().toISOString()}\n`;
    file.writeSync(new TextEncoder().encode(text));
  } finally {
    file.close();
  }
  return true;
}

/**
 * Takes the lock of run folder `dir` (which must exist). Throws `LockError` when a live process
 * holds it; recovers a stale one (dead pid) and reports it through `note`.
 *
 * @example
 * ```ts
 * const dir = await Deno.makeTempDir();
 * const lock = acquireRunLock(dir, console.log);
 * try {
 *   // ... train into dir
 * } finally {
 *   lock.release();
 * }
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function acquireRunLock(dir: string, note: (line: string) => void): RunLock {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 3; attempt++) {
    if (tryCreate(path)) {
      let held = true;
      return {
        path,
        release() {
          if (!held) return;
          held = false;
          try {
            if (readHolder(path)?.pid === Deno.pid) Deno.removeSync(path);
          } catch { /* already gone */ }
        },
      };
    }
    const holder = readHolder(path);
    if (holder === null) continue; // released between our attempt and the read: try again
    // A lock without a pid is being written right now, unless it is old.
    const alive = holder.pid === null ? holder.ageMs < 10_000 : processAlive(holder.pid);
    if (alive) {
      const who = holder.pid === null ? "another process" : `process ${holder.pid}`;
      throw new LockError(
        `"${dir}" is in use by another train run (pid ${holder.pid ?? "unknown"}; ${who} holds ` +
          `${path}); wait for it to finish or choose another --out (if no such run exists, ` +
          `remove the lock file)`,
        holder.pid,
      );
    }
    // Move the stale lock aside atomically and check that it is the one we judged dead (another
    // process may have recovered it and taken a fresh lock meanwhile: that one is put back).
    const aside = `${path}.stale-${Deno.pid}`;
    try {
      Deno.renameSync(path, aside);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      throw e;
    }
    const moved = readHolder(aside);
    if (moved !== null && moved.pid !== holder.pid) {
      try {
        Deno.linkSync(aside, path);
      } catch { /* a third process holds it now */ }
      Deno.removeSync(aside);
      continue;
    }
    Deno.removeSync(aside);
    note(
      `Note: recovered a stale lock of pid ${holder.pid ?? "unknown"} (no longer running) ` +
        `in ${path}`,
    );
  }
  throw new LockError(`Could not take the lock ${path}: other processes keep taking it`, null);
}
