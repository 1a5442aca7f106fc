/**
 * A model's sampling defaults stored in its config (`sampling.guidance`): what `textToImage`,
 * `sample` and `eval pipeline` use when no guidance is given, and what a given one overrides.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { builtins } from "../plugins/mod.ts";
import { initBackend } from "../core/tensor/mod.ts";
import { decoderGuidance, loadPipeline, textToImage } from "../core/pipeline.ts";
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

Deno.test("a checkpoint without sampling settings samples with guidance 2", async () => {
  const p = await loadPipeline(DEMO, builtins());
  try {
    assert.deepEqual(p.config.sampling, { guidance: 2 });
    assert.equal(decoderGuidance(p, {}), 2);
    assert.equal(decoderGuidance(p, { guidance: 0 }), 0);
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
