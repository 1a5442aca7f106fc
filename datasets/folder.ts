/**
 * A dataset on disk: numbered PNGs (`00000.png`, ...) and `captions.jsonl`, one JSON object per
 * line: `{"file":"00000.png","caption":"...","labels":[...]}`. Users can train on their own
 * captioned PNGs by writing such a folder (labels are optional).
 * @module
 */

import { decodePng, encodePng, z } from "../core/deps.ts";
import { checkPngSize } from "../core/io/png.ts";
import { COLOUR_NAMES, POSITIONS, SHAPES, SIZE_WORDS } from "./shapes.ts";
import type { CaptionedImage, FigureLabel } from "./shapes.ts";

/** Name of the captions file inside a dataset folder. */
export const CAPTIONS_FILE = "captions.jsonl";

const labelSchema = z.object({
  shape: z.enum(SHAPES),
  colour: z.enum(COLOUR_NAMES as [string, ...string[]]),
  size: z.enum(SIZE_WORDS),
  bbox: z.tuple([z.number(), z.number(), z.number(), z.number()]),
  position: z.enum(POSITIONS).nullable(),
  rotation: z.number().nullable().default(null),
});

const lineSchema = z.object({
  file: z.string().min(1).refine((f) => !/(^|[\\/])\.\.([\\/]|$)/.test(f) && !/^[\\/]/.test(f), {
    message: "must be a path inside the folder",
  }),
  caption: z.string(),
  labels: z.array(labelSchema).optional(),
});

function join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

function parentAndBase(dir: string): [string, string] {
  const trimmed = dir.replace(/\/+$/, "") || "/";
  const i = trimmed.lastIndexOf("/");
  if (i < 0) return [".", trimmed];
  return [i === 0 ? "/" : trimmed.slice(0, i), trimmed.slice(i + 1)];
}

function reason(e: unknown): string {
  return e instanceof Error ? e.message.split("\n")[0] : String(e);
}

/**
 * Checks that `dir` can receive a new dataset: it must not exist, or be an empty folder.
 *
 * @throws Error with the folder quoted when it is not empty or not usable.
 * @example
 * ```ts
 * const dir = await Deno.makeTempDir();
 * checkOutputFolder(`${dir}/shapes1-train`); // a new folder: fine
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function checkOutputFolder(dir: string): void {
  let empty: boolean;
  try {
    empty = Deno.readDirSync(dir)[Symbol.iterator]().next().done === true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw new Error(`Output folder "${dir}" cannot be used: ${reason(e)}`);
  }
  if (!empty) {
    throw new Error(`Output folder "${dir}" already exists and is not empty; choose another`);
  }
}

/**
 * Writes images and captions to `dir` as `00000.png`, ... and `captions.jsonl`. Everything is
 * written to a temporary sibling folder first and renamed at the end, so a failure never leaves a
 * half-written dataset. `dir` must not exist or be empty.
 *
 * @throws Error when the folder exists and is not empty, or cannot be written.
 * @example
 * ```ts
 * import { generateSplit } from "./generate.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFolder(`${dir}/shapes1-train`, generateSplit({ count: 4, size: 16 }));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFolder(dir: string, samples: readonly CaptionedImage[]): Promise<void> {
  checkOutputFolder(dir);
  const [parent, base] = parentAndBase(dir);
  let tmp: string;
  try {
    await Deno.mkdir(parent, { recursive: true });
    tmp = await Deno.makeTempDir({ dir: parent, prefix: `.${base}.tmp-` });
  } catch (e) {
    throw new Error(`Output folder "${dir}" cannot be written: ${reason(e)}`);
  }
  try {
    const digits = Math.max(5, String(samples.length - 1).length);
    const lines: string[] = [];
    for (let i = 0; i < samples.length; i++) {
      const s = samples[i];
      const file = `${String(i).padStart(digits, "0")}.png`;
      const png = encodePng({
        width: s.width,
        height: s.height,
        data: s.image,
        channels: 3,
        depth: 8,
      });
      await Deno.writeFile(join(tmp, file), png);
      const line: Record<string, unknown> = { file, caption: s.caption };
      if (s.labels) line.labels = s.labels;
      lines.push(JSON.stringify(line));
    }
    await Deno.writeTextFile(join(tmp, CAPTIONS_FILE), lines.join("\n") + "\n");
    try {
      await Deno.remove(dir); // an empty folder left by the user
    } catch { /* absent */ }
    await Deno.rename(tmp, dir);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw new Error(`Output folder "${dir}" cannot be written: ${reason(e)}`);
  }
}

/** Options of {@link readFolder}. */
export interface ReadFolderOptions {
  /** Required side length; default: every image must match the first one. */
  size?: number;
  /** Read at most this many images. */
  limit?: number;
}

/** Converts decoded PNG data of any common layout to 8-bit RGB. */
function toRgb(png: ReturnType<typeof decodePng>, path: string): Uint8Array {
  const { width, height, channels, depth, palette } = png;
  const n = width * height;
  const out = new Uint8Array(n * 3);
  if (palette) {
    if (depth !== 8) throw new Error(`Image "${path}" uses an unsupported ${depth}-bit palette`);
    for (let i = 0; i < n; i++) {
      const c = palette[png.data[i]] ?? [0, 0, 0];
      out[i * 3] = c[0];
      out[i * 3 + 1] = c[1];
      out[i * 3 + 2] = c[2];
    }
    return out;
  }
  if (depth !== 8 && depth !== 16) {
    throw new Error(`Image "${path}" has an unsupported bit depth "${depth}"`);
  }
  const scale = depth === 16 ? 1 / 257 : 1;
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      // Grey (1-2 channels) repeats its one value; alpha is dropped.
      const src = channels >= 3 ? i * channels + c : i * channels;
      out[i * 3 + c] = Math.round(png.data[src] * scale);
    }
  }
  return out;
}

/**
 * Reads a dataset folder written by {@link writeFolder} or by hand.
 *
 * @throws Error naming the file and line for a malformed captions.jsonl line, a missing or
 *   undecodable image, or an image of the wrong size.
 * @example
 * ```ts
 * async function mine() {
 *   return await readFolder("data/my-images", { size: 32 }); // PNGs + captions.jsonl
 * }
 * ```
 */
export async function readFolder(
  dir: string,
  options: ReadFolderOptions = {},
): Promise<CaptionedImage[]> {
  const captionsPath = join(dir, CAPTIONS_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(captionsPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`Captions file "${captionsPath}" not found; a dataset folder needs one`);
    }
    throw new Error(`Captions file "${captionsPath}" cannot be read: ${reason(e)}`);
  }
  const out: CaptionedImage[] = [];
  let size = options.size;
  const lines = text.split("\n");
  for (let ln = 0; ln < lines.length; ln++) {
    if (options.limit !== undefined && out.length >= options.limit) break;
    const raw = lines[ln].trim();
    if (raw === "") continue;
    const where = `line ${ln + 1} of "${captionsPath}"`;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new Error(`Malformed ${where}: not valid JSON: "${raw.slice(0, 80)}"`);
    }
    const parsed = lineSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const path = issue.path.length > 0 ? `"${issue.path.join(".")}" ` : "";
      throw new Error(`Malformed ${where}: ${path}${issue.message}`);
    }
    const { file, caption, labels } = parsed.data;
    const imagePath = join(dir, file);
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(imagePath);
    } catch (e) {
      throw new Error(`Image "${imagePath}" listed on ${where} cannot be read: ${reason(e)}`);
    }
    // Sizes come from the PNG header, before decoding: a small file can declare a huge image.
    const header = checkPngSize(bytes, imagePath);
    if (size === undefined) size = header.width;
    if (header.width !== size || header.height !== size) {
      throw new Error(
        `Image "${imagePath}" is ${header.width}x${header.height}, expected ${size}x${size}`,
      );
    }
    let png: ReturnType<typeof decodePng>;
    try {
      png = decodePng(bytes);
    } catch (e) {
      throw new Error(`Image "${imagePath}" is not a valid PNG: ${reason(e)}`);
    }
    out.push({
      image: toRgb(png, imagePath),
      width: png.width,
      height: png.height,
      caption,
      labels: labels as FigureLabel[] | undefined,
    });
  }
  return out;
}
