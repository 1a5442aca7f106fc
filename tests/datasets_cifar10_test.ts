import assert from "node:assert/strict";
import { CIFAR10_CLASSES, readCifar10 } from "../datasets/mod.ts";

function record(label: number, r: number, g: number, b: number): Uint8Array {
  const rec = new Uint8Array(3073);
  rec[0] = label;
  rec.fill(r, 1, 1025);
  rec.fill(g, 1025, 2049);
  rec.fill(b, 2049, 3073);
  rec[1 + 5] = 7; // red of pixel (5, 0)
  return rec;
}

Deno.test("readCifar10() reads the binary layout with class names as captions", async () => {
  const root = await Deno.makeTempDir();
  try {
    const dir = `${root}/cifar-10-batches-bin`;
    Deno.mkdirSync(dir);
    const recs = [record(3, 10, 20, 30), record(9, 1, 2, 3)];
    const bytes = new Uint8Array(3073 * 2);
    bytes.set(recs[0]);
    bytes.set(recs[1], 3073);
    Deno.writeFileSync(`${dir}/test_batch.bin`, bytes);
    for (const path of [dir, root]) {
      const test = readCifar10(path, { split: "test" });
      assert.equal(test.length, 2);
      assert.equal(test[0].caption, "cat");
      assert.equal(test[1].caption, CIFAR10_CLASSES[9]);
      assert.equal(test[0].classIndex, 3);
      assert.equal(test[0].width, 32);
      assert.deepEqual([...test[0].image.subarray(0, 3)], [10, 20, 30]);
      assert.deepEqual([...test[0].image.subarray(15, 18)], [7, 20, 30]);
    }
    assert.equal(readCifar10(dir, { split: "test", limit: 1 }).length, 1);
    assert.throws(
      () => readCifar10(dir),
      /CIFAR-10 file ".*data_batch_1.bin" not found; download https:\/\/www.cs.toronto.edu\/~kriz\/cifar-10-binary.tar.gz/,
    );
    Deno.writeFileSync(`${dir}/test_batch.bin`, bytes.subarray(0, 100));
    assert.throws(
      () => readCifar10(dir, { split: "test" }),
      /is 100 bytes, not a multiple of 3073/,
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
