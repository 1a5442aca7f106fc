/**
 * The plugins shipped with the project. Engineers adding a plugin append its definition to
 * `BUILTIN_PLUGINS`.
 *
 * @module
 */
import { type PluginDefinition, Registry } from "./registry.ts";
import { SCHEDULE_PLUGINS } from "../plugins/schedules/mod.ts";
import { PRIOR_PLUGINS } from "../plugins/priors/mod.ts";
import { ENCODER_PLUGINS } from "../plugins/encoders/mod.ts";
import { DATASET_PLUGINS } from "../plugins/datasets/mod.ts";
import { bpeTokenizerPlugin } from "../plugins/tokenizers/mod.ts";
import { DECODER_PLUGINS } from "../plugins/decoders/mod.ts";
import { SAMPLER_PLUGINS } from "../plugins/samplers/mod.ts";

/** Every shipped plugin definition. */
export const BUILTIN_PLUGINS: PluginDefinition[] = [
  ...SCHEDULE_PLUGINS,
  ...PRIOR_PLUGINS,
  ...ENCODER_PLUGINS,
  ...DATASET_PLUGINS,
  bpeTokenizerPlugin,
  ...DECODER_PLUGINS,
  ...SAMPLER_PLUGINS,
];

/**
 * A fresh registry holding every shipped plugin.
 *
 * @example
 * ```ts
 * const registry = builtins();
 * registry.names("schedule"); // ["cosine", "linear"]
 * ```
 */
export function builtins(): Registry {
  const registry = new Registry();
  for (const def of BUILTIN_PLUGINS) registry.register(def);
  return registry;
}
