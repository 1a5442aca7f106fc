/**
 * The model's Web Worker: loads the weights over `fetch`, runs the sampling pipeline on WebGPU
 * and posts images back, so the page's main thread never waits on the model (recording a
 * sampler's steps is one long synchronous block). Bundled by `deno task serve` (tasks/serve.ts).
 *
 * Progress follows the GPU, not the queue: after each recorded step the engine submits it
 * (`flush()`) and `settled()` reports when the GPU has finished it (it waits for
 * `queue.onSubmittedWorkDone()`, https://www.w3.org/TR/webgpu/#dom-gpuqueue-onsubmittedworkdone).
 *
 * @module
 */
import {
  type AdapterSummary,
  adapterSummary,
  builtins,
  checkPngSize,
  type Components,
  createSampler,
  decodePngRgb,
  downsampleRgb,
  fetchReader,
  flush,
  type GeneratedImages,
  imageVariations,
  initBackend,
  inputImageSize,
  loadPipeline,
  NoAdapterError,
  outputImageSize,
  settled,
  tensorToImages,
  textToImage,
  toNchw,
  unseenWords,
} from "../browser.ts";
import type { ErrorKind, Reply, Request, SampleSettings } from "./protocol.ts";

/** The worker global as far as this file needs it (Deno's types describe a window). */
const scope = globalThis as unknown as {
  postMessage(message: Reply, transfer?: Transferable[]): void;
  addEventListener(type: "message", listener: (e: MessageEvent<Request>) => void): void;
  location: { href: string };
  navigator: { gpu?: unknown };
};

class PageError extends Error {
  constructor(readonly kind: ErrorKind, message: string) {
    super(message);
  }
}

const post = (m: Reply, transfer: Transferable[] = []) => scope.postMessage(m, transfer);

/**
 * Limits below which the engine's kernels cannot run: the WebGPU defaults every conforming
 * adapter has (https://www.w3.org/TR/webgpu/#limit-default), checked so that a browser that
 * exposes less gets a message instead of a failed kernel.
 */
const REQUIRED_LIMITS: Record<string, number> = {
  maxStorageBuffersPerShaderStage: 8,
  maxComputeInvocationsPerWorkgroup: 256,
  maxComputeWorkgroupSizeX: 256,
  maxComputeWorkgroupStorageSize: 16384,
};

let pipeline: Components | null = null;

/** Vendor, architecture and description, each once (browsers may leave any of them empty). */
function adapterName(a: AdapterSummary): string {
  const parts = [a.vendor, a.architecture].filter(Boolean);
  const vendor = parts.join(" ");
  if (!vendor || !a.description.startsWith(vendor)) parts.push(a.description);
  return parts.join(" ").trim() || "unnamed adapter";
}

async function load(weights: string): Promise<void> {
  if (!scope.navigator.gpu) {
    throw new PageError(
      "no-webgpu",
      "This browser has no WebGPU (navigator.gpu is missing). Use a recent Chrome or Edge, or " +
        "Firefox/Safari with WebGPU enabled, over http://127.0.0.1 or https.",
    );
  }
  post({ type: "status", text: "Starting WebGPU..." });
  try {
    await initBackend({ backend: "webgpu" });
  } catch (e) {
    if (!(e instanceof NoAdapterError)) throw e;
    throw new PageError(
      "no-adapter",
      "WebGPU is available but the browser gave no adapter (GPU blocklisted or disabled). " +
        "Check chrome://gpu, or start Chrome with --enable-unsafe-webgpu.",
    );
  }
  // The engine requests the device with the adapter's own values of these limits.
  const adapter = adapterSummary()!;
  for (const [name, min] of Object.entries(REQUIRED_LIMITS)) {
    const have = adapter.limits[name];
    if (have < min) {
      throw new PageError(
        "adapter-limit",
        `This GPU adapter offers ${name} = ${have}; the model needs at least ${min}.`,
      );
    }
  }
  post({
    type: "status",
    text: `Loading weights from ${new URL(weights, scope.location.href)}...`,
  });
  const reader = fetchReader({ base: scope.location.href });
  try {
    pipeline = await loadPipeline(weights, builtins(), { reader });
  } catch (e) {
    throw new PageError("weights", `Cannot load the weights: ${(e as Error).message}`);
  }
  post({
    type: "ready",
    adapter: adapterName(adapter),
    // The final side: the upsampler's when the weights have one (DALL-E 2's cascade).
    imageSize: outputImageSize(pipeline),
    contextLength: pipeline.tokenizer.contextLength,
    samplers: pipeline.registry.names("sampler"),
    defaultSampler: pipeline.config.components.sampler.plugin,
    defaultSteps: samplerSteps(pipeline.config.components.sampler.options),
    defaultGuidance: pipeline.config.sampling.guidance,
    defaultRerank: pipeline.config.sampling.rerank,
    decoderSteps: pipeline.decoderSchedule.numSteps,
  });
}

/** The `steps` option of a sampler config, when it sets one. */
function samplerSteps(options: Record<string, unknown> | undefined): number | undefined {
  const steps = options?.steps;
  return typeof steps === "number" ? steps : undefined;
}

/** The pipeline with the requested sampler. */
async function withSampler(p: Components, name: string): Promise<Components> {
  if (name === p.config.components.sampler.plugin) return p;
  return { ...p, sampler: await createSampler(p.config, p.registry, name) };
}

/** Sampling options with a progress callback that reports queued and GPU-finished steps. */
function options(id: number, s: SampleSettings) {
  return {
    n: s.n,
    guidance: s.guidance,
    steps: s.steps,
    seed: s.seed,
    onStep(step: number, total: number) {
      post({ type: "progress", id, phase: "queued", step, total });
      flush(); // submit this step now, so its completion can be observed
      settled().then(() => post({ type: "progress", id, phase: "done", step, total }));
    },
  };
}

/** The uploaded PNG as CLIP's NCHW input (square, a multiple of its size). */
function inputImage(png: Uint8Array, size: number): Float32Array {
  let dims;
  try {
    dims = checkPngSize(png, "The uploaded image");
  } catch (e) {
    throw new PageError("input", (e as Error).message);
  }
  if (dims.width !== dims.height || dims.width % size !== 0) {
    throw new PageError(
      "input",
      `The uploaded image is ${dims.width}x${dims.height}; the model needs a square PNG of ` +
        `${size}x${size} (or a multiple of it).`,
    );
  }
  const img = decodePngRgb(png);
  const rgb = img.width === size ? img.data : downsampleRgb(img.data, img.width, img.width / size);
  return toNchw(rgb, size, size);
}

function reply(id: number, out: GeneratedImages, started: number): void {
  const [n, , h, w] = out.shape;
  const tiles = tensorToImages(out.images, out.shape);
  const rgb = new Uint8Array(n * h * w * 3);
  tiles.forEach((t, i) => rgb.set(t, i * h * w * 3));
  post({
    type: "images",
    id,
    rgb,
    images: out.images,
    shape: out.shape,
    unseenWords: out.unseenWords ?? [],
    ms: Math.round(performance.now() - started),
  }, [rgb.buffer as ArrayBuffer, out.images.buffer as ArrayBuffer]);
}

async function handle(req: Request): Promise<void> {
  if (req.type === "load") return await load(req.weights);
  if (!pipeline) throw new PageError("internal", "The model is not loaded yet.");
  const started = performance.now();
  const p = await withSampler(pipeline, req.sampler);
  if (req.type === "generate") {
    const caption = req.caption.trim();
    if (!caption) throw new PageError("input", 'Type a caption first, e.g. "a red circle".');
    try {
      p.tokenizer.encode(caption); // too long for the context: a message, not a crash
    } catch (e) {
      throw new PageError("input", (e as Error).message);
    }
    const unseen = unseenWords(p, [caption]);
    if (unseen?.length) {
      post({ type: "status", text: `Never seen in training: ${unseen.join(", ")}` });
    }
    // Text to image only: variations have no caption for CLIP to score.
    const opts = { ...options(req.id, req), rerank: req.rerank };
    reply(req.id, await textToImage(p, [caption], opts), started);
  } else {
    const image = inputImage(req.png, inputImageSize(p));
    reply(req.id, await imageVariations(p, image, options(req.id, req)), started);
  }
}

scope.addEventListener("message", async (e) => {
  const req = e.data;
  try {
    await handle(req);
  } catch (err) {
    const kind = err instanceof PageError ? err.kind : "internal";
    const id = "id" in req ? req.id : undefined;
    post({ type: "error", id, kind, message: (err as Error).message ?? String(err) });
  }
});
