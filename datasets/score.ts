/**
 * Ground-truth scoring of an image against its caption (the data is synthetic
 * with ground-truth labels, so every generated image can be checked for whether it shows exactly
 * the captioned objects). A prediction is the set of (colour, shape) pairs a probe sees plus its
 * figure count; this file compares one with a caption of the shapes grammar. Pure host code.
 *
 * @module
 */
import { parseCaption } from "./captions.ts";
import {
  COLOUR_NAMES,
  type ColourName,
  type FigureLabel,
  type ShapeName,
  SHAPES,
  SIZE_WORDS,
  type SizeWord,
} from "./shapes.ts";

/** Number of (colour, shape) pairs: 17 colours x 6 shapes. */
export const PAIR_COUNT: number = COLOUR_NAMES.length * SHAPES.length;

/** Most figures an image of the shapes datasets holds. */
export const MAX_FIGURES = 2;

/**
 * Index of a (colour, shape) pair: colour-major, in `COLOUR_NAMES` x `SHAPES` order.
 *
 * @example
 * ```ts
 * pairIndex("black", "square"); // 1
 * ```
 */
export function pairIndex(colour: ColourName, shape: ShapeName): number {
  const c = COLOUR_NAMES.indexOf(colour), s = SHAPES.indexOf(shape);
  if (c < 0) throw new Error(`Unknown colour "${colour}"`);
  if (s < 0) throw new Error(`Unknown shape "${shape}"`);
  return c * SHAPES.length + s;
}

/**
 * The (colour, shape) pair of an index made by `pairIndex`.
 *
 * @example
 * ```ts
 * pairOf(1); // ["black", "square"]
 * ```
 */
export function pairOf(index: number): [ColourName, ShapeName] {
  if (!Number.isInteger(index) || index < 0 || index >= PAIR_COUNT) {
    throw new Error(`Pair index ${index} is not an integer in [0, ${PAIR_COUNT})`);
  }
  return [COLOUR_NAMES[Math.floor(index / SHAPES.length)], SHAPES[index % SHAPES.length]];
}

/** What a probe sees in one image. */
export interface ProbePrediction {
  /** Distinct pair indices (`pairIndex`), ascending. */
  pairs: number[];
  /** Number of figures, 1 or 2. */
  count: number;
  /** The size word of each pair in `pairs` (same order), when the probe predicts sizes. */
  sizes?: SizeWord[];
}

/** How one image fares against its caption. */
export interface ImageScore {
  /** Same set of (colour, shape) pairs as the caption, and the right figure count. */
  exact: boolean;
  /** Same set of colours as the caption. */
  colour: boolean;
  /** Same set of shapes as the caption. */
  shape: boolean;
  /** Same number of figures as the caption. */
  count: boolean;
  /** `exact` with squares counted as rectangles and circles as ellipses. */
  lenient: boolean;
  /**
   * Every size word of the caption is the predicted size of its figure's pair (a figure whose
   * pair was not seen counts as wrong); null when the caption has no size word or the
   * prediction has no sizes.
   */
  size: boolean | null;
}

/** Rates over a set of images (each in [0, 1]). */
export interface ProbeScores {
  /** Images scored. */
  images: number;
  /** Fraction with exactly the captioned (colour, shape) pairs and figure count. */
  exact: number;
  /** Fraction with the captioned colours. */
  colour: number;
  /** Fraction with the captioned shapes. */
  shape: number;
  /** Fraction with the captioned number of figures. */
  count: number;
  /** Fraction exact when squares count as rectangles and circles as ellipses. */
  lenient: number;
  /** Fraction of the images whose caption has size words with every size right. */
  size: number;
  /** Images whose caption has a size word (the denominator of `size`). */
  sizeImages: number;
}

/** Logits of the size head: one per (pair, size word), pair-major. */
export const SIZE_LOGITS: number = PAIR_COUNT * SIZE_WORDS.length;

/** Index of a (pair, size word) logit in the size head. */
export function pairSizeIndex(pair: number, size: SizeWord): number {
  return pair * SIZE_WORDS.length + SIZE_WORDS.indexOf(size);
}

/**
 * Multi-hot target of an image's labels: 1 at each figure's pair index, plus the figure count.
 *
 * @example
 * ```ts
 * import { generateSample } from "./generate.ts";
 * const { pairs, count } = labelTargets(generateSample(0).labels);
 * ```
 */
export function labelTargets(labels: readonly FigureLabel[]): ProbePrediction {
  const pairs = [...new Set(labels.map((l) => pairIndex(l.colour, l.shape)))].sort((a, b) => a - b);
  const sizes = pairs.map((p) => labels.find((l) => pairIndex(l.colour, l.shape) === p)!.size);
  return { pairs, count: labels.length, sizes };
}

/** A second pair below this logit is not added for a predicted second figure. */
const SECOND_PAIR_MIN_LOGIT = -4;

/**
 * Reads a probe's outputs for one image: pairs whose logit is above 0 (probability 0.5), at least
 * the best one and at most the best `MAX_FIGURES`; two figures when the count logit is above 0.
 * With two figures in a tiny image the second pair is rarely that confident while the count logit
 * is (about 95% right), so a predicted second figure takes the next best pair too, unless its
 * logit is far below zero (then both figures most likely share one colour-shape pair).
 *
 * With `sizeLogits` (`SIZE_LOGITS`, pair-major), each chosen pair gets its most likely size word.
 *
 * @example
 * ```ts
 * const pairLogits = new Float32Array(PAIR_COUNT).fill(-5);
 * pairLogits[pairIndex("red", "circle")] = 5;
 * decodePrediction(pairLogits, 0.5); // { pairs: [index of red circle], count: 1 }
 * ```
 */
export function decodePrediction(
  pairLogits: ArrayLike<number>,
  countLogit: number,
  sizeLogits?: ArrayLike<number>,
): ProbePrediction {
  if (pairLogits.length !== PAIR_COUNT) {
    throw new Error(`Expected ${PAIR_COUNT} pair logits, got ${pairLogits.length}`);
  }
  if (sizeLogits && sizeLogits.length !== SIZE_LOGITS) {
    throw new Error(`Expected ${SIZE_LOGITS} size logits, got ${sizeLogits.length}`);
  }
  const order = Array.from({ length: PAIR_COUNT }, (_, i) => i)
    .sort((a, b) => pairLogits[b] - pairLogits[a]);
  const count = countLogit > 0 ? 2 : 1;
  const secondMin = count === 2 ? SECOND_PAIR_MIN_LOGIT : 0;
  const pairs = order.slice(0, MAX_FIGURES).filter((i, k) => k === 0 || pairLogits[i] > secondMin)
    .sort((a, b) => a - b);
  if (!sizeLogits) return { pairs, count };
  const sizes = pairs.map((p) => {
    let best = 0;
    for (let s = 1; s < SIZE_WORDS.length; s++) {
      if (sizeLogits[p * SIZE_WORDS.length + s] > sizeLogits[p * SIZE_WORDS.length + best]) {
        best = s;
      }
    }
    return SIZE_WORDS[best];
  });
  return { pairs, count, sizes };
}

/** The shape a lenient score compares: squares as rectangles, circles as ellipses. */
function lenientShape(shape: ShapeName): ShapeName {
  return shape === "square" ? "rectangle" : shape === "circle" ? "ellipse" : shape;
}

function sameSet<T>(a: Iterable<T>, b: Iterable<T>): boolean {
  const x = new Set(a), y = new Set(b);
  return x.size === y.size && [...x].every((v) => y.has(v));
}

/**
 * Scores a prediction against a caption of the shapes grammar. A caption naming the same pair
 * twice ("a red circle and a red circle") wants that one pair and two figures.
 *
 * @throws Error when the caption does not follow the grammar (from `parseCaption`).
 * @example
 * ```ts
 * scoreCaption({ pairs: [pairIndex("red", "circle")], count: 1 }, "a red circle").exact; // true
 * ```
 */
export function scoreCaption(prediction: ProbePrediction, caption: string): ImageScore {
  const parts = parseCaption(caption);
  const want = parts.map((p) => pairIndex(p.colour, p.shape));
  const got = prediction.pairs.map(pairOf);
  const count = prediction.count === parts.length;
  const loose = (c: ColourName, k: ShapeName) => `${c} ${lenientShape(k)}`;
  let size: boolean | null = null;
  if (prediction.sizes && parts.some((p) => p.size !== null)) {
    size = parts.every((p) => {
      if (p.size === null) return true;
      const k = prediction.pairs.indexOf(pairIndex(p.colour, p.shape));
      return k >= 0 && prediction.sizes![k] === p.size;
    });
  }
  return {
    exact: count && sameSet(prediction.pairs, want),
    colour: sameSet(got.map((g) => g[0]), parts.map((p) => p.colour)),
    shape: sameSet(got.map((g) => g[1]), parts.map((p) => p.shape)),
    count,
    lenient: count &&
      sameSet(got.map(([c, k]) => loose(c, k)), parts.map((p) => loose(p.colour, p.shape))),
    size,
  };
}

/**
 * Mean of each score over images.
 *
 * @example
 * ```ts
 * const all = { exact: true, colour: true, shape: true, count: true, lenient: true, size: null };
 * summarizeScores([all]).exact; // 1
 * ```
 */
export function summarizeScores(scores: readonly ImageScore[]): ProbeScores {
  const n = scores.length;
  const rate = (k: keyof ImageScore): number =>
    n === 0 ? 0 : scores.filter((s) => s[k] === true).length / n;
  const sized = scores.filter((s) => s.size !== null);
  return {
    images: n,
    exact: rate("exact"),
    colour: rate("colour"),
    shape: rate("shape"),
    count: rate("count"),
    lenient: rate("lenient"),
    size: sized.length === 0 ? 0 : sized.filter((s) => s.size).length / sized.length,
    sizeImages: sized.length,
  };
}

/** `ProbeScores` of the captions with one figure count, and how often the pairs are mixed up. */
export interface FigureScores extends ProbeScores {
  /**
   * Fraction with the captioned colours, shapes and count but not the caption's pairs: each colour
   * drawn on the other figure's shape (attribute binding; only possible with two figures).
   */
  swapped: number;
}

/**
 * `summarizeScores` over the captions of each figure count ("1", "2"; counts with no caption are
 * left out), plus the binding errors (`FigureScores.swapped`). Two-figure captions must also bind
 * each colour to its shape, which DALL-E 2's CLIP-embedding conditioning is known to do poorly
 * (Ramesh et al. 2022, section 7); one-figure captions cannot fail that way.
 *
 * @example
 * ```ts
 * const ok = { exact: true, colour: true, shape: true, count: true, lenient: true, size: null };
 * const swap = { ...ok, exact: false, lenient: false };
 * const by = scoresByFigures([ok, swap], ["a red circle", "a red circle and a blue square"]);
 * by["2"].swapped; // 1
 * ```
 */
export function scoresByFigures(
  scores: readonly ImageScore[],
  captions: readonly string[],
): Record<string, FigureScores> {
  if (scores.length !== captions.length) {
    throw new Error(`${scores.length} scores for ${captions.length} captions`);
  }
  const groups = new Map<number, ImageScore[]>();
  scores.forEach((s, i) => {
    const figures = parseCaption(captions[i]).length;
    const group = groups.get(figures);
    if (group) group.push(s);
    else groups.set(figures, [s]);
  });
  return Object.fromEntries(
    [...groups].sort((a, b) => a[0] - b[0]).map(([figures, group]) => [String(figures), {
      ...summarizeScores(group),
      swapped: group.filter((s) => s.count && s.colour && s.shape && !s.exact).length /
        group.length,
    }]),
  );
}

/** How the images of the captions that name one shape fare (`shapeOutcomes`). */
export interface ShapeOutcome {
  /** Captions naming the shape. */
  captions: number;
  /** Fraction of those images in which the probe sees the shape (in any colour). */
  shown: number;
  /**
   * The images of one-figure captions naming the shape, counted by what the probe sees: a
   * single shape's name, "none" (no pair) or "several" (more than one shape).
   */
  singleFigure: Record<string, number>;
}

/**
 * Per captioned shape, how often its image shows it and, for one-figure captions, which shape
 * is drawn instead: where the shape errors of `summarizeScores` come from.
 *
 * @example
 * ```ts
 * const seen = { pairs: [pairIndex("red", "circle")], count: 1 };
 * shapeOutcomes([seen], ["a red ellipse"]).ellipse.singleFigure; // { circle: 1 }
 * ```
 */
export function shapeOutcomes(
  predictions: readonly ProbePrediction[],
  captions: readonly string[],
): Record<ShapeName, ShapeOutcome> {
  if (predictions.length !== captions.length) {
    throw new Error(`${predictions.length} predictions for ${captions.length} captions`);
  }
  const hits = new Map<ShapeName, { captions: number; shown: number; single: Map<string, number> }>(
    SHAPES.map((s) => [s, { captions: 0, shown: 0, single: new Map() }]),
  );
  predictions.forEach((p, i) => {
    const parts = parseCaption(captions[i]);
    const drawn = new Set(p.pairs.map((k) => pairOf(k)[1]));
    for (const shape of new Set(parts.map((q) => q.shape))) {
      const h = hits.get(shape)!;
      h.captions++;
      if (drawn.has(shape)) h.shown++;
      if (parts.length === 1) {
        const what = drawn.size === 0 ? "none" : drawn.size > 1 ? "several" : [...drawn][0];
        h.single.set(what, (h.single.get(what) ?? 0) + 1);
      }
    }
  });
  return Object.fromEntries(
    [...hits].map(([shape, h]) => [shape, {
      captions: h.captions,
      shown: h.captions === 0 ? 0 : h.shown / h.captions,
      singleFigure: Object.fromEntries([...h.single].sort((a, b) => b[1] - a[1])),
    }]),
  ) as Record<ShapeName, ShapeOutcome>;
}
