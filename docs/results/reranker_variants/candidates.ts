/**
 * Rerankers compared on cached candidates. `draw` makes weights/default's three decoder
 * candidates for each of the first 200 test captions, exactly as `eval pipeline` draws them (16
 * captions per call, seed + i, the stored sampling: the three candidates of `--rerank 3` are the
 * images of `n 3, rerank 1`), and stores them with the probe's verdict on each; `score` then
 * reranks the cached candidates with any CLIPs in seconds: each named CLIP stage folder (a clip or
 * reranker stage), or several joined by "+" (their cosine similarities summed), keeps the
 * candidate it matches best to the caption, and the probe's verdicts on the kept images give the
 * exact-match rate, paired caption by caption against the first CLIP named.
 *
 * Usage (from the repository root; the cache is large and stays out of the repository):
 *   deno run -A docs/results/reranker_variants/candidates.ts draw /tmp/cands 0-4
 *   deno run -A docs/results/reranker_variants/candidates.ts score /tmp/cands 0-4 \
 *     weights/default/reranker weights/default/clip weights/default/clip+weights/default/reranker
 */
import { join } from "node:path";
import { bestOfCandidates, textToImage } from "../../../core/pipeline.ts";
import { predictProbe } from "../../../datasets/probe.ts";
import { loadOrTrainProbe } from "../../../datasets/probe_cache.ts";
import { scoreCaption } from "../../../datasets/score.ts";
import { parseCaption } from "../../../datasets/captions.ts";
import { comparePaired } from "../../../core/eval/paired.ts";
import {
  CAPTIONS,
  judgeScores,
  K,
  loadJudge,
  openDefault,
  PER_CALL,
  PER_IMAGE,
  readSeed,
  seedList,
  WEIGHTS,
} from "./cache.ts";

const [mode, cache, seedsText, ...clips] = Deno.args;
if (!["draw", "score"].includes(mode) || !cache || !seedsText) {
  console.error("Usage: candidates.ts draw|score CACHE SEEDS [CLIP[+CLIP] ...]");
  Deno.exit(2);
}
const seeds = seedList(seedsText);
const { registry, pipeline, captions } = await openDefault();

if (mode === "draw") {
  await Deno.mkdir(cache, { recursive: true });
  const { probe } = await loadOrTrainProbe(WEIGHTS, pipeline.config, registry);
  for (const seed of seeds) {
    const t0 = performance.now();
    const images = new Float32Array(CAPTIONS * K * PER_IMAGE);
    for (let i = 0; i < CAPTIONS; i += PER_CALL) {
      const part = captions.slice(i, i + PER_CALL);
      const g = await textToImage(pipeline, part, { n: K, rerank: 1, seed: seed + i });
      images.set(g.images, i * K * PER_IMAGE);
    }
    const rows = captions.flatMap((c) => Array(K).fill(c));
    const preds = await predictProbe(probe, images, rows.length);
    const verdicts = preds.map((p, r) => scoreCaption(p, rows[r]));
    await Deno.writeFile(join(cache, `seed${seed}.f32`), new Uint8Array(images.buffer));
    await Deno.writeTextFile(
      join(cache, `seed${seed}.json`),
      JSON.stringify({
        exact: verdicts.map((v) => (v.exact ? "1" : "0")).join(""),
        colour: verdicts.map((v) => (v.colour ? "1" : "0")).join(""),
      }),
    );
    console.log(`seed ${seed}: ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  probe.dispose();
} else {
  const loaded = new Map<string, Awaited<ReturnType<typeof loadJudge>>>();
  const judgeOf = async (dir: string) => {
    if (!loaded.has(dir)) loaded.set(dir, await loadJudge(dir, registry));
    return loaded.get(dir)!;
  };
  const figures = captions.map((c) => parseCaption(c).length);
  const chosen: Record<string, boolean[][]> = {};
  for (const name of clips) {
    chosen[name] = [];
    const rates: string[] = [];
    let colours = 0;
    for (const seed of seeds) {
      const { images, verdict } = await readSeed(cache, seed);
      const total = new Float32Array(CAPTIONS * K);
      for (const dir of name.split("+")) {
        const scores = await judgeScores(await judgeOf(dir), captions, images);
        scores.forEach((c, r) => (total[r] += c));
      }
      const right: boolean[] = [];
      for (const best of bestOfCandidates(total, K)) {
        right.push(verdict.exact[best] === "1");
        if (verdict.colour[best] === "1") colours++;
      }
      chosen[name].push(right);
      rates.push((100 * right.filter(Boolean).length / CAPTIONS).toFixed(1));
    }
    const all = chosen[name].flat();
    const twoFig = chosen[name].flatMap((r) => r.filter((_, c) => figures[c] === 2));
    console.log(
      `${name}: exact ${(100 * all.filter(Boolean).length / all.length).toFixed(2)}% (${
        rates.join(" / ")
      }), colours ${(100 * colours / all.length).toFixed(1)}%, two figures ${
        (100 * twoFig.filter(Boolean).length / twoFig.length).toFixed(1)
      }%`,
    );
  }
  // Paired against the first CLIP named: captions x seeds right only with one or the other.
  const base = chosen[clips[0]].flat();
  for (const name of clips.slice(1)) {
    const other = chosen[name].flat();
    const c = comparePaired(base, other);
    const pts = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;
    console.log(
      `${name} vs ${clips[0]}: ${pts(c.difference)} points (95% ${pts(c.interval95[0])} to ` +
        `${pts(c.interval95[1])}; only it ${c.onlyB}, only ${clips[0]} ${c.onlyA}; McNemar p = ` +
        `${c.pValue.toPrecision(2)})`,
    );
  }
  for (const { clip } of loaded.values()) clip.dispose();
}
pipeline.dispose();
