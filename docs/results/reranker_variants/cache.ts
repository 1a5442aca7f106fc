/**
 * What the scripts here share: the candidate cache's layout (candidates.ts `draw` writes it:
 * per seed, `seed<S>.f32` with the K candidates of each of the first CAPTIONS test captions in
 * order, and `seed<S>.json` with the probe's exact and colour verdicts per candidate), the seeds
 * argument, weights/default's pipeline and test captions, a CLIP stage folder loaded as a judge,
 * and its scores of the cached candidates.
 */
import { basename, join } from "node:path";
import { type ClipModel, tokenBatch } from "../../../core/clip.ts";
import type { Tokenizer } from "../../../core/components.ts";
import {
  clipConditioning,
  imageTextScores,
  loadCheckedSplit,
  loadClip,
  loadPipeline,
  loadResolvedCheckpoint,
} from "../../../core/pipeline.ts";
import { noGrad, scope, tensor } from "../../../core/tensor/mod.ts";
import type { Registry } from "../../../core/registry.ts";
import { builtins } from "../../../plugins/mod.ts";
import { startBackend } from "../../../tasks/_cli.ts";

export const WEIGHTS = "weights/default";
/** The first 200 test captions, as `eval pipeline --limit 200`. */
export const CAPTIONS = 200;
/** Candidates per caption: the stored `rerank`. */
export const K = 3;
/** Captions per `textToImage` call, as `eval pipeline` draws them. */
export const PER_CALL = 16;
export const SIDE = 32;
export const PER_IMAGE = 3 * SIDE * SIDE;

/** "0-4" -> [0, 1, 2, 3, 4]; "3" -> [3]. */
export function seedList(text: string): number[] {
  const [a, b] = text.split("-").map(Number);
  return b === undefined ? [a] : Array.from({ length: b - a + 1 }, (_, i) => a + i);
}

/** The command line's cache folder and seeds (and the rest), or the usage line and exit 2. */
export function parseArgs(usage: string): { cache: string; seeds: number[]; rest: string[] } {
  const [cache, seeds, ...rest] = Deno.args;
  if (!cache || !seeds || rest.length === 0) {
    console.error(`Usage: ${usage}`);
    Deno.exit(2);
  }
  return { cache, seeds: seedList(seeds), rest };
}

/** The backend, weights/default's pipeline (without its reranker) and its test captions. */
export async function openDefault() {
  const registry = builtins();
  await startBackend({}, () => {});
  const pipeline = await loadPipeline(WEIGHTS, registry, { reranker: false });
  const data = await loadCheckedSplit(pipeline.config, registry, "test", CAPTIONS);
  return { registry, pipeline, captions: data.map((d) => d.caption) };
}

/** A CLIP stage folder (a run's clip/ or reranker/) with its tokenizer. */
export async function loadJudge(
  dir: string,
  registry: Registry,
): Promise<{ clip: ClipModel; tokenizer: Tokenizer }> {
  const stage = basename(dir) === "reranker" ? "reranker" : "clip";
  const ckpt = await loadResolvedCheckpoint(dir, stage, registry);
  return await loadClip(ckpt, ckpt.meta.config, registry);
}

/** One seed's cached candidates and the probe's verdicts ("1"/"0" per candidate). */
export async function readSeed(cache: string, seed: number) {
  const bytes = await Deno.readFile(join(cache, `seed${seed}.f32`));
  const verdict: { exact: string; colour: string } = JSON.parse(
    await Deno.readTextFile(join(cache, `seed${seed}.json`)),
  );
  return { images: new Float32Array(bytes.buffer), verdict };
}

/**
 * The judge's cosine of each cached candidate with its caption ([CAPTIONS x K], candidates in
 * order), scored PER_CALL captions at a time as `textToImage` scores them.
 */
export async function judgeScores(
  judge: { clip: ClipModel; tokenizer: Tokenizer },
  captions: readonly string[],
  images: Float32Array,
): Promise<Float32Array> {
  const scores = new Float32Array(captions.length * K);
  for (let i = 0; i < captions.length; i += PER_CALL) {
    const rows = captions.slice(i, i + PER_CALL).flatMap((c) => Array(K).fill(c));
    const x = images.subarray(i * K * PER_IMAGE, i * K * PER_IMAGE + rows.length * PER_IMAGE);
    const s = noGrad(() =>
      scope(() => {
        const text = clipConditioning(judge.clip, tokenBatch(judge.tokenizer, rows)).textEmbedding;
        return imageTextScores(judge.clip, SIDE, tensor(x, [rows.length, 3, SIDE, SIDE]), text);
      })
    );
    scores.set(await s.read() as Float32Array, i * K);
    s.dispose();
  }
  return scores;
}
