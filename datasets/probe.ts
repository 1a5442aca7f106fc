/**
 * A ground-truth probe: a small CNN trained on the shapes data's own labels as a multi-label
 * classifier over the 17 x 6 (colour, shape) pairs, a figure-count logit and the size word of
 * each pair (17 x 6 x 3 logits). It scores any image
 * (generated or real) against its caption with `score.ts`. Trained
 * with Adam for a fixed number of steps and cached in `<run>/probe/` so later evals reuse it.
 *
 * @module
 */
import { join } from "node:path";
import type { ResolvedConfig } from "../core/config.ts";
import { exists, readSafetensors, type TensorMap, writeSafetensors } from "../core/io/mod.ts";
import { writeTextAtomic } from "../core/io/mod.ts";
import { Conv2d, GroupNorm, Linear, Module } from "../core/nn/mod.ts";
import { Adam } from "../core/optim/mod.ts";
import type { Registry } from "../core/registry.ts";
import {
  abs,
  adaptiveAvgPool2d,
  add,
  affine,
  concat,
  exp,
  log,
  manualSeed,
  maxPool2d,
  mul,
  neg,
  noGrad,
  relu,
  reshape,
  scope,
  slice,
  sub,
  sum,
  type Tensor,
  tensor,
} from "../core/tensor/mod.ts";
import { imagesToNchw, toNchw } from "../core/data/images.ts";
import { Rng } from "../core/data/rng.ts";
import { asShapesData, COLOUR_NAMES, SHAPES } from "./shapes.ts";
import type { CaptionedImage } from "./shapes.ts";
import { createDataset } from "../core/pipeline.ts";
import {
  decodePrediction,
  labelTargets,
  PAIR_COUNT,
  pairIndex,
  pairSizeIndex,
  type ProbePrediction,
  type ProbeScores,
  scoreCaption,
  SIZE_LOGITS,
  summarizeScores,
} from "./score.ts";

/** Training options of the probe. */
export interface ProbeOptions {
  /** Image side in pixels (the run's). */
  imageSize: number;
  /** Channels of the first convolution (the next two use 2x, a fourth at >= 32 px uses 4x). */
  width: number;
  /** Adam steps. */
  steps: number;
  /** Images per step. */
  batchSize: number;
  /** Adam learning rate. */
  lr: number;
  /** Seed of the weights and of the batch order. */
  seed: number;
  /** Training images generated from the run's dataset config (its train split). */
  trainCount: number;
  /**
   * "flip": random horizontal flips; "dihedral": any of the 8 flips and quarter turns (the labels
   * and the box distribution of the shapes data are invariant to all 8), and at prediction time
   * the logits averaged over the 8.
   */
  augment: "flip" | "dihedral";
  /** A second 3x3 convolution at full resolution before the first pooling. */
  stem: boolean;
  /**
   * A second head applied at every cell of the last feature map (two 1x1 convolutions), its
   * logits max-pooled over the cells and added to the global head's: a figure's colour and shape
   * are read where the figure is, not from features pooled over both figures.
   */
  localHead: boolean;
}

/**
 * Default steps: enough for >= 90% exact matches on real 32x32 test images (measured in
 * docs/training.md); a few minutes on the CPU backend, trained once per run and cached.
 */
export const DEFAULT_PROBE_STEPS = 6000;

/** Defaults of everything but the image size. */
export const DEFAULT_PROBE_OPTIONS: Omit<ProbeOptions, "imageSize"> = {
  width: 32,
  steps: DEFAULT_PROBE_STEPS,
  batchSize: 64,
  lr: 3e-3,
  seed: 0,
  trainCount: 20000,
  augment: "dihedral",
  stem: false,
  localHead: true,
};

/**
 * Version of the files in `<run>/probe/`. 4: trained on every colour-shape pair
 * (`probeTrainingData`). The layers a probe has follow from its options (`stem`, `localHead`),
 * which are part of the cache key.
 */
export const PROBE_FORMAT_VERSION = 4;

/** Real-image scores of the probe (its ceiling), stored beside its weights. */
export interface ProbeInfo {
  format_version: number;
  options: ProbeOptions;
  /** The dataset config the probe was trained on (must match the run's to be reused). */
  dataset: unknown;
  /** Final training loss (mean binary cross-entropy per image, summed over the 126 logits). */
  loss: number;
  /** Training wall time in seconds. */
  seconds: number;
  /** Scores on real images of the test split (at most 512). */
  realTest: ProbeScores;
}

/**
 * The probe network: conv 3x3 + ReLU + 2x2 max-pool, conv 3x3 + GroupNorm + ReLU + 2x2 max-pool,
 * a third conv + GroupNorm + ReLU (at >= 32 px one more 2x2 max-pool and conv + GroupNorm + ReLU,
 * so that the receptive field covers the largest figures), global max and mean pooling, then a
 * hidden Linear and a Linear to 102 pair, 17 colour, 6 shape, 1 "two figures" and 306 size logits.
 * With `localHead` the same logits also come from two 1x1 convolutions at every cell of the last
 * feature map, max-pooled over the cells and added: with two figures the global pooling mixes
 * their features, a cell reads the figure it sits on. With `dihedral` the logits are averaged over
 * the 8 flips and quarter turns of the image when predicting.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../core/tensor/mod.ts";
 * function logits(images: Tensor): Tensor {
 *   const probe = new ShapeProbe(16);
 *   return probe.forward(images); // [B, PROBE_LOGITS]
 * }
 * ```
 */
export class ShapeProbe extends Module {
  readonly conv1: Conv2d;
  readonly conv1b: Conv2d | null;
  readonly conv2: Conv2d;
  readonly norm2: GroupNorm;
  readonly conv3: Conv2d;
  readonly norm3: GroupNorm;
  readonly conv4: Conv2d | null;
  readonly norm4: GroupNorm | null;
  readonly hidden: Linear;
  readonly head: Linear;
  readonly localHidden: Conv2d | null;
  readonly localOut: Conv2d | null;

  constructor(
    readonly imageSize: number,
    readonly width = DEFAULT_PROBE_OPTIONS.width,
    readonly stem = DEFAULT_PROBE_OPTIONS.stem,
    /** Average the logits over the 8 flips and quarter turns of each image when predicting. */
    readonly dihedral = false,
    readonly localHead = false,
  ) {
    super();
    if (!Number.isInteger(imageSize) || imageSize < 8) {
      throw new Error(`Probe image size ${imageSize} is not an integer >= 8`);
    }
    const w = width, w2 = 2 * width;
    this.conv1 = this.addModule("conv1", new Conv2d(3, w, 3, { padding: 1 }));
    this.conv1b = stem ? this.addModule("conv1b", new Conv2d(w, w, 3, { padding: 1 })) : null;
    this.conv2 = this.addModule("conv2", new Conv2d(w, w2, 3, { padding: 1 }));
    this.norm2 = this.addModule("norm2", new GroupNorm(4, w2));
    this.conv3 = this.addModule("conv3", new Conv2d(w2, w2, 3, { padding: 1 }));
    this.norm3 = this.addModule("norm3", new GroupNorm(4, w2));
    const deep = imageSize >= 32, last = deep ? 2 * w2 : w2;
    this.conv4 = deep ? this.addModule("conv4", new Conv2d(w2, last, 3, { padding: 1 })) : null;
    this.norm4 = deep ? this.addModule("norm4", new GroupNorm(4, last)) : null;
    this.hidden = this.addModule("hidden", new Linear(2 * last, 256));
    this.head = this.addModule("head", new Linear(256, PROBE_LOGITS));
    this.localHidden = localHead ? this.addModule("localHidden", new Conv2d(last, 256, 1)) : null;
    this.localOut = localHead ? this.addModule("localOut", new Conv2d(256, PROBE_LOGITS, 1)) : null;
  }

  /**
   * images [B, 3, S, S] in [-1, 1] -> logits [B, PROBE_LOGITS]: 102 pair logits, 17 colour
   * logits, 6 shape logits, the count logit, 306 (pair, size) logits. A pair's logit is its own
   * term plus its colour's and its shape's, so every image teaches every pair of its colours and
   * shapes something.
   */
  forward(x: Tensor): Tensor {
    const B = x.shape[0];
    // No norm after conv1: GroupNorm there normalises each image's colour statistics away.
    let h = relu(this.conv1.forward(x));
    if (this.conv1b) h = relu(this.conv1b.forward(h));
    h = maxPool2d(h, 2);
    h = maxPool2d(relu(this.norm2.forward(this.conv2.forward(h))), 2);
    h = relu(this.norm3.forward(this.conv3.forward(h)));
    if (this.conv4 && this.norm4) {
      h = relu(this.norm4.forward(this.conv4.forward(maxPool2d(h, 2))));
    }
    // Global max + mean pooling: "is there a red triangle anywhere" is position-free, so the
    // hidden layer need not learn each feature once per spatial cell.
    const local = this.localHidden && this.localOut
      ? reshape(maxPool2d(this.localOut.forward(relu(this.localHidden.forward(h))), h.shape[2]), [
        B,
        -1,
      ])
      : null;
    h = concat([
      reshape(maxPool2d(h, h.shape[2]), [B, -1]),
      reshape(adaptiveAvgPool2d(h, [1, 1]), [B, -1]),
    ], 1);
    let raw = this.head.forward(this.hidden.forward(reshape(h, [B, -1]), "relu"));
    if (local) raw = add(raw, local);
    const C = COLOUR_NAMES.length, K = SHAPES.length;
    const pair = add(
      add(
        reshape(slice(raw, 1, 0, PAIR_COUNT), [B, C, K]),
        reshape(slice(raw, 1, PAIR_COUNT, PAIR_COUNT + C), [B, C, 1]),
      ),
      reshape(slice(raw, 1, PAIR_COUNT + C, PAIR_COUNT + C + K), [B, 1, K]),
    );
    return concat([reshape(pair, [B, PAIR_COUNT]), slice(raw, 1, PAIR_COUNT)], 1);
  }
}

/**
 * Binary cross-entropy with logits, summed over labels and averaged over the batch:
 * max(z, 0) - z y + log(1 + exp(-|z|)) (the numerically stable form of
 * -y log sigmoid(z) - (1 - y) log(1 - sigmoid(z))).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../core/tensor/mod.ts";
 * function loss(logits: Tensor, targets: Tensor): Tensor {
 *   return bceWithLogits(logits, targets); // scalar
 * }
 * ```
 */
export function bceWithLogits(logits: Tensor, targets: Tensor): Tensor {
  const softplus = log(affine(exp(neg(abs(logits))), 1, 1));
  const per = add(sub(relu(logits), mul(logits, targets)), softplus);
  return affine(sum(per), 1 / logits.shape[0], 0);
}

/** Index of the figure-count logit; the size logits follow it. */
const COUNT_LOGIT: number = PAIR_COUNT + COLOUR_NAMES.length + SHAPES.length;

/** Logits per image: 102 pairs, 17 colours, 6 shapes, the figure count, 306 (pair, size). */
export const PROBE_LOGITS: number = COUNT_LOGIT + 1 + SIZE_LOGITS;

/** Fills row `row` of `out` ([*, PROBE_LOGITS]) with an image's multi-hot targets. */
function writeTargets(sample: CaptionedImage, out: Float32Array, row: number): void {
  if (!sample.labels) throw new Error(`Image "${sample.caption}" has no ground-truth labels`);
  const t = labelTargets(sample.labels);
  const o = row * PROBE_LOGITS;
  for (const p of t.pairs) out[o + p] = 1;
  for (const l of sample.labels) {
    out[o + PAIR_COUNT + COLOUR_NAMES.indexOf(l.colour)] = 1;
    out[o + PAIR_COUNT + COLOUR_NAMES.length + SHAPES.indexOf(l.shape)] = 1;
  }
  out[o + COUNT_LOGIT] = t.count === 2 ? 1 : 0;
  for (const l of sample.labels) {
    out[o + COUNT_LOGIT + 1 + pairSizeIndex(pairIndex(l.colour, l.shape), l.size)] = 1;
  }
}

/**
 * Writes transform `k` (0-7; bit 0 mirrors x, bit 1 mirrors y, bit 2 swaps the axes) of one
 * planar [C, S, S] image `src` into `dst` at `offset`: the 8 flips and quarter turns.
 */
export function dihedralInto(
  src: Float32Array,
  S: number,
  k: number,
  dst: Float32Array,
  offset = 0,
): void {
  const fx = (k & 1) !== 0, fy = (k & 2) !== 0, swap = (k & 4) !== 0, plane = S * S;
  for (let c = 0; c < src.length / plane; c++) {
    const sc = c * plane, dc = offset + c * plane;
    for (let y = 0; y < S; y++) {
      const yy = fy ? S - 1 - y : y;
      for (let x = 0; x < S; x++) {
        const xx = fx ? S - 1 - x : x;
        dst[dc + y * S + x] = src[sc + (swap ? xx * S + yy : yy * S + xx)];
      }
    }
  }
}

/**
 * Trains a probe on labelled images with Adam (random horizontal flips, which keep the labels),
 * the learning rate decaying to zero on a cosine over the last half of the steps. The loss is
 * read back only every 100 steps.
 *
 * @example
 * ```ts
 * import type { CaptionedImage } from "./shapes.ts";
 * async function train16(train: CaptionedImage[]) {
 *   const { probe, loss } = await trainProbe(train, { ...DEFAULT_PROBE_OPTIONS, imageSize: 16 });
 *   return { probe, loss };
 * }
 * ```
 */
export async function trainProbe(
  data: readonly CaptionedImage[],
  options: ProbeOptions,
  hooks: { print?: (line: string) => void } = {},
): Promise<{ probe: ShapeProbe; loss: number }> {
  const S = options.imageSize, B = options.batchSize, per = 3 * S * S;
  if (data.length === 0) throw new Error("Cannot train the probe on an empty dataset");
  if (data[0].width !== S) {
    throw new Error(`Probe images are ${data[0].width}px but the probe expects ${S}px`);
  }
  manualSeed(options.seed);
  const probe = new ShapeProbe(
    S,
    options.width,
    options.stem,
    options.augment === "dihedral",
    options.localHead,
  );
  // Start the head at roughly the label priors (a pair logit is pair + colour + shape, so about
  // -4; colours about -1.5, shapes -1) instead of 0: otherwise the first few hundred Adam steps
  // are spent walking 120 biases down from log(2) per logit to the label frequencies.
  {
    const b = new Float32Array(PROBE_LOGITS);
    for (let i = 0; i < PAIR_COUNT; i++) b[i] = -1.5;
    for (let i = PAIR_COUNT; i < PAIR_COUNT + COLOUR_NAMES.length; i++) b[i] = -1.5;
    for (let i = PAIR_COUNT + COLOUR_NAMES.length; i < COUNT_LOGIT; i++) b[i] = -1;
    for (let i = COUNT_LOGIT + 1; i < PROBE_LOGITS; i++) b[i] = -5;
    probe.head.bias!.write(b);
  }
  const opt = new Adam(probe.parameters(), { lr: options.lr });
  const rng = new Rng(`probe-${options.seed}`);
  const x = new Float32Array(B * per), y = new Float32Array(B * PROBE_LOGITS);
  const one = new Float32Array(per);
  let last = NaN;
  try {
    for (let step = 0; step < options.steps; step++) {
      y.fill(0);
      for (let k = 0; k < B; k++) {
        const s = data[Math.floor(rng.next() * data.length)];
        if (options.augment === "dihedral") {
          toNchw(s.image, S, S, one, 0, false);
          dihedralInto(one, S, Math.floor(rng.next() * 8), x, k * per);
        } else {
          toNchw(s.image, S, S, x, k * per, rng.next() < 0.5);
        }
        writeTargets(s, y, k);
      }
      const loss = scope(() => {
        const l = bceWithLogits(
          probe.forward(tensor(x, [B, 3, S, S])),
          tensor(y, [B, PROBE_LOGITS]),
        );
        l.backward();
        return l;
      });
      const decay = Math.max(0, (step - options.steps / 2) / (options.steps / 2));
      opt.step(options.lr * 0.5 * (1 + Math.cos(Math.PI * decay)));
      opt.zeroGrad();
      if ((step + 1) % 100 === 0 || step === options.steps - 1) {
        last = await loss.item();
        hooks.print?.(`probe step ${step + 1}/${options.steps}  loss ${last.toFixed(4)}`);
      }
      loss.dispose();
    }
  } finally {
    opt.dispose();
  }
  probe.eval();
  return { probe, loss: last };
}

/**
 * The probe's predictions for NCHW images in [-1, 1] (decoded `probeLogits`).
 *
 * @example
 * ```ts
 * async function predict(probe: ShapeProbe, images: Float32Array, count: number) {
 *   return await predictProbe(probe, images, count); // one prediction per image
 * }
 * ```
 */
export async function predictProbe(
  probe: ShapeProbe,
  images: Float32Array,
  count: number,
): Promise<ProbePrediction[]> {
  return (await probeLogits(probe, images, count)).map((row) =>
    decodePrediction(row.subarray(0, PAIR_COUNT), row[COUNT_LOGIT], row.subarray(COUNT_LOGIT + 1))
  );
}

/**
 * The probe's raw outputs for NCHW images in [-1, 1], one row of `PROBE_LOGITS` per image: the
 * (colour, shape) pair logits (`pairIndex` order), the count logit (> 0: two figures), the size
 * logits. One readback per 128 images.
 *
 * @example
 * ```ts
 * import { pairIndex } from "./score.ts";
 * async function seesRedCircle(probe: ShapeProbe, images: Float32Array, count: number) {
 *   const rows = await probeLogits(probe, images, count);
 *   return rows[0][pairIndex("red", "circle")] > 0; // the probe sees a red circle in image 0
 * }
 * ```
 */
export async function probeLogits(
  probe: ShapeProbe,
  images: Float32Array,
  count: number,
): Promise<Float32Array[]> {
  const S = probe.imageSize, per = 3 * S * S, K = PROBE_LOGITS;
  if (images.length !== count * per) {
    throw new Error(
      `Expected ${count} images of ${S}x${S} (${count * per} values), got ${images.length}`,
    );
  }
  const out: Float32Array[] = [];
  for (let i = 0; i < count; i += 128) {
    const b = Math.min(128, count - i);
    const chunk = images.subarray(i * per, (i + b) * per);
    const z = new Float32Array(b * K);
    const views = probe.dihedral ? 8 : 1;
    const moved = views > 1 ? new Float32Array(b * per) : chunk;
    for (let v = 0; v < views; v++) {
      if (views > 1) {
        for (let k = 0; k < b; k++) {
          dihedralInto(chunk.subarray(k * per, (k + 1) * per), S, v, moved, k * per);
        }
      }
      const logits = noGrad(() => scope(() => probe.forward(tensor(moved, [b, 3, S, S]))));
      const zv = (await logits.read()) as Float32Array;
      logits.dispose();
      for (let j = 0; j < zv.length; j++) z[j] += zv[j] / views;
    }
    for (let k = 0; k < b; k++) out.push(z.slice(k * K, (k + 1) * K));
  }
  return out;
}

/**
 * Scores NCHW images against their captions with the probe.
 *
 * @example
 * ```ts
 * async function score(probe: ShapeProbe, generated: Float32Array, captions: string[]) {
 *   const s = await scoreImages(probe, generated, captions);
 *   console.log(s.exact);
 * }
 * ```
 */
export async function scoreImages(
  probe: ShapeProbe,
  images: Float32Array,
  captions: readonly string[],
): Promise<ProbeScores> {
  const preds = await predictProbe(probe, images, captions.length);
  return summarizeScores(preds.map((p, i) => scoreCaption(p, captions[i])));
}

/** Values of options added after format 3 that a probe saved without them was trained with. */
const LEGACY_OPTIONS: Partial<ProbeOptions> = { augment: "flip", stem: false, localHead: false };

/**
 * Whether saved options (a key they lack: the value probes were trained with before it existed)
 * equal `options`, in any key order: the cache test of `loadOrTrainProbe`.
 *
 * @example
 * ```ts
 * // A probe saved before the per-cell head existed was trained without it:
 * const { localHead: _, ...saved } = { ...DEFAULT_PROBE_OPTIONS, imageSize: 32 };
 * const same = sameProbeOptions(saved, { ...saved, imageSize: 32, localHead: false });
 * if (!same) throw new Error("a missing option means the old behaviour");
 * ```
 */
export function sameProbeOptions(saved: Partial<ProbeOptions>, options: ProbeOptions): boolean {
  const full: Record<string, unknown> = { ...LEGACY_OPTIONS, ...saved };
  const keys = new Set([...Object.keys(full), ...Object.keys(options)]);
  return [...keys].every((k) =>
    JSON.stringify(full[k]) === JSON.stringify((options as unknown as Record<string, unknown>)[k])
  );
}

/**
 * The probe's own training data for a shapes run: the generator with another seed, drawing its
 * "test" split (every colour-shape pair, the zero-shot exclusions included) at `trainCount`
 * images. A judge trained on the model's train split would never have seen the excluded pairs,
 * and would fail them in the test split (about 8% of its images) and in the zeroshot split (all).
 * The seed keeps these images apart from the real test images the probe is scored on. Other
 * datasets: the run's train split as it is.
 */
function probeTrainingData(
  config: ResolvedConfig,
  trainCount: number,
): { config: ResolvedConfig; split: "train" | "test" } {
  const d = config.components.dataset;
  if (d.plugin !== "shapes") return { config, split: "train" };
  const seed = `${d.options.seed ?? "unclip-shapes"}/probe`;
  return {
    config: {
      ...config,
      components: {
        ...config.components,
        dataset: { ...d, options: { ...d.options, seed, testCount: trainCount } },
      },
    },
    split: "test",
  };
}

function stateToTensors(probe: ShapeProbe, values: Map<string, Float32Array>): TensorMap {
  const out: TensorMap = {};
  for (const [name, t] of probe.stateDict()) {
    out[name] = { dtype: "F32", shape: [...t.shape], data: values.get(name)! };
  }
  return out;
}

/** Saves a probe and its info to `dir` (the JSON last: it marks a complete probe). */
export async function saveProbe(dir: string, probe: ShapeProbe, info: ProbeInfo): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const values = new Map<string, Float32Array>();
  for (const [name, t] of probe.stateDict()) values.set(name, (await t.read()) as Float32Array);
  await writeSafetensors(join(dir, "probe.safetensors"), stateToTensors(probe, values), {
    format_version: String(PROBE_FORMAT_VERSION),
  });
  // The JSON is written last: its presence marks a complete probe.
  await writeTextAtomic(join(dir, "probe.json"), JSON.stringify(info, null, 2) + "\n");
}

/** Loads a saved probe's weights from `dir` (its `probe.safetensors`). */
export async function loadProbe(dir: string, options: ProbeOptions): Promise<ShapeProbe> {
  const { tensors } = await readSafetensors(join(dir, "probe.safetensors"));
  const probe = new ShapeProbe(
    options.imageSize,
    options.width,
    options.stem,
    options.augment === "dihedral",
    options.localHead,
  );
  const values = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  for (const [name, e] of Object.entries(tensors)) {
    if (e.dtype !== "F32") throw new Error(`Probe tensor "${name}" in "${dir}" is not F32`);
    values.set(name, { shape: e.shape, data: e.data as Float32Array });
  }
  probe.loadStateDict(values, (t, data) => t.write(data));
  probe.eval();
  return probe;
}

/**
 * The probe of a run: reused from `<run>/probe/` when its options and dataset config match,
 * else trained on `trainCount` images of the run's dataset (`probeTrainingData`) and saved there
 * with its scores on the run's real test images.
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "../core/config.ts";
 * import type { Registry } from "../core/registry.ts";
 * async function probeOf(config: ResolvedConfig, registry: Registry) {
 *   const { probe, info, trained } = await loadOrTrainProbe("runs/tiny", config, registry, {
 *     steps: 600,
 *   });
 *   return { probe, info, trained };
 * }
 * ```
 */
export async function loadOrTrainProbe(
  runDir: string,
  config: ResolvedConfig,
  registry: Registry,
  overrides: Partial<ProbeOptions> = {},
  hooks: { print?: (line: string) => void } = {},
): Promise<{ probe: ShapeProbe; info: ProbeInfo; trained: boolean }> {
  const dataset = await createDataset(config, registry);
  const options: ProbeOptions = {
    ...DEFAULT_PROBE_OPTIONS,
    imageSize: dataset.imageSize,
    ...overrides,
  };
  const dir = join(runDir, "probe");
  const infoPath = join(dir, "probe.json");
  const datasetConfig = config.components.dataset;
  if (await exists(infoPath)) {
    try {
      const info = JSON.parse(await Deno.readTextFile(infoPath)) as ProbeInfo;
      if (
        info.format_version === PROBE_FORMAT_VERSION &&
        sameProbeOptions(info.options, options) &&
        JSON.stringify(info.dataset) === JSON.stringify(datasetConfig)
      ) {
        return { probe: await loadProbe(dir, options), info, trained: false };
      }
      hooks.print?.(`probe: ${dir} was trained with other options or data; retraining`);
    } catch (e) {
      hooks.print?.(`probe: ${dir} is unreadable (${(e as Error).message}); retraining`);
    }
  }
  const source = probeTrainingData(config, options.trainCount);
  const train = asShapesData(
    await (await createDataset(source.config, registry)).split(source.split),
  );
  const test = await dataset.split("test", 512);
  const t0 = performance.now();
  hooks.print?.(`probe: training on ${train.length} labelled images for ${options.steps} steps`);
  const { probe, loss } = await trainProbe(train, options, hooks);
  const seconds = (performance.now() - t0) / 1000;
  const realTest = await scoreImages(probe, imagesToNchw(test), test.map((d) => d.caption));
  const info: ProbeInfo = {
    format_version: PROBE_FORMAT_VERSION,
    options,
    dataset: datasetConfig,
    loss,
    seconds,
    realTest,
  };
  await saveProbe(dir, probe, info);
  return { probe, info, trained: true };
}
