/**
 * Adam (Kingma & Ba 2015) and AdamW (decoupled weight decay, Loshchilov & Hutter 2019), each
 * parameter updated by ONE fused kernel (`adamUpdate`: moments, bias correction and the step).
 * The per-step scalars (learning rate and bias corrections) live in a small tensor written once
 * per step and shared by every parameter's kernel, so WebGPU pipelines are compiled once and
 * reused.
 */
import { adamUpdate, type GradClip, noGrad, type Tensor, zeros } from "../tensor/mod.ts";

/** Hyperparameters of `Adam`. */
export interface AdamOptions {
  /** Learning rate (the default for `step()`). */
  lr: number;
  /** Decay of the first moment (default 0.9). */
  beta1?: number;
  /** Decay of the second moment (default 0.999). */
  beta2?: number;
  /** Added to sqrt(v-hat) (default 1e-8). */
  eps?: number;
  /** Weight decay (default 0): L2 added to the gradient, or decoupled when `decoupled`. */
  weightDecay?: number;
  /** AdamW: decay the weights directly, p -= lr * wd * p, instead of adding wd * p to g. */
  decoupled?: boolean;
}

/** Optimizer state for checkpoints: the step count and both moments in parameter order. */
export interface AdamState {
  /** Steps taken. */
  step: number;
  /** First moments, in parameter order. */
  m: Tensor[];
  /** Second moments, in parameter order. */
  v: Tensor[];
}

/** What `loadStateDict` accepts: tensors or host arrays for the moments. */
export interface AdamStateInput {
  /** Steps taken. */
  step: number;
  /** First moments, in parameter order. */
  m: (Tensor | Float32Array)[];
  /** Second moments, in parameter order. */
  v: (Tensor | Float32Array)[];
}

/** Copies a tensor or host array into `dst` (same element count). */
export function copyInto(dst: Tensor, src: Tensor | Float32Array, what: string): void {
  const n = src instanceof Float32Array ? src.length : src.size;
  if (n !== dst.size) {
    throw new Error(
      `${what}: has ${n} elements but the parameter has ${dst.size} ([${dst.shape}]).`,
    );
  }
  dst.assign(src);
}

/**
 * Adam / AdamW over a list of parameters. Parameters without a gradient are skipped.
 *
 * Update (PyTorch's formulation): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). With `decoupled` the weights are
 * first multiplied by (1 - lr * wd) (AdamW); otherwise wd * p is added to g (L2, classic Adam).
 *
 * @example
 * ```ts
 * import type { Module } from "../nn/mod.ts";
 * import { scope, type Tensor } from "../tensor/mod.ts";
 * function trainStep(model: Module, loss: (m: Module) => Tensor): Adam {
 *   const opt = new Adam(model.parameters(), { lr: 3e-4, weightDecay: 0.01, decoupled: true });
 *   scope(() => loss(model).backward());
 *   opt.step();
 *   opt.zeroGrad();
 *   return opt;
 * }
 * ```
 */
export class Adam {
  /** The parameters updated, in order. */
  readonly params: Tensor[];
  /** Default learning rate. */
  readonly lr: number;
  /** First-moment decay. */
  readonly beta1: number;
  /** Second-moment decay. */
  readonly beta2: number;
  /** Added to the variance. */
  readonly eps: number;
  /** Weight decay. */
  readonly weightDecay: number;
  /** AdamW (decoupled decay) when true. */
  readonly decoupled: boolean;
  /** Number of steps taken. */
  stepCount = 0;
  #m: Tensor[];
  #v: Tensor[];
  /** [lr, 1 / (1 - b1^t), 1 / sqrt(1 - b2^t), lr * wd]: written once per step. */
  #scalars: Tensor;

  /** Creates the state (zeros / copies) for `params`. */
  constructor(params: Tensor[], opts: AdamOptions) {
    this.params = [...params];
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.decoupled = opts.decoupled ?? false;
    if (!(this.beta1 >= 0 && this.beta1 < 1 && this.beta2 >= 0 && this.beta2 < 1)) {
      throw new Error(`Adam: betas must lie in [0, 1), got ${this.beta1} and ${this.beta2}.`);
    }
    this.#m = this.params.map((p) => zeros(p.shape).keep());
    this.#v = this.params.map((p) => zeros(p.shape).keep());
    this.#scalars = zeros([4]).keep();
  }

  /**
   * Applies one update with the given learning rate (default: the constructor's). With `clip`
   * (the global norm from `gradNorm` and the largest norm let through) every gradient is read as
   * scaled by min(1, maxNorm / (norm + 1e-6)), as after `clipGradNorm`, but left unchanged: the
   * scaling costs no launches of its own.
   */
  step(lr: number = this.lr, clip?: GradClip): void {
    this.stepCount++;
    const t = this.stepCount;
    // Bias corrections in float64 on the host (Kingma & Ba 2015, Algorithm 1).
    const bc1 = 1 - this.beta1 ** t, bc2 = 1 - this.beta2 ** t;
    this.#scalars.write(
      new Float32Array([lr, 1 / bc1, 1 / Math.sqrt(bc2), lr * this.weightDecay]),
    );
    const hyper = {
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: this.weightDecay,
      decoupled: this.decoupled,
    };
    noGrad(() => {
      this.params.forEach((p, k) => {
        if (p.grad) adamUpdate(p, p.grad, this.#m[k], this.#v[k], this.#scalars, hyper, clip);
      });
    });
  }

  /** Disposes every parameter's gradient (call after `step()`). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** The step count and the moments (the optimizer's own tensors: read or copy, do not dispose). */
  stateDict(): AdamState {
    return { step: this.stepCount, m: [...this.#m], v: [...this.#v] };
  }

  /** Restores a state from `stateDict()` (tensors or host arrays, in parameter order). */
  loadStateDict(state: AdamStateInput): void {
    if (state.m.length !== this.params.length || state.v.length !== this.params.length) {
      throw new Error(
        `Adam.loadStateDict: state has ${state.m.length} first and ${state.v.length} second ` +
          `moments for ${this.params.length} parameters.`,
      );
    }
    state.m.forEach((m, k) => copyInto(this.#m[k], m, `Adam.loadStateDict: m[${k}]`));
    state.v.forEach((v, k) => copyInto(this.#v[k], v, `Adam.loadStateDict: v[${k}]`));
    this.stepCount = state.step;
  }

  /** Frees the moments. */
  dispose(): void {
    for (const t of [...this.#m, ...this.#v, this.#scalars]) t.dispose();
  }
}
