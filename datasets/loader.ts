/**
 * The seeded batch loader for the shapes data: core's `DataLoader` (core/data/loader.ts) with
 * the shapes labels mirrored along with flipped images.
 * @module
 */

import {
  type Batch as CoreBatch,
  checkImages,
  DataLoader as CoreDataLoader,
  type LoaderOptions as CoreLoaderOptions,
} from "../core/data/loader.ts";
import { flipLabel } from "./flip.ts";
import type { CaptionedImage, FigureLabel } from "./shapes.ts";

export { checkImages };

/** Options of {@link DataLoader}. */
export type LoaderOptions = CoreLoaderOptions<FigureLabel>;

/** One batch of shapes images, labels flipped with their images. */
export type Batch = CoreBatch<FigureLabel>;

/**
 * Seeded shuffling batch loader over shapes images: random flips also mirror the figure labels.
 *
 * @example
 * ```ts
 * import { generateSplit } from "./generate.ts";
 * const loader = new DataLoader(generateSplit({ count: 64, size: 16 }), { batchSize: 8, flip: true });
 * loader.batch(0).shape; // [8, 3, 16, 16]
 * ```
 */
export class DataLoader extends CoreDataLoader<FigureLabel> {
  /** Creates a loader (see core's `DataLoader`); `flipLabel` defaults to the shapes one. */
  constructor(data: readonly CaptionedImage[], options: LoaderOptions) {
    super(data, { flipLabel, ...options });
  }
}
