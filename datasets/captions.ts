/**
 * The caption grammar (thesis section 3.1):
 * `<det> [<size>] <colour> <shape> [at the <position>]`, figures joined with " and ".
 * @module
 */

import {
  type ColourName,
  COLOURS,
  type FigureLabel,
  type Position,
  POSITIONS,
  type ShapeName,
  SHAPES,
  SIZE_WORDS,
  type SizeWord,
} from "./shapes.ts";

export { swapLeftRight } from "../core/data/images.ts";

/** A determiner. */
export type Determiner = "a" | "an" | "the";

/** What one figure's phrase of a caption says. */
export interface CaptionParts {
  /** "a", "an" or "the". */
  det: Determiner;
  /** Size word, or null when the caption leaves it out. */
  size: SizeWord | null;
  /** Colour word. */
  colour: ColourName;
  /** Shape word. */
  shape: ShapeName;
  /** Position phrase, or null when the caption has none. */
  position: Position | null;
}

/**
 * The indefinite article for a following word: "an" before a vowel, else "a".
 *
 * @example
 * ```ts
 * article("orange"); // "an"
 * ```
 */
export function article(nextWord: string): "a" | "an" {
  return /^[aeiou]/.test(nextWord) ? "an" : "a";
}

/**
 * Formats one figure's phrase.
 *
 * @example
 * ```ts
 * formatFigure({ det: "a", size: "large", colour: "cyan", shape: "pentagon", position: null });
 * // "a large cyan pentagon"
 * ```
 */
export function formatFigure(p: CaptionParts): string {
  const words: string[] = [p.det];
  if (p.size !== null) words.push(p.size);
  words.push(p.colour, p.shape);
  if (p.position !== null) words.push("at", "the", p.position);
  return words.join(" ");
}

/**
 * Formats a caption from per-figure parts, joined with " and ".
 *
 * @example
 * ```ts
 * formatCaption([
 *   { det: "a", size: "large", colour: "cyan", shape: "pentagon", position: null },
 *   { det: "the", size: null, colour: "red", shape: "ellipse", position: null },
 * ]); // "a large cyan pentagon and the red ellipse"
 * ```
 */
export function formatCaption(parts: readonly CaptionParts[]): string {
  return parts.map(formatFigure).join(" and ");
}

/**
 * A hard negative for CLIP (NegCLIP, Yuksekgonul et al. 2023, section 4): the caption with each
 * figure's colour moved to the next figure (with two figures, the colours swapped), so the words
 * are the same and only which colour goes with which shape differs. Null where that caption could
 * still be true of the image: one figure, a caption that does not parse, all colours equal, or two
 * figures of one shape (then only a size or position word tells them apart, and the caption may
 * leave those out). "a"/"an" follow the new colour.
 *
 * @example
 * ```ts
 * swapColours("a red circle and the orange square"); // "an orange circle and the red square"
 * swapColours("a red circle"); // null
 * ```
 */
export function swapColours(caption: string): string | null {
  let parts: CaptionParts[];
  try {
    parts = parseCaption(caption);
  } catch {
    return null;
  }
  if (parts.length < 2) return null;
  if (new Set(parts.map((p) => p.shape)).size < parts.length) return null;
  if (new Set(parts.map((p) => p.colour)).size < 2) return null;
  const moved = parts.map((p, i): CaptionParts => {
    const colour = parts[(i + 1) % parts.length].colour;
    const det = p.det === "the" ? "the" : article(p.size ?? colour);
    return { ...p, det, colour };
  });
  return formatCaption(moved);
}

const SIZE_SET = new Set<string>(SIZE_WORDS);
const SHAPE_SET = new Set<string>(SHAPES);
const POSITION_SET = new Set<string>(POSITIONS);

/**
 * Parses a caption of the shapes grammar back into per-figure parts. Whitespace is collapsed and
 * case ignored; "a" and "an" are both accepted before any word.
 *
 * @throws Error naming the caption and the offending word when it does not follow the grammar.
 * @example
 * ```ts
 * parseCaption("the small red circle at the top left")[0].position; // "top left"
 * ```
 */
export function parseCaption(caption: string): CaptionParts[] {
  const words = caption.trim().toLowerCase().split(/\s+/).filter((w) => w !== "");
  const fail = (i: number, expected: string): never => {
    const found = i < words.length ? `"${words[i]}"` : "the end";
    throw new Error(
      `Caption "${caption}" is malformed: expected ${expected} at word ${i + 1}, found ${found}`,
    );
  };
  const parts: CaptionParts[] = [];
  let i = 0;
  for (;;) {
    const det = words[i];
    if (det !== "a" && det !== "an" && det !== "the") fail(i, `"a", "an" or "the"`);
    i++;
    let size: SizeWord | null = null;
    if (SIZE_SET.has(words[i])) size = words[i++] as SizeWord;
    if (!Object.hasOwn(COLOURS, words[i] ?? "")) fail(i, "a colour");
    const colour = words[i++] as ColourName;
    if (!SHAPE_SET.has(words[i])) fail(i, "a shape");
    const shape = words[i++] as ShapeName;
    let position: Position | null = null;
    if (words[i] === "at") {
      i++;
      if (words[i] !== "the") fail(i, `"the"`);
      i++;
      const two = `${words[i]} ${words[i + 1]}`;
      if (POSITION_SET.has(two)) {
        position = two as Position;
        i += 2;
      } else if (POSITION_SET.has(words[i])) {
        position = words[i++] as Position;
      } else {
        fail(i, "a position");
      }
    }
    parts.push({ det: det as Determiner, size, colour, shape, position });
    if (i === words.length) return parts;
    if (words[i] !== "and") fail(i, `"and" or the end`);
    i++;
  }
}

/**
 * Whether `caption` is true of an image with figure labels `labels`: as many figures, and a
 * one-to-one matching in which each phrase names its figure's colour and shape, and its size and
 * position when the phrase gives them (figure order and determiners do not matter). Several
 * captions of a split can be true of one image ("a red square" and "a large red square"): what
 * bounds caption retrieval.
 *
 * @example
 * ```ts
 * import type { FigureLabel } from "./shapes.ts";
 * const label: FigureLabel = {
 *   shape: "square", colour: "red", size: "large", bbox: [0, 0, 90, 90], position: null,
 *   rotation: null,
 * };
 * captionTrueOf("a red square", [label]); // true
 * captionTrueOf("a small red square", [label]); // false
 * ```
 */
export function captionTrueOf(caption: string, labels: readonly FigureLabel[]): boolean {
  return partsTrueOf(parseCaption(caption), labels);
}

/** `captionTrueOf` for a parsed caption. */
function partsTrueOf(parts: readonly CaptionParts[], labels: readonly FigureLabel[]): boolean {
  if (parts.length !== labels.length) return false;
  const fits = (p: CaptionParts, l: FigureLabel): boolean =>
    p.colour === l.colour && p.shape === l.shape && (p.size === null || p.size === l.size) &&
    (p.position === null || p.position === l.position);
  const used = new Array<boolean>(labels.length).fill(false);
  const match = (k: number): boolean => {
    if (k === parts.length) return true;
    for (let j = 0; j < labels.length; j++) {
      if (used[j] || !fits(parts[k], labels[j])) continue;
      used[j] = true;
      if (match(k + 1)) return true;
      used[j] = false;
    }
    return false;
  };
  return match(0);
}

/**
 * `captionTrueOf` over a split: `(caption, i)` says whether `caption` is true of image i. Null when
 * the split is not shapes data: an image without figure labels, or a caption outside the grammar.
 *
 * @example
 * ```ts
 * shapesCaptionTruth([{ caption: "a cat", labels: null }]); // null
 * ```
 */
export function shapesCaptionTruth(
  data: readonly { caption: string; labels?: unknown }[],
): ((caption: string, image: number) => boolean) | null {
  const labelled = data.every((d) =>
    Array.isArray(d.labels) && d.labels.length > 0 &&
    d.labels.every((l) =>
      typeof l?.colour === "string" && typeof l?.shape === "string" && typeof l?.size === "string"
    )
  );
  if (!labelled) return null;
  const parsed = new Map<string, CaptionParts[]>();
  try {
    for (const d of data) parsed.set(d.caption, parseCaption(d.caption));
  } catch {
    return null;
  }
  const labels = data.map((d) => d.labels as FigureLabel[]);
  return (caption, image) => {
    let parts = parsed.get(caption);
    if (parts === undefined) parsed.set(caption, parts = parseCaption(caption));
    return partsTrueOf(parts, labels[image]);
  };
}
