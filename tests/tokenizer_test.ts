import assert from "node:assert/strict";
import { generateSplit } from "../datasets/mod.ts";
import {
  BpeTokenizer,
  bpeTokenizerPlugin,
  captionWords,
  END_ID,
  PAD_ID,
  START_ID,
} from "../plugins/tokenizers/mod.ts";

const text = (tok: BpeTokenizer, id: number) => new TextDecoder().decode(tok.tokenBytes(id));

const captions = [
  ...generateSplit({ set: 1, count: 2000, size: 1, seed: 1 }),
  ...generateSplit({ set: 2, count: 2000, size: 1, seed: 1 }),
].map((s) => s.caption);
const tok = BpeTokenizer.train(captions, { vocabSize: 512 });

Deno.test("BpeTokenizer.train() learns the expected merges on a tiny corpus", () => {
  const t = BpeTokenizer.train(["aaa", "AAA", "ab"], { vocabSize: 300 });
  // " aaa" x2 and " ab": "aa" (4) first, then " aa" (2, ties broken by smallest ids), " aaa",
  // " a", " ab"; then every chunk is one token and training stops.
  assert.deepEqual(t.merges, [[100, 100], [35, 259], [260, 100], [35, 100], [262, 101]]);
  assert.deepEqual(t.merges.map((_, i) => text(t, 259 + i)), ["aa", " aa", " aaa", " a", " ab"]);
  assert.deepEqual(t.tokenize("aaa ab aa"), [261, 263, 260]);
  assert.equal(t.usedSize, 264);
  assert.equal(t.vocabSize, 300);
  const small = BpeTokenizer.train(["aaa", "aaa", "ab"], { vocabSize: 261 });
  assert.equal(small.merges.length, 2);
});

Deno.test("BpeTokenizer makes every caption word one token and round-trips", () => {
  assert.ok(tok.usedSize <= 512);
  assert.deepEqual(tok.tokenize("a large cyan pentagon").map((id) => text(tok, id)), [
    " a",
    " large",
    " cyan",
    " pentagon",
  ]);
  for (const c of captions.slice(0, 200)) {
    const row = tok.encode(c);
    assert.equal(row.length, 33);
    assert.equal(row[0], START_ID);
    assert.equal(tok.decode(row), c);
    const end = tok.endIndices(row)[0];
    assert.equal(row[end], END_ID);
    assert.equal(end, c.split(" ").length + 1);
    assert.ok(row.subarray(end + 1).every((id) => id === PAD_ID));
  }
  assert.equal(tok.decode(tok.encode("  The RED   Circle ")), "the red circle");
});

Deno.test("BpeTokenizer falls back to bytes for unseen words and any Unicode", () => {
  for (const t of ["a crimson hexagon", "a rde circel", "ein grüner Kreis ☺", "42 shapes!?"]) {
    const row = tok.encode(t);
    assert.equal(tok.decode(row), t.toLowerCase());
  }
  assert.ok(tok.tokenize("zqxj").length >= 2);
  assert.equal(
    tok.encode("").join(","),
    [START_ID, END_ID, ...new Array(31).fill(PAD_ID)].join(","),
  );
});

Deno.test("BpeTokenizer.encode() throws or truncates when too long", () => {
  const long = Array.from({ length: 40 }, () => "red").join(" ");
  assert.throws(
    () => tok.encode(long),
    // The message quotes the first 60 characters of the caption, then "...".
    new RegExp(
      `^Error: Caption "${
        long.slice(0, 60)
      }\\.\\.\\." is 42 tokens, longer than the context length 33$`,
    ),
  );
  const t = new BpeTokenizer(tok.merges, { overflow: "truncate" });
  const row = t.encode(long);
  assert.equal(row[32], END_ID);
  assert.equal(t.endIndices(row)[0], 32);
  assert.equal(t.decode(row), Array.from({ length: 31 }, () => "red").join(" "));
});

Deno.test("BpeTokenizer.encodeBatch() packs rows and endIndices() finds each end token", () => {
  const batch = tok.encodeBatch(["a red circle", "the small blue square and a gold ellipse"]);
  assert.equal(batch.length, 66);
  assert.deepEqual([...tok.endIndices(batch)], [4, 9]);
  assert.deepEqual(batch.subarray(0, 33), tok.encode("a red circle"));
});

Deno.test("BpeTokenizer.toJSON() and fromJSON() restore the same tokenizer", () => {
  const json = JSON.parse(JSON.stringify(tok));
  const back = BpeTokenizer.fromJSON(json);
  assert.deepEqual(back.merges, tok.merges);
  assert.deepEqual(
    back.encode("a purple triangle at the top"),
    tok.encode("a purple triangle at the top"),
  );
  assert.throws(
    () => BpeTokenizer.fromJSON({ ...json, merges: "x" }),
    /Saved tokenizer is invalid at "merges"/,
  );
  assert.throws(
    () => BpeTokenizer.fromJSON({ ...json, merges: [[1000, 3]] }),
    /refers to a later token/,
  );
});

Deno.test("bpeTokenizerPlugin.create() trains from captions or restores a saved vocabulary", () => {
  assert.equal(bpeTokenizerPlugin.kind, "tokenizer");
  assert.equal(bpeTokenizerPlugin.name, "bpe");
  const options = bpeTokenizerPlugin.options.parse({});
  assert.deepEqual(options, { vocabSize: 512, contextLength: 33 });
  assert.throws(() => bpeTokenizerPlugin.options.parse({ vocabSize: 100 }));
  assert.throws(() => bpeTokenizerPlugin.options.parse({ vocabsize: 512 }));
  const trained = bpeTokenizerPlugin.create(options, { captions: captions.slice(0, 500) });
  assert.equal(trained.decode(trained.encode("a red circle")), "a red circle");
  const restored = bpeTokenizerPlugin.create(options, { state: trained.toJSON() });
  assert.deepEqual(restored.merges, trained.merges);
  assert.throws(
    () =>
      bpeTokenizerPlugin.create({ vocabSize: 600, contextLength: 33 }, { state: trained.toJSON() }),
    /config asks for "600"/,
  );
  assert.throws(() => bpeTokenizerPlugin.create(options), /needs training captions/);
});

Deno.test("BpeTokenizer records its training words and names a caption's unseen ones", () => {
  // The shapes captions know colours and shapes, not dragons, emoji or French.
  assert.deepEqual(tok.unseenWords("A Purple  dragon"), ["dragon"]);
  assert.deepEqual(tok.unseenWords("a red circle 🙂🙂"), ["🙂🙂"]);
  assert.deepEqual(tok.unseenWords("un cercle rouge"), ["un", "cercle", "rouge"]);
  assert.deepEqual(tok.unseenWords("a red circle and a blue square"), []);
  assert.deepEqual(captionWords(["A red circle", "a blue circle!"]), [
    "a",
    "red",
    "circle",
    "blue",
    "!",
  ]);
  // Stored with the vocabulary, so checkpoints made from now on can warn.
  const back = BpeTokenizer.fromJSON(JSON.parse(JSON.stringify(tok)));
  assert.deepEqual(back.words, tok.words);
  assert.deepEqual(back.unseenWords("a purple dragon"), ["dragon"]);
  // An older saved tokenizer (no words, like weights/default's) cannot tell: undefined, not [].
  const { words: _, ...old } = tok.toJSON();
  const oldTok = BpeTokenizer.fromJSON(old);
  assert.equal(oldTok.unseenWords("a purple dragon"), undefined);
  assert.deepEqual(oldTok.toJSON(), old, "an old tokenizer's JSON is unchanged");
});
