/**
 * The kernel rows of `deno task bench` (matmul, conv2d and attention at the thesis's shapes, and
 * generating a dataset), and what every row shares: the timing (median of repetitions after a
 * warm-up, to device completion), the row type and the reason a failed row prints.
 * @module
 */
import * as T from "../core/tensor/mod.ts";
import { generateSplit } from "../datasets/mod.ts";

/** One row of the bench: its timing (`ms` NaN when the row failed) and what else it reports. */
export interface Result extends Timing {
  /** The row's name, as bench/torch_baseline.py spells it. */
  name: string;
  /** Throughput of a kernel row. */
  gflops?: number;
  /** Parameter count of the model a training or forward row runs. */
  params?: number;
  /** Why the row failed (its ops threw). */
  error?: string;
}

/** Measures one row and reports it; a throw becomes a "failed" row instead of ending the bench. */
export type RowRunner = (
  name: string,
  measure: () => Promise<Omit<Result, "name">>,
) => Promise<void>;

/**
 * How repetitions are timed. "synced" (the default): each one waited for on the device, the
 * median; the sync's round trip is counted in every repetition (in Deno's WebGPU on an NVIDIA H200
 * that floor is ~11 ms, measured, against microseconds for a CUDA sync; see docs/benchmarks.md).
 * "pipelined": repetitions recorded back to back and one sync at the end, the mean, with at least
 * --reps of them and as many more as make the sync under 5% of the total: device throughput, as a
 * training loop that reads its loss only every few steps sees it.
 */
export type TimingMode = "synced" | "pipelined";

/** A timed row's figures. */
export interface Timing {
  /** Milliseconds per repetition (median when synced, mean when pipelined). */
  ms: number;
  /** Pipelined only: mean milliseconds the host spent recording one repetition (before the
   * final sync). Close to `ms` when the host, not the device, limits the row. */
  hostMs?: number;
  /** Kernel launches per repetition. */
  dispatches?: number;
  /** WebGPU: the share of those launches that reused a cached bind group. */
  bindGroupReuse?: number;
}

let timingMode: TimingMode = "synced";

/** The WebGPU sync round trip pipelined timing amortises (ms; measured ~11 ms in Deno on llvmpipe
 * and on an H200, the bench's first row; see `time`). */
const SYNC_FLOOR_MS = 12;

/** Sets how `time` measures. */
export function setTimingMode(mode: TimingMode): void {
  timingMode = mode;
}

/** The median of some samples (sorted in place). */
function median(samples: number[]): number {
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
}

/** `reps` runs of `fn` (awaited when it returns a promise) after a warm-up, timed as set by
 * `setTimingMode`. */
export async function time(fn: () => void | Promise<unknown>, reps: number): Promise<Timing> {
  await fn(); // warm-up: compiles pipelines
  await T.sync();
  const launchesPer = (
    before: T.EngineStats,
    n: number,
  ): Pick<Timing, "dispatches" | "bindGroupReuse"> => {
    const after = T.engineStats();
    const d = after.dispatches - before.dispatches;
    if (d <= 0) return {};
    const hits = after.bindGroupHits === undefined
      ? {}
      : { bindGroupReuse: (after.bindGroupHits - (before.bindGroupHits ?? 0)) / d };
    return { dispatches: d / n, ...hits };
  };
  if (timingMode === "pipelined") {
    // The one sync at the end costs a round trip (~11 ms in Deno's WebGPU, even with nothing
    // queued: measured on llvmpipe and on an H200); more repetitions until it is under 5% of the
    // total, so that the mean is the device's rate and not the sync's.
    let n = reps;
    for (;;) {
      const before = T.engineStats();
      const t0 = performance.now();
      for (let r = 0; r < n; r++) await fn();
      const host = performance.now() - t0;
      await T.sync();
      const total = performance.now() - t0;
      // On the CPU backend a sync costs nothing: --reps repetitions are enough.
      if (T.onCpu() || total >= 20 * SYNC_FLOOR_MS || n >= 1000) {
        return { ms: total / n, hostMs: host / n, ...launchesPer(before, n) };
      }
      n = Math.min(1000, Math.ceil((n * 20 * SYNC_FLOOR_MS) / Math.max(total, 1e-3)));
    }
  }
  const before = T.engineStats();
  const samples: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await fn();
    await T.sync();
    samples.push(performance.now() - t0);
  }
  return { ms: median(samples), ...launchesPer(before, reps) };
}

/** Median milliseconds of an empty device sync (nothing recorded): the floor under every synced
 * row. */
export async function syncRoundTrip(reps: number): Promise<Timing> {
  await T.sync();
  const samples: number[] = [];
  for (let r = 0; r < Math.max(reps, 5); r++) {
    const t0 = performance.now();
    await T.sync();
    samples.push(performance.now() - t0);
  }
  return { ms: median(samples) };
}

/** Marks the tensors as leaves that need gradients. */
export function withGrad(...xs: T.Tensor[]): T.Tensor[] {
  for (const x of xs) x.requiresGrad = true;
  return xs;
}

/** Runs forward and backward of `f` on fresh leaves inside a scope. */
export function fwdBwd(f: () => T.Tensor): () => void {
  return () =>
    T.scope(() => {
      const out = f();
      T.sum(out).backward();
    });
}

/**
 * The first line of an error's message: a failing row's reason (the CLI's `errorLine` is for
 * exit messages).
 */
export function failureReason(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

/** matmul n x n x n at growing n (to 1024 with `quick`, else to 4096), with GFLOP/s. */
export async function matmulRows(quick: boolean, reps: number, row: RowRunner): Promise<void> {
  for (const n of quick ? [256, 512, 1024] : [256, 512, 1024, 2048, 4096]) {
    await row(`matmul ${n}x${n}x${n}`, async () => {
      const a = T.randn([n, n]), b = T.randn([n, n]);
      try {
        const t = await time(() => T.scope(() => void T.matmul(a, b)), reps);
        return { ...t, gflops: (2 * n ** 3) / t.ms / 1e6 };
      } finally {
        a.dispose();
        b.dispose();
      }
    });
  }
}

/** conv2d 3x3 forward and backward at the thesis decoder's channel and size pairs. */
export async function convRows(batch: number, reps: number, row: RowRunner): Promise<void> {
  const conv2d = (T as Record<string, unknown>).conv2d as
    | ((x: T.Tensor, w: T.Tensor, b: T.Tensor | null, o: { padding: number }) => T.Tensor)
    | undefined;
  if (conv2d) {
    for (const [c, hw] of [[64, 32], [128, 16], [256, 8]]) {
      await row(`conv2d 3x3 fwd+bwd B${batch} ${c}x${hw}x${hw}`, async () => {
        const [x, w] = withGrad(
          T.randn([batch, c, hw, hw]),
          T.affine(T.randn([c, c, 3, 3]), 0.05, 0),
        );
        try {
          const t = await time(fwdBwd(() => conv2d(x, w, null, { padding: 1 })), reps);
          // forward 2*B*C*C*9*HW, backward twice that (input and weight gradients)
          const flops = 3 * 2 * batch * c * c * 9 * hw * hw;
          return { ...t, gflops: flops / t.ms / 1e6 };
        } finally {
          x.dispose();
          w.dispose();
        }
      });
    }
    if (T.onCpu()) await winogradRows(conv2d, reps, row);
  } else {
    console.log("conv2d: not available in this build");
  }
}

/**
 * On the CPU backend: the forward of the shipped decoder's widest 3x3 convolutions (batch 16,
 * one guided sampling step of 8 images) by Winograd as the default rule picks its tile
 * ("winograd": F(4x4, 3x3) at these sizes), by F(2x2, 3x3) ("winograd 2x2"), and by im2col +
 * GEMM, the path Winograd replaced. GFLOP/s count direct convolution's flops for all.
 */
async function winogradRows(
  conv2d: (x: T.Tensor, w: T.Tensor, b: T.Tensor | null, o: { padding: number }) => T.Tensor,
  reps: number,
  row: RowRunner,
): Promise<void> {
  for (const [c, o, hw] of [[64, 64, 32], [96, 32, 32], [128, 64, 16]]) {
    const paths: [string, T.WinogradMode][] = [
      ["winograd", "auto"],
      ["winograd 2x2", "2x2"],
      ["im2col", "off"],
    ];
    for (const [path, winograd] of paths) {
      await row(`conv2d 3x3 fwd B16 ${c}->${o} ${hw}x${hw} (${path})`, async () => {
        const x = T.randn([16, c, hw, hw]), w = T.affine(T.randn([o, c, 3, 3]), 0.05, 0);
        const before = T.useWinograd(winograd);
        try {
          const forward = () =>
            T.noGrad(() => T.scope(() => void conv2d(x, w, null, { padding: 1 })));
          const t = await time(forward, reps);
          return { ...t, gflops: (2 * 16 * c * o * 9 * hw * hw) / t.ms / 1e6 };
        } finally {
          T.useWinograd(before);
          x.dispose();
          w.dispose();
        }
      });
    }
  }
}

/** Attention forward and backward over 1024 tokens of 64 channels. */
export async function attentionRows(reps: number, row: RowRunner): Promise<void> {
  const sdpa = (T as Record<string, unknown>).scaledDotProductAttention as
    | ((q: T.Tensor, k: T.Tensor, v: T.Tensor) => T.Tensor)
    | undefined;
  if (sdpa) {
    await row("attention fwd+bwd 1024 tokens x 64 ch", async () => {
      const [q, k, v] = withGrad(
        T.randn([1, 1, 1024, 64]),
        T.randn([1, 1, 1024, 64]),
        T.randn([1, 1, 1024, 64]),
      );
      try {
        return await time(fwdBwd(() => sdpa(q, k, v)), reps);
      } finally {
        for (const t of [q, k, v]) t.dispose();
      }
    });
  } else {
    console.log("attention: not available in this build");
  }
}

/** Generating the 20k training images of dataset 1 at 32x32 on the host. */
export async function dataRows(row: RowRunner): Promise<void> {
  await row("generate dataset 1 train (20k, 32x32)", () => {
    const t0 = performance.now();
    generateSplit({ set: 1, split: "train", size: 32 });
    return Promise.resolve({ ms: performance.now() - t0 });
  });
}
