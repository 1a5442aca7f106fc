/**
 * Deterministic generators for the thesis's two shapes datasets (thesis section 3.1).
 * Every image has its own seed derived from (seed, set, split, index), so any image can be
 * regenerated alone and the output is byte-identical on every machine.
 * @module
 */

import { article, type CaptionParts, formatCaption } from "./captions.ts";
import { checkImageSize, rasterize } from "./rasterize.ts";
import { deriveSeed, Rng, type Seed } from "./rng.ts";
import {
  type BBox,
  CANVAS_SIZE,
  type CaptionedImage,
  COLOUR_NAMES,
  type ColourName,
  type DatasetId,
  EXCLUDED_COMBOS,
  type FigureLabel,
  isExcluded,
  MAX_PLACEMENT_TRIES,
  MIN_SIDE,
  positionWord,
  type ShapeName,
  SHAPES,
  sizeWord,
  SPLIT_COUNTS,
  type SplitName,
  SPLITS,
} from "./shapes.ts";

/** A generated image: always has labels. */
export type ShapeSample = CaptionedImage & { labels: FigureLabel[] };

/** Options of the shapes generators. */
export interface GenerateOptions {
  /** Thesis dataset: 1 (default) or 2. */
  set?: DatasetId;
  /** "train" (default), "test" or "zeroshot". */
  split?: SplitName;
  /** Output side in pixels, a power of two <= 128 (default 32). */
  size?: number;
  /** Base seed (default "unclip-shapes"); splits and images derive their own seeds from it. */
  seed?: Seed;
  /** Number of images (default: the thesis count of the set and split). */
  count?: number;
  /** Index of the first image (default 0), to generate a slice of a split. */
  start?: number;
  /** Probability of leaving the size word out of a figure's phrase (default 0.3). */
  sizeDropProb?: number;
  /** Probability of "the" as determiner (default 0.2). */
  theProb?: number;
  /**
   * Chance that a dataset-1 image of the train or test split has two figures instead of one
   * (default 0.5: the thesis draws one or two with equal odds). Dataset 2 and the zero-shot split
   * always draw one.
   */
  twoFigureShare?: number;
}

/** The default base seed. */
export const DEFAULT_SEED = "unclip-shapes";

/**
 * Checks a dataset id and split name given by a user (for example on the command line).
 *
 * @throws Error with the offending value quoted and the valid choices.
 * @example
 * ```ts
 * const { set, split } = checkSetAndSplit("1", "train"); // 1, "train"
 * ```
 */
export function checkSetAndSplit(
  set: unknown,
  split: unknown,
): { set: DatasetId; split: SplitName } {
  const s = typeof set === "string" ? Number(set) : set;
  if (s !== 1 && s !== 2) throw new Error(`Unknown dataset "${set}"; choose 1 or 2`);
  if (typeof split !== "string" || !(SPLITS as readonly string[]).includes(split)) {
    throw new Error(`Unknown split "${split}"; choose one of ${SPLITS.join(", ")}`);
  }
  return { set: s, split: split as SplitName };
}

/**
 * Whether images of a split can have two figures: dataset 1's train and test splits (dataset 2
 * and the zero-shot split draw one figure per image), so where `twoFigureShare` applies.
 *
 * @example
 * ```ts
 * hasTwoFigures(1, "test"); // true
 * hasTwoFigures(1, "zeroshot"); // false
 * ```
 */
export function hasTwoFigures(set: DatasetId, split: SplitName): boolean {
  return set === 1 && split !== "zeroshot";
}

/**
 * A figure's box as the thesis generator draws it (thesis section 3.1): for each axis,
 * x1 uniform in [0, W - m) and x2 uniform in [x1 + m, W) (upper bounds exclusive, m = MIN_SIDE
 * on the 128 canvas). The second draw is conditioned on the first, so small boxes are the most
 * common (size words about 43% small, 41% medium, 16% large).
 */
function randomBox(rng: Rng): BBox {
  const side = (): [number, number] => {
    const a = rng.int(0, CANVAS_SIZE - MIN_SIDE - 1);
    return [a, rng.int(a + MIN_SIDE, CANVAS_SIZE - 1)];
  };
  const [x1, x2] = side();
  const [y1, y2] = side();
  return [x1, y1, x2, y2];
}

/**
 * The figure's own box, as in the thesis generator: rectangles and ellipses fill the drawn box;
 * squares and circles keep its top-left corner and take the smaller side; triangles and
 * pentagons are inscribed in a circle of radius r = min(w // 2, h // 2) around the box centre,
 * and their box is the centre +- r.
 */
function fitBox(shape: ShapeName, box: BBox): BBox {
  const [x1, y1, x2, y2] = box;
  switch (shape) {
    case "rectangle":
    case "ellipse":
      return box;
    case "square":
    case "circle": {
      const side = Math.min(x2 - x1, y2 - y1);
      return [x1, y1, x1 + side, y1 + side];
    }
    case "triangle":
    case "pentagon": {
      const r = Math.min(Math.floor((x2 - x1) / 2), Math.floor((y2 - y1) / 2));
      const cx = Math.floor((x1 + x2) / 2), cy = Math.floor((y1 + y2) / 2);
      return [cx - r, cy - r, cx + r, cy + r];
    }
  }
}

function overlaps(a: BBox, b: BBox): boolean {
  return a[0] < b[2] && b[0] < a[2] && a[1] < b[3] && b[1] < a[3];
}

function pickCombo(rng: Rng, split: SplitName): [ColourName, ShapeName] {
  if (split === "zeroshot") {
    const [c, s] = rng.pick(EXCLUDED_COMBOS);
    return [c, s];
  }
  for (;;) {
    const colour = rng.pick(COLOUR_NAMES), shape = rng.pick(SHAPES);
    if (split !== "train" || !isExcluded(colour, shape)) return [colour, shape];
  }
}

function placeFigures(rng: Rng, count: number, set: DatasetId, split: SplitName): FigureLabel[] {
  // A failed image (a figure found no free spot in 100 tries) starts over, so that the figure
  // count stays uniform instead of drifting towards 1.
  for (;;) {
    const figures: FigureLabel[] = [];
    for (let f = 0; f < count; f++) {
      for (let attempt = 0; attempt < MAX_PLACEMENT_TRIES; attempt++) {
        const [colour, shape] = pickCombo(rng, split);
        const bbox = fitBox(shape, randomBox(rng));
        if (figures.some((other) => overlaps(bbox, other.bbox))) continue;
        const polygon = shape === "triangle" || shape === "pentagon";
        figures.push({
          shape,
          colour,
          size: sizeWord(bbox),
          bbox,
          position: set === 2 ? positionWord(bbox) : null,
          rotation: polygon ? rng.next() * 360 : null,
        });
        break;
      }
    }
    if (figures.length === count) return figures;
  }
}

/**
 * Generates image `index` of a split, deterministically.
 *
 * @example
 * ```ts
 * const s = generateSample(0, { set: 2, split: "test", size: 16 });
 * console.log(s.caption, s.labels[0].position);
 * ```
 */
export function generateSample(index: number, options: GenerateOptions = {}): ShapeSample {
  const set = options.set ?? 1;
  const split = options.split ?? "train";
  const size = options.size ?? 32;
  const dropProb = options.sizeDropProb ?? 0.3;
  const theProb = options.theProb ?? 0.2;
  const rng = new Rng(deriveSeed(options.seed ?? DEFAULT_SEED, `set${set}`, split, index));
  const share = options.twoFigureShare ?? 0.5;
  if (!(share >= 0 && share <= 1)) {
    throw new Error(`twoFigureShare "${share}" is not a number from 0 to 1`);
  }
  // Two figures when the draw lands in the top `share` of [0, 1): at 0.5 the same draw and count
  // as rng.int(1, 2), so the thesis's default splits keep their bytes.
  const count = hasTwoFigures(set, split) && rng.next() >= 1 - share ? 2 : 1;
  const labels = placeFigures(rng, count, set, split);
  const parts: CaptionParts[] = labels.map((fig) => {
    const the = rng.next() < theProb;
    const size = rng.next() < dropProb ? null : fig.size;
    const det = the ? "the" : article(size ?? fig.colour);
    return { det, size, colour: fig.colour, shape: fig.shape, position: fig.position };
  });
  return {
    image: rasterize(labels, size),
    width: size,
    height: size,
    caption: formatCaption(parts),
    labels,
  };
}

/**
 * Generates a whole split (or `count` images of it from `start`). This is the function the
 * benchmark times: the 20k training images of dataset 1 at 32x32 take a few seconds.
 *
 * @example
 * ```ts
 * const train = generateSplit({ set: 1, split: "train", size: 16, count: 8 });
 * train.length; // 8 (without count: the thesis's 20,000)
 * ```
 */
export function generateSplit(options: GenerateOptions = {}): ShapeSample[] {
  const { set, split } = checkSetAndSplit(options.set ?? 1, options.split ?? "train");
  checkImageSize(options.size ?? 32);
  const count = options.count ?? SPLIT_COUNTS[set][split];
  if (!Number.isInteger(count) || count < 0) {
    throw new Error(`Image count "${count}" is not a non-negative integer`);
  }
  const start = options.start ?? 0;
  const out: ShapeSample[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = generateSample(start + i, { ...options, set, split });
  return out;
}
