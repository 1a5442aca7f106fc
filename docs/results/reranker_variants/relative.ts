/**
 * Reranking by the caption's probability instead of its cosine: does a candidate that CLIP finds
 * close to many captions win too often? Each cached candidate (candidates.ts `draw`) is scored by
 * the reranking CLIP as softmax(s cos) of its caption among alternatives, s the CLIP's logit scale
 * (CLIP as a zero-shot classifier, Radford et al. 2021, section 3.1.2): the caption's one-attribute
 * variants (each figure's shape or colour replaced; of two figures, each alone and the colours
 * swapped as `swapColours` does), the training split's captions, or both; the plain cosine is the
 * baseline.
 *
 * Usage (from the repository root, after `candidates.ts draw /tmp/cands 0-4`):
 *   deno run -A docs/results/reranker_variants/relative.ts /tmp/cands 0-4 weights/default/reranker
 */
import { l2Normalize, tokenBatch } from "../../../core/clip.ts";
import { bestOfCandidates, clipConditioning, loadCheckedSplit } from "../../../core/pipeline.ts";
import { noGrad, scope, type Tensor, tensor } from "../../../core/tensor/mod.ts";
import {
  article,
  type CaptionParts,
  formatCaption,
  parseCaption,
  swapColours,
} from "../../../datasets/captions.ts";
import { type ColourName, COLOURS, SHAPES } from "../../../datasets/shapes.ts";
import { comparePaired } from "../../../core/eval/paired.ts";
import {
  CAPTIONS,
  K,
  loadJudge,
  openDefault,
  parseArgs,
  PER_IMAGE,
  readSeed,
  SIDE,
} from "./cache.ts";

/** Training captions to weigh a caption against (the distinct ones of the split's first N). */
const POOL = 4000;

const { cache, seeds, rest: [clipDir] } = parseArgs("relative.ts CACHE SEEDS CLIP");
const { registry, pipeline, captions } = await openDefault();
const pool = [
  ...new Set(
    (await loadCheckedSplit(pipeline.config, registry, "train", POOL)).map((d) => d.caption),
  ),
];
const { clip, tokenizer } = await loadJudge(clipDir, registry);
const scale = Math.exp((await clip.logitScale.read() as Float32Array)[0]);

/** The figure with a new shape or colour, its article following the next word. */
function withFigure(p: CaptionParts, change: Partial<CaptionParts>): CaptionParts {
  const q = { ...p, ...change };
  return { ...q, det: q.det === "the" ? "the" : article(q.size ?? q.colour) };
}

/** The caption's one-attribute variants: none of them is true of an image the caption is. */
function variants(caption: string): string[] {
  const parts = parseCaption(caption);
  const out = new Set<string>();
  const replaced = (j: number, change: Partial<CaptionParts>) =>
    formatCaption(parts.map((p, k) => (k === j ? withFigure(p, change) : p)));
  parts.forEach((p, j) => {
    for (const shape of SHAPES) if (shape !== p.shape) out.add(replaced(j, { shape }));
    for (const colour of Object.keys(COLOURS) as ColourName[]) {
      if (colour !== p.colour) out.add(replaced(j, { colour }));
    }
  });
  if (parts.length === 2) {
    // CLIP's hard negative (null where the swapped caption could still be true of the image).
    const swapped = swapColours(caption);
    if (swapped !== null) out.add(swapped);
    for (const p of parts) out.add(formatCaption([withFigure(p, { det: "a" })]));
  }
  out.delete(caption);
  return [...out];
}

/** Rows of an L2-normalised [N, E] embedding computed in chunks. */
async function rowsOf(n: number, chunk: number, embed: (i: number, m: number) => Tensor) {
  const rows: Float32Array[] = [];
  for (let i = 0; i < n; i += chunk) {
    const m = Math.min(chunk, n - i);
    const t = noGrad(() => scope(() => embed(i, m)));
    const v = await t.read() as Float32Array;
    t.dispose();
    const e = v.length / m;
    for (let r = 0; r < m; r++) rows.push(v.slice(r * e, (r + 1) * e));
  }
  return rows;
}
const texts = (list: string[]) =>
  rowsOf(
    list.length,
    256,
    (i, m) => clipConditioning(clip, tokenBatch(tokenizer, list.slice(i, i + m))).textEmbedding,
  );
const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i], 0);
const logSumExp = (xs: number[]) => {
  const m = Math.max(...xs);
  return m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
};
/** log softmax of the caption's cosine among the alternatives' (all scaled by s). */
const logProbability = (own: number, others: number[]) =>
  scale * own - logSumExp([scale * own, ...others.map((x) => scale * x)]);

const own = await texts(captions);
const variantRows: Float32Array[][] = [];
for (const c of captions) variantRows.push(await texts(variants(c)));
const poolRows = await texts(pool);

const methods = ["cosine", "among variants", "among training captions", "among both"] as const;
const chosen = new Map<string, boolean[]>(methods.map((m) => [m, []]));
for (const seed of seeds) {
  const { images, verdict } = await readSeed(cache, seed);
  const embedded = await rowsOf(
    CAPTIONS * K,
    60,
    (i, m) =>
      l2Normalize(clip.encodeImages(
        tensor(images.slice(i * PER_IMAGE, (i + m) * PER_IMAGE), [m, 3, SIDE, SIDE]),
      )),
  );
  const scores = new Map(methods.map((m) => [m, new Float32Array(CAPTIONS * K)]));
  embedded.forEach((e, r) => {
    const c = Math.floor(r / K);
    const cos = dot(e, own[c]);
    const byVariant = variantRows[c].map((t) => dot(e, t));
    const byPool = poolRows.filter((_, i) => pool[i] !== captions[c]).map((t) => dot(e, t));
    scores.get("cosine")![r] = cos;
    scores.get("among variants")![r] = logProbability(cos, byVariant);
    scores.get("among training captions")![r] = logProbability(cos, byPool);
    scores.get("among both")![r] = logProbability(cos, [...byVariant, ...byPool]);
  });
  for (const m of methods) {
    chosen.get(m)!.push(
      ...bestOfCandidates(scores.get(m)!, K).map((b) => verdict.exact[b] === "1"),
    );
  }
}
console.log(`${clipDir}: logit scale ${scale.toFixed(1)}, ${pool.length} training captions`);
const pct = (x: number) => `${x >= 0 && x !== 0 ? "+" : ""}${(100 * x).toFixed(1)}`;
for (const m of methods) {
  const right = chosen.get(m)!;
  const c = comparePaired(chosen.get("cosine")!, right);
  console.log(
    `${m}: exact ${(100 * right.filter(Boolean).length / right.length).toFixed(2)}%` +
      (m === "cosine"
        ? ""
        : ` (${pct(c.difference)} points, McNemar p = ${c.pValue.toPrecision(2)})`),
  );
}
clip.dispose();
pipeline.dispose();
