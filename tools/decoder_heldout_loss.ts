/**
 * The decoder's denoising loss on training images against held-out test images: the same
 * timesteps, noise and full conditioning (caption + the image's own CLIP embedding) for both, so
 * the gap between them is what the decoder memorised rather than learnt. Then, on the test images,
 * the same with the caption dropped, the CLIP embedding dropped, and both (the null condition that
 * guidance starts from): how much each condition tells the decoder at each noise level. Unweighted
 * MSE of the predicted noise (L_simple, thesis Algorithm 2) at ten timesteps spread over the
 * schedule; and the test images' error area-averaged to a quarter of the side (8x8 blocks of 4
 * pixels at 32x32: the scale of a figure's place, which the multiscale loss weighs up).
 *
 *   deno run -A tools/decoder_heldout_loss.ts RUN_DIR [COUNT]
 */
import { builtins } from "../plugins/mod.ts";
import { createDataset, loadPipeline } from "../core/pipeline.ts";
import { imagesToNchw } from "../core/data/images.ts";
import { l2Normalize, tokenBatch } from "../core/clip.ts";
import { decoderLoss } from "../core/diffusion/loss.ts";
import { full, initBackend, manualSeed, noGrad, scope, tensor } from "../core/tensor/mod.ts";
import type { CaptionedImage } from "../core/components.ts";

await initBackend();
const dir = Deno.args[0];
const count = Number(Deno.args[1] ?? 256);
const registry = builtins();
const p = await loadPipeline(dir, registry);
p.clip.eval();
p.decoder.eval();
const dataset = await createDataset(p.config, registry);
const LEVELS = 10;
const BATCH = 32;

/**
 * Which conditions are kept (1 keeps, 0 replaces by the learned null condition), and the sides
 * the error is also scored at (`multiscale`; none: L_simple).
 */
interface Kept {
  both: number;
  text: number;
  clip: number;
  multiscale?: number[];
}
const FULL: Kept = { both: 1, text: 1, clip: 1 };

/**
 * The mean loss per level under each of `variants`, [variant][level]. Each batch's images, tokens
 * and CLIP embeddings are made once and serve every level and variant; every (batch, level) draws
 * the same noise for each variant.
 */
async function meanLoss(data: CaptionedImage[], variants: Kept[]): Promise<number[][]> {
  const side = data[0].width;
  const sums = variants.map(() => new Array(LEVELS).fill(0));
  for (let start = 0; start < data.length; start += BATCH) {
    const rows = data.slice(start, start + BATCH);
    const B = rows.length;
    const batch = scope(() =>
      noGrad(() => {
        const x0 = tensor(imagesToNchw(rows), [B, 3, side, side]);
        const tokens = tokenBatch(p.tokenizer, rows.map((r) => r.caption));
        return { x0, z: l2Normalize(p.clip.encodeImages(x0)), tokens };
      })
    );
    for (let k = 0; k < LEVELS; k++) {
      // Timestep k of LEVELS, at the middle of its tenth of the schedule; noise seeded by (batch, k).
      const t = Math.floor(((k + 0.5) / LEVELS) * p.decoderSchedule.numSteps);
      for (const [v, kept] of variants.entries()) {
        manualSeed(1000 * start + k);
        const loss = scope(() =>
          noGrad(() =>
            decoderLoss(
              p.decoder,
              batch.x0,
              {
                tokens: batch.tokens,
                imageEmbedding: batch.z,
                keep: full([B], kept.both),
                keepText: full([B], kept.text),
                keepClip: full([B], kept.clip),
              },
              p.decoderSchedule,
              {
                timesteps: full([B], t),
                prediction: p.decoder.prediction === "v" ? "v" : "eps",
                multiscale: kept.multiscale,
              },
            )
          )
        );
        sums[v][k] += (await loss.read() as Float32Array)[0] * B;
        loss.dispose();
      }
    }
    for (const x of [batch.x0, batch.z, batch.tokens.ids, batch.tokens.endIndex]) x.dispose();
  }
  return sums.map((perLevel) => perLevel.map((s) => s / data.length));
}

const train = (await dataset.split("train")).slice(0, count);
const test = (await dataset.split("test")).slice(0, count);
const [a] = await meanLoss(train, [FULL]);
const quarter = p.decoder.imageSize / 4;
const [b, noText, noClip, none, withCoarse] = await meanLoss(test, [
  FULL,
  { both: 1, text: 0, clip: 1 },
  { both: 1, text: 1, clip: 0 },
  { both: 0, text: 1, clip: 1 },
  { ...FULL, multiscale: [quarter] },
]);
// The same noise for both: the multiscale loss less L_simple is the coarse term alone.
const coarse = withCoarse.map((x, i) => x - b[i]);
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
const f = (x: number) => x.toFixed(5);
const r = (x: number, y: number) => (x / y).toFixed(3).padStart(6);
console.log(
  `${dir}: L_simple at ${LEVELS} timesteps, ${train.length} train / ${test.length} test images;`,
);
console.log(
  "  test/train: memorised; the ratios after it: test loss without a condition / with all; " +
    `test ${quarter}x${quarter}: the test error area-averaged to ${quarter}x${quarter}`,
);
console.log(
  `  t/T   train    test     test/train  no caption  no CLIP  neither  test ${quarter}x${quarter}`,
);
const row = (label: string, k: (xs: number[]) => number) =>
  console.log(
    `  ${label}  ${f(k(a))}  ${f(k(b))}  ${r(k(b), k(a))}      ${r(k(noText), k(b))}      ` +
      `${r(k(noClip), k(b))}   ${r(k(none), k(b))}   ${f(k(coarse))}`,
  );
for (let i = 0; i < LEVELS; i++) row(((i + 0.5) / LEVELS).toFixed(2), (xs) => xs[i]);
row("mean", mean);
p.dispose();
