/** tools/gpu/report.ts: the ours/PyTorch markdown table for docs/benchmarks.md. */
import assert from "node:assert/strict";
import { reportMarkdown } from "../tools/gpu/report.ts";

Deno.test("tools/gpu/report.ts: ratios, targets, host time, and how each side was timed", () => {
  const ours = {
    date: "2026-12-04T12:00:00Z",
    timing: "pipelined",
    results: [
      { name: "sync round trip", ms: 11.2 },
      { name: "matmul 1024x1024x1024", ms: 0.3, gflops: 7158, hostMs: 0.03, dispatches: 1 },
      { name: "train step decoder B64", ms: 120, hostMs: 60, dispatches: 1828 },
    ],
  };
  const torch = {
    device: "NVIDIA H200",
    torch: "2.11.0",
    timing: "synced",
    results: [
      { name: "matmul 1024x1024x1024", ms: 0.1, gflops: 21475 },
      { name: "train step decoder B64", ms: 100 },
      { name: "train step clip B256", ms: 14 },
    ],
  };
  const md = reportMarkdown(ours, torch);
  const lines = md.split("\n");
  assert.ok(lines[0] === "## NVIDIA H200, 2026-12-04", lines[0]);
  assert.ok(
    md.includes(
      "Ours: means of repetitions run back to back, one sync at the end; PyTorch: medians",
    ),
    "says the two sides were timed differently",
  );
  const row = (name: string) =>
    lines.find((l) => l.startsWith(`| ${name} |`))!.split("|").map((c) => c.trim()).slice(1, -1);
  assert.deepEqual(row("matmul 1024x1024x1024").slice(5, 9), [
    "3.00x",
    "<= 2x: missed",
    "0.03",
    "1",
  ]);
  assert.deepEqual(row("train step decoder B64").slice(5, 9), [
    "1.20x",
    "<= 3x: met",
    "60.00",
    "1828",
  ]);
  assert.equal(row("sync round trip")[2], "-", "no PyTorch twin");
  assert.equal(row("train step clip B256")[1], "not measured");
  const same = reportMarkdown({ ...ours, timing: "pipelined" }, { ...torch, timing: "pipelined" });
  assert.ok(same.includes("Both: means of repetitions run back to back"), "one line when alike");
});
