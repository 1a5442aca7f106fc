import assert from "node:assert/strict";
import { z } from "../core/deps.ts";
import { definePlugin, editDistance, nearestName, Registry } from "../core/registry.ts";
import { builtins } from "../plugins/mod.ts";
import { loadPluginModule } from "../core/config.ts";
import { NoiseSchedule } from "../core/diffusion/mod.ts";

const unet = definePlugin({
  kind: "decoder",
  name: "unet",
  options: z.object({ channels: z.array(z.number().int()).default([64, 128, 256]) }).strict(),
  create: (o) => ({ channels: o.channels }) as never, // stand-ins: plain values, not components
});
const vit = definePlugin({
  kind: "decoder",
  name: "vit",
  options: z.object({}).strict(),
  create: () => "vit" as never,
});

Deno.test("Registry.register() rejects a duplicate kind and name", () => {
  const r = new Registry().register(unet);
  assert.throws(
    () => r.register({ ...unet }),
    /A decoder plugin named "unet" is already registered/,
  );
  // Same name under another kind is fine.
  r.register({ ...unet, kind: "prior" });
  assert.equal(r.list().length, 2);
});

Deno.test("Registry.register() rejects something that is not a definition", () => {
  assert.throws(
    () => new Registry().register({ kind: "decoder", name: "x" } as never),
    /Not a plugin definition/,
  );
});

Deno.test("Registry.lookup() suggests the nearest name and lists valid ones", () => {
  const r = new Registry().register(unet).register(vit);
  assert.equal(r.lookup("decoder", "unet"), unet);
  assert.throws(
    () => r.lookup("decoder", "unte"),
    { message: 'Unknown decoder plugin "unte". Did you mean "unet"? Valid: unet, vit' },
  );
  assert.throws(
    () => r.lookup("decoder", "completely-different"),
    { message: 'Unknown decoder plugin "completely-different". Valid: unet, vit' },
  );
  assert.throws(() => r.lookup("prior", "x"), /No prior plugins are registered/);
});

Deno.test("Registry.list() orders by kind then name", () => {
  const r = new Registry().register(vit).register(unet).register({ ...vit, kind: "tokenizer" });
  assert.deepEqual(r.list().map((d) => `${d.kind}/${d.name}`), [
    "tokenizer/vit",
    "decoder/unet",
    "decoder/vit",
  ]);
  assert.deepEqual(r.list("decoder").map((d) => d.name), ["unet", "vit"]);
});

Deno.test("Registry.use() validates options, fills defaults and creates", async () => {
  const r = new Registry().register(unet);
  assert.deepEqual(await r.use("decoder", "unet", {}), { channels: [64, 128, 256] });
  assert.deepEqual(await r.use("decoder", "unet", { channels: [8] }), { channels: [8] });
  await assert.rejects(
    () => r.use("decoder", "unet", { chanels: [8] }),
    /Invalid options for decoder plugin "unet": Unrecognized key/,
  );
});

Deno.test("builtins() holds the schedule plugins", async () => {
  const r = builtins();
  assert.deepEqual(r.names("schedule"), ["cosine", "linear"]);
  const s = await r.use<NoiseSchedule>("schedule", "cosine", { steps: 300 });
  assert.ok(s instanceof NoiseSchedule);
  assert.equal(s.numSteps, 300);
});

Deno.test("editDistance() counts transpositions as one edit", () => {
  assert.equal(editDistance("unte", "unet"), 1);
  assert.equal(editDistance("", "abc"), 3);
  assert.equal(editDistance("kitten", "sitting"), 3);
  assert.equal(nearestName("chanels", ["channels", "heads"]), "channels");
  assert.equal(nearestName("zzzz", ["channels", "heads"]), undefined);
});

Deno.test("loadPluginModule() explains a failed import", async () => {
  await assert.rejects(
    () => loadPluginModule(new Registry(), "./does_not_exist.ts", "/tmp"),
    (e: Error) =>
      e.message.includes('"./does_not_exist.ts"') && e.message.includes("--allow-import"),
  );
});
