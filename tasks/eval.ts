/**
 * `deno task eval <clip|prior|pipeline> --checkpoint DIR [...]`: the thesis's evaluations
 * (Table 4.1 for CLIP, Table 4.2 for the prior) and a CLIP-retrieval score of generated images.
 *
 * @module
 */
import { join } from "node:path";
import type { ResolvedConfig } from "../core/config.ts";
import { writeTextAtomic } from "../core/io/mod.ts";
import {
  buildClipCache,
  createComponent,
  createPrior,
  createPriorSampler,
  loadCheckedSplit,
  loadClip,
  loadPipeline,
  revalidateStoredConfig,
  textToImage,
} from "../core/pipeline.ts";
import type { Registry } from "../core/registry.ts";
import {
  assertConfigMatches,
  assertSameClip,
  loadCheckpoint,
  loadModuleWeights,
} from "../core/train/checkpoint.ts";
import { CLIP_SLOTS } from "../core/pipeline.ts";
import { asShapesData, type CaptionedImage, type SplitName, toNchw } from "../datasets/mod.ts";
import {
  type ClipEvalResult,
  type ClipEvalSet,
  evaluateClip,
  THESIS_TABLE_4_1,
} from "../core/eval/clip.ts";
import { evaluatePrior, type PriorMetrics, THESIS_TABLE_4_2 } from "../core/eval/prior.ts";
import type { NoiseSchedule } from "../core/diffusion/mod.ts";
import {
  DEFAULT_PROBE_OPTIONS,
  DEFAULT_PROBE_STEPS,
  loadOrTrainProbe,
  scoreImages,
} from "../datasets/probe.ts";
import { imagesToNchw } from "../core/data/images.ts";
import type { ProbeScores } from "../datasets/score.ts";
import {
  BACKEND_HELP,
  checkOutputFile,
  numberFlag,
  openSampling,
  parseFlags,
  PRIOR_SAMPLING_HELP,
  runMain,
  SAMPLING_FLAGS,
  samplingFlags,
  UsageError,
} from "./_cli.ts";

const USAGE = `Usage: deno task eval <clip|prior|probe|pipeline> --checkpoint DIR [options]

  clip      thesis Table 4.1: image-text cosine similarity of true and random pairs, top-1 and
            top-5 retrieval of the true caption among all captions of the split
  prior     thesis Table 4.2: cosine similarity of sampled image embeddings with the text
            embedding, the true image embedding and a random text embedding
  probe     trains (or reuses, from DIR/probe/) the ground-truth probe that "pipeline" uses
            and scores it on the split's real images: its ceiling, reported before any
            generated-image number
  pipeline  generates one image per caption of the split (CLIP -> prior -> decoder) and scores
            it with the trained CLIP: how often the true caption is the best (top-1) or among
            the 5 best (top-5) matches among all captions of the split. The same numbers for
            the real images are printed beside them as the ceiling CLIP allows. A second table
            scores the same images with a ground-truth probe: a small CNN trained on the
            data's labels (cached in DIR/probe/) says which (colour, shape) pairs and how many
            figures each image shows; "exact" means exactly the captioned ones.

Options:
  --checkpoint DIR   run folder with clip/, prior/, decoder/
  --split NAME       test (default) or zeroshot (unseen colour-shape pairs)
  --limit N          evaluate the first N images of the split (pipeline default: 200)
  --guidance S       decoder guidance scale for "pipeline" (default 2)
  --steps N          decoder sampling steps for "pipeline" (default: the sampler's)
  --sampler NAME     ddpm, ddim or dpm-solver++ for "pipeline" (default: the config's)
${PRIOR_SAMPLING_HELP}
                     (for "prior" and "pipeline")
  --seed S           random seed, a decimal integer 0 to 4294967295 (default 0)
  --probe-steps N    training steps of the ground-truth probe (default ${DEFAULT_PROBE_STEPS})
  --probe-images N   images the probe trains on (default ${DEFAULT_PROBE_OPTIONS.trainCount})
  --out FILE.json    where to write the results (default DIR/eval_<what>_<split>.json); an
                     existing file is kept unless --force
  --force            overwrite the results file if it exists
${BACKEND_HELP}
  --debug            print stack traces of errors
  -h, --help         show this help`;

const WHATS = ["clip", "prior", "probe", "pipeline"] as const;
type What = typeof WHATS[number];

/** What `runEval` computed and wrote. */
export interface EvalResult {
  what: What;
  split: SplitName;
  path: string;
  results: Record<string, unknown>;
}

function evalSet(data: readonly CaptionedImage[]): ClipEvalSet {
  const { width: w, height: h } = data[0];
  const images = new Float32Array(data.length * 3 * w * h);
  data.forEach((d, i) => toNchw(d.image, w, h, images, i * 3 * w * h, false));
  return { images, shape: [data.length, 3, h, w], captions: data.map((d) => d.caption) };
}

/**
 * The probe's rates as a table: one column, or generated beside real (the real column is the
 * probe's ceiling).
 */
function probeTable(title: string, a: ProbeScores, real: ProbeScores | null): string {
  const rows: [string, keyof ProbeScores][] = [
    ["exact: just the captioned colour-shape pairs", "exact"],
    ["colours right", "colour"],
    ["shapes right", "shape"],
    ["figure count right", "count"],
    ["exact, squares=rectangles, circles=ellipses", "lenient"],
  ];
  const cells = rows.map(([name, k]): [string, string, string] => [
    name,
    fmt(a[k], true),
    real ? fmt(real[k], true) : "",
  ]);
  cells.push([
    `size words right (${a.sizeImages} captions with one)`,
    fmt(a.size, true),
    real ? fmt(real.size, true) : "",
  ]);
  const text = table(title, cells).replace(
    "ours".padStart(9),
    (real ? "generated" : "real").padStart(9),
  );
  return real
    ? text.replace("thesis".padStart(9), "real".padStart(9))
    : text.replace("thesis".padStart(9), "");
}

function fmt(x: number, percent = false): string {
  return percent ? `${(x * 100).toFixed(2)}%` : x.toFixed(3);
}

function table(title: string, rows: [string, string, string][]): string {
  const w0 = Math.max(...rows.map((r) => r[0].length), 6);
  const lines = [title, `  ${"".padEnd(w0)}  ${"ours".padStart(9)}  ${"thesis".padStart(9)}`];
  for (const [name, ours, thesis] of rows) {
    lines.push(`  ${name.padEnd(w0)}  ${ours.padStart(9)}  ${thesis.padStart(9)}`);
  }
  return lines.join("\n");
}

function clipRows(r: ClipEvalResult, ref: ClipEvalResult | null): [string, string, string][] {
  const t = (x: number | undefined, p = false): string => (x === undefined ? "-" : fmt(x, p));
  return [
    ["image-text cosine similarity", fmt(r.meanCosine), t(ref?.meanCosine)],
    ["random pairs cosine similarity", fmt(r.meanRandomCosine), t(ref?.meanRandomCosine)],
    ["top-1 accuracy", fmt(r.top1, true), t(ref?.top1, true)],
    ["top-5 accuracy", fmt(r.top5, true), t(ref?.top5, true)],
  ];
}

async function loadSplit(
  config: ResolvedConfig,
  registry: Registry,
  split: SplitName,
  limit: number | undefined,
): Promise<CaptionedImage[]> {
  const data = await loadCheckedSplit(config, registry, split, limit);
  if (data.length < 2) throw new UsageError(`Split "${split}" has ${data.length} images; need 2`);
  return asShapesData(data);
}

/**
 * The eval task, callable in-process (tests) and from the CLI.
 *
 * @example
 * ```ts
 * await runEval(["clip", "--checkpoint", "runs/tiny", "--limit", "64"]);
 * ```
 */
export async function runEval(
  args: string[],
  hooks: { print?: (line: string) => void } = {},
): Promise<EvalResult | null> {
  const print = hooks.print ?? ((line: string) => console.log(line));
  const { values, positionals } = parseFlags(args, {
    ...SAMPLING_FLAGS,
    split: { type: "string" },
    limit: { type: "string" },
    "probe-steps": { type: "string" },
    "probe-images": { type: "string" },
  }, "eval");
  if (values.help) {
    print(USAGE);
    return null;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      `Expected what to evaluate: clip, prior or pipeline; see "deno task eval --help"`,
    );
  }
  const what = positionals[0] as What;
  if (!(WHATS as readonly string[]).includes(what)) {
    throw new UsageError(`Unknown evaluation "${positionals[0]}"; choose clip, prior or pipeline`);
  }
  const split = (values.split as string | undefined) ?? "test";
  if (split !== "test" && split !== "zeroshot") {
    throw new UsageError(`Unknown split "${split}"; choose test or zeroshot`);
  }
  const checkpoint = values.checkpoint as string | undefined;
  if (!checkpoint) throw new UsageError(`Missing --checkpoint DIR; see "deno task eval --help"`);
  const limit = numberFlag(values, "limit", { integer: true, min: 2 }) ??
    (what === "pipeline" ? 200 : undefined);
  const { guidance, steps, seed } = samplingFlags(values);
  const probeSteps = numberFlag(values, "probe-steps", { integer: true, min: 1 }) ??
    DEFAULT_PROBE_STEPS;
  const probeImages = numberFlag(values, "probe-images", { integer: true, min: 64 });
  const probeOptions = { steps: probeSteps, ...(probeImages && { trainCount: probeImages }) };
  const out = (values.out as string | undefined) ?? join(checkpoint, `eval_${what}_${split}.json`);
  // Before any work: an existing result (e.g. the shipped weights/default/eval_*.json) is kept
  // unless --force, and the folder must be writable.
  await checkOutputFile(out, { force: values.force === true, flag: "--out" });

  const { registry, load } = await openSampling(values, print);
  let results: Record<string, unknown>;

  if (what === "probe") {
    const clipCkpt = await loadCheckpoint(join(checkpoint, "clip"), "clip");
    const config = await revalidateStoredConfig(clipCkpt.meta.config, registry, clipCkpt.dir);
    const data = await loadSplit(config, registry, split as SplitName, limit);
    if (!data.every((d) => d.labels)) {
      throw new UsageError(`The ${split} split has no ground-truth labels: no probe can judge it`);
    }
    const { probe, info, trained } = await loadOrTrainProbe(
      checkpoint,
      config,
      registry,
      probeOptions,
      { print },
    );
    try {
      const real = await scoreImages(probe, imagesToNchw(data), data.map((d) => d.caption));
      print(probeTable(
        `Ground-truth probe on ${data.length} real ${split} images (${info.options.steps} steps, ` +
          `${trained ? `trained now in ${info.seconds.toFixed(0)} s` : "cached"})`,
        real,
        null,
      ));
      results = { probe: info, realImages: real, trained };
    } finally {
      probe.dispose();
    }
  } else if (what === "clip" || what === "prior") {
    const clipCkpt = await loadCheckpoint(join(checkpoint, "clip"), "clip");
    const config = await revalidateStoredConfig(clipCkpt.meta.config, registry, clipCkpt.dir);
    const data = await loadSplit(config, registry, split as SplitName, limit);
    const { clip, tokenizer } = await loadClip(clipCkpt, config, registry);
    try {
      if (what === "clip") {
        const r = await evaluateClip(clip, tokenizer, evalSet(data), { seed });
        print(table(
          `CLIP, ${split} split (${r.count} pairs; step ${clipCkpt.meta.step}) vs thesis Table 4.1:`,
          clipRows(r, split === "test" ? THESIS_TABLE_4_1 : null),
        ));
        results = { clip: r, thesis: THESIS_TABLE_4_1, step: clipCkpt.meta.step };
      } else {
        const priorCkpt = await loadCheckpoint(join(checkpoint, "prior"), "prior");
        assertConfigMatches(priorCkpt, config, CLIP_SLOTS);
        assertSameClip([priorCkpt], clipCkpt, checkpoint);
        const pconfig = await revalidateStoredConfig(
          priorCkpt.meta.config,
          registry,
          priorCkpt.dir,
        );
        const prior = await createPrior(pconfig, registry, tokenizer);
        const cache = buildClipCache(clip, tokenizer, data);
        try {
          loadModuleWeights(prior, priorCkpt, { ema: true });
          prior.eval();
          const schedule = await createComponent<NoiseSchedule>(pconfig, registry, "priorSchedule");
          const m: PriorMetrics = await evaluatePrior(prior, cache, schedule, {
            seed,
            sampler: await createPriorSampler(registry, load),
            guidance: load.priorGuidance,
          });
          const ref = THESIS_TABLE_4_2;
          const t = (x: number): string => (split === "test" ? fmt(x) : "-");
          print(table(
            `Prior, ${split} split (${data.length} captions; step ${priorCkpt.meta.step}) vs thesis Table 4.2:`,
            [
              ["generated vs text embedding", fmt(m.textSimilarity), t(ref.textSimilarity)],
              ["generated vs true image embedding", fmt(m.imageSimilarity), t(ref.imageSimilarity)],
              [
                "baseline: text vs true image",
                fmt(m.baselineSimilarity),
                t(ref.baselineSimilarity),
              ],
              ["generated vs random text", fmt(m.randomSimilarity), t(ref.randomSimilarity)],
            ],
          ));
          results = { prior: m, thesis: ref, step: priorCkpt.meta.step, count: data.length };
        } finally {
          prior.dispose();
          cache.dispose();
        }
      }
    } finally {
      clip.dispose();
    }
  } else {
    const p = await loadPipeline(checkpoint, registry, load);
    try {
      const data = await loadSplit(p.config, registry, split as SplitName, limit);
      const captions = data.map((d) => d.caption);
      const S = p.decoder.imageSize;
      if (data[0].width !== S) {
        throw new UsageError(
          `Split images are ${data[0].width}px but the decoder makes ${S}px images`,
        );
      }
      const per = 3 * S * S;
      const generated = new Float32Array(captions.length * per);
      const chunk = 16;
      const t0 = performance.now();
      for (let i = 0; i < captions.length; i += chunk) {
        const part = captions.slice(i, i + chunk);
        const g = await textToImage(p, part, { n: 1, guidance, steps, seed: seed + i });
        generated.set(g.images, i * per);
        print(
          `pipeline: generated ${Math.min(i + chunk, captions.length)}/${captions.length} images`,
        );
      }
      const seconds = (performance.now() - t0) / 1000;
      const gen = await evaluateClip(p.clip, p.tokenizer, {
        images: generated,
        shape: [captions.length, 3, S, S],
        captions,
      }, { seed });
      const real = await evaluateClip(p.clip, p.tokenizer, evalSet(data), { seed });
      const rows = (a: ClipEvalResult, b: ClipEvalResult): [string, string, string][] => [
        ["CLIP top-1 retrieval of the true caption", fmt(a.top1, true), fmt(b.top1, true)],
        ["CLIP top-5 retrieval of the true caption", fmt(a.top5, true), fmt(b.top5, true)],
        ["cosine similarity with the true caption", fmt(a.meanCosine), fmt(b.meanCosine)],
        [
          "cosine similarity with a random caption",
          fmt(a.meanRandomCosine),
          fmt(b.meanRandomCosine),
        ],
      ];
      const text = table(
        `Pipeline, ${split} split (${captions.length} captions, guidance ${guidance}, ` +
          `${seconds.toFixed(0)} s): generated images scored by the trained CLIP`,
        rows(gen, real),
      ).replace("ours".padStart(9), "generated".padStart(9)).replace(
        "thesis".padStart(9),
        "real".padStart(9),
      );
      print(text);
      print(
        "  (The thesis has no such number; its image metrics, FID/KID with Inception, need " +
          "weights that cannot be downloaded here.)",
      );
      let probeResults: Record<string, unknown> | null = null;
      if (data.every((d) => d.labels)) {
        const { probe, info, trained } = await loadOrTrainProbe(
          checkpoint,
          p.config,
          registry,
          probeOptions,
          { print },
        );
        try {
          const pg = await scoreImages(probe, generated, captions);
          const pr = await scoreImages(probe, imagesToNchw(data), captions);
          print(probeTable(
            `ground-truth probe (trained on the data's labels; ${info.options.steps} steps, ` +
              `${trained ? "trained now" : "cached"}; exact match on real test images ` +
              `${fmt(info.realTest.exact, true)})`,
            pg,
            pr,
          ));
          print(
            "  (The real column is the probe's ceiling: it is right this often on true images.)",
          );
          probeResults = {
            metric: "a CNN probe trained on the dataset's ground-truth labels predicts the " +
              "(colour, shape) pairs, figure count and each pair's size word of each image; " +
              "exact = the caption's set of pairs and its number of figures; lenient = exact " +
              "with squares counted as rectangles and circles as ellipses; size = every size " +
              "word of the caption right, over the captions that have one",
            generated: pg,
            realImages: pr,
            probe: info,
          };
        } finally {
          probe.dispose();
        }
      } else {
        print("  (The split has no ground-truth labels: the probe table is skipped.)");
      }
      results = {
        metric: "CLIP retrieval of generated images: for each generated image, the rank of its " +
          "caption among all captions of the split by the trained CLIP's cosine similarity",
        generated: gen,
        realImages: real,
        guidance,
        sampler: p.sampler.name,
        steps: steps ?? null,
        seconds,
        modelSteps: p.steps,
        probe: probeResults,
      };
    } finally {
      p.dispose();
    }
  }
  const report = { what, split, checkpoint, limit: limit ?? null, ...results };
  await writeTextAtomic(out, JSON.stringify(report, null, 2) + "\n");
  print(`Wrote ${out}`);
  return { what, split: split as SplitName, path: out, results: report };
}

if (import.meta.main) await runMain(runEval);
