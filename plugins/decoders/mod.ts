/**
 * Decoders: the GLIDE-style U-Net (thesis section 3.3), its blocks, its conditioning and the
 * "unet" plugin.
 *
 * @module
 */
import type { PluginDefinition } from "../../core/registry.ts";
import { unetDecoder } from "./unet.ts";

export {
  AttentionBlock,
  clampGroups,
  Downsample,
  ResBlock,
  type ResBlockOptions,
  Upsample,
  type UpsampleMode,
  zeroParameters,
} from "./blocks.ts";
export {
  type ConditionerOptions,
  type ConditionerOutput,
  DecoderConditioner,
} from "./conditioning.ts";
export { UNetDecoder, unetDecoder, type UNetOptions, unetOptions } from "./unet.ts";

// Moved to core/diffusion/loss.ts; re-exported for code that imported them from here.
export { decoderLoss, type DecoderLossOptions, minSnrWeights } from "../../core/diffusion/loss.ts";

/** The decoder plugins shipped with the project. */
export const DECODER_PLUGINS: PluginDefinition[] = [unetDecoder];
