/**
 * GPU memory reaches a steady state: 50 training steps of a small model (Linear + LayerNorm +
 * TransformerBlock, Adam), each inside `scope`, create no new pool buffers after the first steps,
 * the optimizer's fused kernels compile no new pipelines after them either, and on WebGPU the
 * launches reuse their bind groups (the pool hands out the same buffers in the same order).
 */
import assert from "node:assert/strict";
import "./_support/check.ts";
import { LayerNorm, Linear, Module, TransformerBlock } from "../core/nn/mod.ts";
import { Adam, clipGradNorm, Ema, gradNorm, learningRateAt } from "../core/optim/mod.ts";
import { engineStats, manualSeed, mse, randn, scope, type Tensor } from "../core/tensor/mod.ts";
import { SizeClassPool } from "../core/tensor/pool.ts";

class Small extends Module {
  readonly inp: Linear;
  readonly ln: LayerNorm;
  readonly block: TransformerBlock;
  readonly head: Linear;
  constructor() {
    super();
    this.inp = this.addModule("inp", new Linear(6, 16));
    this.ln = this.addModule("ln", new LayerNorm(16));
    this.block = this.addModule(
      "block",
      new TransformerBlock(16, 2, { causal: true, mlpRatio: 2 }),
    );
    this.head = this.addModule("head", new Linear(16, 3));
  }
  forward(x: Tensor): Tensor {
    return this.head.forward(this.block.forward(this.ln.forward(this.inp.forward(x))));
  }
}

Deno.test("50 training steps inside scope allocate no new GPU buffers or pipelines after the first two", async () => {
  manualSeed(3);
  const model = new Small();
  const x = randn([2, 5, 6]).keep(), y = randn([2, 5, 3]).keep();
  const opt = new Adam(model.parameters(), { lr: 1e-3, weightDecay: 0.01, decoupled: true });
  const ema = new Ema(model.parameters(), 0.99, { warmup: true });
  const losses: number[] = [];
  let after1 = engineStats();
  for (let step = 0; step < 50; step++) {
    const lr = learningRateAt(step, {
      lr: 1e-3,
      warmupSteps: 5,
      totalSteps: 50,
      schedule: "cosine",
    });
    // Both clipping paths: in place (clipGradNorm), and folded into the update (the train loop's)
    const loss = scope(() => {
      const l = mse(model.forward(x), y);
      l.backward();
      if (step % 2 === 0) {
        clipGradNorm(model.parameters(), 1.0);
        opt.step(lr);
      } else opt.step(lr, { norm: gradNorm(model.parameters()), maxNorm: 1.0 });
      return l;
    });
    opt.zeroGrad();
    ema.update();
    if (step % 10 === 0 || step === 49) losses.push(await loss.item());
    loss.dispose();
    if (step === 1) after1 = engineStats(); // both clipping paths have run
  }
  const end = engineStats();
  assert.equal(
    end.created,
    after1.created,
    `pool created ${end.created - after1.created} new buffers`,
  );
  assert.equal(end.inUse, after1.inUse, "buffers in use stay constant");
  assert.equal(end.pipelines, after1.pipelines, "no pipeline compiled after the first step");
  if (end.bindGroupHits !== undefined) {
    // WebGPU: the pool hands each step's tensors the same buffers, so bind groups are reused
    const reuse = (end.bindGroupHits - after1.bindGroupHits!) /
      (end.dispatches - after1.dispatches);
    assert.ok(reuse > 0.9, `bind groups reused by ${(100 * reuse).toFixed(1)}% of launches`);
  }
  assert.ok(
    losses.every(Number.isFinite) && losses.at(-1)! < losses[0],
    `loss decreases: ${losses}`,
  );
  model.dispose();
  opt.dispose();
  ema.dispose();
  x.dispose();
  y.dispose();
});

Deno.test("the pool hands out the free item created first, whatever order they were freed in", () => {
  let made = 0;
  const pool = new SizeClassPool((size) => ({ size, id: made++ }));
  const [a, b, c] = [0, 1, 2].map(() => pool.take(64).item);
  for (const item of [c, a, b]) pool.put(item, 64);
  assert.deepEqual([0, 1, 2].map(() => pool.take(64).item.id), [0, 1, 2]);
  pool.put(b, 64);
  pool.put(a, 64);
  const d = pool.take(128).item; // another size class: a new item
  assert.deepEqual([d.id, pool.take(64).item.id, pool.take(64).item.id], [3, 0, 1]);
  const s = pool.stats();
  assert.deepEqual([s.created, s.reused, s.inUse], [4, 5, 4]);
});
