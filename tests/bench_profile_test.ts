/**
 * `deno task bench --profile`: the op table printed after each model's training-step rows, and
 * the flag errors raised before any work.
 */
import assert from "node:assert/strict";
import { runBench } from "../tasks/bench.ts";
import { UsageError } from "../tasks/_cli.ts";

/** Runs `fn` with console.log captured; returns what it printed. */
async function captured(fn: () => Promise<unknown>): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => lines.push(a.map(String).join(" "));
  try {
    await fn();
  } finally {
    console.log = log;
  }
  return lines.join("\n");
}

Deno.test("bench --profile prints each model's op table after its clipped training step", async () => {
  const out = await captured(() =>
    runBench(["--only", "train", "--preset", "tiny", "--reps", "1", "--profile"])
  );
  for (const model of ["clip", "prior", "decoder"]) {
    const at = out.indexOf(`train step ${model} B`);
    assert.ok(at >= 0, out);
    assert.match(
      out,
      new RegExp(`train step ${model} B\\d+ \\+ grad clip: op profile on .+ ms in ops of .+ ms`),
    );
  }
  // The decoder's table: its convolutions both ways and the optimizer as one section.
  const decoder = out.slice(out.indexOf("train step decoder B"));
  assert.match(decoder, /\nconv2d forward +\d+ /);
  assert.match(decoder, /\nconv2d backward +\d+ /);
  assert.match(decoder, /\noptimizer update \(Adam\) section +1 /);
});

Deno.test("bench's profile flags are checked before the run", async () => {
  await assert.rejects(
    () => runBench(["--only", "matmul", "--profile"]),
    (e: Error) => e instanceof UsageError && /add train to --only/.test(e.message),
  );
  await assert.rejects(
    () => runBench(["--by-shape"]),
    (e: Error) => e instanceof UsageError && /--by-shape goes with --profile/.test(e.message),
  );
});
