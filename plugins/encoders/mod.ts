/**
 * CLIP (thesis 3.2): the text and image encoder plugins, the model with its contrastive loss,
 * evaluation (thesis Table 4.1) and zero-shot caption ranking.
 *
 * @module
 */
import type { PluginDefinition } from "../../core/registry.ts";
import { textTransformerPlugin } from "./text_transformer.ts";
import { resnetPlugin } from "./resnet.ts";

export * from "./text_transformer.ts";
export * from "./resnet.ts";
export * from "./clip.ts";

/** The encoder plugins shipped with the project. */
export const ENCODER_PLUGINS: PluginDefinition[] = [
  textTransformerPlugin,
  resnetPlugin,
];
