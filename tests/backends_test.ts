/**
 * Both backends train alike: the tiny preset (smaller still) trains each stage for a few steps
 * once on the CPU backend and once on WebGPU, in two subprocesses (one backend per process), and
 * the loss curves agree within float32 tolerance. Skipped when the machine has no WebGPU adapter.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { builtins } from "../plugins/mod.ts";
import { loadConfig } from "../core/config_file.ts";
import { readMetrics } from "../core/train/metrics.ts";
import { hasWebGpuAdapter } from "../tools/test.ts";

const ROOT = new URL("..", import.meta.url).pathname;

/** Trains every stage for `steps` steps on `backend`; returns each stage's loss per step. */
async function train(backend: string, config: string, out: string, steps: number) {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "tasks/train.ts"),
      "all",
      "--config",
      config,
      "--out",
      out,
      "--max-steps",
      String(steps),
      "--backend",
      backend,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, `train on ${backend} failed: ${new TextDecoder().decode(stderr)}`);
  const curves: Record<string, number[]> = {};
  for (const stage of ["clip", "prior", "decoder"]) {
    curves[stage] = (await readMetrics(join(out, stage, "metrics.jsonl"))).map((r) => r.loss);
  }
  return curves;
}

Deno.test({
  name: "the tiny preset trains to the same loss curve on the CPU and on WebGPU",
  ignore: !(await hasWebGpuAdapter()),
  async fn() {
    const work = await Deno.makeTempDir({ prefix: "unclip-backends-" });
    const c = structuredClone(
      await loadConfig(join(ROOT, "presets/tiny.jsonc"), builtins()),
      // deno-lint-ignore no-explicit-any
    ) as any;
    c.components.dataset.options.trainCount = 64;
    c.components.dataset.options.testCount = 16;
    for (const stage of ["clip", "prior", "decoder"]) {
      Object.assign(c.train[stage], { logEvery: 1, checkpointEvery: 100, batchSize: 8 });
    }
    const config = join(work, "config.json");
    await Deno.writeTextFile(config, JSON.stringify(c));
    const steps = 6;
    const onCpu = await train("cpu", config, join(work, "cpu"), steps);
    const onGpu = await train("webgpu", config, join(work, "webgpu"), steps);
    for (const stage of ["clip", "prior", "decoder"]) {
      assert.equal(onCpu[stage].length, steps, `${stage}: a loss per step on the CPU`);
      assert.equal(onGpu[stage].length, steps, `${stage}: a loss per step on WebGPU`);
      for (let i = 0; i < steps; i++) {
        const [a, b] = [onCpu[stage][i], onGpu[stage][i]];
        // Same data, same seeds, same random numbers: only float32 rounding differs, and it
        // grows a little with every optimizer step.
        assert.ok(
          Math.abs(a - b) <= 2e-3 * Math.max(1, Math.abs(b)),
          `${stage} step ${i + 1}: CPU loss ${a}, WebGPU loss ${b}`,
        );
      }
    }
    await Deno.remove(work, { recursive: true });
  },
});
