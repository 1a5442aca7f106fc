/**
 * CLIP's towers (thesis 3.2): the text and image encoder plugins. The model that combines them,
 * with its contrastive loss, is core/clip.ts; its evaluation is core/eval/clip.ts.
 *
 * @module
 */
import type { PluginDefinition } from "../../core/registry.ts";
import { textTransformerPlugin } from "./text_transformer.ts";
import { resnetPlugin } from "./resnet.ts";

export * from "./text_transformer.ts";
export * from "./resnet.ts";

// Moved to core/clip.ts and core/eval/clip.ts; re-exported for code that imported them from here.
export * from "../../core/clip.ts";
export * from "../../core/eval/clip.ts";

/** The encoder plugins shipped with the project. */
export const ENCODER_PLUGINS: PluginDefinition[] = [
  textTransformerPlugin,
  resnetPlugin,
];
