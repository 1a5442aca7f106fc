/**
 * The kernel rows of `deno task bench` (matmul, conv2d and attention at the thesis's shapes, and
 * generating a dataset), and what every row shares: the timing (median of repetitions after a
 * warm-up, to device completion), the row type and the reason a failed row prints.
 * @module
 */
import * as T from "../core/tensor/mod.ts";
import { generateSplit } from "../datasets/mod.ts";

/** One row of the bench. */
export interface Result {
  /** The row's name, as bench/torch_baseline.py spells it. */
  name: string;
  /** Median milliseconds; NaN when the row failed. */
  ms: number;
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
 * Median milliseconds of `reps` runs of `fn` (awaited when it returns a promise), each waited for
 * on the device, after a warm-up.
 */
export async function time(fn: () => void | Promise<unknown>, reps: number): Promise<number> {
  await fn(); // warm-up: compiles pipelines
  await T.sync();
  const samples: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await fn();
    await T.sync();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)];
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
        const ms = await time(() => T.scope(() => void T.matmul(a, b)), reps);
        return { ms, gflops: (2 * n ** 3) / ms / 1e6 };
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
          const ms = await time(fwdBwd(() => conv2d(x, w, null, { padding: 1 })), reps);
          // forward 2*B*C*C*9*HW, backward twice that (input and weight gradients)
          const flops = 3 * 2 * batch * c * c * 9 * hw * hw;
          return { ms, gflops: flops / ms / 1e6 };
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
 * one guided sampling step of 8 images) by Winograd F(2x2, 3x3), the default, and by im2col +
 * GEMM, the path it replaced. GFLOP/s count direct convolution's flops for both.
 */
async function winogradRows(
  conv2d: (x: T.Tensor, w: T.Tensor, b: T.Tensor | null, o: { padding: number }) => T.Tensor,
  reps: number,
  row: RowRunner,
): Promise<void> {
  for (const [c, o, hw] of [[64, 64, 32], [96, 32, 32], [128, 64, 16]]) {
    for (const winograd of [true, false]) {
      const path = winograd ? "winograd" : "im2col";
      await row(`conv2d 3x3 fwd B16 ${c}->${o} ${hw}x${hw} (${path})`, async () => {
        const x = T.randn([16, c, hw, hw]), w = T.affine(T.randn([o, c, 3, 3]), 0.05, 0);
        const before = T.useWinograd(winograd);
        try {
          const forward = () =>
            T.noGrad(() => T.scope(() => void conv2d(x, w, null, { padding: 1 })));
          const ms = await time(forward, reps);
          return { ms, gflops: (2 * 16 * c * o * 9 * hw * hw) / ms / 1e6 };
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
        return { ms: await time(fwdBwd(() => sdpa(q, k, v)), reps) };
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
