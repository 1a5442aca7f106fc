/**
 * Decoders: the GLIDE-style U-Net (thesis section 3.3), its blocks, its conditioning and the
 * "unet" plugin; and the diffusion upsampler of DALL-E 2's cascade built on the same U-Net body
 * (the "unet" upsampler plugin).
 *
 * @module
 */
import type { PluginDefinition } from "../../core/registry.ts";
import { unetDecoder } from "./unet.ts";
import { unetUpsampler } from "./upsampler.ts";

export {
  AttentionBlock,
  clampGroups,
  CrossAttentionBlock,
  Downsample,
  ResBlock,
  type ResBlockOptions,
  Upsample,
  type UpsampleMode,
  withoutDrawing,
  zeroParameters,
} from "./blocks.ts";
export {
  type ConditionerOptions,
  type ConditionerOutput,
  DecoderConditioner,
} from "./conditioning.ts";
export { UNetDecoder, unetDecoder, type UNetOptions, unetOptions } from "./unet.ts";
export { type AddModule, UNetBody, type UNetBodyOptions } from "./unet_body.ts";
export {
  UNetUpsampler,
  unetUpsampler,
  type UpsamplerOptions,
  upsamplerOptions,
} from "./upsampler.ts";

// Moved to core/diffusion/loss.ts; re-exported for code that imported them from here.
export { decoderLoss, type DecoderLossOptions, minSnrWeights } from "../../core/diffusion/loss.ts";

/** The decoder and upsampler plugins shipped with the project. */
export const DECODER_PLUGINS: PluginDefinition[] = [unetDecoder, unetUpsampler];
