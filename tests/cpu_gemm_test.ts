/**
 * The CPU backend's GEMM (core/tensor/cpu/gemm.ts): the WebAssembly kernel against a float64
 * reference for every flag combination and awkward shape, thread-count independence, the kernel
 * fallbacks, and that the embedded build matches its AssemblyScript sources. Runs with
 * `UNCLIP_BACKEND=cpu`; ignored on WebGPU.
 */
import assert from "node:assert/strict";
import { assertClose, hostRandom } from "./_support/check.ts";
import { cpu, onCpu } from "../core/tensor/backend.ts";
import { activate, gemm, type GemmActivation, type GemmArgs } from "../core/tensor/cpu/gemm.ts";
import { cpuKernels } from "../core/tensor/cpu/runtime.ts";
import { SOURCE_HASH, WASM } from "../core/tensor/cpu/kernels_wasm.ts";
import { sourceHash } from "../tools/build_wasm.ts";

const ignore = !onCpu();

/** Random float32 data written to a fresh block of the CPU memory; returns its byte address. */
function upload(n: number, seed: number): { addr: number; data: Float32Array } {
  const r = hostRandom(seed);
  const data = Float32Array.from({ length: n }, () => 2 * r() - 1);
  const buf = cpu().allocate(Math.max(4, n * 4));
  cpu().write(buf, data);
  return { addr: buf.offset, data };
}

function download(addr: number, n: number): Float32Array {
  return cpu().mem.f32.slice(addr / 4, addr / 4 + n);
}

interface Case {
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** Extra elements per row beyond the width (lda > width). */
  pad?: number;
  batch?: number;
  /** Which operands repeat across the batch (stride 0). */
  broadcastA?: boolean;
  broadcastB?: boolean;
  accumulate?: boolean;
  bias?: "row" | "col";
  activation?: GemmActivation;
}

/** Sets up a case in CPU memory: the args for `gemm`, and the float64 expected C. */
function setup(c: Case, seed: number): { args: GemmArgs; expected: Float64Array; cSize: number } {
  const { M, N, K } = c;
  const pad = c.pad ?? 0, batch = c.batch ?? 1;
  const lda = (c.transA ? M : K) + pad, ldb = (c.transB ? K : N) + pad, ldc = N + pad;
  const aRows = c.transA ? K : M, bRows = c.transB ? N : K;
  const strideA = c.broadcastA ? 0 : aRows * lda, strideB = c.broadcastB ? 0 : bRows * ldb;
  const strideC = M * ldc + 5;
  const A = upload(Math.max(1, strideA * batch, aRows * lda), seed);
  const B = upload(Math.max(1, strideB * batch, bRows * ldb), seed + 1);
  const cSize = strideC * batch;
  const C = upload(cSize, seed + 2);
  const bias = c.bias ? upload(c.bias === "row" ? M : N, seed + 3) : undefined;
  const expected = Float64Array.from(C.data);
  for (let bi = 0; bi < batch; bi++) {
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const a = A.data[bi * strideA + (c.transA ? k * lda + m : m * lda + k)];
          const b = B.data[bi * strideB + (c.transB ? n * ldb + k : k * ldb + n)];
          s += a * b;
        }
        const i = bi * strideC + m * ldc + n;
        if (c.accumulate) s += C.data[i];
        if (bias) s += bias.data[c.bias === "row" ? m : n];
        expected[i] = activate(s, c.activation ?? "none");
      }
    }
  }
  const args: GemmArgs = {
    M,
    N,
    K,
    a: A.addr,
    lda,
    transA: c.transA,
    b: B.addr,
    ldb,
    transB: c.transB,
    c: C.addr,
    ldc,
    batch,
    strideA,
    strideB,
    strideC,
    accumulate: c.accumulate,
    bias: bias?.addr,
    biasPerRow: c.bias === "row",
    activation: c.activation,
  };
  return { args, expected, cSize };
}

function check(c: Case, seed = 1): void {
  const { args, expected, cSize } = setup(c, seed);
  gemm(args);
  const tol = 1e-5 * Math.sqrt(c.K + 1);
  assertClose(download(args.c, cSize), expected, {
    atol: tol,
    rtol: 1e-5,
    label: JSON.stringify(c),
  });
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 9, 3],
  [7, 1, 5],
  [6, 8, 4],
  [7, 13, 5],
  [12, 16, 257],
  [37, 29, 300],
  [100, 70, 33],
];

Deno.test({
  name: "cpu gemm: transA/transB, odd shapes, lda > width",
  ignore,
  fn() {
    let seed = 10;
    for (const [M, N, K] of SHAPES) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          for (const pad of [0, 3]) check({ M, N, K, transA, transB, pad }, seed++);
        }
      }
    }
  },
});

Deno.test({
  name: "cpu gemm: batches with strides and stride-0 broadcast",
  ignore,
  fn() {
    check({ M: 5, N: 11, K: 7, batch: 3 }, 1);
    check({ M: 5, N: 11, K: 7, batch: 3, broadcastA: true, transB: true }, 2);
    check({ M: 64, N: 64, K: 32, batch: 5, broadcastB: true, transA: true, pad: 1 }, 3);
    check({ M: 9, N: 3, K: 70, batch: 1, broadcastA: true, broadcastB: true }, 4);
    // Fewer products than threads: each product is split between the threads.
    check({ M: 130, N: 200, K: 64, batch: 1 }, 5);
  },
});

Deno.test({
  name: "cpu gemm: accumulate, bias both ways, every activation, K = 0",
  ignore,
  fn() {
    let seed = 100;
    for (const activation of ["none", "relu", "gelu", "silu"] as const) {
      for (const bias of [undefined, "row", "col"] as const) {
        for (const accumulate of [false, true]) {
          check({ M: 13, N: 21, K: 17, bias, activation, accumulate }, seed++);
          check({ M: 50, N: 40, K: 300, bias, activation, accumulate, transB: true }, seed++);
        }
      }
    }
    check({ M: 4, N: 5, K: 0 }, seed++);
    check({ M: 4, N: 5, K: 0, accumulate: true, bias: "col", activation: "relu" }, seed++);
  },
});

Deno.test({
  name: "cpu gemm: every thread count gives the same bits",
  ignore: ignore || cpu().threads < 2,
  fn() {
    const cases: Case[] = [
      { M: 301, N: 517, K: 411, bias: "col", activation: "gelu", pad: 2 },
      // Few columns: A is read in place rather than packed.
      { M: 517, N: 40, K: 301, bias: "row", accumulate: true },
      { M: 100, N: 100, K: 100, batch: 7, transA: true, transB: true },
    ];
    for (const [i, c] of cases.entries()) {
      const { args, expected, cSize } = setup(c, 7 + i);
      const before = download(args.c, cSize);
      gemm(args);
      const multi = download(args.c, cSize);
      const threads = cpu().threads;
      cpu().mem.f32.set(before, args.c / 4);
      try {
        cpu().threads = 1;
        gemm(args);
      } finally {
        cpu().threads = threads;
      }
      const single = download(args.c, cSize);
      assert.deepEqual(multi, single, JSON.stringify(c));
      assertClose(single, expected, { atol: 1e-3, rtol: 1e-4, label: JSON.stringify(c) });
    }
  },
});

Deno.test({
  name: "cpu gemm: the embedded kernels match their AssemblyScript sources",
  ignore,
  async fn() {
    assert.equal(
      await sourceHash(),
      SOURCE_HASH,
      "core/tensor/cpu/kernels_wasm.ts is stale: run deno task wasm",
    );
  },
});

/** Size of the product in `runWith`: above the threads' crossover. */
const N = 110;

/**
 * Runs a batch of two products (stride-0 operands) in a fresh process with `env`, checks the
 * result, and returns the process's stderr (the warnings).
 */
function inheritedEnv(): Record<string, string> {
  const all = Deno.env.toObject();
  for (const k of Object.keys(all)) if (k.startsWith("UNCLIP_CPU_")) delete all[k];
  return all;
}

async function runWith(env: Record<string, string>): Promise<string> {
  const code = `
    import { initBackend, cpu } from "${new URL("../core/tensor/backend.ts", import.meta.url)}";
    import { gemm } from "${new URL("../core/tensor/cpu/gemm.ts", import.meta.url)}";
    await initBackend({ backend: "cpu" });
    const n = ${N}, a = cpu().allocate(n * n * 4), c = cpu().allocate(2 * n * n * 4);
    const f = cpu().mem.f32;
    for (let i = 0; i < n * n; i++) f[a.offset / 4 + i] = (i % 7) - 3;
    gemm({
      M: n, N: n, K: n, a: a.offset, lda: n, b: a.offset, ldb: n, c: c.offset, ldc: n,
      batch: 2, strideA: 0, strideB: 0, strideC: n * n,
    });
    let s = 0;
    for (let i = 0; i < 2 * n * n; i++) s += cpu().mem.f32[c.offset / 4 + i];
    console.log(s, cpu().threads, cpu().simd);
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    // Only the caps given here: none inherited from a run that set UNCLIP_CPU_* itself.
    clearEnv: true,
    env: { ...inheritedEnv(), ...env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  const stderr = new TextDecoder().decode(out.stderr).trim();
  assert.ok(out.success, stderr);
  // Twice the sum of the square of the N x N matrix with entries (i % 7) - 3, worked out here.
  const n = N;
  let s = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      for (let k = 0; k < n; k++) s += ((i * n + k) % 7 - 3) * ((k * n + j) % 7 - 3);
    }
  }
  assert.equal(Number(stdout.split(" ")[0]), 2 * s, stdout);
  return stderr;
}

Deno.test({
  name: "cpu gemm: falls back to plain SIMD, to TypeScript, to one thread, warning once",
  ignore,
  async fn() {
    const simd = await runWith({ UNCLIP_CPU_KERNELS: "simd" });
    assert.match(simd, /^CPU backend: no relaxed SIMD here[^\n]*$/);
    const ts = await runWith({ UNCLIP_CPU_KERNELS: "ts" });
    assert.match(ts, /^CPU backend: no WebAssembly SIMD here[^\n]*$/);
    assert.equal(await runWith({ UNCLIP_CPU_THREADS: "1" }), "");
    // More threads than products and than cores: each product split between three threads.
    assert.equal(await runWith({ UNCLIP_CPU_THREADS: "3" }), "");
    assert.equal(cpu().simd, cpuKernels() !== null);
  },
});

Deno.test({
  name: "cpu gemm: the builds for unshared memory (no SharedArrayBuffer) compute the same",
  ignore,
  fn() {
    const { M, N, K } = { M: 13, N: 19, K: 37 };
    const r = hostRandom(3);
    const A = Float32Array.from({ length: M * K }, () => r() - 0.5);
    const B = Float32Array.from({ length: K * N }, () => r() - 0.5);
    const expected = new Float64Array(M * N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        for (let k = 0; k < K; k++) expected[m * N + n] += A[m * K + k] * B[k * N + n];
      }
    }
    for (const variant of ["relaxedPrivate", "simdPrivate"] as const) {
      const bytes = Uint8Array.from(atob(WASM[variant]), (c) => c.charCodeAt(0));
      if (!WebAssembly.validate(bytes)) continue;
      const memory = new WebAssembly.Memory({ initial: 32, maximum: 65536 });
      const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
        env: { memory, abort: () => {} },
      });
      const run = exports.gemm_batches as (...args: number[]) => void;
      const f = new Float32Array(memory.buffer);
      const a = 1 << 20, b = a + 4096 * 4, c = b + 4096 * 4, scratch = c + 4096 * 4;
      f.set(A, a / 4);
      f.set(B, b / 4);
      run(M, N, K, a, K, b, N, c, N, 1, 0, 0, 0, 0, 0, 0, scratch - 64, scratch, 0, 0, 1);
      assertClose(f.slice(c / 4, c / 4 + M * N), expected, { atol: 1e-5, label: variant });
    }
  },
});
