/**
 * The CPU backend's WebAssembly optimizer updates (assembly/optim.ts: Adam / AdamW, the EMA,
 * the clipping scale) and float64 row sums (assembly/reduce.ts) against the TypeScript loops they
 * replace (which run when given arrays outside the CPU memory): the updates bit for bit, the sums
 * to float32 rounding, on lengths that split across threads and odd ones (vector tails), and
 * reductions over inner, outer and interleaved axes.
 * Runs with `UNCLIP_BACKEND=cpu`; ignored on WebGPU and where the kernels did not load.
 */
import { onCpu } from "../core/tensor/backend.ts";
import { cpuKernels } from "../core/tensor/cpu/runtime.ts";
import { adamArrays, type AdamHyper, emaArrays, scaleArray } from "../core/tensor/cpu/optim.ts";
import { reduceInto } from "../core/tensor/cpu/reduce.ts";
import assert from "node:assert/strict";
import { inMemory, random } from "./_support/cpu_arrays.ts";

const ignore = !onCpu() || !cpuKernels();

/** Bit-for-bit equality of two float32 arrays, naming the first difference. */
function assertSameBits(actual: Float32Array, expected: Float32Array, label: string): void {
  assert.equal(actual.length, expected.length, label);
  const a = new Uint32Array(actual.slice().buffer), e = new Uint32Array(expected.slice().buffer);
  for (let i = 0; i < e.length; i++) {
    if (a[i] !== e[i]) {
      throw new Error(`${label}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

/** Lengths: below the threading threshold with a tail, above it with a tail, a multiple of 16. */
const LENGTHS = [37, 70_001, 65_536];

const ADAM_CASES: [string, AdamHyper, number[]][] = [
  ["Adam", { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false }, [
    1e-3,
    1 / (1 - 0.9 ** 3),
    1 / Math.sqrt(1 - 0.999 ** 3),
    0,
  ]],
  [
    "Adam with L2 decay",
    { beta1: 0.8, beta2: 0.99, eps: 1e-6, weightDecay: 0.1, decoupled: false },
    [
      3e-3,
      1.5,
      2.5,
      3e-4,
    ],
  ],
  ["AdamW", { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.05, decoupled: true }, [
    2e-4,
    1.1,
    1.3,
    1e-5,
  ]],
];

for (const [name, hyper, step] of ADAM_CASES) {
  Deno.test({
    name: `cpu updates: ${name} kernel matches the TypeScript loop bit for bit`,
    ignore,
    fn() {
      for (const n of LENGTHS) {
        const p = random(n, 1), g = random(n, 2, -0.1, 0.1);
        const m = random(n, 3, -0.01, 0.01), v = random(n, 4, 0, 1e-3);
        g[0] = 0; // a zero gradient and a zero second moment: eps alone in the denominator
        v[0] = 0;
        m[0] = 0;
        const scalars = Float32Array.from(step);
        // 1: no clipping; 0.3721: the gradient read through a clipping factor.
        for (const gradScale of [1, 0.3721]) {
          const ref = [p, g, m, v].map((a) => a.slice());
          adamArrays(ref[0], ref[1], ref[2], ref[3], scalars, hyper, gradScale);
          const [pm, gm, mm, vm] = inMemory(p, g, m, v);
          adamArrays(pm, gm, mm, vm, scalars, hyper, gradScale);
          const label = `${name} x${gradScale}`;
          assertSameBits(pm, ref[0], `${label} p, n=${n}`);
          assertSameBits(mm, ref[2], `${label} m, n=${n}`);
          assertSameBits(vm, ref[3], `${label} v, n=${n}`);
          assertSameBits(gm, g, `${label} leaves g, n=${n}`);
          // The update moved the parameters (a kernel that did nothing would fail above too).
          assert.notDeepEqual(Array.from(pm.subarray(1, 5)), Array.from(p.subarray(1, 5)));
          // The scale reached the first moment: m = b1 m + (1 - b1) g', g' = g s (+ wd p with L2
          // decay), to float32 rounding.
          const l2 = hyper.decoupled ? 0 : hyper.weightDecay * p[1];
          const expectM1 = hyper.beta1 * m[1] + (1 - hyper.beta1) * (g[1] * gradScale + l2);
          assert.ok(Math.abs(mm[1] - expectM1) < 1e-6 * Math.abs(expectM1) + 1e-9, label);
        }
      }
    },
  });
}

Deno.test({
  name: "cpu updates: EMA and clipping-scale kernels match the TypeScript loops bit for bit",
  ignore,
  fn() {
    for (const n of LENGTHS) {
      const s = random(n, 5), p = random(n, 6);
      const ref = s.slice();
      emaArrays(ref, p, Math.fround(0.999));
      const [sm, pm] = inMemory(s, p);
      emaArrays(sm, pm, Math.fround(0.999));
      assertSameBits(sm, ref, `ema n=${n}`);
      const scale = Math.fround(0.3721);
      const g = random(n, 7), gRef = g.slice();
      scaleArray(gRef, scale);
      const [gm] = inMemory(g);
      scaleArray(gm, scale);
      assertSameBits(gm, gRef, `scale n=${n}`);
      assert.equal(gm[1], Math.fround(g[1] * scale));
    }
  },
});

/** [shape, reduced axes]: bias gradients, row sums, column sums, interleaved, everything. */
const SUM_CASES: [number[], number[]][] = [
  [[8, 16, 33, 31], [0, 2, 3]], // a conv bias gradient: [C] kept between reduced runs
  [[4, 7, 1, 1], [0]], // size-1 dims
  [[300, 257], [1]], // rows
  [[300, 257], [0]], // columns: the inner run kept
  [[6, 5, 4, 3, 7], [1, 3]], // reduced and kept runs alternating, kept inner
  [[6, 5, 4, 3, 7], [0, 2, 4]], // and reduced inner
  [[70_001], [0]], // everything, threaded
  [[3, 2000, 13], [0, 2]], // more threads than... one output row per thread share
  [[2, 65_536], [0]], // kept inner, threaded
];

Deno.test({
  name: "cpu updates: float64 sum kernel matches the TypeScript loop on any axes",
  ignore,
  fn() {
    for (const [shape, axes] of SUM_CASES) {
      const size = shape.reduce((a, b) => a * b, 1);
      const x = random(size, 8, -1, 3);
      const nOut = shape.reduce((a, d, i) => a * (axes.includes(i) ? 1 : d), 1);
      const ref = new Float32Array(nOut);
      reduceInto("sum", x, shape, axes, ref);
      const [xm, om] = inMemory(x, new Float32Array(nOut).fill(NaN));
      reduceInto("sum", xm, shape, axes, om);
      const label = `sum of [${shape}] over ${axes}`;
      for (let i = 0; i < nOut; i++) {
        const tol = 1e-6 * Math.max(1, Math.abs(ref[i]));
        if (!(Math.abs(om[i] - ref[i]) <= tol)) {
          throw new Error(`${label}: element ${i} is ${om[i]}, expected ${ref[i]}`);
        }
      }
      // The reference itself: the first output by a direct float64 sum.
      const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
      let direct = 0;
      for (let j = 0; j < size; j++) {
        const idx = shape.map((d, i) => Math.floor(j / strides[i]) % d);
        if (idx.every((c, i) => axes.includes(i) || c === 0)) direct += x[j];
      }
      assert.ok(Math.abs(ref[0] - direct) <= 1e-6 * Math.max(1, Math.abs(direct)), label);
    }
  },
});
