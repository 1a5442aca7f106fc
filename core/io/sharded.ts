/**
 * Sharded safetensors checkpoints in the Hugging Face layout: `base-00001-of-0000N.safetensors`
 * files plus `base.safetensors.index.json` holding `{"metadata": {...}, "weight_map": {name:
 * file}}`. Other tools (transformers, safetensors, huggingface_hub) read this layout as is.
 *
 * Crash safety: all shards are written to temporary files and fsynced before any is renamed into
 * place; the index is written last (atomically) and stale shards of an earlier save are removed
 * only after it. If the shard count changed, an interrupted save leaves the previous index and
 * its shards fully intact. If the count is the same, the file names collide and a crash during
 * the renames could mix shards of two saves; every shard therefore carries the save's random id
 * in its metadata, and {@linkcode readShardedSafetensors} refuses a mix instead of loading it.
 *
 * @module
 */

import { joinPath as join } from "./paths.ts";
import { readerFor, type WeightReader } from "./reader.ts";
import { syncDir, writeTempFile, writeTextAtomic } from "./atomic.ts";
import {
  type EncodedParts,
  encodeSafetensorsParts,
  readSafetensors,
  type Safetensors,
  SafetensorsError,
  type TensorMap,
} from "./safetensors.ts";

/** Metadata key, in the index and in every shard, naming the save the shard belongs to. */
export const SAVE_ID_KEY = "unclip.save_id";

/** Options for {@linkcode writeShardedSafetensors}. */
export interface ShardOptions {
  /**
   * Most tensor-data bytes per shard (headers, a few KB, come on top, as in Hugging Face's
   * `max_shard_size`). A single tensor larger than this gets a shard of its own.
   * Default 16 MiB.
   */
  maxShardBytes?: number;
}

function shardName(baseName: string, index: number, count: number): string {
  const pad = (n: number): string => String(n).padStart(5, "0");
  return `${baseName}-${pad(index)}-of-${pad(count)}.safetensors`;
}

/** The path of the index file of a sharded checkpoint. */
export function indexPathFor(dir: string, baseName: string): string {
  return join(dir, `${baseName}.safetensors.index.json`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Splits tensors, in insertion order, into shards of at most `maxShardBytes` of data each.
 * A tensor larger than the limit on its own is put in a shard by itself.
 */
export function planShards(tensors: TensorMap, maxShardBytes: number): string[][] {
  const shards: string[][] = [[]];
  let used = 0;
  for (const [name, { data }] of Object.entries(tensors)) {
    const size = data.byteLength;
    if (shards[shards.length - 1].length > 0 && used + size > maxShardBytes) {
      shards.push([]);
      used = 0;
    }
    shards[shards.length - 1].push(name);
    used += size;
  }
  return shards;
}

/**
 * Writes tensors as a sharded safetensors checkpoint in `dir` (which must exist) and returns the
 * shard file names. Tensors are packed in insertion order into shards of at most
 * `maxShardBytes` (default 16 MiB) of tensor data; a tensor larger than the limit gets its own
 * shard. The user metadata goes into the index. See the module doc for the crash guarantees.
 *
 * @example
 * ```ts
 * import { writeShardedSafetensors } from "./sharded.ts";
 * const dir = await Deno.makeTempDir();
 * const w = { dtype: "F32" as const, shape: [4], data: new Float32Array(4) };
 * await writeShardedSafetensors(dir, "model", { a: w, b: w }, { step: "1" }, {
 *   maxShardBytes: 16,
 * }); // ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeShardedSafetensors(
  dir: string,
  baseName: string,
  tensors: TensorMap,
  metadata: Record<string, string> = {},
  options: ShardOptions = {},
): Promise<string[]> {
  const maxShardBytes = options.maxShardBytes ?? 16 * 1024 * 1024;
  if (!(maxShardBytes > 0)) {
    throw new SafetensorsError(`maxShardBytes must be positive, got "${maxShardBytes}"`);
  }
  if (baseName === "" || /[\\/]/.test(baseName)) {
    throw new SafetensorsError(`Checkpoint base name "${baseName}" must be a plain file name`);
  }
  for (const [k, v] of Object.entries(metadata)) {
    if (typeof v !== "string") {
      throw new SafetensorsError(
        `Metadata value for "${k}" must be a string, got ${JSON.stringify(v)}`,
      );
    }
  }
  if (Object.hasOwn(metadata, SAVE_ID_KEY)) {
    throw new SafetensorsError(`Metadata key "${SAVE_ID_KEY}" is reserved`);
  }
  const rand = crypto.getRandomValues(new Uint32Array(2));
  const saveId = `${rand[0].toString(16).padStart(8, "0")}${rand[1].toString(16).padStart(8, "0")}`;

  // Encode (and so validate) every shard before touching the disk.
  const plan = planShards(tensors, maxShardBytes);
  const files = plan.map((_, i) => shardName(baseName, i + 1, plan.length));
  const encoded: EncodedParts[] = plan.map((names) => {
    const subset: TensorMap = {};
    for (const name of names) subset[name] = tensors[name];
    return encodeSafetensorsParts(subset, { [SAVE_ID_KEY]: saveId });
  });

  const temps: string[] = [];
  try {
    for (let i = 0; i < files.length; i++) {
      const { header, parts } = encoded[i];
      temps.push(await writeTempFile(join(dir, files[i]), [header, ...parts]));
    }
  } catch (err) {
    await Promise.all(temps.map((t) => Deno.remove(t).catch(() => {})));
    throw err;
  }
  for (let i = 0; i < files.length; i++) await Deno.rename(temps[i], join(dir, files[i]));
  await syncDir(dir);

  const weightMap: Record<string, string> = {};
  plan.forEach((names, i) => {
    for (const name of names) weightMap[name] = files[i];
  });
  const index = { metadata: { ...metadata, [SAVE_ID_KEY]: saveId }, weight_map: weightMap };
  await writeTextAtomic(indexPathFor(dir, baseName), JSON.stringify(index, null, 2) + "\n");

  const keep = new Set(files);
  const pattern = new RegExp(`^${escapeRegExp(baseName)}-\\d{5}-of-\\d{5}\\.safetensors$`);
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && pattern.test(entry.name) && !keep.has(entry.name)) {
      await Deno.remove(join(dir, entry.name)).catch(() => {});
    }
  }
  return files;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Reads a checkpoint written by {@linkcode writeShardedSafetensors} (or any Hugging Face style
 * sharded safetensors checkpoint), or a plain `baseName.safetensors` when there is no index.
 * The index wins when both exist. Shards must agree with the index's weight map, and shards of
 * different saves (an interrupted write) are refused.
 *
 * @example
 * ```ts
 * import { readShardedSafetensors, writeShardedSafetensors } from "./sharded.ts";
 * const dir = await Deno.makeTempDir();
 * const w = { dtype: "F32" as const, shape: [4], data: new Float32Array(4) };
 * await writeShardedSafetensors(dir, "model", { a: w, b: w }, {}, { maxShardBytes: 16 });
 * const { tensors } = await readShardedSafetensors(dir, "model");
 * Object.keys(tensors); // ["a", "b"]
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readShardedSafetensors(
  dir: string,
  baseName: string,
  reader: WeightReader = readerFor(dir),
): Promise<Safetensors> {
  const indexPath = indexPathFor(dir, baseName);
  if (!(await reader.exists(indexPath))) {
    const plain = join(dir, `${baseName}.safetensors`);
    if (await reader.exists(plain)) return await readSafetensors(plain, reader);
    throw new SafetensorsError(
      `No checkpoint "${baseName}" in "${dir}": expected "${baseName}.safetensors.index.json" ` +
        `or "${baseName}.safetensors"`,
    );
  }
  const bad = (message: string): never => {
    throw new SafetensorsError(`Invalid safetensors index "${indexPath}": ${message}`);
  };
  let index: unknown;
  try {
    index = JSON.parse(await reader.readText(indexPath));
  } catch (err) {
    bad(`not valid JSON (${(err as Error).message})`);
  }
  if (!isRecord(index) || !isRecord(index.weight_map)) bad(`no "weight_map" object`);
  const { weight_map: weightMap, metadata: rawMeta } = index as {
    weight_map: Record<string, unknown>;
    metadata?: unknown;
  };
  const metadata: Record<string, string> = {};
  if (rawMeta !== undefined) {
    if (!isRecord(rawMeta)) bad(`"metadata" is not an object`);
    // Non-string entries (Hugging Face writes a numeric "total_size") are not user metadata.
    for (const [k, v] of Object.entries(rawMeta as Record<string, unknown>)) {
      if (typeof v === "string") metadata[k] = v;
    }
  }
  const files = new Set<string>();
  for (const [name, file] of Object.entries(weightMap)) {
    if (typeof file !== "string" || /[\\/]/.test(file) || file === ".." || file === ".") {
      bad(`tensor "${name}" maps to invalid shard ${JSON.stringify(file)}`);
    }
    files.add(file as string);
  }
  const saveId = metadata[SAVE_ID_KEY];
  delete metadata[SAVE_ID_KEY];

  const tensors: TensorMap = {};
  for (const file of files) {
    const shard = await readSafetensors(join(dir, file), reader);
    if (saveId !== undefined && shard.metadata[SAVE_ID_KEY] !== saveId) {
      throw new SafetensorsError(
        `Checkpoint "${indexPath}" is inconsistent: shard "${file}" belongs to another save ` +
          `(an interrupted write?); restore the checkpoint or save it again`,
      );
    }
    for (const [name, entry] of Object.entries(shard.tensors)) {
      if (weightMap[name] !== file) {
        bad(`shard "${file}" holds tensor "${name}", which the weight map does not assign to it`);
      }
      tensors[name] = entry;
    }
  }
  for (const [name, file] of Object.entries(weightMap)) {
    if (!Object.hasOwn(tensors, name)) bad(`tensor "${name}" is missing from shard "${file}"`);
  }
  // Keep the index's tensor order, which is the order the tensors were saved in.
  const ordered: TensorMap = {};
  for (const name of Object.keys(weightMap)) ordered[name] = tensors[name];
  return { tensors: ordered, metadata };
}
