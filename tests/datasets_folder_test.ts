import assert from "node:assert/strict";
import { join } from "node:path";
import { builtins } from "../plugins/mod.ts";
import { loadConfig } from "../core/config_file.ts";
import { encodePng } from "../core/deps.ts";
import { checkPngSize, pngSize } from "../core/io/png.ts";
import { createDataset } from "../core/pipeline.ts";
import { generateSplit, readFolder, writeFolder } from "../datasets/mod.ts";
import { hugePng } from "./_support/huge_png.ts";

Deno.test("writeFolder() and readFolder() round-trip images, captions and labels", async () => {
  const root = await Deno.makeTempDir();
  try {
    const samples = generateSplit({ set: 2, split: "test", count: 12, seed: 1 });
    const dir = `${root}/nested/out`;
    await writeFolder(dir, samples);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names.slice(0, 2), ["00000.png", "00001.png"]);
    assert.ok(names.includes("captions.jsonl"));
    assert.equal(names.length, 13);
    // Nothing left behind but the folder itself.
    assert.deepEqual([...Deno.readDirSync(`${root}/nested`)].map((e) => e.name), ["out"]);
    const first = JSON.parse(Deno.readTextFileSync(`${dir}/captions.jsonl`).split("\n")[0]);
    assert.equal(first.file, "00000.png");
    assert.equal(first.caption, samples[0].caption);
    const back = await readFolder(dir, { size: 32 });
    assert.equal(back.length, samples.length);
    back.forEach((b, i) => {
      assert.deepEqual(b.image, samples[i].image);
      assert.equal(b.caption, samples[i].caption);
      assert.deepEqual(b.labels, samples[i].labels);
      assert.equal(b.width, 32);
    });
    await assert.rejects(() => writeFolder(dir, samples), /Output folder ".*out" already exists/);
    assert.equal((await readFolder(dir, { limit: 3 })).length, 3);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("readFolder() reads user PNGs without labels and reports bad lines and sizes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const rgba = new Uint8Array(4 * 4 * 4).fill(200);
    Deno.writeFileSync(`${dir}/a.png`, encodePng({ width: 4, height: 4, data: rgba, channels: 4 }));
    const grey = new Uint8Array(8 * 8).fill(10);
    Deno.writeFileSync(`${dir}/b.png`, encodePng({ width: 8, height: 8, data: grey, channels: 1 }));
    const write = (lines: string[]) =>
      Deno.writeTextFileSync(`${dir}/captions.jsonl`, lines.join("\n"));

    write([JSON.stringify({ file: "a.png", caption: "my own picture" })]);
    const [a] = await readFolder(dir);
    assert.equal(a.caption, "my own picture");
    assert.equal(a.labels, undefined);
    assert.deepEqual([...a.image.subarray(0, 3)], [200, 200, 200]);

    write([JSON.stringify({ file: "a.png", caption: "x" }), "", "{not json"]);
    await assert.rejects(() => readFolder(dir), /^Error: Malformed line 3 of ".*captions.jsonl"/);
    write([JSON.stringify({ file: "a.png" })]);
    await assert.rejects(() => readFolder(dir), /Malformed line 1 .*"caption"/);
    write([JSON.stringify({ file: "a.png", caption: "x", labels: [{ shape: "hexagon" }] })]);
    await assert.rejects(() => readFolder(dir), /Malformed line 1 .*"labels.0.shape"/);
    write([JSON.stringify({ file: "../a.png", caption: "x" })]);
    await assert.rejects(() => readFolder(dir), /Malformed line 1 .*inside the folder/);
    write([
      JSON.stringify({ file: "a.png", caption: "x" }),
      JSON.stringify({ file: "b.png", caption: "y" }),
    ]);
    await assert.rejects(() => readFolder(dir), /Image ".*b.png" is 8x8, expected 4x4/);
    await assert.rejects(
      () => readFolder(dir, { size: 32 }),
      /Image ".*a.png" is 4x4, expected 32x32/,
    );
    write([JSON.stringify({ file: "missing.png", caption: "x" })]);
    await assert.rejects(() => readFolder(dir), /Image ".*missing.png" listed on line 1/);
    await assert.rejects(
      () => readFolder(`${dir}/nope`),
      /Captions file ".*nope\/captions.jsonl" not found/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFolder() refuses an unwritable folder and leaves nothing behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    Deno.writeTextFileSync(`${dir}/file`, "x");
    const samples = generateSplit({ count: 2 });
    await assert.rejects(
      () => writeFolder(`${dir}/file/out`, samples),
      /Output folder ".*file\/out"/,
    );
    await assert.rejects(
      () => writeFolder(`${dir}/file`, samples),
      /Output folder ".*file" cannot be used/,
    );
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["file"]);
    // An empty existing folder is fine.
    Deno.mkdirSync(`${dir}/empty`);
    await writeFolder(`${dir}/empty`, samples);
    assert.equal([...Deno.readDirSync(`${dir}/empty`)].length, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readFolder() refuses a PNG declaring a huge size from its header, before decoding", async () => {
  const dir = await Deno.makeTempDir();
  try {
    Deno.writeFileSync(`${dir}/big.png`, hugePng(12000));
    Deno.writeTextFileSync(
      `${dir}/captions.jsonl`,
      JSON.stringify({ file: "big.png", caption: "x" }) + "\n",
    );
    // Without a required size the limit applies; with one, the header is compared to it.
    await assert.rejects(
      () => readFolder(dir),
      /^Error: Image ".*big\.png" is 12000x12000 pixels, more than the limit of 4096x4096/,
    );
    await assert.rejects(
      () => readFolder(dir, { size: 32 }),
      /^Error: Image ".*big\.png" is 12000x12000 pixels, more than the limit/,
    );
    Deno.writeFileSync(`${dir}/big.png`, new TextEncoder().encode("GIF89a, not a PNG at all"));
    await assert.rejects(() => readFolder(dir), /Image ".*big\.png" is not a PNG file/);
    assert.deepEqual(pngSize(hugePng(5000)), { width: 5000, height: 5000 });
    assert.throws(() => checkPngSize(hugePng(4097), "x.png"), /limit of 4096x4096/);
    assert.deepEqual(checkPngSize(hugePng(4096), "x.png"), { width: 4096, height: 4096 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig(): folder-dataset paths are relative to the config file, absolute ones kept", async () => {
  const root = await Deno.makeTempDir();
  try {
    // A config in <root>/configs naming its data "../data/train": found from any working folder.
    await writeFolder(`${root}/data/train`, generateSplit({ count: 3, size: 16 }));
    await Deno.mkdir(`${root}/configs`);
    const config = {
      name: "mine",
      components: {
        ...(await loadConfig("presets/tiny.jsonc", builtins())).components,
        dataset: {
          plugin: "folder",
          options: { train: "../data/train", test: `${root}/data/train`, imageSize: 16 },
        },
      },
    };
    const path = `${root}/configs/mine.json`;
    await Deno.writeTextFile(path, JSON.stringify(config));
    const loaded = await loadConfig(path, builtins());
    assert.equal(loaded.components.dataset.options.train, join(root, "data", "train"));
    assert.equal(loaded.components.dataset.options.test, `${root}/data/train`);
    assert.equal(loaded.components.dataset.options.zeroshot, undefined);
    const train = await (await createDataset(loaded, builtins())).split("train");
    assert.equal(train.length, 3);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
