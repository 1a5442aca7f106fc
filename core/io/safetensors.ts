/**
 * The safetensors format, spec-exact and readable by other tools: an 8-byte little-endian u64
 * header length N, N bytes of JSON header
 * `{"__metadata__": {string: string}, name: {dtype, shape, data_offsets: [begin, end]}}`
 * padded with spaces to a multiple of 8, then the raw little-endian tensor data, in which the
 * tensors' byte ranges must tile the data exactly (no gaps, no overlaps).
 *
 * F16 and BF16 tensors are carried as raw bit patterns in a `Uint16Array` (see ./half.ts for
 * conversion); I64/U64 as `BigInt64Array`/`BigUint64Array`; BOOL as a `Uint8Array` of 0/1.
 *
 * @module
 */

import { writeFileAtomic } from "./atomic.ts";
import { NotFoundError, readerFor, type WeightReader } from "./reader.ts";

/** Tensor element types of the safetensors format that this module reads and writes. */
export type Dtype =
  | "F64"
  | "F32"
  | "F16"
  | "BF16"
  | "I64"
  | "I32"
  | "I16"
  | "I8"
  | "U64"
  | "U32"
  | "U16"
  | "U8"
  | "BOOL";

/** Any typed array that can hold a tensor's elements. */
export type TensorData =
  | Float64Array
  | Float32Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint32Array
  | Uint16Array
  | Uint8Array
  | BigInt64Array
  | BigUint64Array;

/** One named tensor: element type, row-major shape and its elements. */
export interface TensorEntry {
  /** Element type as written in the file. */
  dtype: Dtype;
  /** Row-major dimensions; `[]` for a scalar. */
  shape: number[];
  /** The elements (F16/BF16 as raw bits in a Uint16Array). */
  data: TensorData;
}

/** Tensors by name. */
export type TensorMap = Record<string, TensorEntry>;

/** The decoded contents of a safetensors file. */
export interface Safetensors {
  /** Tensors by name. */
  tensors: TensorMap;
  /** The `__metadata__` string map (empty when the file has none). */
  metadata: Record<string, string>;
}

/** A malformed or inconsistent safetensors file, or tensors that cannot be encoded. */
export class SafetensorsError extends Error {
  /** Always "SafetensorsError". */
  override name = "SafetensorsError";
}

interface DtypeInfo {
  size: number;
  // deno-lint-ignore no-explicit-any
  array: new (buffer: ArrayBuffer) => any;
}

const DTYPES: Record<Dtype, DtypeInfo> = {
  F64: { size: 8, array: Float64Array },
  F32: { size: 4, array: Float32Array },
  F16: { size: 2, array: Uint16Array },
  BF16: { size: 2, array: Uint16Array },
  I64: { size: 8, array: BigInt64Array },
  I32: { size: 4, array: Int32Array },
  I16: { size: 2, array: Int16Array },
  I8: { size: 1, array: Int8Array },
  U64: { size: 8, array: BigUint64Array },
  U32: { size: 4, array: Uint32Array },
  U16: { size: 2, array: Uint16Array },
  U8: { size: 1, array: Uint8Array },
  BOOL: { size: 1, array: Uint8Array },
};

/** The byte size of one element of `dtype`. */
export function dtypeSize(dtype: Dtype): number {
  return DTYPES[dtype].size;
}

/** The same limit as the reference implementation: a header above 100 MB is refused. */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = "__metadata__";

// Typed arrays use the platform's byte order; safetensors is little-endian. Every platform Deno
// runs on is little-endian, so we check once instead of swapping bytes on every tensor.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fail(source: string | undefined, message: string): never {
  const where = source === undefined ? "safetensors data" : `safetensors file "${source}"`;
  throw new SafetensorsError(`Invalid ${where}: ${message}`);
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function bytesOf(data: TensorData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** The header bytes (padded) and the data parts, in file order, for streaming or joining. */
export interface EncodedParts {
  /** The 8-byte length plus the space-padded JSON header. */
  header: Uint8Array;
  /** Views of the tensors' bytes, in file order. */
  parts: Uint8Array[];
  /** Total file size in bytes. */
  byteLength: number;
}

/**
 * Encodes tensors to safetensors as a header and a list of data parts (no copy of tensor data),
 * so large checkpoints can be streamed to disk. Tensors are laid out by descending element size,
 * then by name, like the reference implementation: every tensor then starts aligned to its
 * element size.
 */
export function encodeSafetensorsParts(
  tensors: TensorMap,
  metadata?: Record<string, string>,
): EncodedParts {
  if (!LITTLE_ENDIAN) throw new SafetensorsError("Big-endian platforms are not supported");
  const names = Object.keys(tensors);
  for (const name of names) {
    if (name === METADATA_KEY) {
      throw new SafetensorsError(`Tensor name "${METADATA_KEY}" is reserved for metadata`);
    }
    const { dtype, shape, data } = tensors[name];
    const info = Object.hasOwn(DTYPES, dtype) ? DTYPES[dtype] : undefined;
    if (!info) throw new SafetensorsError(`Tensor "${name}" has unknown dtype "${dtype}"`);
    if (!(data instanceof info.array)) {
      const expected = info.array.name;
      throw new SafetensorsError(
        `Tensor "${name}" of dtype "${dtype}" needs a ${expected}, got "${data?.constructor?.name}"`,
      );
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new SafetensorsError(`Tensor "${name}" has invalid shape "${JSON.stringify(shape)}"`);
    }
    if (numel(shape) !== data.length) {
      throw new SafetensorsError(
        `Tensor "${name}" has shape "${JSON.stringify(shape)}" (${numel(shape)} elements) ` +
          `but ${data.length} elements of data`,
      );
    }
  }
  names.sort((a, b) => {
    const d = DTYPES[tensors[b].dtype].size - DTYPES[tensors[a].dtype].size;
    return d !== 0 ? d : a < b ? -1 : a > b ? 1 : 0;
  });

  // Key order matters only for readability: metadata first, then tensors in file order.
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") {
        throw new SafetensorsError(
          `Metadata value for "${k}" must be a string, got ${JSON.stringify(v)}`,
        );
      }
    }
    header[METADATA_KEY] = metadata;
  }
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const { dtype, shape, data } = tensors[name];
    header[name] = { dtype, shape, data_offsets: [offset, offset + data.byteLength] };
    parts.push(bytesOf(data));
    offset += data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return { header: head, parts, byteLength: head.length + offset };
}

/**
 * Encodes tensors and string metadata into safetensors bytes.
 *
 * @example
 * ```ts
 * import { encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors(
 *   { w: { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) } },
 *   { step: "100" },
 * );
 * ```
 */
export function encodeSafetensors(
  tensors: TensorMap,
  metadata?: Record<string, string>,
): Uint8Array {
  const { header, parts, byteLength } = encodeSafetensorsParts(tensors, metadata);
  const out = new Uint8Array(byteLength);
  out.set(header, 0);
  let offset = header.length;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Decodes and validates safetensors bytes. Tensor data is copied out of `bytes`, so every array
 * is properly aligned and independent of the input buffer. `source` (a file name) is quoted in
 * error messages.
 *
 * Throws {@linkcode SafetensorsError} with a one-line message for a truncated file, a header
 * that is too large or not JSON, an unknown dtype, a shape that does not match its byte range,
 * byte ranges that are out of range, overlap or leave gaps, and non-string metadata.
 *
 * @example
 * ```ts
 * import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
 * const bytes = encodeSafetensors({ b: { dtype: "U8", shape: [2], data: new Uint8Array([7, 9]) } });
 * const { tensors, metadata } = decodeSafetensors(bytes);
 * tensors.b.data; // Uint8Array [7, 9]
 * ```
 */
export function decodeSafetensors(bytes: Uint8Array, source?: string): Safetensors {
  if (!LITTLE_ENDIAN) throw new SafetensorsError("Big-endian platforms are not supported");
  if (bytes.length < 8) {
    fail(
      source,
      `file is ${bytes.length} bytes, shorter than the 8-byte header length (truncated)`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = view.getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    fail(source, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const n = Number(headerLen);
  if (8 + n > bytes.length) {
    fail(
      source,
      `header length ${n} runs past the end of the ${bytes.length}-byte file (truncated)`,
    );
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (err) {
    fail(source, `header is not valid UTF-8 JSON (${(err as Error).message})`);
  }
  if (!isRecord(header)) fail(source, "header is not a JSON object");

  const metadata: Record<string, string> = {};
  const rawMeta = header[METADATA_KEY];
  if (rawMeta !== undefined && rawMeta !== null) {
    if (!isRecord(rawMeta)) fail(source, `"${METADATA_KEY}" is not an object`);
    for (const [k, v] of Object.entries(rawMeta)) {
      if (typeof v !== "string") {
        fail(source, `metadata value for "${k}" is not a string: ${JSON.stringify(v)}`);
      }
      metadata[k] = v;
    }
  }

  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const entries: { name: string; dtype: Dtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === METADATA_KEY) continue;
    if (!isRecord(info)) fail(source, `entry for tensor "${name}" is not an object`);
    const { dtype, shape, data_offsets: offsets } = info;
    if (typeof dtype !== "string" || !Object.hasOwn(DTYPES, dtype)) {
      fail(source, `tensor "${name}" has unsupported dtype ${JSON.stringify(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(source, `tensor "${name}" has invalid shape ${JSON.stringify(shape)}`);
    }
    if (
      !Array.isArray(offsets) || offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]
    ) {
      fail(source, `tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    const expected = numel(shape) * DTYPES[dtype as Dtype].size;
    if (end - begin !== expected) {
      fail(
        source,
        `tensor "${name}" of dtype ${dtype} and shape ${JSON.stringify(shape)} needs ` +
          `${expected} bytes but data_offsets ${JSON.stringify(offsets)} span ${end - begin}`,
      );
    }
    if (end > dataLen) {
      fail(
        source,
        `tensor "${name}" data_offsets ${JSON.stringify(offsets)} run past the ` +
          `${dataLen}-byte data section (truncated)`,
      );
    }
    entries.push({ name, dtype: dtype as Dtype, shape: shape.slice(), begin, end });
  }

  // The reference implementation requires the byte ranges to tile the data section exactly.
  const ordered = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const e of ordered) {
    if (e.begin < cursor) {
      fail(source, `tensor "${e.name}" data_offsets [${e.begin},${e.end}] overlap another tensor`);
    }
    if (e.begin > cursor) {
      fail(source, `bytes ${cursor}..${e.begin} of the data section belong to no tensor`);
    }
    cursor = e.end;
  }
  if (cursor !== dataLen) {
    fail(source, `data section is ${dataLen} bytes but the tensors cover ${cursor}`);
  }

  const tensors: TensorMap = {};
  for (const e of entries) {
    const copy = bytes.slice(dataStart + e.begin, dataStart + e.end);
    tensors[e.name] = {
      dtype: e.dtype,
      shape: e.shape,
      data: new DTYPES[e.dtype].array(copy.buffer),
    };
  }
  return { tensors, metadata };
}

/**
 * Writes tensors to a safetensors file atomically (temporary file, fsync, rename): a crash or
 * error leaves any previous file at `path` untouched. Tensor data is streamed, not concatenated.
 *
 * @example
 * ```ts
 * import { writeSafetensors } from "./safetensors.ts";
 * const dir = await Deno.makeTempDir();
 * await writeSafetensors(`${dir}/model.safetensors`, {
 *   w: { dtype: "F32", shape: [1], data: new Float32Array([0.5]) },
 * }, { format_version: "1" });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: TensorMap,
  metadata?: Record<string, string>,
): Promise<void> {
  const { header, parts } = encodeSafetensorsParts(tensors, metadata);
  await writeFileAtomic(path, [header, ...parts]);
}

/**
 * Reads and validates a safetensors file. A missing file is reported with its path.
 *
 * @example
 * ```ts
 * import { readSafetensors, writeSafetensors } from "./safetensors.ts";
 * const dir = await Deno.makeTempDir();
 * const w = { dtype: "F32" as const, shape: [1], data: new Float32Array([0.5]) };
 * await writeSafetensors(`${dir}/model.safetensors`, { w }, { step: "1" });
 * const { tensors, metadata } = await readSafetensors(`${dir}/model.safetensors`);
 * tensors.w.data; // Float32Array [0.5]; metadata.step === "1"
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function readSafetensors(
  path: string,
  reader: WeightReader = readerFor(path),
): Promise<Safetensors> {
  let bytes: Uint8Array;
  try {
    bytes = await reader.readBytes(path);
  } catch (err) {
    if (err instanceof NotFoundError) {
      throw new SafetensorsError(`Safetensors file "${err.location}" does not exist`);
    }
    throw err;
  }
  return decodeSafetensors(bytes, path);
}
