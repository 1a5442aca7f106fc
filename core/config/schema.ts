/**
 * The config schema: component slots and their plugin kinds, per-stage training settings with
 * their defaults, and the zod schema assembled from the registered plugins.
 *
 * @module
 */
import { z } from "../deps.ts";
import type { PluginKind, Registry } from "../registry.ts";

/** The component slots of a config and the plugin kind each takes. */
export const COMPONENT_SLOTS = {
  tokenizer: "tokenizer",
  textEncoder: "textEncoder",
  imageEncoder: "imageEncoder",
  prior: "prior",
  decoder: "decoder",
  upsampler: "upsampler",
  priorSchedule: "schedule",
  decoderSchedule: "schedule",
  sampler: "sampler",
  dataset: "dataset",
} as const satisfies Record<string, PluginKind>;

/** A key of `components`. */
export type ComponentSlot = keyof typeof COMPONENT_SLOTS;

/**
 * Slots a config may leave out: the upsampler (DALL-E 2's cascade) exists only in configs that
 * name one, and with it the `upsampler` training stage.
 */
export const OPTIONAL_SLOTS = ["upsampler"] as const satisfies readonly ComponentSlot[];

/** One of `OPTIONAL_SLOTS`. */
export type OptionalSlot = (typeof OPTIONAL_SLOTS)[number];

/** A resolved component: the plugin name and its full options (defaults filled). */
export interface ComponentConfig {
  plugin: string;
  options: Record<string, unknown>;
}

/** Hyperparameters of one training stage. */
export interface TrainStageConfig {
  batchSize: number;
  steps: number;
  lr: number;
  warmupSteps: number;
  lrSchedule: "constant" | "cosine";
  /**
   * Warm restarts after the first `steps` (SGDR, Loshchilov & Hutter 2017): each is one more
   * learning-rate cycle started from the EMA weights, with a fresh optimizer, EMA and data order,
   * as `train --init-from` a finished run would (core/train/cycles.ts). Empty: one cycle.
   */
  restarts: readonly TrainRestart[];
  /** EMA decay of the weights, or null for no EMA. */
  ema: number | null;
  /** Warm every EMA's decay up as min(decay, (1 + n) / (10 + n)) after n updates. */
  emaWarmup: boolean;
  /**
   * Further EMA decays kept beside `ema` (saved in checkpoints, not used for sampling), so that
   * one run can compare EMA lengths: `deno task export --ema D` ships one of them.
   */
  extraEma: readonly number[];
  /**
   * The CLIPs only (clip and reranker stages): also score each image against its batch's
   * captions with the figures' attributes swapped (the dataset's `hardNegative`; NegCLIP,
   * Yuksekgonul et al. 2023).
   */
  hardNegatives: boolean;
  /**
   * The CLIPs only (clip and reranker stages): Gaussian grain on each training image, its
   * standard deviation (of the [-1, 1] pixel scale) drawn uniformly from [0, grain); 0 for none.
   * Generated images carry grain that real ones do not, and CLIP judges generated images when it
   * reranks them.
   */
  grain: number;
  /** Global gradient-norm clip, or null for none. */
  gradClip: number | null;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  seed: number;
  checkpointEvery: number;
  keepLast: number;
  logEvery: number;
}

/** One warm restart of a stage (`train.<stage>.restarts`): its length and schedule. */
export interface TrainRestart {
  steps: number;
  /** Peak learning rate (the stage's `lr` when absent). */
  lr?: number;
  /** Linear warmup steps (the stage's `warmupSteps` when absent). */
  warmupSteps?: number;
}

/**
 * Sampling defaults stored with a model, so that `sample`, `eval`, `serve` and `textToImage` use
 * the settings measured best for it; a flag or option given at sampling time wins.
 */
export interface SamplingConfig {
  /** The decoder's classifier-free guidance scale s (thesis 2.1.3; its best 2-2.5: 4.2). */
  guidance: number;
  /**
   * Decoder candidates drawn per text-to-image image, the one CLIP matches best to its caption
   * kept (CLIP reranking, as DALL-E (Ramesh et al. 2021) reranks; `textToImage`'s `rerank`). 1 =
   * no reranking. Image variations never rerank: they have no caption to score against.
   */
  rerank: number;
}

/** The most candidates `sampling.rerank` may ask for (`eval` draws 16 captions' candidates at once). */
export const MAX_CONFIG_RERANK = 64;

/** The defaults of `sampling`: the thesis's guidance scale 2, no reranking. */
export const SAMPLING_DEFAULTS: Readonly<SamplingConfig> = { guidance: 2, rerank: 1 };

/**
 * The training stages (`upsampler` only in configs with an upsampler, `reranker` only in configs
 * with `train.reranker`).
 */
export type TrainStage = "clip" | "reranker" | "prior" | "decoder" | "upsampler";

/** The stages a config may leave out. */
export type OptionalStage = "reranker" | "upsampler";

/**
 * Whether `stage` trains a CLIP (the pipeline's, or the reranking one): contrastive loss, its own
 * tokenizer, trained weights used as they are (no EMA).
 *
 * @example
 * ```ts
 * isClipStage("reranker"); // true
 * isClipStage("prior"); // false
 * ```
 */
export function isClipStage(stage: string): stage is "clip" | "reranker" {
  return stage === "clip" || stage === "reranker";
}

/** The stages every config has. */
export type CoreStage = Exclude<TrainStage, OptionalStage>;

/** A fully resolved config, as returned by `parseConfig` and `loadConfig`. */
export interface ResolvedConfig {
  $schema?: string;
  name: string;
  plugins: string[];
  components:
    & Record<Exclude<ComponentSlot, OptionalSlot>, ComponentConfig>
    & Partial<Record<OptionalSlot, ComponentConfig>>;
  /**
   * `upsampler` is present exactly when `components.upsampler` is (defaults filled); `reranker`
   * when the config asks for a reranking CLIP (`train.clip`'s settings under its own).
   */
  train: Record<CoreStage, TrainStageConfig> & Partial<Record<OptionalStage, TrainStageConfig>>;
  /** Sampling defaults of the model (defaults filled). */
  sampling: SamplingConfig;
}

/**
 * The training settings of `stage`; a one-line error for an optional stage (the upsampler, the
 * reranker) the config does not have.
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "./schema.ts";
 * function batch(config: ResolvedConfig): number {
 *   return stageTrain(config, "decoder").batchSize;
 * }
 * ```
 */
export function stageTrain(config: ResolvedConfig, stage: TrainStage): TrainStageConfig {
  const t = config.train[stage];
  if (!t) {
    const needs = stage === "reranker" ? "train.reranker" : `components.${stage}`;
    throw new Error(`Config "${config.name}" has no ${stage} stage (it needs ${needs})`);
  }
  return t;
}

const COMMON_TRAIN = {
  restarts: Object.freeze([]) as readonly TrainRestart[],
  warmupSteps: 0,
  lrSchedule: "constant" as const,
  gradClip: 1,
  weightDecay: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  seed: 0,
  keepLast: 3,
  logEvery: 50,
  extraEma: Object.freeze([]) as readonly number[],
  emaWarmup: true,
  hardNegatives: false,
  grain: 0,
};

/** Per-stage training defaults (the thesis's Appendix A). */
export const TRAIN_DEFAULTS: Readonly<Record<TrainStage, TrainStageConfig>> = {
  clip: { ...COMMON_TRAIN, batchSize: 256, steps: 2200, lr: 3e-4, ema: null, checkpointEvery: 500 },
  // A second CLIP: a config's `train.reranker` is laid over its resolved `train.clip`
  // (validate.ts), so these defaults apply only where train.clip leaves them too.
  reranker: {
    ...COMMON_TRAIN,
    batchSize: 256,
    steps: 2200,
    lr: 3e-4,
    ema: null,
    checkpointEvery: 500,
  },
  prior: {
    ...COMMON_TRAIN,
    batchSize: 256,
    steps: 10000,
    lr: 1e-2,
    ema: 0.9999,
    checkpointEvery: 1000,
  },
  decoder: {
    ...COMMON_TRAIN,
    batchSize: 64,
    steps: 470000,
    lr: 1e-3,
    ema: 0.9999,
    checkpointEvery: 5000,
  },
  // Not in the thesis (it has no upsampler): the decoder's settings, for fewer steps.
  upsampler: {
    ...COMMON_TRAIN,
    batchSize: 64,
    steps: 100000,
    lr: 1e-3,
    ema: 0.9999,
    checkpointEvery: 5000,
  },
};

/**
 * What a config `name` may be: it names the default run folder `runs/<name>`, so it must stay one
 * plain folder name (a name like "../../escape" would write outside the project). 1 to 64
 * letters, digits, ".", "_" and "-", starting with a letter or digit, without "..".
 */
export const CONFIG_NAME: RegExp = /^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Schedule slots default to the thesis's cosine schedules (200 prior, 300 decoder steps). */
const SLOT_DEFAULTS: Partial<Record<ComponentSlot, ComponentConfig>> = {
  priorSchedule: { plugin: "cosine", options: { steps: 200 } },
  decoderSchedule: { plugin: "cosine", options: { steps: 300 } },
};

/**
 * The schema of one stage's training settings, with `d` as its defaults.
 *
 * @example
 * ```ts
 * const upsampler = trainStageSchema(TRAIN_DEFAULTS.upsampler).parse({}); // every default
 * ```
 */
export function trainStageSchema(d: TrainStageConfig): z.ZodType {
  const int = z.number().int();
  return z.object({
    batchSize: int.positive().default(d.batchSize),
    steps: int.positive().default(d.steps),
    lr: z.number().positive().default(d.lr),
    warmupSteps: int.nonnegative().default(d.warmupSteps),
    lrSchedule: z.enum(["constant", "cosine"]).default(d.lrSchedule),
    restarts: z.array(
      z.object({
        steps: int.positive(),
        lr: z.number().positive().optional(),
        warmupSteps: int.nonnegative().optional(),
      }).strict(),
    ).max(16).default(() => [...d.restarts]).describe(
      "warm restarts after `steps` (SGDR): each one more learning-rate cycle of `steps` " +
        "(with `lr` and `warmupSteps`, the stage's by default) from the EMA weights, with a fresh " +
        "optimizer, EMA and data order, as `train --init-from` a finished run would",
    ),
    ema: z.number().gt(0).lt(1).nullable().default(d.ema)
      .describe("EMA decay of the weights used for sampling (see emaWarmup), or null"),
    emaWarmup: z.boolean().default(d.emaWarmup).describe(
      "warm each EMA's decay up as min(decay, (1 + n) / (10 + n)) after n updates (so a decay " +
        "d is only reached after (10d - 1) / (1 - d) updates: 8,990 for 0.999); false: d from " +
        "the first update",
    ),
    extraEma: z.array(z.number().gt(0).lt(1)).max(8).default(() => [...d.extraEma])
      .describe(
        "further EMA decays kept in checkpoints beside `ema`, to compare from one run " +
          "(`deno task export --ema D` ships one)",
      ),
    hardNegatives: z.boolean().default(d.hardNegatives).describe(
      "clip and reranker stages only: also score each image against its batch's captions with the figures' " +
        "colours swapped (NegCLIP's hard negatives), so the embedding says which colour is whose",
    ),
    grain: z.number().min(0).max(1).default(d.grain).describe(
      "clip and reranker stages only: Gaussian grain on each training image, its standard deviation drawn " +
        "uniformly from [0, grain) of the [-1, 1] pixel scale, so that CLIP judges generated " +
        "images (which carry grain) as it judges real ones when it reranks them",
    ),
    gradClip: z.number().positive().nullable().default(d.gradClip),
    weightDecay: z.number().nonnegative().default(d.weightDecay)
      .describe("AdamW's decoupled weight decay (applied to every parameter)"),
    beta1: z.number().gte(0).lt(1).default(d.beta1),
    beta2: z.number().gte(0).lt(1).default(d.beta2),
    eps: z.number().min(1e-12).max(1).default(d.eps)
      .describe("Adam's epsilon, 1e-12 to 1 (smaller values underflow to NaN updates)"),
    seed: int.nonnegative().default(d.seed),
    checkpointEvery: int.positive().default(d.checkpointEvery),
    keepLast: int.positive().default(d.keepLast),
    logEvery: int.positive().default(d.logEvery),
  }).strict().superRefine((t, ctx) => {
    (t.restarts ?? []).forEach((r, i) => {
      const warmup = r.warmupSteps ?? t.warmupSteps ?? d.warmupSteps;
      if ((t.lrSchedule ?? d.lrSchedule) === "cosine" && r.steps <= warmup) {
        ctx.addIssue({
          code: "custom",
          path: ["restarts", i, "steps"],
          message: `${r.steps} steps leave nothing after ${warmup} warmup steps for the ` +
            "cosine; raise steps or lower warmupSteps",
        });
      }
    });
    const decays = t.extraEma ?? [];
    if (decays.length > 0 && t.ema === null) {
      ctx.addIssue({
        code: "custom",
        path: ["extraEma"],
        message: "needs `ema` set too (the EMA sampling uses); set ema or remove extraEma",
      });
    }
    const seen = new Set<number>(t.ema === null ? [] : [t.ema]);
    decays.forEach((decay, i) => {
      if (seen.has(decay)) {
        ctx.addIssue({
          code: "custom",
          path: ["extraEma", i],
          message: `${decay} is listed twice (with \`ema\` or in extraEma); remove the repeat`,
        });
      }
      seen.add(decay);
    });
  });
}

function componentSchema(registry: Registry, kind: PluginKind): z.ZodType {
  const defs = registry.list(kind);
  if (defs.length === 0) {
    return z.unknown().superRefine((_, ctx) => {
      ctx.addIssue({
        code: "custom",
        message: `no ${kind} plugins are registered; name a module that defines one in "plugins"`,
      });
    });
  }
  const options = defs.map((def) =>
    z.object({
      plugin: z.literal(def.name),
      options: def.options.prefault({} as never),
    }).strict()
  );
  return z.discriminatedUnion("plugin", options as unknown as [z.ZodObject, ...z.ZodObject[]]);
}

/**
 * The config schema for the plugins in `registry`: per component slot, a discriminated union on
 * `plugin` over the registered plugins of its kind, each with its strict options schema.
 *
 * @example
 * ```ts
 * import { Registry } from "../registry.ts";
 * const result = configSchema(new Registry()).safeParse({ name: "x" });
 * result.success; // false: no plugin of any kind is registered
 * ```
 */
export function configSchema(registry: Registry): z.ZodType {
  const components: Record<string, z.ZodType> = {};
  for (const [slot, kind] of Object.entries(COMPONENT_SLOTS)) {
    let schema = componentSchema(registry, kind);
    const fallback = SLOT_DEFAULTS[slot as ComponentSlot];
    if (fallback && registry.has(kind, fallback.plugin)) schema = schema.prefault(fallback);
    const optional = (OPTIONAL_SLOTS as readonly string[]).includes(slot);
    components[slot] = optional ? schema.optional() : schema;
  }
  return z.object({
    $schema: z.string().optional(),
    name: z.string().regex(CONFIG_NAME, {
      error: (issue) =>
        `${JSON.stringify(issue.input)} is not a safe run-folder name (it names runs/<name>); ` +
        `use 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit, without ".."`,
    }),
    plugins: z.array(z.string().min(1)).default([]),
    components: z.object(components).strict(),
    train: z.object({
      clip: trainStageSchema(TRAIN_DEFAULTS.clip).prefault({}),
      prior: trainStageSchema(TRAIN_DEFAULTS.prior).prefault({}),
      decoder: trainStageSchema(TRAIN_DEFAULTS.decoder).prefault({}),
      // Filled with its defaults by validateConfig when the config has an upsampler.
      upsampler: trainStageSchema(TRAIN_DEFAULTS.upsampler).optional(),
      // Laid over train.clip by validateConfig before this schema reads it.
      reranker: trainStageSchema(TRAIN_DEFAULTS.reranker).optional().describe(
        "a second CLIP that only reranks the decoder's candidates (sampling.rerank): trained as " +
          'train.clip says, with the settings given here over those (e.g. { "grain": 0.1 }), ' +
          "into <out>/reranker by `deno task train reranker` (and `all`)",
      ),
    }).strict().prefault({} as never),
    sampling: z.object({
      guidance: z.number().finite().nonnegative().default(SAMPLING_DEFAULTS.guidance).describe(
        "the decoder's classifier-free guidance scale when sampling does not name one " +
          "(--guidance, textToImage's `guidance`); 1 = no guidance",
      ),
      rerank: z.number().int().min(1).max(MAX_CONFIG_RERANK).default(SAMPLING_DEFAULTS.rerank)
        .describe(
          "decoder candidates per text-to-image image, the one CLIP matches best to the caption " +
            "kept, when sampling does not say (--rerank, textToImage's `rerank`); 1 = no reranking",
        ),
    }).strict().prefault({}),
  }).strict();
}

/**
 * A JSON Schema of the config for editors (`"$schema"` in a config file).
 *
 * @example
 * ```ts
 * import { Registry } from "../registry.ts";
 * const schema = configJsonSchema(new Registry());
 * schema.type; // "object"
 * ```
 */
export function configJsonSchema(registry: Registry): Record<string, unknown> {
  return z.toJSONSchema(configSchema(registry), { io: "input", unrepresentable: "any" }) as Record<
    string,
    unknown
  >;
}
