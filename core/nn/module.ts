/**
 * The base class of every layer and model: named parameters and buffers, child modules,
 * train/eval mode, parameter counts and state dictionaries (the names used in checkpoints).
 */
import { affine, rand, randn, type Tensor } from "../tensor/mod.ts";

/** A module: owns parameters (trainable), buffers (saved state such as running means), children. */
export abstract class Module {
  /** Training mode (dropout active, BatchNorm uses batch statistics). */
  training = true;
  #params = new Map<string, Tensor>();
  #buffers = new Map<string, Tensor>();
  #children = new Map<string, Module>();

  /** Registers a trainable parameter (kept across scopes, requires a gradient). */
  protected addParameter(name: string, t: Tensor): Tensor {
    t.requiresGrad = true;
    this.#params.set(name, t.keep());
    return t;
  }

  /** Registers non-trainable state that checkpoints save (kept across scopes). */
  protected addBuffer(name: string, t: Tensor): Tensor {
    this.#buffers.set(name, t.keep());
    return t;
  }

  /** Replaces a buffer's tensor (e.g. an updated running mean), disposing the old one. */
  protected setBuffer(name: string, t: Tensor): void {
    const old = this.#buffers.get(name);
    if (old && old !== t) old.dispose();
    this.#buffers.set(name, t.keep());
  }

  /** The current tensor of a buffer. */
  protected getBuffer(name: string): Tensor {
    const t = this.#buffers.get(name);
    if (!t) throw new Error(`Buffer "${name}" is not registered.`);
    return t;
  }

  /** Registers a child module under `name` (its parameters are named `name.param`). */
  protected addModule<M extends Module>(name: string, m: M): M {
    this.#children.set(name, m);
    return m;
  }

  /** Every parameter with its dotted name, children included, in registration order. */
  namedParameters(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.#params) out.push([prefix + n, t]);
    for (const [n, m] of this.#children) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /** Every buffer with its dotted name, children included. */
  namedBuffers(prefix = ""): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this.#buffers) out.push([prefix + n, t]);
    for (const [n, m] of this.#children) out.push(...m.namedBuffers(`${prefix}${n}.`));
    return out;
  }

  /** The trainable parameters. */
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Number of trainable scalars. */
  parameterCount(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  /** Sets training mode here and in all children. */
  train(mode = true): this {
    this.training = mode;
    for (const m of this.#children.values()) m.train(mode);
    return this;
  }

  /** Sets evaluation mode. */
  eval(): this {
    return this.train(false);
  }

  /** Parameters and buffers by name: what a checkpoint stores. */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /**
   * Copies values into this module's parameters and buffers. Every name must be present with
   * the same shape; extra or missing names are errors that list them. With `allowMissing`, names
   * the values lack keep their current values and are returned (a fine-tune that adds a module).
   */
  loadStateDict(
    values: Map<string, { shape: readonly number[]; data: Float32Array }>,
    write: (t: Tensor, data: Float32Array) => void,
    options: { allowMissing?: boolean } = {},
  ): string[] {
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !values.has(k));
    const extra = [...values.keys()].filter((k) => !own.has(k));
    if ((missing.length && !options.allowMissing) || extra.length) {
      throw new Error(
        `State does not match the model: missing ${JSON.stringify(missing.slice(0, 5))}` +
          `${missing.length > 5 ? ` (+${missing.length - 5})` : ""}, unexpected ${
            JSON.stringify(extra.slice(0, 5))
          }.`,
      );
    }
    for (const [name, t] of own) {
      const v = values.get(name);
      if (!v) continue;
      if (v.shape.length !== t.shape.length || v.shape.some((d, i) => d !== t.shape[i])) {
        throw new Error(
          `State "${name}" has shape [${v.shape}] but the model expects [${t.shape}].`,
        );
      }
      write(t, v.data);
    }
    return missing;
  }

  /** Frees every parameter and buffer. */
  dispose(): void {
    for (const t of this.#params.values()) t.dispose();
    for (const t of this.#buffers.values()) t.dispose();
    for (const m of this.#children.values()) m.dispose();
  }
}

/** U(-bound, bound) initialisation (PyTorch's default for Linear/Conv: bound = 1/sqrt(fan_in)). */
export function uniformInit(shape: number[], bound: number): Tensor {
  return affine(rand(shape), 2 * bound, -bound);
}

/** N(0, std^2) initialisation. */
export function normalInit(shape: number[], std: number): Tensor {
  return affine(randn(shape), std, 0);
}
