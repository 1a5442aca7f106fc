/**
 * `deno task sample "<caption>" [...]`: text to image with a trained run, written as a PNG grid.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  checkPngSize,
  decodePngRgb,
  downsampleRgb,
  encodeRgbPng,
  exists,
  imageGrid,
  tensorToImages,
  writeFileAtomic,
} from "../core/io/mod.ts";
import {
  type Components,
  decoderGuidance,
  decoderRerank,
  type GeneratedImages,
  imageVariations,
  inputImageSize,
  loadPipeline,
  MAX_IMAGES,
  textToImage,
  unseenWords,
} from "../core/pipeline.ts";
import { CheckpointError } from "../core/train/checkpoint.ts";
import { shortCaption } from "../plugins/tokenizers/bpe.ts";
import { toNchw } from "../datasets/mod.ts";
import {
  BACKEND_HELP,
  checkOutputFile,
  checkUpsamplerFlags,
  GUIDANCE_INTERVAL_HELP,
  guidanceText,
  LATE_DECODER_HELP,
  NO_RERANKER_HELP,
  numberFlag,
  openSampling,
  parseFlags,
  PRIOR_FLAGS,
  PRIOR_SAMPLING_HELP,
  RAW_DECODER_HELP,
  runMain,
  SAMPLER_OPTIONS_HELP,
  samplerOptionsText,
  SAMPLING_FLAGS,
  samplingFlags,
  UPSAMPLER_FLAGS,
  UPSAMPLER_HELP,
  upsamplerFlags,
  UsageError,
} from "./_cli.ts";

const USAGE = `Usage: deno task sample "<caption>" [options]

Generates images from a caption with a trained run (CLIP -> prior -> decoder, then the
upsampler when the run has an upsampler/ stage) and writes them as one PNG grid.

Options:
  --checkpoint DIR   run folder with clip/, prior/, decoder/ [, reranker/, upsampler/]
                     (default: weights/default)
  --n N              images, 1 to 1024 (default 4); with K candidates each (--rerank or the
                     model's sampling.rerank) at most 1024 / K: 341 with weights/default
  --guidance S       classifier-free guidance scale (default: the model's, its config's
                     sampling.guidance, 2 unless set; the thesis's best is 2-2.5)
${GUIDANCE_INTERVAL_HELP}
  --sampler NAME     ddpm, ddim, dpm-solver++ or dpm-solver++-sde (default: the
                     config's sampler)
  --steps N          decoder reverse-process steps (respaced; default: the sampler's)
  --rerank K         draw K candidates per image and keep the one CLIP matches best to the
                     caption (K times the decoder's work; default: the model's, its
                     config's sampling.rerank, 1 unless set; --rerank 1 turns it off)
${PRIOR_SAMPLING_HELP}
${RAW_DECODER_HELP}
${NO_RERANKER_HELP}
${LATE_DECODER_HELP}
${SAMPLER_OPTIONS_HELP}
  --seed S           random seed, a decimal integer 0 to 4294967295 (default 0)
  --out FILE.png     output file (default sample.png); an existing file is kept unless --force
  --force            overwrite --out if it exists
  --image FILE.png   decode variations of this image's CLIP embedding instead
  --no-upsampler     stop at the decoder's images even when the run has an upsampler
${UPSAMPLER_HELP}
${BACKEND_HELP}
  --debug            print stack traces of errors
  -h, --help         show this help`;

/** The folder of the shipped default weights (none are shipped unless this exists). */
export const DEFAULT_WEIGHTS: string = import.meta.url.startsWith("file:")
  ? join(dirname(fileURLToPath(import.meta.url)), "..", "weights", "default")
  : "weights/default";

/** What `runSample` wrote. */
export interface SampleResult {
  path: string;
  width: number;
  height: number;
  count: number;
}

/** An input image read from disk and checked by its PNG header only (nothing decoded yet). */
interface InputPng {
  path: string;
  bytes: Uint8Array;
  width: number;
  height: number;
}

/** Reads `--image`, checking its header size before any work (a small file can claim 12000^2). */
async function readInputPng(path: string): Promise<InputPng> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new UsageError(
      e instanceof Deno.errors.NotFound
        ? `Input image "${path}" does not exist`
        : `Cannot read input image "${path}": ${(e as Error).message}`,
    );
  }
  try {
    return { path, bytes, ...checkPngSize(bytes, path) };
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^Image/, "Input image"));
  }
}

/** Checks the input image against CLIP's size, then decodes it (downsampled) as NCHW. */
function decodeInputImage(input: InputPng, size: number): Float32Array {
  const { path, width, height } = input;
  if (width !== height || width % size !== 0) {
    throw new UsageError(
      `Input image "${path}" is ${width}x${height}; the model needs ${size}x${size} ` +
        `(or a square multiple of it)`,
    );
  }
  let img;
  try {
    img = decodePngRgb(input.bytes);
  } catch (e) {
    throw new UsageError(`Input image "${path}" is not a readable PNG: ${(e as Error).message}`);
  }
  let rgb = img.data;
  if (img.width !== size) rgb = downsampleRgb(rgb, img.width, img.width / size);
  const out = new Float32Array(3 * size * size);
  toNchw(rgb, size, size, out, 0, false);
  return out;
}

/**
 * Writes generated images as one PNG grid (atomically).
 *
 * @example
 * ```ts
 * import type { GeneratedImages } from "../core/pipeline.ts";
 * async function save(generated: GeneratedImages) {
 *   return await writeGrid(generated, "sample.png");
 * }
 * ```
 */
export async function writeGrid(g: GeneratedImages, path: string): Promise<SampleResult> {
  const [n, , h, w] = g.shape;
  const grid = imageGrid(tensorToImages(g.images, g.shape), w, h);
  await writeFileAtomic(path, encodeRgbPng(grid.data, grid.width, grid.height));
  return { path, width: grid.width, height: grid.height, count: n };
}

/**
 * The sample task, callable in-process (tests) and from the CLI.
 *
 * @example
 * ```ts
 * async function circle() {
 *   return await runSample(["a red circle", "--checkpoint", "runs/tiny", "--out", "/tmp/x.png"]);
 * }
 * ```
 */
export async function runSample(
  args: string[],
  hooks: { print?: (line: string) => void; warn?: (line: string) => void } = {},
): Promise<SampleResult | null> {
  const print = hooks.print ?? ((line: string) => console.log(line));
  const warn = hooks.warn ?? ((line: string) => console.warn(line));
  const { values, positionals } = parseFlags(args, {
    ...SAMPLING_FLAGS,
    n: { type: "string" },
    image: { type: "string" },
    "no-upsampler": { type: "boolean" },
    ...UPSAMPLER_FLAGS,
    rerank: { type: "string" },
  }, "sample");
  if (values.help) {
    print(USAGE);
    return null;
  }
  const image = values.image as string | undefined;
  if (positionals.length > 1) {
    throw new UsageError(
      `Expected one caption, got ${positionals.length}; quote it: deno task sample "a red circle"`,
    );
  }
  if (positionals.length === 0 && !image) {
    throw new UsageError(`Missing the caption; see "deno task sample --help"`);
  }
  const caption = positionals[0] ?? "";
  const n = numberFlag(values, "n", { integer: true, min: 1, max: MAX_IMAGES }) ?? 4;
  const { guidance, guidanceInterval, steps, seed } = samplingFlags(values);
  const upsampling = upsamplerFlags(values);
  const rerank = numberFlag(values, "rerank", { integer: true, min: 1, max: MAX_IMAGES });
  for (const flag of ["rerank", "no-reranker"]) {
    if (values[flag] !== undefined && image) {
      throw new UsageError(`--${flag} scores images against the caption; drop it with --image`);
    }
  }
  for (const flag of PRIOR_FLAGS) {
    if (values[flag] !== undefined && image) {
      throw new UsageError(`--${flag} does nothing with --image (no prior runs); drop it`);
    }
  }
  if (rerank !== undefined && n * rerank > MAX_IMAGES) {
    throw new UsageError(`--n ${n} x --rerank ${rerank} draws more than ${MAX_IMAGES} images`);
  }
  checkUpsamplerFlags(
    upsampling,
    values["no-upsampler"] !== true,
    "--no-upsampler runs no upsampler",
  );
  const out = (values.out as string | undefined) ?? "sample.png";
  if (!out.toLowerCase().endsWith(".png")) throw new UsageError(`--out "${out}" must end in .png`);
  // Before any work: an existing --out is kept unless --force, and the folder must be writable.
  await checkOutputFile(out, { force: values.force === true, flag: "--out" });
  let checkpoint = values.checkpoint as string | undefined;
  if (checkpoint === undefined) {
    if (!(await exists(DEFAULT_WEIGHTS))) {
      throw new CheckpointError(
        "No pretrained weights are shipped; train them with " +
          `"deno task train all --config presets/tiny.jsonc" and pass --checkpoint runs/tiny`,
      );
    }
    checkpoint = DEFAULT_WEIGHTS;
  }
  const input = image ? await readInputPng(image) : undefined;
  const { registry, load } = await openSampling(values, print);
  const pipeline: Components = await loadPipeline(checkpoint, registry, {
    ...load,
    upsampler: values["no-upsampler"] !== true,
  });
  try {
    const size = inputImageSize(pipeline);
    const t0 = performance.now();
    checkUpsamplerFlags(
      upsampling,
      pipeline.upsampler !== undefined,
      `"${checkpoint}" has no upsampler/ stage`,
    );
    const opts = { n, guidance, guidanceInterval, steps, seed, ...upsampling };
    try {
      pipeline.tokenizer.encode(caption);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    // The model draws only what its training captions described; say which words are new to it
    // (nothing when the checkpoint predates recording its training words).
    const unseen = unseenWords(pipeline, [caption]);
    if (unseen?.length) {
      warn(`Warning: words never seen in training: ${unseen.map((w) => `"${w}"`).join(", ")}`);
    }
    // The model's stored default applies when --rerank is absent (text to image only).
    const candidates = input ? 1 : decoderRerank(pipeline, { rerank });
    if (n * candidates > MAX_IMAGES) {
      throw new UsageError(
        `--n ${n} x rerank ${candidates} (the model's sampling.rerank) draws more than ` +
          `${MAX_IMAGES} images; lower --n or pass --rerank 1`,
      );
    }
    let generated: GeneratedImages;
    if (input) {
      const x = decodeInputImage(input, size);
      generated = await imageVariations(pipeline, x, { ...opts, caption });
    } else {
      generated = await textToImage(pipeline, [caption], { ...opts, rerank });
    }
    const seconds = (performance.now() - t0) / 1000;
    const result = await writeGrid(generated, out);
    const what = image ? `variations of ${image}` : `"${shortCaption(caption)}"`;
    print(
      `Wrote ${n} image(s) of ${what} to ${out} (${result.width}x${result.height} grid, ` +
        `${seconds.toFixed(1)} s, ` +
        `${guidanceText(decoderGuidance(pipeline, opts), guidanceInterval)}, ` +
        `sampler ${pipeline.sampler.name}` +
        (load.samplerOptions ? ` (${samplerOptionsText(load.samplerOptions)})` : "") +
        (candidates > 1
          ? `, each the best of ${candidates} by ${pipeline.reranker ? "the reranking " : ""}CLIP`
          : "") +
        (pipeline.decoderWeights === "raw" ? ", raw decoder weights" : "") +
        (pipeline.lateDecoder
          ? `, ${pipeline.lateDecoder.dir}'s decoder below t/T = ${pipeline.lateDecoder.below}`
          : "") +
        (pipeline.upsampler
          ? `, upsampled ${pipeline.upsampler.lowResSize} -> ${pipeline.upsampler.imageSize}`
          : "") +
        (image ? ")" : `, prior sampler ${pipeline.priorSampler.name})`),
    );
    return result;
  } finally {
    pipeline.dispose();
  }
}

if (import.meta.main) await runMain(runSample);
