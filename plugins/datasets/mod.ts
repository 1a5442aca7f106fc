/**
 * Dataset plugins ("shapes", "folder").
 *
 * @module
 */
import type { PluginDefinition } from "../../core/registry.ts";
import { folderDataset, shapesDataset } from "./shapes.ts";

export * from "./shapes.ts";

/** The dataset plugins shipped with the project. */
export const DATASET_PLUGINS: PluginDefinition[] = [shapesDataset, folderDataset];
