/**
 * The sizes several components share, stated once in a config: each has an owner option (the
 * tokenizer's `contextLength`, the text encoder's `embedDim` and `width`, the dataset's
 * `imageSize`) that flows into the options of the components depending on it. A config that
 * omits a dependent option gets the owner's value before the plugins' schemas run, so the
 * resolved config (what `--print-config` shows and checkpoints store) is complete; one that
 * states both with different values is a config error naming both paths.
 *
 * @module
 */
import type { Registry } from "../registry.ts";
import { COMPONENT_SLOTS, type ComponentSlot, type ResolvedConfig } from "./schema.ts";

/** A component option: the slot and the option's key. */
export type SizeAt = readonly [slot: ComponentSlot, key: string];

/** A size several components must agree on: where it is stated and where it flows. */
export interface SharedSize {
  /** What the size is, for error messages ("CLIP embedding size"). */
  readonly what: string;
  /** The option that states it: the component the others depend on. */
  readonly owner: SizeAt;
  /** Options that take the owner's value when a config omits them. */
  readonly consumers: readonly SizeAt[];
}

/**
 * The shared sizes, owner first. Only options a plugin's schema declares take part: a
 * third-party plugin with other options is neither filled nor compared (its strict schema would
 * refuse a key it does not know). When the owner's plugin lacks the option, the first consumer
 * that states it takes the owner's place.
 *
 * The vocabulary size is not among them: the builder hands every model the trained tokenizer's
 * (`SizeContext.vocabSize`), which wins over the models' own `vocabSize` option. The decoder's
 * `textWidth` is the width of its own text transformer, which reads tokens, so it is free too.
 */
export const SHARED_SIZES: readonly SharedSize[] = [
  {
    what: "number of tokens per caption",
    owner: ["tokenizer", "contextLength"],
    consumers: [
      ["textEncoder", "contextLength"],
      ["prior", "contextLength"],
      ["decoder", "contextLength"],
    ],
  },
  {
    what: "CLIP embedding size",
    owner: ["textEncoder", "embedDim"],
    consumers: [["imageEncoder", "embedDim"], ["prior", "embedDim"], ["decoder", "clipEmbedDim"]],
  },
  // The prior reads the CLIP text encoding [B, T, W].
  {
    what: "width of the CLIP text encoding",
    owner: ["textEncoder", "width"],
    consumers: [["prior", "textWidth"]],
  },
  {
    what: "image side in pixels",
    owner: ["dataset", "imageSize"],
    consumers: [["imageEncoder", "imageSize"], ["decoder", "imageSize"]],
  },
];

/**
 * The shared sizes of a config with an upsampler (DALL-E 2's cascade): the dataset's image side
 * is the final one, the upsampler's output; the decoder draws at the upsampler's `lowResSize`.
 */
export const CASCADE_SIZES: readonly SharedSize[] = [
  ...SHARED_SIZES.slice(0, -1),
  {
    what: "image side in pixels",
    owner: ["dataset", "imageSize"],
    consumers: [["imageEncoder", "imageSize"], ["upsampler", "imageSize"]],
  },
  {
    what: "decoder's image side (the upsampler's low-resolution input)",
    owner: ["upsampler", "lowResSize"],
    consumers: [["decoder", "imageSize"]],
  },
];

/**
 * `SHARED_SIZES`, or `CASCADE_SIZES` when the config's components include an upsampler.
 *
 * @example
 * ```ts
 * sharedSizesFor({ upsampler: { plugin: "unet" } }) === CASCADE_SIZES; // true
 * ```
 */
export function sharedSizesFor(components: unknown): readonly SharedSize[] {
  const up = isObject(components) ? components.upsampler : undefined;
  return up === undefined || up === null ? SHARED_SIZES : CASCADE_SIZES;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The config path of an option, as error messages name it. */
function optionPath([slot, key]: SizeAt): string {
  return `components.${slot}.options.${key}`;
}

/** The raw component in a slot, and the options schema fields of its plugin (if registered). */
function rawComponent(
  components: Json,
  slot: ComponentSlot,
  registry: Registry,
): { options: Json | undefined; fields: Json } | undefined {
  const c = components[slot];
  if (!isObject(c) || typeof c.plugin !== "string") return undefined;
  const kind = COMPONENT_SLOTS[slot];
  if (!registry.has(kind, c.plugin)) return undefined;
  const fields = (registry.lookup(kind, c.plugin).options as { shape?: Json }).shape;
  if (!isObject(fields)) return undefined;
  if (c.options !== undefined && !isObject(c.options)) return undefined; // the schema reports it
  return { options: c.options, fields };
}

/**
 * The config `value` (parsed JSON, before validation) with every omitted consumer option of
 * `SHARED_SIZES` set to its owner's value: the owner's stated value, or its plugin's default.
 * Only options the consumer's plugin declares are set; `value` itself is not modified. Anything
 * malformed is left as it is for the schema to report.
 *
 * @example
 * ```ts
 * import type { Registry } from "../registry.ts";
 * function filled(registry: Registry): unknown {
 *   const raw = {
 *     name: "x",
 *     components: {
 *       dataset: { plugin: "shapes", options: { imageSize: 16 } },
 *       decoder: { plugin: "unet", options: {} }, // gets imageSize 16
 *     },
 *   };
 *   return fillSharedSizes(raw, registry);
 * }
 * ```
 */
export function fillSharedSizes(value: unknown, registry: Registry): unknown {
  if (!isObject(value) || !isObject(value.components)) return value;
  const components: Json = { ...value.components };
  const copied = new Set<ComponentSlot>();
  for (const { owner, consumers } of sharedSizesFor(value.components)) {
    let source: number | undefined;
    const [ownerSlot, ownerKey] = owner;
    const o = rawComponent(components, ownerSlot, registry);
    if (o && ownerKey in o.fields) {
      const stated = o.options?.[ownerKey];
      if (stated !== undefined && typeof stated !== "number") continue; // the schema reports it
      const field = o.fields[ownerKey] as { safeParse(v: unknown): { data?: unknown } };
      const value = stated ?? field.safeParse(undefined).data;
      if (typeof value === "number") source = value;
    }
    for (const [slot, key] of consumers) {
      const c = rawComponent(components, slot, registry);
      if (!c || !(key in c.fields)) continue;
      const stated = c.options?.[key];
      if (stated !== undefined) {
        // Without an owner option, the first consumer that states the size takes its place.
        if (source === undefined && typeof stated === "number") source = stated;
        continue;
      }
      if (source === undefined) continue;
      if (!copied.has(slot)) {
        copied.add(slot);
        components[slot] = { ...(components[slot] as Json), options: { ...c.options } };
      }
      ((components[slot] as Json).options as Json)[key] = source;
    }
  }
  return { ...value, components };
}

/**
 * One line per option of `SHARED_SIZES` that differs from its owner's (or, without an owner
 * option, from the first consumer's) in a resolved config, e.g. `components.prior.options.embedDim
 * is 128 but components.textEncoder.options.embedDim is 64; both are the CLIP embedding size, so
 * state it once (on textEncoder)`. Options a plugin does not have are skipped.
 *
 * @example
 * ```ts
 * import type { ResolvedConfig } from "./schema.ts";
 * function problems(config: ResolvedConfig): string[] {
 *   return sharedSizeProblems(config); // [] for every shipped preset
 * }
 * ```
 */
export function sharedSizeProblems(config: ResolvedConfig): string[] {
  const lines: string[] = [];
  for (const { what, owner, consumers } of sharedSizesFor(config.components)) {
    const present = [owner, ...consumers].flatMap((at) => {
      const value = config.components[at[0]]?.options?.[at[1]];
      return typeof value === "number" ? [{ at, value }] : [];
    });
    const ref = present[0];
    for (const p of present.slice(1)) {
      if (p.value === ref.value) continue;
      lines.push(
        `${optionPath(p.at)} is ${p.value} but ${optionPath(ref.at)} is ${ref.value}; both are ` +
          `the ${what}, so state it once (on ${ref.at[0]})`,
      );
    }
  }
  return lines;
}
