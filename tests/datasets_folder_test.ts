import assert from "node:assert/strict";
import { encodePng } from "../core/deps.ts";
import { generateSplit, readFolder, writeFolder } from "../datasets/mod.ts";

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
