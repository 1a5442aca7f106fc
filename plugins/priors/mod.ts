/**
 * Diffusion priors p(z_i | y) (thesis section 3.4): the "transformer" plugin, candidate
 * selection and the Table 4.2 evaluation.
 *
 * @module
 */
import type { PluginDefinition } from "../../core/registry.ts";
import { transformerPrior } from "./transformer_prior.ts";

export {
  PRIOR_TOKENS,
  type PriorNetworkConditioning,
  TransformerPrior,
  transformerPrior,
  type TransformerPriorOptions,
  transformerPriorOptions,
} from "./transformer_prior.ts";
export { selectCandidates } from "./select.ts";
export {
  evaluatePrior,
  type EvaluatePriorOptions,
  type PriorEvalSet,
  type PriorMetrics,
  THESIS_TABLE_4_2,
} from "./evaluate.ts";

/** The prior plugins shipped with the project. */
export const PRIOR_PLUGINS: PluginDefinition[] = [transformerPrior];
