/**
 * The ground-truth probe of a run, cached in `<run>/probe/`: saving and loading its weights and
 * info (options, dataset config, final loss, its scores on real test images), whether a saved
 * probe fits the options asked for, and `loadOrTrainProbe`, which reuses a fitting probe or trains
 * one on the probe's own training data and saves it.
 *
 * @module
 */
import { join } from "node:path";
import type { ResolvedConfig } from "../core/config.ts";
import { exists, readSafetensors, type TensorMap, writeSafetensors } from "../core/io/mod.ts";
import { writeTextAtomic } from "../core/io/mod.ts";
import type { Registry } from "../core/registry.ts";
import { imagesToNchw } from "../core/data/images.ts";
import { createDataset } from "../core/pipeline.ts";
import { asShapesData } from "./shapes.ts";
import type { ProbeScores } from "./score.ts";
import {
  DEFAULT_PROBE_OPTIONS,
  probeForOptions,
  type ProbeOptions,
  type ShapeProbe,
} from "./probe_model.ts";
import { trainProbe } from "./probe_train.ts";
import { scoreImages } from "./probe_predict.ts";

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

/** Values of options added after format 3 that a probe saved without them was trained with. */
const LEGACY_OPTIONS: Partial<ProbeOptions> = {
  augment: "flip",
  stem: false,
  localHead: false,
  noise: 0,
};

/**
 * Whether saved options (a key they lack: the value probes were trained with before it existed)
 * equal `options`, in any key order: the cache test of `loadOrTrainProbe`.
 *
 * @example
 * ```ts
 * import { DEFAULT_PROBE_OPTIONS } from "./probe_model.ts";
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

/**
 * The part of a dataset config the probe's data depends on: the shapes dataset's
 * `twoFigureShare` changes only the training split, which the probe never reads
 * (`probeTrainingData`), so a run that sets it reuses a probe trained without it.
 */
export function probeDataKey(dataset: unknown): unknown {
  const d = dataset as { plugin?: string; options?: Record<string, unknown> } | null;
  if (d?.plugin !== "shapes" || !d.options) return dataset;
  const { twoFigureShare: _trainOnly, ...options } = d.options;
  return { ...d, options };
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
  const probe = probeForOptions(options);
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
        JSON.stringify(probeDataKey(info.dataset)) === JSON.stringify(probeDataKey(datasetConfig))
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
