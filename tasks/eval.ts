/**
 * `deno task eval <clip|prior|pipeline> --checkpoint DIR [...]`: the thesis's evaluations
 * (Table 4.1 for CLIP, Table 4.2 for the prior) and a CLIP-retrieval score of generated images.
 * This file holds the command line; each evaluation has a file of its own: `_eval_clip_prior.ts`,
 * `_eval_probe.ts`, `_eval_pipeline.ts`, with what they share in `_eval_common.ts`.
 *
 * @module
 */
import { join } from "node:path";
import { writeTextAtomic } from "../core/io/mod.ts";
import type { SplitName } from "../datasets/mod.ts";
import { DEFAULT_PROBE_OPTIONS, DEFAULT_PROBE_STEPS, MIN_PROBE_IMAGES } from "../datasets/probe.ts";
import {
  BACKEND_HELP,
  checkCheckpointFolder,
  checkOutputFile,
  checkUpsamplerFlags,
  GUIDANCE_INTERVAL_HELP,
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
  SAMPLING_FLAGS,
  samplingFlags,
  seedsFlag,
  UPSAMPLER_FLAGS,
  UPSAMPLER_HELP,
  upsamplerFlags,
  UsageError,
} from "./_cli.ts";
import { type EvalContext, seededResultsPath } from "./_eval_common.ts";
import { evalClipOrPrior } from "./_eval_clip_prior.ts";
import { evalCompare, summarizeSeeds } from "./_eval_compare.ts";
import { evalProbe } from "./_eval_probe.ts";
import {
  CAPTIONS_PER_CALL,
  evalPipeline,
  PIPELINE_SOURCES,
  type PipelineSource,
} from "./_eval_pipeline.ts";
import { MAX_IMAGES } from "../core/pipeline.ts";

const USAGE = `Usage: deno task eval <clip|reranker|prior|probe|pipeline> --checkpoint DIR [options]
       deno task eval compare A.json B.json
       deno task eval compare A0.json,A1.json,... B0.json,B1.json,...

  clip      thesis Table 4.1: image-text cosine similarity of true and random pairs, top-1 and
            top-5 retrieval of the true caption among all captions of the split
  reranker  the same for the run's reranking CLIP (DIR/reranker/, configs with train.reranker)
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
  compare   two "pipeline" results of the same captions and probe: their rates side by side,
            and the exact-match verdicts paired caption by caption (how many only A or only B
            got right, the difference with a 95% interval, McNemar's exact p-value). With
            comma-separated lists (e.g. seeds 0-4 of each) the i-th files are paired and
            pooled: mean rates, one verdict per caption and file

Options:
  --checkpoint DIR   run folder with clip/, prior/, decoder/
  --split NAME       test (default) or zeroshot (unseen colour-shape pairs)
  --limit N          evaluate the first N images of the split (pipeline default: 200)
  --guidance S       decoder guidance scale for "pipeline" (default: the model config's
                     sampling.guidance, 2 unless set)
${GUIDANCE_INTERVAL_HELP}
  --steps N          decoder sampling steps for "pipeline" (default: the sampler's)
  --rerank K         "pipeline": K decoder candidates per caption, the one CLIP (the run's
                     reranker/ CLIP when it has one) matches best kept (K times the decoder's
                     work; default: the model config's sampling.rerank, 1 unless set; never
                     with --from other than prior)
  --sampler NAME     ddpm, ddim, dpm-solver++ or dpm-solver++-sde for "pipeline" (default:
                     the config's)
  --from SOURCE      the decoder's conditioning for "pipeline": prior (default; the caption
                     and the prior's embedding), image (the caption and the real image's own
                     CLIP embedding: a perfect prior) or variations (the real image's CLIP
                     embedding and an empty caption: what the decoder takes from CLIP alone)
                     or, for a cascade, downsampled (no decoder: the real image area-averaged
                     to the decoder's size and upsampled: the upsampler's ceiling)
${PRIOR_SAMPLING_HELP}
                     (for "prior" and "pipeline")
${RAW_DECODER_HELP}
${NO_RERANKER_HELP}
${LATE_DECODER_HELP}
${SAMPLER_OPTIONS_HELP}
${UPSAMPLER_HELP}
                     (for "pipeline" on a run with an upsampler/ stage)
  --no-upsampler     "pipeline" on a cascade: score its decoder alone, each image enlarged to
                     the split's side as blocks (results in ..._no_upsampler_<split>.json)
  --seed S           random seed, a decimal integer 0 to 4294967295 (default 0)
  --seeds LIST       "pipeline" at several noise seeds, e.g. 0-4 or 0,2,7: one results file
                     per seed (the --out name, or the default, with _seed<S> before .json
                     for every seed but 0, as a single --seed S names its default), then
                     the rates pooled over the seeds, ready for "eval compare"
  --probe-steps N    training steps of the ground-truth probe (default ${DEFAULT_PROBE_STEPS})
  --probe-images N   images the probe trains on (default ${DEFAULT_PROBE_OPTIONS.trainCount})
  --out FILE.json    where to write the results (default DIR/eval_<what>_<split>.json, with
                     --from other than prior DIR/eval_pipeline_<from>_<split>.json, with
                     --raw-decoder "_raw", with --late-decoder "_late" and with
                     --no-reranker "_no_reranker" before the split, and with a --seed
                     other than 0 "_seed<S>" after it); an existing file is kept unless --force
  --force            overwrite the results file if it exists
${BACKEND_HELP}
  --debug            print stack traces of errors
  -h, --help         show this help`;

const WHATS = ["clip", "reranker", "prior", "probe", "pipeline"] as const;
type What = typeof WHATS[number];

/** What `runEval` computed and wrote: one results file. */
export interface EvalResult {
  what: What;
  split: SplitName;
  path: string;
  results: Record<string, unknown>;
}

/** The sampler's flags (the decoder's, and a cascade's upsampler's, which runs the same sampler). */
const SAMPLER_FLAGS = ["steps", "sampler", "sampler-options"];
/** The decoder's own flags. */
const DECODER_FLAGS = [
  "guidance",
  "guidance-interval",
  "raw-decoder",
  "late-decoder",
  "late-below",
];
/** The ground-truth probe's flags. */
const PROBE_FLAGS = ["probe-steps", "probe-images"];
/** The flags that only some evaluations read. */
const SELECTIVE_FLAGS = [
  "seed",
  ...SAMPLER_FLAGS,
  ...DECODER_FLAGS,
  ...PRIOR_FLAGS,
  ...PROBE_FLAGS,
];

/**
 * Which of `SELECTIVE_FLAGS` an evaluation reads: CLIP's retrieval only its seed, the prior's its
 * sampling, the probe its own training; the pipeline all, less the prior's from an image (no
 * prior runs) and the decoder's own from downsampled images (only the upsampler runs, with the
 * sampler's flags).
 */
function flagsRead(what: What, from: PipelineSource): Set<string> {
  if (what === "clip" || what === "reranker") return new Set(["seed"]);
  if (what === "prior") return new Set(["seed", ...PRIOR_FLAGS]);
  if (what === "probe") return new Set(PROBE_FLAGS);
  return new Set([
    "seed",
    ...PROBE_FLAGS,
    ...SAMPLER_FLAGS,
    ...(from === "downsampled" ? [] : DECODER_FLAGS),
    ...(from === "prior" ? PRIOR_FLAGS : []),
  ]);
}

/**
 * The eval task, callable in-process (tests) and from the CLI. Returns one result per file
 * written (one, or one per seed of `--seeds`), or null for `--help` and `compare`.
 *
 * @example
 * ```ts
 * async function table41() {
 *   const [result] = (await runEval(["clip", "--checkpoint", "runs/tiny", "--limit", "64"]))!;
 *   return result;
 * }
 * ```
 */
export async function runEval(
  args: string[],
  hooks: { print?: (line: string) => void } = {},
): Promise<EvalResult[] | null> {
  const print = hooks.print ?? ((line: string) => console.log(line));
  const { values, positionals } = parseFlags(args, {
    ...SAMPLING_FLAGS,
    split: { type: "string" },
    limit: { type: "string" },
    "probe-steps": { type: "string" },
    "probe-images": { type: "string" },
    from: { type: "string" },
    rerank: { type: "string" },
    seeds: { type: "string" },
    "no-upsampler": { type: "boolean" },
    ...UPSAMPLER_FLAGS,
  }, "eval");
  if (values.help) {
    print(USAGE);
    return null;
  }
  if (positionals[0] === "compare") {
    const given = Object.keys(values).filter((k) => values[k] !== undefined && k !== "debug");
    if (positionals.length !== 3 || given.length > 0) {
      throw new UsageError(
        `"eval compare" takes two eval pipeline JSON files (or two comma-separated lists of ` +
          `them) and no options`,
      );
    }
    await evalCompare(positionals[1].split(","), positionals[2].split(","), print);
    return null;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      `Expected what to evaluate: ${WHATS.join(", ")} or compare; see "deno task eval --help"`,
    );
  }
  const what = positionals[0] as What;
  if (!(WHATS as readonly string[]).includes(what)) {
    throw new UsageError(
      `Unknown evaluation "${positionals[0]}"; choose ${WHATS.join(", ")} or compare`,
    );
  }
  const split = (values.split as string | undefined) ?? "test";
  if (split !== "test" && split !== "zeroshot") {
    throw new UsageError(`Unknown split "${split}"; choose test or zeroshot`);
  }
  const checkpoint = values.checkpoint as string | undefined;
  if (!checkpoint) throw new UsageError(`Missing --checkpoint DIR; see "deno task eval --help"`);
  const limit = numberFlag(values, "limit", { integer: true, min: 2 }) ??
    (what === "pipeline" ? 200 : undefined);
  const { guidance, guidanceInterval, steps, seed } = samplingFlags(values);
  const seeds = seedsFlag(values);
  if (seeds) {
    if (what !== "pipeline") throw new UsageError(`--seeds is for "eval pipeline", not "${what}"`);
    if (values.seed !== undefined) {
      throw new UsageError(`--seed and --seeds both name the noise seed; give one of them`);
    }
  }
  if (guidanceInterval && what !== "pipeline") {
    throw new UsageError(`--guidance-interval is for "eval pipeline", not "${what}"`);
  }
  // Each call draws CAPTIONS_PER_CALL x rerank images, at most MAX_IMAGES (64 candidates, the
  // most a config's sampling.rerank may store: tests/sampling_defaults_test.ts checks they agree).
  const maxRerank = MAX_IMAGES / CAPTIONS_PER_CALL;
  const rerank = numberFlag(values, "rerank", { integer: true, min: 1, max: maxRerank });
  const from = values.from as string | undefined;
  for (const flag of ["rerank", "no-reranker"]) {
    if (values[flag] !== undefined && (what !== "pipeline" || (from ?? "prior") !== "prior")) {
      throw new UsageError(`--${flag} is for "eval pipeline" from the prior (text to image)`);
    }
  }
  const noReranker = values["no-reranker"] === true;
  if (from !== undefined) {
    if (what !== "pipeline") throw new UsageError(`--from is for "eval pipeline", not "${what}"`);
    if (!(PIPELINE_SOURCES as readonly string[]).includes(from)) {
      throw new UsageError(`Unknown --from "${from}"; choose ${PIPELINE_SOURCES.join(", ")}`);
    }
    if (from === "downsampled") {
      for (const flag of ["guidance", "guidance-interval", "raw-decoder", "late-decoder"]) {
        if (values[flag] !== undefined && values[flag] !== false) {
          throw new UsageError(`--${flag} is for the decoder, and --from downsampled runs none`);
        }
      }
    }
  }
  const { upsamplerSteps, upsamplerAugment } = upsamplerFlags(values);
  for (const flag of Object.keys(UPSAMPLER_FLAGS)) {
    if (values[flag] !== undefined && what !== "pipeline") {
      throw new UsageError(`--${flag} is for "eval pipeline", not "${what}"`);
    }
  }
  const rawDecoder = values["raw-decoder"] === true;
  for (const flag of ["raw-decoder", "late-decoder", "late-below"]) {
    if (values[flag] !== undefined && values[flag] !== false && what !== "pipeline") {
      throw new UsageError(`--${flag} is for "eval pipeline", not "${what}"`);
    }
  }
  const lateDecoder = values["late-decoder"] !== undefined;
  const noUpsampler = values["no-upsampler"] === true;
  if (noUpsampler) {
    if (what !== "pipeline") {
      throw new UsageError(`--no-upsampler is for "eval pipeline", not "${what}"`);
    }
    if (from === "downsampled") {
      throw new UsageError(`--from downsampled scores the upsampler; drop --no-upsampler`);
    }
    checkUpsamplerFlags(
      { upsamplerSteps, upsamplerAugment },
      false,
      "--no-upsampler runs no upsampler",
    );
  }
  // What the checks above leave: a flag this evaluation would read nothing from.
  const reads = flagsRead(what, (from ?? "prior") as PipelineSource);
  for (const flag of SELECTIVE_FLAGS) {
    if (values[flag] !== undefined && values[flag] !== false && !reads.has(flag)) {
      const run = `"eval ${what}${from && from !== "prior" ? ` --from ${from}` : ""}"`;
      throw new UsageError(
        `--${flag} does nothing in ${run}; drop it (see "deno task eval --help")`,
      );
    }
  }
  const probeSteps = numberFlag(values, "probe-steps", { integer: true, min: 1 }) ??
    DEFAULT_PROBE_STEPS;
  const probeImages = numberFlag(values, "probe-images", {
    integer: true,
    min: MIN_PROBE_IMAGES,
  });
  const probeOptions = { steps: probeSteps, ...(probeImages && { trainCount: probeImages }) };
  const source = (from && from !== "prior" ? `_${from}` : "") + (rawDecoder ? "_raw" : "") +
    (lateDecoder ? "_late" : "") +
    (noUpsampler ? "_no_upsampler" : "") + (noReranker ? "_no_reranker" : "");
  // Before the output check, whose default path lies inside the checkpoint folder.
  await checkCheckpointFolder(checkpoint);
  const given = values.out as string | undefined;
  const out = given ?? join(checkpoint, `eval_${what}${source}_${split}.json`);
  // Named by seed (seed 0 plain), so that `--seeds 1-4` completes a plain run's seed 0: one file
  // per seed of --seeds; a single run's --out is used as given.
  const runs = (seeds ?? [seed]).map((s) => ({
    seed: s,
    path: seeds || given === undefined ? seededResultsPath(out, s) : out,
  }));
  // Before any work: an existing result (e.g. the shipped weights/default/eval_*.json) is kept
  // unless --force, and the folder must be writable.
  for (const { path } of runs) {
    await checkOutputFile(path, { force: values.force === true, flag: "--out" });
  }

  const { registry, load } = await openSampling(values, print);
  const written: EvalResult[] = [];
  for (const run of runs) {
    const ctx: EvalContext = {
      checkpoint,
      registry,
      split: split as SplitName,
      limit,
      limitGiven: values.limit !== undefined,
      seed: run.seed,
      // --no-upsampler: a cascade's decoder alone, its images enlarged to the split's side.
      load: noUpsampler ? { ...load, upsampler: false } : load,
      probeOptions,
      print,
    };
    if (seeds) print(`Seed ${run.seed} (${written.length + 1} of ${runs.length}):`);
    const results = what === "probe"
      ? await evalProbe(ctx)
      : what === "pipeline"
      ? await evalPipeline(ctx, {
        guidance,
        guidanceInterval,
        steps,
        rerank,
        from: from as PipelineSource | undefined,
        upsamplerSteps,
        upsamplerAugment,
      })
      : await evalClipOrPrior(what, ctx);
    const report = { what, split, checkpoint, limit: limit ?? null, ...results };
    await writeTextAtomic(run.path, JSON.stringify(report, null, 2) + "\n");
    print(`Wrote ${run.path}`);
    written.push({ what, split: split as SplitName, path: run.path, results: report });
  }
  if (seeds && written.every((r) => (r.results.probe ?? null) !== null)) {
    summarizeSeeds(written, print);
  }
  return written;
}

if (import.meta.main) await runMain(runEval);
