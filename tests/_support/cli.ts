/**
 * Running a task as a user would (a subprocess on the CPU backend) and checking its one-line
 * errors: shared by the subprocess tests.
 */
import assert from "node:assert/strict";
import { join } from "node:path";

const ROOT = new URL("../..", import.meta.url).pathname;

/** What a task printed and its exit code. */
export interface Cli {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `deno run -A tasks/<task>.ts ...args` from the repository root (or `cwd`) on the CPU
 * backend; `env` adds variables (e.g. `UNCLIP_CPU_THREADS`).
 */
export async function cli(
  task: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Cli> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(ROOT, "tasks", `${task}.ts`), ...args],
    cwd: options.cwd ?? ROOT,
    env: { NO_COLOR: "1", UNCLIP_BACKEND: "cpu", ...options.env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Asserts exit code 1 with exactly one stderr line, `Error: ...`, matching `re`. */
export function assertOneLineError(r: Cli, re: RegExp): void {
  assert.equal(r.code, 1, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^Error: /);
  assert.match(lines[0], re);
}
