/**
 * Constants and types of the synthetic coloured-shapes world (thesis section 3.1).
 * @module
 */

import type { CaptionedImage as CoreCaptionedImage } from "../core/components.ts";

/** Side of the canvas the figures are drawn on, in pixels. */
export const CANVAS_SIZE = 128;

/** Background colour (gray); never a figure colour. */
export const BACKGROUND: readonly [number, number, number] = [128, 128, 128];

/** Smallest side of a figure's random bounding box, in canvas pixels. */
export const MIN_SIDE = 20;

/** Placement attempts (each with a fresh colour and shape) before a figure is given up. */
export const MAX_PLACEMENT_TRIES = 100;

/** The 17 figure colours and their RGB values. */
export const COLOURS = {
  black: [0, 0, 0],
  white: [255, 255, 255],
  red: [255, 0, 0],
  green: [0, 128, 0],
  blue: [0, 0, 255],
  yellow: [255, 255, 0],
  cyan: [0, 255, 255],
  magenta: [255, 0, 255],
  silver: [192, 192, 192],
  maroon: [128, 0, 0],
  olive: [128, 128, 0],
  purple: [128, 0, 128],
  teal: [0, 128, 128],
  navy: [0, 0, 128],
  orange: [255, 165, 0],
  gold: [255, 215, 0],
  pink: [255, 192, 203],
} as const satisfies Record<string, readonly [number, number, number]>;

/** A colour name. */
export type ColourName = keyof typeof COLOURS;

/** The colour names in a fixed order. */
export const COLOUR_NAMES: readonly ColourName[] = Object.keys(COLOURS) as ColourName[];

/** The six shapes in a fixed order. */
export const SHAPES = ["rectangle", "square", "ellipse", "circle", "triangle", "pentagon"] as const;

/** A shape name. */
export type ShapeName = (typeof SHAPES)[number];

/** Size words, from box area / image area: < 0.05 small, < 0.15 medium, else large. */
export const SIZE_WORDS = ["small", "medium", "large"] as const;

/** A size word. */
export type SizeWord = (typeof SIZE_WORDS)[number];

/** All position phrases a caption can end with ("at the <position>"). */
export const POSITIONS = [
  "top left",
  "top",
  "top right",
  "left",
  "center",
  "right",
  "bottom left",
  "bottom",
  "bottom right",
] as const;

/** A position phrase. */
export type Position = (typeof POSITIONS)[number];

/** Colour-shape combinations the training split never contains (zero-shot evaluation). */
export const EXCLUDED_COMBOS: readonly (readonly [ColourName, ShapeName])[] = [
  ["white", "rectangle"],
  ["gold", "triangle"],
  ["blue", "circle"],
  ["red", "pentagon"],
  ["green", "square"],
  ["yellow", "ellipse"],
];

/** Which thesis dataset: 1 (1-2 figures, no positions) or 2 (1 figure with positions). */
export type DatasetId = 1 | 2;

/** Dataset splits. `zeroshot` holds only excluded colour-shape combinations. */
export const SPLITS = ["train", "test", "zeroshot"] as const;

/** A split name. */
export type SplitName = (typeof SPLITS)[number];

/** Default image counts per dataset and split (thesis section 3.1; zeroshot is our own). */
export const SPLIT_COUNTS: Record<DatasetId, Record<SplitName, number>> = {
  1: { train: 20000, test: 2000, zeroshot: 2000 },
  2: { train: 25000, test: 2000, zeroshot: 2000 },
};

/** A bounding box on the 128 canvas: [x1, y1, x2, y2], covering x1 <= x < x2, y1 <= y < y2. */
export type BBox = [number, number, number, number];

/** Ground-truth labels of one figure. */
export interface FigureLabel {
  /** Shape name. */
  shape: ShapeName;
  /** Colour name. */
  colour: ColourName;
  /** Size word from the figure's box area (always set, even when the caption drops it). */
  size: SizeWord;
  /** The figure's own box on the 128 canvas (squares, circles and polygons: the square one). */
  bbox: BBox;
  /** Position phrase for dataset 2; null for dataset 1 (positions are not part of it). */
  position: Position | null;
  /** Rotation in degrees for triangles and pentagons, null otherwise. */
  rotation: number | null;
}

/** A captioned image of the shapes data: its labels are `FigureLabel`s. */
export type CaptionedImage = CoreCaptionedImage<FigureLabel>;

/**
 * A dataset split seen as shapes data. Core types dataset labels as `unknown`; the shipped dataset
 * plugins ("shapes", and "folder", which validates labels against the shapes schema when it reads
 * them) label images with `FigureLabel`s.
 *
 * @example
 * ```ts
 * asShapesData([]); // []
 * ```
 */
export function asShapesData(data: CoreCaptionedImage[]): CaptionedImage[] {
  return data as CaptionedImage[];
}

/** True when (colour, shape) is one of the zero-shot exclusions. */
export function isExcluded(colour: ColourName, shape: ShapeName): boolean {
  return EXCLUDED_COMBOS.some(([c, s]) => c === colour && s === shape);
}

/**
 * Size word of a box on the 128 canvas.
 *
 * @example
 * ```ts
 * sizeWord([0, 0, 20, 20]); // "small"
 * ```
 */
export function sizeWord(bbox: BBox): SizeWord {
  const ratio = ((bbox[2] - bbox[0]) * (bbox[3] - bbox[1])) / (CANVAS_SIZE * CANVAS_SIZE);
  return ratio < 0.05 ? "small" : ratio < 0.15 ? "medium" : "large";
}

/**
 * Position phrase of a box: "top"/"bottom" when wholly in the upper/lower half, "left"/"right"
 * likewise, joined ("top left"); "center" when neither applies.
 *
 * @example
 * ```ts
 * positionWord([0, 0, 30, 30]); // "top left"
 * positionWord([50, 10, 80, 40]); // "top"
 * ```
 */
export function positionWord(bbox: BBox): Position {
  const mid = CANVAS_SIZE / 2;
  const v = bbox[3] <= mid ? "top" : bbox[1] >= mid ? "bottom" : "";
  const h = bbox[2] <= mid ? "left" : bbox[0] >= mid ? "right" : "";
  const joined = [v, h].filter((w) => w !== "").join(" ");
  return (joined === "" ? "center" : joined) as Position;
}
