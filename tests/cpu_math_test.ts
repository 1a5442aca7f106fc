/**
 * The CPU backend's vector math (core/tensor/cpu/assembly/math.ts): the WebAssembly f32x4 exp
 * against float64 Math.exp rounded to float32, over the whole float32 range it covers, at the
 * edges (overflow, subnormal results, underflow, infinities, NaN). Runs with
 * `UNCLIP_BACKEND=cpu`; ignored on WebGPU and where the kernels did not load.
 */
import assert from "node:assert/strict";
import { cpu, onCpu } from "../core/tensor/backend.ts";
import { cpuKernels } from "../core/tensor/cpu/runtime.ts";
import "./_support/check.ts"; // initialises the backend

const ignore = !onCpu() || !cpuKernels();

/** Runs the kernels' exp over `xs`, returning e^x as float32. */
function wasmExp(xs: Float32Array): Float32Array {
  const buf = cpu().allocate(Math.max(4, xs.length * 8));
  cpu().write(buf, xs);
  cpuKernels()!.exports.exp_f32(buf.offset, buf.offset + xs.length * 4, xs.length);
  const out = cpu().mem.f32.slice(buf.offset / 4 + xs.length, buf.offset / 4 + 2 * xs.length);
  cpu().free(buf);
  return out;
}

/** Distance in units in the last place between two finite float32 of the same sign. */
function ulps(a: number, b: number): number {
  const f = new Float32Array([a, b]);
  const i = new Int32Array(f.buffer);
  return Math.abs(i[0] - i[1]);
}

Deno.test({
  name: "cpu math: vector exp within 2 ulp of Math.exp over [-87.3, 88.7]",
  ignore,
  fn() {
    const n = 200003; // not a multiple of 4: the scalar tail runs too
    const xs = new Float32Array(n);
    for (let i = 0; i < n; i++) xs[i] = -87.3 + (176 * i) / (n - 1);
    // Small arguments, where e^x is close to 1 + x.
    xs.set([0, -0, 1e-8, -1e-8, 1e-30, 0.5, -0.5, 0.34657359, -0.34657359, 1, -1], 0);
    const ys = wasmExp(xs);
    let worst = 0;
    for (let i = 0; i < n; i++) {
      const want = Math.fround(Math.exp(xs[i]));
      worst = Math.max(worst, ulps(ys[i], want));
    }
    assert.ok(worst <= 2, `max error ${worst} ulp`);
  },
});

Deno.test({
  name: "cpu math: vector exp edges (overflow, subnormals, underflow, infinities, NaN)",
  ignore,
  fn() {
    const xs = new Float32Array([
      88.72,
      88.7228,
      88.7229,
      88.8,
      89,
      100,
      1e30,
      Infinity,
      -87.4,
      -90,
      -100,
      -103.9,
      -103.98,
      -104,
      -105,
      -1e30,
      -Infinity,
      NaN,
    ]);
    const ys = wasmExp(xs);
    for (let i = 0; i < xs.length; i++) {
      const want = Math.fround(Math.exp(xs[i]));
      const got = ys[i];
      if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `exp(${xs[i]}) = ${got}`);
      else if (!Number.isFinite(want) || want === 0) {
        assert.equal(got, want, `exp(${xs[i]})`);
      } else if (want < 1.1754944e-38) {
        // Subnormal results: absolute error within one subnormal step (2^-149) or two.
        assert.ok(Math.abs(got - want) <= 2 * 1.401298464e-45, `exp(${xs[i]}) = ${got}, ${want}`);
      } else {
        assert.ok(ulps(got, want) <= 2, `exp(${xs[i]}) = ${got}, want ${want}`);
      }
    }
  },
});
