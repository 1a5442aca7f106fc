/**
 * A model's sampling defaults stored in its config (`sampling.guidance`, `sampling.rerank`): what
 * `textToImage`, `sample` and `eval pipeline` use when none is given, and what a given one
 * overrides.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { builtins } from "../plugins/mod.ts";
import { initBackend } from "../core/tensor/mod.ts";
import {
  decoderGuidance,
  decoderRerank,
  imageVariations,
  loadPipeline,
  MAX_IMAGES,
  textToImage,
} from "../core/pipeline.ts";
import { MAX_CONFIG_RERANK } from "../core/config.ts";
import { CAPTIONS_PER_CALL } from "../tasks/_eval_pipeline.ts";
import { runSample } from "../tasks/sample.ts";
import { runEval } from "../tasks/eval.ts";
import { copyDir } from "./_support/files.ts";

await initBackend();

const DEMO = new URL("../weights/cpu-demo", import.meta.url).pathname;
const FAST = { steps: 2, priorSteps: 2, seed: 3 };
const quiet = { print: () => {} };

/** A copy of weights/cpu-demo whose decoder checkpoint stores `sampling` in its config. */
async function demoWithSampling(sampling: Record<string, unknown>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "unclip-sampling-" });
  await copyDir(DEMO, dir);
  const step = (await Deno.readTextFile(join(dir, "decoder", "latest"))).trim();
  const indexPath = join(dir, "decoder", step, "model.safetensors.index.json");
  const index = JSON.parse(await Deno.readTextFile(indexPath));
  const config = JSON.parse(index.metadata.config);
  index.metadata.config = JSON.stringify({ ...config, sampling });
  await Deno.writeTextFile(indexPath, JSON.stringify(index));
  return dir;
}

Deno.test("a checkpoint without sampling settings samples with guidance 2 and no reranking", async () => {
  const p = await loadPipeline(DEMO, builtins());
  try {
    assert.deepEqual(p.config.sampling, { guidance: 2, rerank: 1 });
    assert.equal(decoderGuidance(p, {}), 2);
    assert.equal(decoderGuidance(p, { guidance: 0 }), 0);
    assert.equal(decoderRerank(p, {}), 1);
    assert.equal(decoderRerank(p, { rerank: 3 }), 3);
  } finally {
    p.dispose();
  }
});

Deno.test("textToImage uses the stored sampling.guidance unless given one", async () => {
  const dir = await demoWithSampling({ guidance: 1 });
  const stored = await loadPipeline(dir, builtins());
  const plain = await loadPipeline(DEMO, builtins());
  try {
    assert.equal(stored.config.sampling.guidance, 1);
    const caption = ["a large red circle"];
    const byDefault = await textToImage(stored, caption, FAST);
    const explicit1 = await textToImage(plain, caption, { ...FAST, guidance: 1 });
    const explicit2 = await textToImage(plain, caption, { ...FAST, guidance: 2 });
    assert.deepEqual(byDefault.images, explicit1.images);
    assert.notDeepEqual(byDefault.images, explicit2.images);
    // A guidance given at sampling time wins over the stored one.
    const overridden = await textToImage(stored, caption, { ...FAST, guidance: 2 });
    assert.deepEqual(overridden.images, explicit2.images);
  } finally {
    stored.dispose();
    plain.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("guidance needs a decoder whose null condition trained; guidance 1 does not", async () => {
  const p = await loadPipeline(DEMO, builtins());
  try {
    // As if trained without dropping the caption or the CLIP embedding, alone or together.
    Object.assign(p.config.components.decoder.options, {
      nullRate: 0,
      textDropRate: 0,
      clipDropRate: 0,
    });
    await assert.rejects(
      textToImage(p, ["a red circle"], { ...FAST, guidance: 2 }),
      /Guidance "2" needs a decoder trained with the null condition .*use guidance 1/,
    );
    const plain = await textToImage(p, ["a red circle"], { ...FAST, guidance: 1 });
    assert.deepEqual(plain.shape, [1, 3, 16, 16]);
  } finally {
    p.dispose();
  }
});

Deno.test("guidance checks a late decoder's null condition too", async () => {
  const p = await loadPipeline(DEMO, builtins(), { lateDecoder: { dir: DEMO, below: 0.5 } });
  try {
    const late = p.lateDecoder!.config;
    assert.notEqual(late, p.config, "the late decoder's config is its own");
    Object.assign(late.components.decoder.options, {
      nullRate: 0,
      textDropRate: 0,
      clipDropRate: 0,
    });
    await assert.rejects(
      textToImage(p, ["a red circle"], { ...FAST, guidance: 2 }),
      /Guidance "2" needs a decoder trained with the null condition .*the late decoder has all/,
    );
    const plain = await textToImage(p, ["a red circle"], { ...FAST, guidance: 1 });
    assert.deepEqual(plain.shape, [1, 3, 16, 16]);
  } finally {
    p.dispose();
  }
});

Deno.test("sample and eval pipeline report and record the stored guidance", async () => {
  const dir = await demoWithSampling({ guidance: 1.5 });
  try {
    const lines: string[] = [];
    const out = join(dir, "s.png");
    const args = ["a red circle", "--checkpoint", dir, "--n", "1", "--steps", "2"];
    await runSample([...args, "--out", out], { print: (l) => lines.push(l) });
    assert.match(lines.at(-1)!, /, guidance 1\.5, /);
    await runSample([...args, "--guidance", "3", "--out", out, "--force"], {
      print: (l) => lines.push(l),
    });
    assert.match(lines.at(-1)!, /, guidance 3, /);

    const json = join(dir, "eval.json");
    const evalArgs = ["pipeline", "--checkpoint", dir, "--limit", "2", "--steps", "2"];
    const r = (await runEval([...evalArgs, "--probe-steps", "2", "--out", json], quiet))?.[0];
    assert.equal(r?.results.guidance, 1.5);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("every rerank a config may store fits one call of eval pipeline", () => {
  // eval draws CAPTIONS_PER_CALL captions' candidates per call, at most MAX_IMAGES images: a
  // stored sampling.rerank above MAX_IMAGES / CAPTIONS_PER_CALL would fail only at eval time.
  assert.ok(MAX_CONFIG_RERANK * CAPTIONS_PER_CALL <= MAX_IMAGES);
});

Deno.test("textToImage reranks by the stored sampling.rerank unless given one; variations never", async () => {
  const dir = await demoWithSampling({ rerank: 3 });
  const stored = await loadPipeline(dir, builtins());
  const plain = await loadPipeline(DEMO, builtins());
  try {
    assert.deepEqual(stored.config.sampling, { guidance: 2, rerank: 3 });
    const caption = ["a large red circle"];
    // Two images: the second's candidates are rows 3-5 of the noise, never row 1 as unreranked.
    const two = { ...FAST, n: 2 };
    const byDefault = await textToImage(stored, caption, two);
    const explicit3 = await textToImage(plain, caption, { ...two, rerank: 3 });
    const explicit1 = await textToImage(plain, caption, two);
    assert.deepEqual(byDefault.images, explicit3.images);
    assert.notDeepEqual(byDefault.images, explicit1.images);
    // A rerank given at sampling time wins over the stored one.
    const overridden = await textToImage(stored, caption, { ...two, rerank: 1 });
    assert.deepEqual(overridden.images, explicit1.images);
    // The call's size counts the stored candidates, and the error says where they come from.
    await assert.rejects(
      textToImage(stored, caption, { ...FAST, n: 400 }),
      /1 captions x n 400 x rerank 3 \(the model config's sampling\.rerank\) = 1200 images.*pass a smaller rerank/,
    );
    // Image variations have no caption to score: the stored rerank does not apply to them.
    const [, c, h, w] = explicit1.shape;
    const image = explicit1.images.subarray(0, c * h * w);
    const varied = await imageVariations(stored, image, FAST);
    const variedPlain = await imageVariations(plain, image, FAST);
    assert.deepEqual(varied.images, variedPlain.images);
  } finally {
    stored.dispose();
    plain.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sample and eval pipeline report and record the stored rerank", async () => {
  const dir = await demoWithSampling({ rerank: 2 });
  try {
    const lines: string[] = [];
    const out = join(dir, "s.png");
    const args = ["a red circle", "--checkpoint", dir, "--n", "1", "--steps", "2"];
    await runSample([...args, "--out", out], { print: (l) => lines.push(l) });
    assert.match(lines.at(-1)!, /, each the best of 2 by CLIP, /);
    await runSample([...args, "--rerank", "1", "--out", out, "--force"], {
      print: (l) => lines.push(l),
    });
    assert.doesNotMatch(lines.at(-1)!, /best of/);
    await assert.rejects(
      runSample(
        ["a red circle", "--checkpoint", dir, "--n", "600", "--out", out, "--force"],
        quiet,
      ),
      /--n 600 x rerank 2 \(the model's sampling\.rerank\) draws more than 1024 images; lower --n or pass --rerank 1/,
    );

    const evalArgs = ["pipeline", "--checkpoint", dir, "--limit", "2", "--steps", "2"];
    const probe = ["--probe-steps", "2"];
    const json = join(dir, "eval.json");
    const r = (await runEval([...evalArgs, ...probe, "--out", json], quiet))?.[0];
    assert.equal(r?.results.rerank, 2);
    // From the real images' embeddings there is no reranking, stored or not.
    const fromImage = join(dir, "eval_image.json");
    const i = (await runEval([...evalArgs, ...probe, "--from", "image", "--out", fromImage], quiet))
      ?.[0];
    assert.equal(i?.results.rerank, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
