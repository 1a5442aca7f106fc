/**
 * Where a step's time goes, op by op (the engine's counterpart of `torch.profiler`'s operator
 * table). While a profile is open, every op's forward time and every gradient function's time
 * are added up under the op's name (and, with `byShape`, its input shapes):
 *
 * - forward: the time from the previous op's return (or the profile's start, or the end of the
 *   previous backward or `section`) to this op's `record()`, so the host code between two ops
 *   counts with the op that follows it, and an op built from other ops (e.g. composed
 *   attention) is charged to its parts;
 * - backward: each `GradNode.backward` call, the ops it runs included, plus the summing of
 *   gradients that reach a tensor twice (the row `(accumulate)`);
 * - `section(name, fn)`: one row for all of `fn` (an optimizer update; or a whole backward
 *   pass, whose ops then get no rows of their own).
 *
 * The profiled work must be synchronous: `profileOps` refuses a function that returns a promise
 * (around awaited work, open and close the profile with `startProfile` and `stopProfile`).
 *
 * On the CPU backend every op has finished when it returns, so the times are the ops' own. On
 * WebGPU ops are only queued when they return: the times are the host's encoding time, not the
 * GPU's (the table's header says so).
 *
 * @example
 * ```ts
 * import { matmul, randn, sum } from "./mod.ts";
 * import { profileOps } from "./profiler.ts";
 * function profiledStep(): string {
 *   const w = randn([64, 64]).keep();
 *   w.requiresGrad = true;
 *   const { profile } = profileOps(() => sum(matmul(randn([32, 64]), w)).backward());
 *   return profile.format(); // rows "matmul forward", "matmul backward", ...
 * }
 * ```
 * @module
 */
import { backend, deviceLine } from "./backend.ts";

/** Which part of a step a row's time was spent in. */
export type OpPhase = "forward" | "backward" | "section";

/** One row of a profile: an op (optionally at one set of input shapes) in one phase. */
export interface OpTiming {
  op: string;
  phase: OpPhase;
  /** The input shapes, `[32,64] [64,64]`, with `byShape`; "" otherwise. */
  shapes: string;
  calls: number;
  ms: number;
}

/** Options of `startProfile` / `profileOps`. */
export interface ProfileOptions {
  /** One row per op and set of input shapes, not per op (default false). */
  byShape?: boolean;
}

/** Anything with a shape (a Tensor; kept structural so this file imports nothing). */
interface Shaped {
  readonly shape: readonly number[];
}

/** Where a profile's times come from: the backend's line, and whether its ops run when called. */
interface ProfileSource {
  device: string;
  synchronous: boolean;
}

/** The op times of one profiling run; see the module's documentation. */
export class OpProfile {
  readonly byShape: boolean;
  readonly device: string;
  readonly synchronous: boolean;
  readonly #rows = new Map<string, OpTiming>();
  /** When the time now being spent started to count towards the next op. */
  #mark = performance.now();
  /** Depth of open backward calls and sections: ops inside them get no forward rows. */
  #nested = 0;
  #startedAt = performance.now();
  #stoppedAt: number | null = null;

  constructor(opts: ProfileOptions, source: ProfileSource) {
    this.byShape = opts.byShape ?? false;
    this.device = source.device;
    this.synchronous = source.synchronous;
  }

  /** Milliseconds from the start to `stopProfile` (or to now while open). */
  get wallMs(): number {
    return (this.#stoppedAt ?? performance.now()) - this.#startedAt;
  }

  /** Milliseconds attributed to rows (the wall time less the gaps outside any op). */
  get attributedMs(): number {
    let total = 0;
    for (const r of this.#rows.values()) total += r.ms;
    return total;
  }

  /** The rows, slowest first. */
  rows(): OpTiming[] {
    return [...this.#rows.values()].sort((a, b) => b.ms - a.ms);
  }

  /** Runs `fn` as one row `name` (phase "section"); the ops inside get no rows of their own. */
  section<T>(name: string, fn: () => T): T {
    return this.#timed(name, "section", "", fn);
  }

  /**
   * A text table of the rows (slowest first, `limit` of them): op, phase, calls, total ms, ms per
   * call and share of the attributed time, after a header with the device and the totals.
   */
  format(opts: { limit?: number; perStep?: number } = {}): string {
    const steps = opts.perStep ?? 1;
    const rows = this.rows().slice(0, opts.limit ?? Infinity);
    const total = this.attributedMs;
    const fmt = (ms: number) => (ms / steps).toFixed(2);
    // Calls per step: whole numbers as such, an op that some steps skip with one decimal.
    const perStep = (calls: number) =>
      calls % steps === 0 ? String(calls / steps) : (calls / steps).toFixed(1);
    const lines = [
      `op profile${this.device ? ` on ${this.device}` : ""}` +
      (steps > 1 ? `, per step (mean of ${steps})` : "") +
      `: ${fmt(total)} ms in ops of ${fmt(this.wallMs)} ms` +
      (this.synchronous ? "" : " (WebGPU: host time to encode each op, not GPU time)"),
    ];
    const name = (r: OpTiming) => `${r.op} ${r.phase}${r.shapes ? ` ${r.shapes}` : ""}`;
    const width = Math.max(10, ...rows.map((r) => name(r).length));
    lines.push(
      `${"op".padEnd(width)}  ${"calls".padStart(6)}  ${"ms".padStart(9)}  ${
        "ms/call".padStart(8)
      }` +
        `  ${"share".padStart(6)}`,
    );
    for (const r of rows) {
      const share = total > 0 ? (100 * r.ms / total).toFixed(1) + "%" : "-";
      lines.push(
        `${name(r).padEnd(width)}  ${perStep(r.calls).padStart(6)}  ` +
          `${fmt(r.ms).padStart(9)}  ${(r.ms / r.calls).toFixed(3).padStart(8)}  ${
            share.padStart(6)
          }`,
      );
    }
    return lines.join("\n");
  }

  /** @internal Called by `record()`: charges the time since the last mark to `op`'s forward. */
  forward(op: string, inputs: readonly Shaped[]): void {
    if (this.#nested > 0 || this.#stoppedAt !== null) return;
    const now = performance.now();
    this.#add(op, "forward", this.#shapes(inputs), now - this.#mark);
    this.#mark = performance.now();
  }

  /** @internal Runs one gradient function (or gradient sum), charging its time to `op`. */
  backward<T>(op: string, inputs: readonly Shaped[], fn: () => T): T {
    return this.#timed(op, "backward", this.#shapes(inputs), fn);
  }

  /** @internal */
  stop(): void {
    this.#stoppedAt = performance.now();
  }

  /**
   * Runs `fn` as one call of a row. The ops inside get no rows of their own, nor does a gradient
   * function or section inside a section (its time is the outer row's), and a closed profile
   * records nothing.
   */
  #timed<T>(op: string, phase: OpPhase, shapes: string, fn: () => T): T {
    if (this.#nested > 0 || this.#stoppedAt !== null) return fn();
    const start = performance.now();
    this.#nested++;
    try {
      return fn();
    } finally {
      this.#nested--;
      this.#add(op, phase, shapes, performance.now() - start);
      this.#mark = performance.now();
    }
  }

  #shapes(inputs: readonly Shaped[]): string {
    return this.byShape ? inputs.map((t) => `[${t.shape.join(",")}]`).join(" ") : "";
  }

  #add(op: string, phase: OpPhase, shapes: string, ms: number): void {
    const key = `${phase}\u0000${op}\u0000${shapes}`;
    const row = this.#rows.get(key);
    if (row) {
      row.calls++;
      row.ms += ms;
    } else {
      this.#rows.set(key, { op, phase, shapes, calls: 1, ms });
    }
  }
}

let active: OpProfile | null = null;

/** The open profile, if any (what `record()` and `backward()` report to). */
export function activeProfile(): OpProfile | null {
  return active;
}

/**
 * Opens a profile; every op from now on is timed until `stopProfile()`. One at a time; the
 * engine must be initialised (`initBackend()`).
 */
export function startProfile(opts: ProfileOptions = {}): OpProfile {
  if (active) {
    throw new Error("startProfile: a profile is already open; call stopProfile() first.");
  }
  active = new OpProfile(opts, { device: deviceLine(), synchronous: backend().kind === "cpu" });
  return active;
}

/** Closes the open profile and returns it. */
export function stopProfile(): OpProfile {
  if (!active) throw new Error("stopProfile: no profile is open; call startProfile() first.");
  const done = active;
  done.stop();
  active = null;
  return done;
}

/** Runs `fn` under a fresh profile, handed to it for `section`s (closed afterwards, also when
 * `fn` throws). */
export function profileOps<T>(
  fn: (profile: OpProfile) => T,
  opts: ProfileOptions = {},
): { result: T; profile: OpProfile } {
  const profile = startProfile(opts);
  try {
    const result = fn(profile);
    if (result instanceof Promise) {
      throw new Error(
        "profileOps: the function returned a promise, so its ops after the first await would " +
          "be missed; profile a synchronous step, or call startProfile() and stopProfile() " +
          "around the awaited work.",
      );
    }
    return { result, profile };
  } finally {
    if (active === profile) stopProfile();
  }
}
