import assert from "node:assert/strict";
import { join } from "node:path";
import {
  bf16ToF32,
  decodeSafetensors,
  encodeSafetensors,
  f16BitsToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  f32ToF16Bits,
  readSafetensors,
  readShardedSafetensors,
  SafetensorsError,
  type TensorData,
  type TensorMap,
  writeFileAtomic,
  writeSafetensors,
  writeShardedSafetensors,
  writeTextAtomic,
} from "../core/io/mod.ts";

function allDtypes(): TensorMap {
  return {
    f64: { dtype: "F64", shape: [2, 2], data: new Float64Array([1.5, -2.25, Math.PI, 1e300]) },
    f32: { dtype: "F32", shape: [3], data: new Float32Array([0.1, -0, Infinity]) },
    f16: { dtype: "F16", shape: [2], data: new Uint16Array([0x3c00, 0x7bff]) },
    bf16: { dtype: "BF16", shape: [1], data: new Uint16Array([0x3f80]) },
    i64: { dtype: "I64", shape: [2], data: new BigInt64Array([-(2n ** 62n), 7n]) },
    u64: { dtype: "U64", shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) },
    i32: { dtype: "I32", shape: [2], data: new Int32Array([-5, 2 ** 31 - 1]) },
    u32: { dtype: "U32", shape: [1], data: new Uint32Array([2 ** 32 - 1]) },
    i16: { dtype: "I16", shape: [1], data: new Int16Array([-300]) },
    u16: { dtype: "U16", shape: [1], data: new Uint16Array([65535]) },
    i8: { dtype: "I8", shape: [3], data: new Int8Array([-128, 0, 127]) },
    u8: { dtype: "U8", shape: [1, 3], data: new Uint8Array([1, 2, 3]) },
    bool: { dtype: "BOOL", shape: [2], data: new Uint8Array([1, 0]) },
    scalar: { dtype: "F32", shape: [], data: new Float32Array([42]) },
    empty: { dtype: "F32", shape: [0, 4], data: new Float32Array(0) },
  };
}

function vals(data: TensorData): unknown[] {
  return Array.from(data as ArrayLike<unknown>);
}

function assertTensorsEqual(actual: TensorMap, expected: TensorMap): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort());
  for (const [name, e] of Object.entries(expected)) {
    const a = actual[name];
    assert.equal(a.dtype, e.dtype, name);
    assert.deepEqual(a.shape, e.shape, name);
    assert.equal(a.data.constructor, e.data.constructor, name);
    assert.deepEqual(vals(a.data), vals(e.data), name);
  }
}

function rawFile(header: string, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("encodeSafetensors() round-trips every dtype and the metadata", () => {
  const tensors = allDtypes();
  const metadata = { format: "pt", config: JSON.stringify({ a: [1, 2] }), "ü": "ø" };
  const bytes = encodeSafetensors(tensors, metadata);
  const decoded = decodeSafetensors(bytes);
  assertTensorsEqual(decoded.tensors, tensors);
  assert.deepEqual(decoded.metadata, metadata);
  assert.ok(Object.is(decoded.tensors.f32.data[1], -0));
});

Deno.test("encodeSafetensors() pads the header with spaces and aligns tensors", () => {
  const bytes = encodeSafetensors(allDtypes(), { k: "v" });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.match(text, /^\{.*\} *$/);
  const header = JSON.parse(text);
  assert.deepEqual(header.__metadata__, { k: "v" });
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, data_offsets } = info as { dtype: string; data_offsets: number[] };
    const size = { F64: 8, I64: 8, U64: 8, F32: 4, I32: 4, U32: 4 }[dtype] ?? 1;
    assert.equal(data_offsets[0] % size, 0, `${name} aligned`);
  }
});

Deno.test("encodeSafetensors() omits empty metadata and round-trips no tensors", () => {
  const bytes = encodeSafetensors({});
  assert.equal(new TextDecoder().decode(bytes.subarray(8)).trim(), "{}");
  assert.deepEqual(decodeSafetensors(bytes), { tensors: {}, metadata: {} });
});

Deno.test("decodeSafetensors() reads a file in another tool's layout, built byte by byte", () => {
  let header = '{"__metadata__":{"format":"pt"},' +
    '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"F16","shape":[1],"data_offsets":[8,10]}}';
  while (header.length % 8 !== 0) header += " ";
  const data = new Uint8Array([
    0x00,
    0x00,
    0x80,
    0x3f, // 1.0f little-endian
    0x00,
    0x00,
    0x00,
    0xc0, // -2.0f
    0x00,
    0x3c, // half 1.0
  ]);
  const { tensors, metadata } = decodeSafetensors(rawFile(header, data));
  assert.deepEqual(metadata, { format: "pt" });
  assert.deepEqual(tensors.a.shape, [2]);
  assert.deepEqual(vals(tensors.a.data), [1, -2]);
  assert.deepEqual(Array.from(f16ToF32(tensors.b.data as Uint16Array)), [1]);
});

Deno.test("decodeSafetensors() accepts an unaligned tensor start and copies it", () => {
  const header = '{"u":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},' +
    '"f":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}}';
  const { tensors } = decodeSafetensors(rawFile(header, new Uint8Array([9, 0, 0, 0x80, 0x3f])));
  assert.deepEqual(vals(tensors.f.data), [1]);
  assert.deepEqual(vals(tensors.u.data), [9]);
});

Deno.test("decodeSafetensors() rejects corrupt and truncated input with one-line errors", () => {
  const good = encodeSafetensors({
    a: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) },
    b: { dtype: "F32", shape: [1], data: new Float32Array([3]) },
  });
  const cases: [string, Uint8Array, RegExp][] = [
    ["shorter than 8 bytes", new Uint8Array(5), /truncated/],
    ["truncated data", good.subarray(0, good.length - 1), /run past|cover/],
    ["truncated header", good.subarray(0, 20), /runs past the end.*truncated/],
    ["trailing bytes", new Uint8Array([...good, 0, 0, 0, 0]), /cover/],
  ];
  const huge = new Uint8Array(16);
  new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
  cases.push(["header too large", huge, /exceeds the 100000000-byte limit/]);
  const f = (h: string, n: number): Uint8Array => rawFile(h, new Uint8Array(n));
  cases.push(["not JSON", f("{nope", 0), /not valid UTF-8 JSON/]);
  cases.push(["not an object", f("[1]", 0), /not a JSON object/]);
  cases.push([
    "shape mismatch",
    f('{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', 8),
    /needs 12 bytes but data_offsets \[0,8\] span 8/,
  ]);
  cases.push([
    "overlap",
    f(
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
        '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
      8,
    ),
    /overlap/,
  ]);
  cases.push([
    "gap",
    f('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', 8),
    /bytes 0\.\.4 .* belong to no tensor/,
  ]);
  cases.push([
    "out of range",
    f('{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', 8),
    /run past the 8-byte data section/,
  ]);
  cases.push([
    "bad offsets",
    f('{"a":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}', 8),
    /invalid data_offsets/,
  ]);
  cases.push([
    "unknown dtype",
    f('{"a":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', 1),
    /unsupported dtype "F8_E4M3"/,
  ]);
  cases.push([
    "negative shape",
    f('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}', 0),
    /invalid shape/,
  ]);
  cases.push([
    "non-string metadata",
    f('{"__metadata__":{"step":3}}', 0),
    /metadata value for "step" is not a string: 3/,
  ]);
  for (const [what, bytes, pattern] of cases) {
    assert.throws(
      () => decodeSafetensors(bytes, "ckpt.safetensors"),
      (err: Error) => {
        assert.ok(err instanceof SafetensorsError, what);
        assert.match(err.message, /^Invalid safetensors file "ckpt\.safetensors": /, what);
        assert.match(err.message, pattern, what);
        assert.ok(!err.message.includes("\n"), `${what}: one line`);
        return true;
      },
      what,
    );
  }
  assert.throws(
    () => decodeSafetensors(new Uint8Array(3)),
    /^SafetensorsError: Invalid safetensors data: /,
  );
});

Deno.test("encodeSafetensors() rejects mismatched shapes, arrays and metadata", () => {
  assert.throws(
    () => encodeSafetensors({ a: { dtype: "F32", shape: [3], data: new Float32Array(2) } }),
    /Tensor "a" has shape "\[3\]" \(3 elements\) but 2 elements of data/,
  );
  assert.throws(
    () => encodeSafetensors({ a: { dtype: "F16", shape: [1], data: new Float32Array(1) } }),
    /needs a Uint16Array, got "Float32Array"/,
  );
  assert.throws(
    () => encodeSafetensors({}, { step: 3 as unknown as string }),
    /Metadata value for "step" must be a string/,
  );
  assert.throws(
    () => encodeSafetensors({ __metadata__: { dtype: "U8", shape: [0], data: new Uint8Array() } }),
    /reserved/,
  );
});

Deno.test("encodeSafetensors() handles subarray views without leaking neighbouring bytes", () => {
  const backing = new Float32Array([9, 1, 2, 9]);
  const bytes = encodeSafetensors({
    v: { dtype: "F32", shape: [2], data: backing.subarray(1, 3) },
  });
  assert.deepEqual(vals(decodeSafetensors(bytes).tensors.v.data), [1, 2]);
});

Deno.test("f32ToF16Bits() matches known bit patterns", () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff],
    [65519, 0x7bff], // just below the rounding boundary to infinity
    [65520, 0x7c00], // tie between 65504 and 65536 goes to even: infinity
    [1e6, 0x7c00],
    [-Infinity, 0xfc00],
    [Infinity, 0x7c00],
    [0, 0x0000],
    [-0, 0x8000],
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -14 - 2 ** -24, 0x03ff], // largest subnormal
    [2 ** -25, 0x0000], // tie between 0 and 2^-24: even is 0
    [2 ** -25 + 2 ** -35, 0x0001], // just above the tie
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 (x 2^-24): even is 2
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: even is 1
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 1+2^-10 and 1+2^-9: even is 0x3c02
    [1 + 2 ** -11 + 2 ** -20, 0x3c01], // above the tie rounds up
    [2 ** -30, 0x0000],
    [-(2 ** -30), 0x8000],
    [0.1, 0x2e66],
  ];
  for (const [value, bits] of cases) {
    assert.equal(f32ToF16Bits(value), bits, `${value} -> 0x${bits.toString(16)}`);
  }
  const nan = f32ToF16Bits(NaN);
  assert.equal(nan & 0x7c00, 0x7c00);
  assert.notEqual(nan & 0x3ff, 0);
});

Deno.test("f16BitsToF32() decodes known bit patterns", () => {
  assert.equal(f16BitsToF32(0x3c00), 1);
  assert.equal(f16BitsToF32(0x7bff), 65504);
  assert.equal(f16BitsToF32(0x0001), 2 ** -24);
  assert.equal(f16BitsToF32(0x03ff), 2 ** -14 - 2 ** -24);
  assert.equal(f16BitsToF32(0x7c00), Infinity);
  assert.equal(f16BitsToF32(0xfc00), -Infinity);
  assert.ok(Object.is(f16BitsToF32(0x8000), -0));
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
});

Deno.test("f32ToF16() and f16ToF32() round-trip every half value", () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const floats = f16ToF32(all);
  const back = f32ToF16(floats);
  for (let i = 0; i < 65536; i++) {
    const isNan = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
    if (isNan) assert.ok(Number.isNaN(floats[i]));
    else assert.equal(back[i], i, `0x${i.toString(16)}`);
  }
  // The conversion agrees with the platform's own rounding where it exists.
  const f16round = (Math as unknown as { f16round?: (x: number) => number }).f16round;
  if (f16round) {
    const src = new Float32Array(20000).map((_, i) => Math.sin(i) * 2 ** ((i % 40) - 26));
    const got = f16ToF32(f32ToF16(src));
    for (let i = 0; i < src.length; i++) assert.equal(got[i], f16round(src[i]), `${src[i]}`);
  }
});

Deno.test("f32ToBf16() rounds to nearest even and bf16ToF32() is exact", () => {
  const src = new Float32Array([1, -2, 1 + 2 ** -8, 1 + 3 * 2 ** -8, Infinity, NaN]);
  const bits = f32ToBf16(src);
  assert.deepEqual(Array.from(bits.subarray(0, 5)), [0x3f80, 0xc000, 0x3f80, 0x3f82, 0x7f80]);
  const back = bf16ToF32(bits);
  assert.deepEqual(Array.from(back.subarray(0, 5)), [1, -2, 1, 1 + 2 ** -6, Infinity]);
  assert.ok(Number.isNaN(back[5]));
});

Deno.test("writeSafetensors() and readSafetensors() round-trip a file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "m.safetensors");
    await writeSafetensors(path, allDtypes(), { step: "7" });
    const { tensors, metadata } = await readSafetensors(path);
    assertTensorsEqual(tensors, allDtypes());
    assert.deepEqual(metadata, { step: "7" });
    assert.deepEqual(await Deno.readFile(path), encodeSafetensors(allDtypes(), { step: "7" }));
    await assert.rejects(
      () => readSafetensors(join(dir, "missing.safetensors")),
      /Safetensors file ".*missing\.safetensors" does not exist/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function* failing(): Generator<Uint8Array> {
  yield new Uint8Array(1024).fill(7);
  throw new Error("disk on fire");
}

Deno.test("writeFileAtomic() leaves the old file intact when the write fails midway", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "ckpt.safetensors");
    await writeFileAtomic(path, new Uint8Array([1, 2, 3]));
    await assert.rejects(() => writeFileAtomic(path, failing()), /disk on fire/);
    assert.deepEqual(await Deno.readFile(path), new Uint8Array([1, 2, 3]));
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["ckpt.safetensors"], "no temporary file left behind");

    // A failing encoder (bad tensor) never touches the existing checkpoint either.
    await assert.rejects(() =>
      writeSafetensors(path, { a: { dtype: "F32", shape: [9], data: new Float32Array(1) } })
    );
    assert.deepEqual(await Deno.readFile(path), new Uint8Array([1, 2, 3]));

    await writeTextAtomic(path, "new");
    assert.equal(await Deno.readTextFile(path), "new");
    await assert.rejects(() => writeFileAtomic(join(dir, "no/such/dir/x"), new Uint8Array(1)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeShardedSafetensors() splits at the limit and reads back identical", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const tensors: TensorMap = {};
    for (let i = 0; i < 5; i++) {
      tensors[`layer${i}.w`] = {
        dtype: "F32",
        shape: [4, 4],
        data: new Float32Array(16).map((_, j) => i * 100 + j),
      };
    }
    tensors["big"] = { dtype: "F32", shape: [100], data: new Float32Array(100).fill(3) };
    tensors["tail"] = { dtype: "U8", shape: [3], data: new Uint8Array([1, 2, 3]) };
    // 64 bytes each: two per 128-byte shard; "big" (400 bytes) gets a shard of its own.
    const files = await writeShardedSafetensors(dir, "model", tensors, { step: "3" }, {
      maxShardBytes: 128,
    });
    assert.deepEqual(files, [1, 2, 3, 4, 5].map((i) => `model-0000${i}-of-00005.safetensors`));
    const index = JSON.parse(await Deno.readTextFile(join(dir, "model.safetensors.index.json")));
    assert.equal(index.metadata.step, "3");
    assert.deepEqual(index.weight_map, {
      "layer0.w": files[0],
      "layer1.w": files[0],
      "layer2.w": files[1],
      "layer3.w": files[1],
      "layer4.w": files[2],
      "big": files[3],
      "tail": files[4],
    });
    for (const f of files) {
      const data = (await Deno.stat(join(dir, f))).size;
      assert.ok(data > 0);
    }
    // Each shard is a plain safetensors file on its own.
    const shard = await readSafetensors(join(dir, files[3]));
    assert.deepEqual(Object.keys(shard.tensors), ["big"]);

    const back = await readShardedSafetensors(dir, "model");
    assertTensorsEqual(back.tensors, tensors);
    assert.deepEqual(Object.keys(back.tensors), Object.keys(tensors));
    assert.deepEqual(back.metadata, { step: "3" });

    // A second save with fewer shards replaces the first and removes its stale shards.
    const small = { a: tensors["tail"] };
    const files2 = await writeShardedSafetensors(dir, "model", small, { step: "4" });
    assert.deepEqual(files2, ["model-00001-of-00001.safetensors"]);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), [
      "model-00001-of-00001.safetensors",
      "model.safetensors.index.json",
    ]);
    const back2 = await readShardedSafetensors(dir, "model");
    assertTensorsEqual(back2.tensors, small);
    assert.deepEqual(back2.metadata, { step: "4" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readShardedSafetensors() accepts a plain file and refuses mixed saves", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const t = (v: number): TensorMap => ({
      a: { dtype: "F32", shape: [2], data: new Float32Array([v, v]) },
      b: { dtype: "F32", shape: [2], data: new Float32Array([v, -v]) },
    });
    await writeSafetensors(join(dir, "plain.safetensors"), t(1), { k: "v" });
    const plain = await readShardedSafetensors(dir, "plain");
    assertTensorsEqual(plain.tensors, t(1));
    assert.deepEqual(plain.metadata, { k: "v" });

    await assert.rejects(
      () => readShardedSafetensors(dir, "nothing"),
      /No checkpoint "nothing" in ".*": expected "nothing\.safetensors\.index\.json"/,
    );

    // Simulate a crash midway through renaming the shards of a second save of the same size.
    await writeShardedSafetensors(dir, "m", t(1), {}, { maxShardBytes: 8 });
    const first = await Deno.readFile(join(dir, "m-00001-of-00002.safetensors"));
    await writeShardedSafetensors(dir, "m", t(2), {}, { maxShardBytes: 8 });
    await Deno.writeFile(join(dir, "m-00001-of-00002.safetensors"), first);
    await assert.rejects(
      () => readShardedSafetensors(dir, "m"),
      /Checkpoint ".*m\.safetensors\.index\.json" is inconsistent: shard "m-00001-of-00002\.safetensors"/,
    );

    // An index written by another tool (numeric total_size, no save id) is read as is.
    await Deno.writeTextFile(
      join(dir, "hf.safetensors.index.json"),
      JSON.stringify({ metadata: { total_size: 16 }, weight_map: { a: "hf-a.safetensors" } }),
    );
    await writeSafetensors(join(dir, "hf-a.safetensors"), { a: t(5).a });
    const hf = await readShardedSafetensors(dir, "hf");
    assertTensorsEqual(hf.tensors, { a: t(5).a });
    assert.deepEqual(hf.metadata, {});

    // The weight map must agree with the shards.
    await Deno.writeTextFile(
      join(dir, "hf.safetensors.index.json"),
      JSON.stringify({ weight_map: { a: "hf-a.safetensors", z: "hf-a.safetensors" } }),
    );
    await assert.rejects(() => readShardedSafetensors(dir, "hf"), /tensor "z" is missing/);
    await Deno.writeTextFile(
      join(dir, "hf.safetensors.index.json"),
      JSON.stringify({ weight_map: { a: "../etc/passwd" } }),
    );
    await assert.rejects(() => readShardedSafetensors(dir, "hf"), /invalid shard/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
