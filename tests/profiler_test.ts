/**
 * The op profiler (core/tensor/profiler.ts): which rows a forward and backward pass produce, with
 * how many calls; gradients unchanged by profiling; shapes, sections and gradient sums; the
 * table; one profile at a time, closed on failure.
 */
import assert from "node:assert/strict";
import {
  activeProfile,
  backendKind,
  matmul,
  mul,
  type OpTiming,
  profileOps,
  relu,
  scope,
  startProfile,
  stopProfile,
  sum,
  type Tensor,
} from "../core/tensor/mod.ts";
import { param, randomArray } from "./_support/check.ts";

/** The rows of one op in one phase (all shapes together). */
function rowsOf(rows: OpTiming[], op: string, phase: OpTiming["phase"]): OpTiming[] {
  return rows.filter((r) => r.op === op && r.phase === phase);
}

function calls(rows: OpTiming[], op: string, phase: OpTiming["phase"]): number {
  return rowsOf(rows, op, phase).reduce((n, r) => n + r.calls, 0);
}

/** sum(relu(x w) w2): two matmuls, a relu and a sum, each once. */
function mlpLoss(x: Tensor, w: Tensor, w2: Tensor): Tensor {
  return sum(matmul(relu(matmul(x, w)), w2));
}

Deno.test("profileOps times each op's forward and backward, and leaves the gradients as they were", async () => {
  const x = param(randomArray(6 * 5, 1), [6, 5]);
  const w = param(randomArray(5 * 4, 2), [5, 4]);
  const w2 = param(randomArray(4 * 3, 3), [4, 3]);
  scope(() => mlpLoss(x, w, w2).backward());
  const plain = await w.grad!.read();
  w.grad!.dispose();
  w.grad = null;

  const { profile } = profileOps(() => scope(() => mlpLoss(x, w, w2).backward()));
  const rows = profile.rows();
  assert.deepEqual([...(await w.grad!.read())], [...plain]); // bit for bit
  assert.equal(calls(rows, "matmul", "forward"), 2);
  assert.equal(calls(rows, "relu", "forward"), 1);
  assert.equal(calls(rows, "sum", "forward"), 1);
  assert.equal(calls(rows, "matmul", "backward"), 2);
  assert.equal(calls(rows, "relu", "backward"), 1);
  assert.equal(calls(rows, "sum", "backward"), 1);
  // The ops the gradient functions run (matmuls, expand, ...) are theirs, not forward rows.
  const forwardOps = new Set(rows.filter((r) => r.phase === "forward").map((r) => r.op));
  assert.deepEqual([...forwardOps].sort(), ["matmul", "relu", "reshape", "sum"]); // sum reshapes
  for (const r of rows) assert.ok(r.ms >= 0 && Number.isFinite(r.ms), `${r.op}: ${r.ms} ms`);
  assert.ok(profile.attributedMs <= profile.wallMs + 1e-6);
  assert.deepEqual(rows.map((r) => r.ms), [...rows.map((r) => r.ms)].sort((a, b) => b - a));
  for (const p of [x, w, w2]) {
    p.grad?.dispose();
    p.dispose();
  }
});

Deno.test("a profile keys rows by input shapes with byShape, and counts gradient sums", () => {
  const x = param(randomArray(2 * 3, 4), [2, 3]);
  const w = param(randomArray(3 * 4, 5), [3, 4]);
  const { profile } = profileOps(() =>
    scope(() => {
      // x reaches the loss twice (x * x), so its two gradients are summed.
      sum(matmul(mul(x, x), w)).backward();
    }), { byShape: true });
  const rows = profile.rows();
  const mm = rowsOf(rows, "matmul", "forward");
  assert.equal(mm.length, 1);
  assert.equal(mm[0].shapes, "[2,3] [3,4]");
  assert.equal(rowsOf(rows, "mul", "backward")[0].shapes, "[2,3] [2,3]");
  assert.equal(calls(rows, "(accumulate)", "backward"), 1);
  for (const p of [x, w]) {
    p.grad?.dispose();
    p.dispose();
  }
});

Deno.test("a section is one row; ops after stopProfile are not timed", () => {
  const x = param(randomArray(8 * 8, 6), [8, 8]);
  const profile = startProfile();
  profile.section("update", () => scope(() => matmul(x, x)));
  const open = profile.rows();
  const done = stopProfile();
  scope(() => matmul(x, x));
  assert.equal(done, profile);
  assert.deepEqual(open.map((r) => [r.op, r.phase, r.calls]), [["update", "section", 1]]);
  assert.deepEqual(done.rows().map((r) => [r.op, r.phase, r.calls]), [["update", "section", 1]]);
  x.dispose();
});

Deno.test("a section around a backward pass is one row, counted once", () => {
  const x = param(randomArray(8 * 8, 8), [8, 8]);
  const { profile } = profileOps(() =>
    startProfileSection(() => scope(() => sum(relu(matmul(x, x))).backward()))
  );
  const rows = profile.rows();
  // The forward ops before the section have rows; nothing inside the section has.
  assert.deepEqual(rows.filter((r) => r.phase !== "forward").map((r) => r.op), ["step"]);
  assert.ok(profile.attributedMs <= profile.wallMs + 1e-6);
  x.grad?.dispose();
  x.dispose();
});

Deno.test("profileOps hands its function the profile it opened", () => {
  const { result, profile } = profileOps((open) => open === activeProfile() ? open : null);
  assert.equal(result, profile);
  assert.equal(activeProfile(), null);
});

/** Runs `fn` as the section "step" of the open profile. */
function startProfileSection<T>(fn: () => T): T {
  return activeProfile()!.section("step", fn);
}

Deno.test("profileOps refuses an async function and leaves no profile open", async () => {
  assert.throws(
    () => profileOps(() => Promise.resolve(1)),
    /returned a promise.*call startProfile\(\) and stopProfile\(\) around the awaited work/,
  );
  assert.equal(activeProfile(), null);
  await Promise.resolve();
});

Deno.test("one profile at a time, closed when the profiled function throws", () => {
  assert.throws(() => stopProfile(), /no profile is open; call startProfile\(\) first/);
  startProfile();
  assert.throws(() => startProfile(), /already open; call stopProfile\(\) first/);
  stopProfile();
  assert.throws(() =>
    profileOps(() => {
      throw new Error("boom");
    }), /boom/);
  startProfile();
  stopProfile();
});

Deno.test("the profile's table: device, totals, one line per row, per-step means", () => {
  const x = param(randomArray(4 * 4, 7), [4, 4]);
  const { profile } = profileOps(() => {
    for (let i = 0; i < 2; i++) scope(() => sum(relu(x)).backward());
  });
  const table = profile.format({ perStep: 2 });
  const lines = table.split("\n");
  assert.match(
    lines[0],
    /^op profile on .+, per step \(mean of 2\): [\d.]+ ms in ops of [\d.]+ ms/,
  );
  assert.equal(lines[0].includes("host time"), backendKind() === "webgpu");
  assert.equal(profile.synchronous, backendKind() === "cpu");
  assert.match(lines[1], /^op +calls +ms +ms\/call +share$/);
  const relu1 = lines.find((l) => l.startsWith("relu forward"));
  assert.ok(relu1, table);
  assert.match(relu1, /^relu forward +1 /); // two calls over two steps
  assert.equal(lines.length, 2 + profile.rows().length);
  assert.equal(profile.format({ limit: 1 }).split("\n").length, 3);
  // An op that ran in some steps only: calls per step with a decimal.
  assert.match(profile.format({ perStep: 4 }), /\nrelu forward +0\.5 /);
  x.grad?.dispose();
  x.dispose();
});
