/**
 * Training the ground-truth probe (`probe_model.ts`) on labelled shapes images: the multi-hot
 * targets of an image, binary cross-entropy with logits, and the Adam loop with flips or the 8
 * dihedral views as augmentation.
 *
 * @module
 */
import { addGrain, toNchw } from "../core/data/images.ts";

export { addGrain };
import { Rng } from "../core/data/rng.ts";
import { Adam } from "../core/optim/mod.ts";
import {
  abs,
  add,
  affine,
  exp,
  log,
  manualSeed,
  mul,
  neg,
  relu,
  scope,
  sub,
  sum,
  type Tensor,
  tensor,
} from "../core/tensor/mod.ts";
import { COLOUR_NAMES, SHAPES } from "./shapes.ts";
import type { CaptionedImage } from "./shapes.ts";
import { labelTargets, PAIR_COUNT, pairIndex, pairSizeIndex } from "./score.ts";
import {
  COUNT_LOGIT,
  dihedralInto,
  PROBE_LOGITS,
  probeForOptions,
  type ProbeOptions,
  type ShapeProbe,
} from "./probe_model.ts";

/**
 * Binary cross-entropy with logits, summed over labels and averaged over the batch:
 * max(z, 0) - z y + log(1 + exp(-|z|)) (the numerically stable form of
 * -y log sigmoid(z) - (1 - y) log(1 - sigmoid(z))).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../core/tensor/mod.ts";
 * function loss(logits: Tensor, targets: Tensor): Tensor {
 *   return bceWithLogits(logits, targets); // scalar
 * }
 * ```
 */
export function bceWithLogits(logits: Tensor, targets: Tensor): Tensor {
  const softplus = log(affine(exp(neg(abs(logits))), 1, 1));
  const per = add(sub(relu(logits), mul(logits, targets)), softplus);
  return affine(sum(per), 1 / logits.shape[0], 0);
}

/** Fills row `row` of `out` ([*, PROBE_LOGITS]) with an image's multi-hot targets. */
function writeTargets(sample: CaptionedImage, out: Float32Array, row: number): void {
  if (!sample.labels) throw new Error(`Image "${sample.caption}" has no ground-truth labels`);
  const t = labelTargets(sample.labels);
  const o = row * PROBE_LOGITS;
  for (const p of t.pairs) out[o + p] = 1;
  for (const l of sample.labels) {
    out[o + PAIR_COUNT + COLOUR_NAMES.indexOf(l.colour)] = 1;
    out[o + PAIR_COUNT + COLOUR_NAMES.length + SHAPES.indexOf(l.shape)] = 1;
  }
  out[o + COUNT_LOGIT] = t.count === 2 ? 1 : 0;
  for (const l of sample.labels) {
    out[o + COUNT_LOGIT + 1 + pairSizeIndex(pairIndex(l.colour, l.shape), l.size)] = 1;
  }
}

/**
 * Trains a probe on labelled images with Adam (random horizontal flips, which keep the labels, or
 * the 8 dihedral views; and Gaussian grain when `options.noise` > 0),
 * the learning rate decaying to zero on a cosine over the last half of the steps. The loss is
 * read back only every 100 steps.
 *
 * @example
 * ```ts
 * import { DEFAULT_PROBE_OPTIONS } from "./probe_model.ts";
 * import type { CaptionedImage } from "./shapes.ts";
 * async function train16(train: CaptionedImage[]) {
 *   const { probe, loss } = await trainProbe(train, { ...DEFAULT_PROBE_OPTIONS, imageSize: 16 });
 *   return { probe, loss };
 * }
 * ```
 */
export async function trainProbe(
  data: readonly CaptionedImage[],
  options: ProbeOptions,
  hooks: { print?: (line: string) => void } = {},
): Promise<{ probe: ShapeProbe; loss: number }> {
  const S = options.imageSize, B = options.batchSize, per = 3 * S * S;
  if (data.length === 0) throw new Error("Cannot train the probe on an empty dataset");
  if (data[0].width !== S) {
    throw new Error(`Probe images are ${data[0].width}px but the probe expects ${S}px`);
  }
  manualSeed(options.seed);
  const probe = probeForOptions(options);
  // Start the head at roughly the label priors (a pair logit is pair + colour + shape, so about
  // -4; colours about -1.5, shapes -1) instead of 0: otherwise the first few hundred Adam steps
  // are spent walking 120 biases down from log(2) per logit to the label frequencies.
  {
    const b = new Float32Array(PROBE_LOGITS);
    for (let i = 0; i < PAIR_COUNT; i++) b[i] = -1.5;
    for (let i = PAIR_COUNT; i < PAIR_COUNT + COLOUR_NAMES.length; i++) b[i] = -1.5;
    for (let i = PAIR_COUNT + COLOUR_NAMES.length; i < COUNT_LOGIT; i++) b[i] = -1;
    for (let i = COUNT_LOGIT + 1; i < PROBE_LOGITS; i++) b[i] = -5;
    probe.head.bias!.write(b);
  }
  const opt = new Adam(probe.parameters(), { lr: options.lr });
  const rng = new Rng(`probe-${options.seed}`);
  const x = new Float32Array(B * per), y = new Float32Array(B * PROBE_LOGITS);
  const one = new Float32Array(per);
  let last = NaN;
  try {
    for (let step = 0; step < options.steps; step++) {
      y.fill(0);
      for (let k = 0; k < B; k++) {
        const s = data[Math.floor(rng.next() * data.length)];
        if (options.augment === "dihedral") {
          toNchw(s.image, S, S, one, 0, false);
          dihedralInto(one, S, Math.floor(rng.next() * 8), x, k * per);
        } else {
          toNchw(s.image, S, S, x, k * per, rng.next() < 0.5);
        }
        if (options.noise > 0) addGrain(x, k * per, per, options.noise * rng.next(), rng);
        writeTargets(s, y, k);
      }
      const loss = scope(() => {
        const l = bceWithLogits(
          probe.forward(tensor(x, [B, 3, S, S])),
          tensor(y, [B, PROBE_LOGITS]),
        );
        l.backward();
        return l;
      });
      const decay = Math.max(0, (step - options.steps / 2) / (options.steps / 2));
      opt.step(options.lr * 0.5 * (1 + Math.cos(Math.PI * decay)));
      opt.zeroGrad();
      if ((step + 1) % 100 === 0 || step === options.steps - 1) {
        last = await loss.item();
        hooks.print?.(`probe step ${step + 1}/${options.steps}  loss ${last.toFixed(4)}`);
      }
      loss.dispose();
    }
  } finally {
    opt.dispose();
  }
  probe.eval();
  return { probe, loss: last };
}
