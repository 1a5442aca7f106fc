/**
 * Diffusion priors p(z_i | y) (thesis section 3.4): the "transformer" plugin and candidate
 * selection. The Table 4.2 evaluation works for any prior: core/eval/prior.ts.
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

// Moved to core/eval/prior.ts; re-exported for code that imported them from here.
export {
  evaluatePrior,
  type EvaluatePriorOptions,
  type PriorEvalSet,
  type PriorMetrics,
  THESIS_TABLE_4_2,
} from "../../core/eval/prior.ts";

/** The prior plugins shipped with the project. */
export const PRIOR_PLUGINS: PluginDefinition[] = [transformerPrior];
