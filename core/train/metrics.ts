/**
 * Machine-readable training metrics: one JSON object per line (JSONL), appended as training
 * goes, so a crashed run keeps what it logged.
 *
 * @module
 */
import { writeTextAtomic } from "../io/mod.ts";

/** One logged step. `loss` is the mean over the steps since the previous line. */
export interface MetricsRecord {
  stage: string;
  /** Steps completed. */
  step: number;
  loss: number;
  lr: number;
  stepsPerSecond: number;
  /** Seconds of training so far, resumed runs included. */
  elapsedSeconds: number;
  /** ISO time of the line. */
  time: string;
  [key: string]: unknown;
}

/**
 * Appends records to a JSONL file.
 *
 * @example
 * ```ts
 * const dir = await Deno.makeTempDir();
 * const log = await MetricsLog.open(`${dir}/metrics.jsonl`, { truncateAfter: 0 });
 * const time = new Date().toISOString();
 * await log.append({ stage: "clip", step: 1, loss: 2.1, lr: 3e-4, stepsPerSecond: 2, elapsedSeconds: 0.5, time });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export class MetricsLog {
  /** The file. */
  readonly path: string;

  private constructor(path: string) {
    this.path = path;
  }

  /**
   * Opens (creating) a metrics file. With `truncateAfter: k`, lines with `step > k` are dropped
   * first: a resumed run replaces what the interrupted one logged after its last checkpoint.
   *
   * @example
   * ```ts
   * async function resumeAt500(path: string) {
   *   return await MetricsLog.open(path, { truncateAfter: 500 }); // keeps steps <= 500
   * }
   * ```
   */
  static async open(path: string, options: { truncateAfter?: number } = {}): Promise<MetricsLog> {
    const k = options.truncateAfter;
    if (k !== undefined) {
      const kept = (await readMetrics(path)).filter((r) => r.step <= k);
      await writeTextAtomic(path, kept.map((r) => JSON.stringify(r) + "\n").join(""));
    }
    return new MetricsLog(path);
  }

  /**
   * Appends one record as a line.
   *
   * @example
   * ```ts
   * async function log(metrics: MetricsLog, record: MetricsRecord) {
   *   await metrics.append(record);
   * }
   * ```
   */
  async append(record: MetricsRecord): Promise<void> {
    await Deno.writeTextFile(this.path, JSON.stringify(record) + "\n", { append: true });
  }
}

/**
 * Reads a JSONL metrics file (missing file: no records; unparsable lines are skipped, e.g. a
 * line cut by a crash).
 *
 * @example
 * ```ts
 * async function losses(path: string): Promise<number[]> {
 *   return (await readMetrics(path)).map((r) => r.loss); // [] when the file does not exist
 * }
 * ```
 */
export async function readMetrics(path: string): Promise<MetricsRecord[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const out: MetricsRecord[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      out.push(JSON.parse(line));
    } catch { /* a torn last line */ }
  }
  return out;
}
