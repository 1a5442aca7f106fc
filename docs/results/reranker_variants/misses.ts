/**
 * What the reranker gets wrong where it could have been right: for each caption and seed whose
 * three cached candidates (candidates.ts `draw`) include an exactly right one, which attributes the
 * probe finds wrong in the candidate the named CLIP keeps (its figure count, a colour, a shape, a
 * size word), by the caption's number of figures.
 *
 * Usage (from the repository root, after `candidates.ts draw /tmp/cands 0-4`):
 *   deno run -A docs/results/reranker_variants/misses.ts /tmp/cands 0-4 weights/default/reranker
 */
import { bestOfCandidates } from "../../../core/pipeline.ts";
import { predictProbe } from "../../../datasets/probe.ts";
import { loadOrTrainProbe } from "../../../datasets/probe_cache.ts";
import { type ImageScore, scoreCaption } from "../../../datasets/score.ts";
import { parseCaption } from "../../../datasets/captions.ts";
import { judgeScores, K, loadJudge, openDefault, parseArgs, readSeed, WEIGHTS } from "./cache.ts";

const { cache, seeds, rest: [clipDir] } = parseArgs("misses.ts CACHE SEEDS CLIP");
const { registry, pipeline, captions } = await openDefault();
const figures = captions.map((c) => parseCaption(c).length);
const { probe } = await loadOrTrainProbe(WEIGHTS, pipeline.config, registry);
const judge = await loadJudge(clipDir, registry);

/** The attributes the probe finds wrong in an image that is not exact. */
function wrongIn(v: ImageScore): string {
  const wrong = [
    !v.count && "count",
    !v.colour && "colour",
    !v.shape && "shape",
    v.size === false && "size",
  ].filter(Boolean);
  return wrong.length > 0 ? wrong.join(" + ") : "other";
}

const tally = new Map<string, number>();
const add = (key: string) => tally.set(key, (tally.get(key) ?? 0) + 1);
const rows = captions.flatMap((c) => Array(K).fill(c));
for (const seed of seeds) {
  const { images } = await readSeed(cache, seed);
  const verdicts = (await predictProbe(probe, images, rows.length))
    .map((p, r) => scoreCaption(p, rows[r]));
  const scores = await judgeScores(judge, captions, images);
  bestOfCandidates(scores, K).forEach((kept, c) => {
    const label = `${figures[c]} figure${figures[c] > 1 ? "s" : ""}`;
    if (verdicts[kept].exact) return add(`${label}: kept an exact one`);
    const anyExact = Array.from({ length: K }, (_, k) => verdicts[c * K + k].exact).some(Boolean);
    if (!anyExact) return add(`${label}: none of the ${K} exact`);
    add(`${label}: missed an exact one, kept one wrong in ${wrongIn(verdicts[kept])}`);
  });
}
console.log(`${clipDir}, seeds ${seeds.join(", ")}, ${captions.length} test captions:`);
for (const [key, n] of [...tally].sort()) console.log(`  ${key}: ${n}`);
probe.dispose();
judge.clip.dispose();
pipeline.dispose();
