/**
 * The CPU backend's WebAssembly row and elementwise kernels (assembly/rows.ts, norm.ts,
 * unary.ts) against the TypeScript loops they replace (which run when given arrays outside the
 * CPU memory), on shapes large enough to split across threads and with odd lengths (vector
 * tails): softmax and log-softmax with a causal limit and a fully masked row, layer and group
 * norm with the fused SiLU forward and backward, the activations with their gradients, and binary
 * arithmetic on same-shape and periodically broadcast operands.
 * Runs with `UNCLIP_BACKEND=cpu`; ignored on WebGPU and where the kernels did not load.
 */
import { assertClose } from "./_support/check.ts";
import { onCpu } from "../core/tensor/backend.ts";
import { cpuKernels } from "../core/tensor/cpu/runtime.ts";
import { normBackward, normForward, type NormLayout } from "../core/tensor/cpu/norm.ts";
import { softmaxGradRows, type SoftmaxRows, softmaxRows } from "../core/tensor/cpu/rows.ts";
import {
  ARITHMETIC_ROWS,
  arithmeticKernel,
  type KernelArithmetic,
  type KernelUnary,
  mapBinary,
  periodicBroadcast,
  unaryGradKernel,
  unaryKernel,
} from "../core/tensor/cpu/elementwise.ts";
import assert from "node:assert/strict";
import { inMemory, random } from "./_support/cpu_arrays.ts";

const ignore = !onCpu() || !cpuKernels();

/**
 * `assertClose`, where non-finite values (NaN, infinities) must match exactly: they are checked
 * first, then compared as 0.
 */
function assertMatch(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  opts: { atol: number; rtol: number; label: string },
): void {
  const a = Float64Array.from(actual), e = Float64Array.from(expected);
  for (let i = 0; i < e.length; i++) {
    if (Number.isFinite(e[i]) && Number.isFinite(a[i])) continue;
    if (!Object.is(a[i], e[i])) {
      throw new Error(`${opts.label}: element ${i} is ${a[i]}, expected ${e[i]}`);
    }
    a[i] = e[i] = 0;
  }
  assertClose(a, e, opts);
}

const softmaxCases: [string, SoftmaxRows][] = [
  ["softmax", { rows: 256, L: 133, scale: 0.7, log: false, causalTq: 0 }],
  ["log-softmax", { rows: 256, L: 133, scale: 1, log: true, causalTq: 0 }],
  ["causal softmax", { rows: 300, L: 131, scale: 0.125, log: false, causalTq: 100 }],
  ["causal log-softmax", { rows: 300, L: 131, scale: -2, log: true, causalTq: 100 }],
];

for (const [name, r] of softmaxCases) {
  Deno.test({
    name: `cpu rows: ${name} kernel matches the TypeScript loop`,
    ignore,
    fn() {
      const n = r.rows * r.L;
      const x = random(n, 1, -8, 8);
      x.fill(-Infinity, 5 * r.L, 6 * r.L); // row 5 fully masked: NaN everywhere it is valid
      const g = random(n, 2);
      const yRef = new Float32Array(n), dxRef = new Float32Array(n);
      softmaxRows(x, yRef, r);
      softmaxGradRows(yRef, g, dxRef, r);
      const [xm, ym, gm, dxm] = inMemory(x, new Float32Array(n), g, new Float32Array(n));
      softmaxRows(xm, ym, r);
      assertMatch(ym, yRef, { atol: 1e-6, rtol: 1e-5, label: `${name} forward` });
      // The gradient from the same y (the TS one), so only the backward kernel is compared.
      ym.set(yRef);
      softmaxGradRows(ym, gm, dxm, r);
      assertMatch(dxm, dxRef, { atol: 1e-6, rtol: 1e-4, label: `${name} backward` });
    },
  });
}

const normCases: [string, NormLayout, { w: boolean; b: boolean; silu: boolean }][] = [
  ["group norm + SiLU", { rows: 64, perRow: 4, S: 257, groups: 8 }, {
    w: true,
    b: true,
    silu: true,
  }],
  ["group norm", { rows: 48, perRow: 3, S: 256, groups: 4 }, { w: true, b: false, silu: false }],
  ["layer norm", { rows: 300, perRow: 130, S: 1, groups: 1 }, { w: true, b: true, silu: false }],
  ["layer norm + SiLU, no affine", { rows: 301, perRow: 67, S: 1, groups: 1 }, {
    w: false,
    b: false,
    silu: true,
  }],
];

for (const [name, lay, opts] of normCases) {
  Deno.test({
    name: `cpu rows: ${name} kernel matches the TypeScript loop, forward and backward`,
    ignore,
    fn() {
      const n = lay.rows * lay.perRow * lay.S, C = lay.groups * lay.perRow;
      // An offset mean, so that the variance is not of values near 0.
      const x = random(n, 3, 2, 5), g = random(n, 4);
      const w = random(C, 5, 0.5, 1.5), b = random(C, 6);
      const ref = {
        y: new Float32Array(n),
        mean: new Float32Array(lay.rows),
        rstd: new Float32Array(lay.rows),
        dx: new Float32Array(n),
        dw: new Float64Array(C),
        db: new Float64Array(C),
      };
      const p = { w: opts.w ? w : null, b: opts.b ? b : null, silu: opts.silu };
      normForward(x, ref.y, ref.mean, ref.rstd, lay, p, 1e-5);
      normBackward(x, g, ref.mean, ref.rstd, lay, p, ref);
      const [xm, ym, mm, rm, gm, dxm, wm, bm] = inMemory(
        x,
        new Float32Array(n),
        new Float32Array(lay.rows),
        new Float32Array(lay.rows),
        g,
        new Float32Array(n),
        w,
        b,
      );
      const pm = { w: opts.w ? wm : null, b: opts.b ? bm : null, silu: opts.silu };
      normForward(xm, ym, mm, rm, lay, pm, 1e-5);
      assertClose(mm, ref.mean, { atol: 0, rtol: 1e-6, label: `${name} mean` });
      assertClose(rm, ref.rstd, { atol: 0, rtol: 1e-6, label: `${name} rstd` });
      assertClose(ym, ref.y, { atol: 1e-5, rtol: 1e-5, label: `${name} y` });
      const dw = new Float64Array(C), db = new Float64Array(C);
      normBackward(xm, gm, mm, rm, lay, pm, { dx: dxm, dw, db });
      assertClose(dxm, ref.dx, { atol: 1e-5, rtol: 1e-4, label: `${name} dx` });
      assertClose(dw, ref.dw, { atol: 1e-4, rtol: 1e-4, label: `${name} dw` });
      assertClose(db, ref.db, { atol: 1e-4, rtol: 1e-4, label: `${name} db` });
    },
  });
}

/** float64 references of the activations (the formulas of ops/elementwise.ts). */
const K = 0.7978845608028654;
const sig = (x: number) => 1 / (1 + Math.exp(-x));
const tanhOf = (u: number) =>
  Math.sign(u) * (1 - Math.exp(-2 * Math.abs(u))) /
  (1 + Math.exp(-2 * Math.abs(u)));
const unaryRef: Record<KernelUnary, [(x: number) => number, (x: number, y: number) => number]> = {
  exp: [Math.exp, (_x, y) => y],
  sigmoid: [sig, (_x, y) => y * (1 - y)],
  silu: [(x) => x * sig(x), (x) => sig(x) * (1 + x * (1 - sig(x)))],
  gelu: [
    (x) => 0.5 * x * (1 + tanhOf(K * (x + 0.044715 * x ** 3))),
    (x) => {
      const t = tanhOf(K * (x + 0.044715 * x ** 3));
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 0.134145 * x * x);
    },
  ],
  relu: [(x) => Math.max(x, 0), (x) => (x > 0 ? 1 : 0)],
};

for (const op of Object.keys(unaryRef) as KernelUnary[]) {
  Deno.test({
    name: `cpu rows: ${op} kernel and its gradient against float64`,
    ignore,
    fn() {
      const n = 100003;
      const x = random(n, 7, op === "exp" ? -80 : -30, op === "exp" ? 80 : 30);
      x.set([0, -0, 1e-6, -1e-6, 88, -88, 100, -100, Infinity, -Infinity], 0);
      if (op === "exp") x.set([Infinity, -Infinity], 8);
      if (op === "relu") x[10] = NaN; // max(NaN, 0) is NaN, as Math.max; its gradient 0
      const g = random(n, 8);
      const [f, df] = unaryRef[op];
      const yRef = Float32Array.from(x, f);
      const gxRef = Float32Array.from(x, (v, i) => g[i] * df(v, yRef[i]));
      const [xm, ym, gm, gxm] = inMemory(x, new Float32Array(n), g, new Float32Array(n));
      unaryKernel(op, xm, ym);
      // Skip the infinities for the GELU/SiLU (inf * 0 forms differ by formula, as on the GPU).
      const from = op === "exp" || op === "sigmoid" || op === "relu" ? 0 : 8;
      assertMatch(ym.subarray(from), yRef.subarray(from), {
        atol: 1e-6,
        rtol: 1e-5,
        label: `${op} forward`,
      });
      ym.set(yRef);
      unaryGradKernel(op, xm, ym, gm, gxm);
      assertMatch(gxm.subarray(from), gxRef.subarray(from), {
        atol: 1e-6,
        rtol: 1e-5,
        label: `${op} backward`,
      });
    },
  });
}

Deno.test("cpu rows: periodicBroadcast finds bias and row-vector broadcasts, and only those", () => {
  assert.deepEqual(periodicBroadcast([8, 16, 4, 4], [1, 16, 1, 1]), { inner: 16, period: 16 });
  assert.deepEqual(periodicBroadcast([8, 16, 4, 4], [8, 16, 1, 1]), { inner: 16, period: 128 });
  assert.deepEqual(periodicBroadcast([8, 16, 4, 4], [16, 1, 1]), { inner: 16, period: 16 });
  assert.deepEqual(periodicBroadcast([1, 3, 1, 5], [3, 1, 1]), { inner: 5, period: 3 });
  assert.deepEqual(periodicBroadcast([5, 7], [7]), { inner: 1, period: 7 });
  assert.deepEqual(periodicBroadcast([5, 7], [1]), { inner: 35, period: 1 });
  assert.deepEqual(periodicBroadcast([4, 3, 5], [4, 1, 5]), null);
  assert.deepEqual(periodicBroadcast([4, 3], [2, 4, 3]), null);
});

/** [output shape, a's shape, b's shape]: same shapes, then broadcasts on either side. */
const arithmeticCases: [number[], number[], number[]][] = [
  [[100003], [100003], [100003]],
  [[7, 5], [7, 5], [7, 5]],
  [[16, 24, 17, 19], [16, 24, 17, 19], [1, 24, 1, 1]],
  [[16, 24, 17, 19], [16, 24, 1, 1], [16, 24, 17, 19]],
  [[300, 333], [300, 333], [333]],
  [[300, 333], [1], [300, 333]],
  [[3, 5, 7], [3, 5, 7], [3, 1, 1]],
];

for (const op of Object.keys(ARITHMETIC_ROWS) as KernelArithmetic[]) {
  Deno.test({
    name: `cpu rows: ${op} kernel against the TypeScript loop, same shapes and broadcasts`,
    ignore,
    fn() {
      for (const [outShape, aShape, bShape] of arithmeticCases) {
        const size = (s: number[]) => s.reduce((x, y) => x * y, 1);
        const a = random(size(aShape), 11), b = random(size(bShape), 12);
        b[0] = 0; // x / 0 and 0 / 0 must come out as in the loop (inf, NaN)
        a[0] = 0;
        const n = size(outShape);
        const ref = new Float32Array(n);
        mapBinary(a, aShape, b, bShape, ref, outShape, () => NaN, ARITHMETIC_ROWS[op]);
        const [am, bm, om] = inMemory(a, b, new Float32Array(n).fill(NaN));
        const label = `${op} ${aShape} with ${bShape}`;
        assert.deepEqual(arithmeticKernel(op, am, aShape, bm, bShape, om, outShape), true, label);
        assertMatch(om, ref, { atol: 0, rtol: 1e-6, label });
      }
      // A broadcast the kernels do not cover is left to the loop.
      const [am, bm, om] = inMemory(random(60, 1), random(12, 2), new Float32Array(60));
      assert.deepEqual(arithmeticKernel(op, am, [3, 4, 5], bm, [3, 4, 1], om, [3, 4, 5]), true);
      assert.deepEqual(
        arithmeticKernel(op, am, [3, 4, 5], bm.subarray(0, 15), [3, 1, 5], om, [3, 4, 5]),
        false,
      );
    },
  });
}
