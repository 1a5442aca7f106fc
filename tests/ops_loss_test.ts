import assert from "node:assert/strict";
import {
  crossEntropy,
  dropout,
  embedding,
  gather,
  mse,
  ones,
  takeAlong,
  type Tensor,
  tensor,
} from "../core/tensor/mod.ts";
import { assertClose, gradCheck, randomArray } from "./_support/check.ts";

const f32 = (a: ArrayLike<number>, shape: number[]): Tensor => tensor(Float32Array.from(a), shape);
const i32 = (a: number[], shape?: number[]): Tensor =>
  tensor(Int32Array.from(a), shape ?? [a.length], "i32");

function crossEntropyRef(x: ArrayLike<number>, B: number, C: number, t: number[]): Float64Array {
  return Float64Array.from({ length: B }, (_, b) => {
    let m = -Infinity;
    for (let j = 0; j < C; j++) m = Math.max(m, x[b * C + j]);
    let s = 0;
    for (let j = 0; j < C; j++) s += Math.exp(x[b * C + j] - m);
    return m + Math.log(s) - x[b * C + t[b]];
  });
}

Deno.test("crossEntropy() matches the float64 reference", async () => {
  for (const [B, C] of [[1, 1], [3, 7], [2, 33], [4, 130]]) {
    const x = randomArray(B * C, C, -6, 6);
    const t = Array.from({ length: B }, (_, b) => (b * 5 + 3) % C);
    const per = crossEntropyRef(x, B, C, t);
    const meanRef = per.reduce((a, b) => a + b, 0) / B;
    assertClose([await crossEntropy(f32(x, [B, C]), t).item()], [meanRef], {
      atol: 1e-5,
      label: `ce mean ${C}`,
    });
    assertClose([await crossEntropy(f32(x, [B, C]), i32(t), { reduction: "sum" }).item()], [
      meanRef * B,
    ], {
      atol: 1e-4,
      label: `ce sum ${C}`,
    });
    assertClose(await crossEntropy(f32(x, [B, C]), t, { reduction: "none" }).read(), per, {
      atol: 1e-5,
      label: `ce none ${C}`,
    });
  }
});

Deno.test("crossEntropy() and mse() gradients match finite differences", async () => {
  await gradCheck((x) => crossEntropy(x, [2, 0, 2]), [{
    data: randomArray(12, 81, -2, 2),
    shape: [3, 4],
  }], {
    label: "crossEntropy mean",
  });
  await gradCheck((x) => crossEntropy(x, i32([1, 3]), { reduction: "none" }), [
    { data: randomArray(8, 82, -2, 2), shape: [2, 4] },
  ], { label: "crossEntropy none" });
  const shape = [2, 3];
  await gradCheck((a, b) => mse(a, b), [
    { data: randomArray(6, 83), shape },
    { data: randomArray(6, 84), shape },
  ], { label: "mse" });
  await gradCheck((a, b) => mse(a, b, "none"), [
    { data: randomArray(6, 85), shape },
    { data: randomArray(6, 86), shape },
  ], { label: "mse none" });
});

Deno.test("mse() matches the float64 reference", async () => {
  const a = randomArray(35, 91, -3, 3), b = randomArray(35, 92, -3, 3);
  const sq = Array.from(a, (v, i) => (v - b[i]) ** 2);
  const total = sq.reduce((s, v) => s + v, 0);
  assertClose([await mse(f32(a, [5, 7]), f32(b, [5, 7])).item()], [total / 35], {
    label: "mse mean",
  });
  assertClose([await mse(f32(a, [5, 7]), f32(b, [5, 7]), "sum").item()], [total], {
    atol: 1e-4,
    label: "mse sum",
  });
  assertClose(await mse(f32(a, [5, 7]), f32(b, [5, 7]), "none").read(), sq, { label: "mse none" });
});

Deno.test("embedding() gathers rows and scatter-adds gradients of repeated ids", async () => {
  const [V, D] = [5, 3];
  const table = randomArray(V * D, 101);
  const ids = [4, 0, 4, 2, 4, 1];
  const out = embedding(i32(ids, [2, 3]), f32(table, [V, D]));
  assert.deepEqual(out.shape, [2, 3, D]);
  assertClose(await out.read(), ids.flatMap((id) => Array.from(table.slice(id * D, id * D + D))), {
    label: "embedding",
  });
  // Small vocabulary: one thread per table element.
  await gradCheck((t) => embedding(i32(ids, [2, 3]), t), [{ data: table, shape: [V, D] }], {
    label: "embedding",
  });
  // Large vocabulary relative to the ids: first-occurrence owners.
  await gradCheck((t) => embedding(i32([7, 19, 7, 0]), t), [{
    data: randomArray(20 * 2, 102),
    shape: [20, 2],
  }], {
    label: "embedding large vocab",
  });
});

Deno.test("takeAlong() and gather() match the reference and scatter their gradients", async () => {
  const [B, T, D] = [3, 4, 2];
  const x = randomArray(B * T * D, 111);
  const idx = [3, 0, 2];
  const out = takeAlong(f32(x, [B, T, D]), i32(idx));
  assert.deepEqual(out.shape, [B, D]);
  assertClose(
    await out.read(),
    idx.flatMap((t, b) => Array.from(x.slice((b * T + t) * D, (b * T + t + 1) * D))),
    {
      label: "takeAlong",
    },
  );
  await gradCheck((t) => takeAlong(t, i32(idx)), [{ data: x, shape: [B, T, D] }], {
    label: "takeAlong",
  });
  const g = [1, 1, 0, 3, 2, 2];
  const gout = gather(f32(x.slice(0, 8), [2, 4]), -1, i32(g, [2, 3]));
  assertClose(await gout.read(), g.map((c, i) => x[Math.floor(i / 3) * 4 + c]), {
    label: "gather",
  });
  await gradCheck((t) => gather(t, 1, i32(g, [2, 3])), [{ data: x.slice(0, 8), shape: [2, 4] }], {
    label: "gather",
  });
});

Deno.test("dropout() is the identity at p = 0 or in eval, and keeps the mean at p = 0.5", async () => {
  const x = f32(randomArray(10, 121), [2, 5]);
  assert.equal(dropout(x, 0, true), x);
  assert.equal(dropout(x, 0.5, false), x);
  const n = 4096;
  const y = Array.from(await dropout(ones([n]), 0.5, true).read());
  const zeros = y.filter((v) => v === 0).length;
  assert.ok(Math.abs(zeros / n - 0.5) < 0.05, `dropped fraction ${zeros / n}`);
  assert.ok(
    y.every((v) => v === 0 || Math.abs(v - 2) < 1e-6),
    "survivors are scaled by 1 / (1 - p)",
  );
  const meanY = y.reduce((s, v) => s + v, 0) / n;
  assert.ok(Math.abs(meanY - 1) < 0.1, `mean ${meanY}`);
  // With a fixed seed the mask is fixed, so the gradient is x's mask times 1 / (1 - p).
  await gradCheck((t) => dropout(t, 0.5, true, 1234), [{
    data: randomArray(8, 122),
    shape: [2, 4],
  }], {
    label: "dropout",
  });
  await gradCheck((t) => dropout(t, 0, true), [{ data: randomArray(4, 123), shape: [4] }], {
    label: "dropout p=0",
  });
});

Deno.test("loss and index ops reject bad input naming the op and shapes", () => {
  const logits = f32(randomArray(6, 1), [2, 3]);
  assert.throws(() => crossEntropy(logits, [0]), /crossEntropy: 1 targets for logits \[2,3\]/);
  assert.throws(
    () => crossEntropy(logits, [0, 3]),
    /crossEntropy: target 3 at index 1 is not a class in \[0, 3\)/,
  );
  assert.throws(
    () => crossEntropy(logits, f32([0, 1], [2])),
    /crossEntropy: argument "targets" must be i32/,
  );
  assert.throws(() => mse(logits, f32([1, 2], [2])), /mse: shapes differ: \[2,3\] and \[2\]/);
  assert.throws(
    () => embedding(f32([0, 1], [2]), logits),
    /embedding: argument "ids" must be i32, got f32 with shape \[2\]/,
  );
  assert.throws(
    () => takeAlong(f32(randomArray(8, 2), [2, 2, 2]), i32([0])),
    /takeAlong: need x \[B, T, D\] and idx \[B\], got x \[2,2,2\] and idx \[1\]/,
  );
  assert.throws(() => gather(logits, 0, i32([0, 0, 0], [1, 3])), /gather: only the last axis/);
  assert.throws(
    () => gather(logits, 2, i32([0])),
    /gather: axis 2 is out of range for a tensor of rank 2/,
  );
  assert.throws(() => dropout(logits, 1.5, true), /dropout: probability 1.5 is not in \[0, 1\]/);
});
