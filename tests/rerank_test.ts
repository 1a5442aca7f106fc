/**
 * CLIP reranking of decoder candidates (`textToImage`'s `rerank`): the kept image is the
 * candidate whose CLIP image embedding is closest to its caption's, judged against the same
 * candidates drawn without reranking and scored here on the host.
 */
import assert from "node:assert/strict";
import { builtins } from "../plugins/mod.ts";
import { initBackend, noGrad, scope, tensor } from "../core/tensor/mod.ts";
import { tokenBatch } from "../core/clip.ts";
import {
  bestOfCandidates,
  imageVariations,
  loadPipeline,
  reconstructImages,
  textToImage,
} from "../core/pipeline.ts";
import { cosine } from "../core/eval/embed.ts";
import { assertOneLineError, cli } from "./_support/cli.ts";

await initBackend();

const DEMO = new URL("../weights/cpu-demo", import.meta.url).pathname;
/** Few steps: the candidates only need to differ, not to be good. */
const FAST = { steps: 2, priorSteps: 2, seed: 5 };

Deno.test("bestOfCandidates() picks the best score of each group of k, the first on a tie", () => {
  assert.deepEqual(bestOfCandidates([0.1, 0.7, 0.3, 0.9, 0.2, 0.4], 3), [1, 3]);
  assert.deepEqual(bestOfCandidates([0.5, 0.5, 0.2, 0.1], 2), [0, 2]);
  assert.deepEqual(bestOfCandidates([0.3, -1], 1), [0, 1]);
  assert.throws(() => bestOfCandidates([1, 2, 3], 2), /3 scores do not split into groups of 2/);
  assert.throws(() => bestOfCandidates([1, 2], 0), /groups of 0/);
});

Deno.test("loadPipeline's priorCandidates sets how many prior samples textToImage picks from", async () => {
  const plain = await loadPipeline(DEMO, builtins());
  const five = await loadPipeline(DEMO, builtins(), { priorCandidates: 5 });
  try {
    assert.equal(plain.priorCandidates, 2);
    assert.equal(five.priorCandidates, 5);
    const caption = ["a large red circle"];
    const viaLoad = await textToImage(five, caption, FAST);
    const viaCall = await textToImage(plain, caption, { ...FAST, candidates: 5 });
    assert.deepEqual(viaLoad.images, viaCall.images);
    const two = await textToImage(plain, caption, FAST);
    assert.notDeepEqual(viaLoad.images, two.images);
  } finally {
    plain.dispose();
    five.dispose();
  }
  await assert.rejects(
    () => loadPipeline(DEMO, builtins(), { priorCandidates: 0 }),
    /"priorCandidates" must be a positive integer, got 0/,
  );
});

Deno.test("textToImage rerank keeps the candidate CLIP scores highest against its caption", async () => {
  const p = await loadPipeline(DEMO, builtins());
  try {
    const caption = "a large red circle";
    const k = 4;
    // The same rows and seed draw the same candidates: k images of one caption.
    const all = await textToImage(p, [caption], { ...FAST, n: k });
    const [, c, h, w] = all.shape;
    const per = c * h * w;
    const { text, images } = await noGrad(() =>
      scope(() => {
        const tokens = tokenBatch(p.tokenizer, [caption]);
        return {
          text: p.clip.encodeText(tokens).embedding,
          images: p.clip.encodeImages(tensor(all.images, [k, c, h, w])),
        };
      })
    );
    const t = await text.read() as Float32Array, e = await images.read() as Float32Array;
    text.dispose(), images.dispose();
    const E = t.length;
    const scores = Array.from({ length: k }, (_, i) => cosine(e.subarray(i * E, (i + 1) * E), t));
    const best = scores.indexOf(Math.max(...scores));
    assert.ok(new Set(scores.map((s) => s.toFixed(6))).size > 1, "the candidates differ");

    const kept = await textToImage(p, [caption], { ...FAST, n: 1, rerank: k });
    assert.deepEqual(kept.shape, [1, c, h, w]);
    assert.deepEqual(kept.captions, [caption]);
    const want = all.images.subarray(best * per, (best + 1) * per);
    let diff = 0;
    for (let i = 0; i < per; i++) diff = Math.max(diff, Math.abs(kept.images[i] - want[i]));
    assert.ok(diff < 1e-5, `kept image differs from candidate ${best} by ${diff}`);

    // Several captions and images: one kept image per (caption, n), captions in order.
    const two = await textToImage(p, ["a red circle", "a blue square"], {
      ...FAST,
      n: 2,
      rerank: 2,
    });
    assert.deepEqual(two.shape, [4, c, h, w]);
    assert.deepEqual(two.captions, [
      "a red circle",
      "a red circle",
      "a blue square",
      "a blue square",
    ]);
  } finally {
    p.dispose();
  }
});

Deno.test("rerank is validated and refused where there is no caption to score against", async () => {
  const p = {} as Parameters<typeof textToImage>[0];
  await assert.rejects(textToImage(p, ["a"], { rerank: 0 }), /"rerank" must be an integer from 1/);
  await assert.rejects(textToImage(p, ["a"], { rerank: 1.5 }), /"rerank" must be an integer/);
  await assert.rejects(
    textToImage(p, ["a", "b"], { n: 300, rerank: 2 }),
    /2 captions x n 300 x rerank 2 = 1200 images, more than 1024 per call/,
  );
  await assert.rejects(
    imageVariations(p, new Float32Array(3), { rerank: 2 }),
    /imageVariations\(\) does not rerank/,
  );
  await assert.rejects(
    reconstructImages(p, new Float32Array(3), ["a"], { rerank: 3 }),
    /reconstructImages\(\) does not rerank/,
  );
});

Deno.test("sample and eval: bad --rerank is a one-line usage error before any work", async () => {
  const cases: [string, string[], RegExp][] = [
    ["sample", ["a red circle", "--rerank", "0", "--out", "/tmp/unused-r.png"], /--rerank "0"/],
    ["sample", ["a red circle", "--rerank", "x", "--out", "/tmp/unused-r.png"], /--rerank "x"/],
    [
      "sample",
      ["--image", "in.png", "--rerank", "2", "--out", "/tmp/unused-r.png"],
      /--rerank scores images against the caption; drop it with --image/,
    ],
    [
      "sample",
      ["a red circle", "--n", "600", "--rerank", "2", "--out", "/tmp/unused-r.png"],
      /--n 600 x --rerank 2 draws more than 1024 images/,
    ],
    [
      "eval",
      ["clip", "--checkpoint", DEMO, "--rerank", "2", "--out", "/tmp/unused-r.json"],
      /--rerank is for "eval pipeline" from the prior/,
    ],
    [
      "eval",
      [
        "pipeline",
        "--checkpoint",
        DEMO,
        "--from",
        "image",
        "--rerank",
        "2",
        "--out",
        "/tmp/u.json",
      ],
      /--rerank is for "eval pipeline" from the prior/,
    ],
  ];
  for (const [task, args, re] of cases) {
    const r = await cli(task, args);
    assertOneLineError(r, re);
    assert.ok(!r.stdout.includes("Device:"), `${task} ${args.join(" ")}: refused before work`);
  }
});
