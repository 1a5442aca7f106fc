/**
 * The plugins shipped with the project, wired in one place: the only module that imports every
 * plugin folder (core never does). Engineers adding a plugin append its definition to
 * `BUILTIN_PLUGINS`.
 *
 * @module
 */
import { type PluginDefinition, Registry } from "../core/registry.ts";
import { SCHEDULE_PLUGINS } from "./schedules/mod.ts";
import { PRIOR_PLUGINS } from "./priors/mod.ts";
import { ENCODER_PLUGINS } from "./encoders/mod.ts";
import { DATASET_PLUGINS } from "./datasets/mod.ts";
import { bpeTokenizerPlugin } from "./tokenizers/mod.ts";
import { DECODER_PLUGINS } from "./decoders/mod.ts";
import { SAMPLER_PLUGINS } from "./samplers/mod.ts";

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
