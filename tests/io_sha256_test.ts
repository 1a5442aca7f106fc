// The pure-TypeScript SHA-256 (used for checkpoint identities so that the sampling path needs no
// node:crypto) must equal node:crypto's on every split of every length around block edges.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Sha256 } from "../core/io/sha256.ts";

Deno.test("Sha256 equals node:crypto sha256, whole and in pieces", () => {
  assert.equal(
    new Sha256().hex(),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  const data = new Uint8Array(1000).map((_, i) => (i * 131 + 7) & 255);
  for (const n of [1, 3, 55, 56, 63, 64, 65, 119, 120, 128, 200, 1000]) {
    const msg = data.subarray(0, n);
    const want = createHash("sha256").update(msg).digest("hex");
    assert.equal(new Sha256().update(msg).hex(), want, `length ${n}`);
    const cut = Math.floor(n / 3);
    const pieces = new Sha256().update(msg.subarray(0, cut)).update(msg.subarray(cut, n - 1))
      .update(msg.subarray(n - 1));
    assert.equal(pieces.hex(), want, `length ${n} in pieces`);
  }
});
