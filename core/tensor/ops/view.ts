/**
 * Layout ops: reshape (a free view), expand, permute/transpose, slice, concat, pad and flip.
 * Storage is always contiguous, so everything but reshape materialises with one copy kernel
 * whose index map is generated per shape (WGSL), or one strided copy on the CPU (`cpu/view.ts`:
 * each op states where its output's elements sit in the input as an offset and strides).
 */
import { record } from "../autograd.ts";
import { normalizeAxis, sameShape, stridesOf } from "../shape.ts";
import { emptyTensor, sizeOf, type Tensor, viewOf } from "../tensor.ts";
import { runElementwise } from "../kernels/wgsl.ts";
import { cpu, onCpu } from "../backend.ts";
import { copyStrided, type Strided, wordOffset, words, zeroWords } from "../cpu/view.ts";
import { sumTo } from "../kernels/reduce.ts";

/** WGSL lines defining `c0..c{n-1}`, the coordinates of linear index `i` in `shape`. */
function coordLines(shape: readonly number[]): string {
  const strides = stridesOf(shape);
  return shape.map((d, k) => `  let c${k} = (i / ${strides[k]}u) % ${d}u;`).join("\n");
}

/**
 * out[i] = X[index(i)] (or 0 where `inside` is false). `index` is WGSL in terms of c0..c{n-1}.
 */
function gatherCopy(
  label: string,
  x: Tensor,
  outShape: readonly number[],
  index: string,
  inside?: string,
): Tensor {
  const out = emptyTensor(outShape, x.dtype);
  const zero = x.dtype === "f32" ? "0.0" : x.dtype === "i32" ? "0i" : "0u";
  const read = inside
    ? `select(${zero}, X[select(0u, ${index}, ${inside})], ${inside})`
    : `X[${index}]`;
  runElementwise({
    label,
    n: out.size,
    bindings: [
      { binding: { name: "X", type: x.dtype, access: "read" }, tensor: x },
      { binding: { name: "O", type: x.dtype, access: "read_write" }, tensor: out },
    ],
    body: `${coordLines(outShape)}\n  O[i] = ${read};`,
  });
  return out;
}

/** CPU: a new tensor of `outShape` whose element at coordinates c is x's at `src`(c). */
function gatherCpu(x: Tensor, outShape: readonly number[], src: Strided): Tensor {
  const out = emptyTensor(outShape, x.dtype);
  const from = { offset: wordOffset(x) + src.offset, strides: src.strides };
  copyStrided(words(), outShape, from, { offset: wordOffset(out), strides: stridesOf(outShape) });
  cpu().countOp();
  return out;
}

/** CPU: a zero tensor of `outShape` with x's elements written at `dst`(c) for x's coordinates c. */
function scatterCpu(x: Tensor, outShape: readonly number[], dst: Strided): Tensor {
  const out = emptyTensor(outShape, x.dtype);
  const mem = words();
  zeroWords(mem, wordOffset(out), out.size);
  const to = { offset: wordOffset(out) + dst.offset, strides: dst.strides };
  copyStrided(mem, x.shape, { offset: wordOffset(x), strides: stridesOf(x.shape) }, to);
  cpu().countOp();
  return out;
}

/** Linear index from coordinate expressions and strides. */
function linear(coords: string[], strides: number[]): string {
  const terms = coords.map((c, k) => (strides[k] === 1 ? `(${c})` : `(${c}) * ${strides[k]}u`));
  return terms.length ? terms.join(" + ") : "0u";
}

/**
 * Same data, new shape (one dimension may be -1). Free: shares storage.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function flatten(images: Tensor): Tensor {
 *   return reshape(images, [images.shape[0], -1]); // [B, C, H, W] -> [B, C * H * W]
 * }
 * ```
 */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const resolved = [...shape];
  const unknown = resolved.indexOf(-1);
  if (unknown >= 0) {
    const known = sizeOf(resolved.filter((_, i) => i !== unknown));
    resolved[unknown] = known === 0 ? 0 : x.size / known;
  }
  if (!resolved.every((d) => Number.isInteger(d) && d >= 0) || sizeOf(resolved) !== x.size) {
    throw new Error(`reshape: cannot reshape [${x.shape}] (${x.size} elements) to [${shape}].`);
  }
  const out = viewOf(x, resolved);
  return record(out, "reshape", [x], (g) => [reshape(g, x.shape)]);
}

/** Repeats size-1 dimensions (and adds leading ones) to reach `shape`. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const offset = shape.length - x.rank;
  if (offset < 0 || x.shape.some((d, i) => d !== 1 && d !== shape[i + offset])) {
    throw new Error(`expand: cannot expand [${x.shape}] to [${shape}].`);
  }
  const strides = stridesOf(x.shape);
  let out: Tensor;
  if (onCpu()) {
    // Repeated dimensions read with stride 0.
    const src = shape.map((
      _,
      k,
    ) => (k < offset || x.shape[k - offset] === 1 ? 0 : strides[k - offset]));
    out = gatherCpu(x, shape, { offset: 0, strides: src });
  } else {
    const coords = x.shape.map((d, i) => (d === 1 ? "0u" : `c${i + offset}`));
    out = gatherCopy("expand", x, shape, linear(coords, strides));
  }
  return record(out, "expand", [x], (g) => [sumTo(g, x.shape)]);
}

/** Reorders dimensions: output dimension k is input dimension `perm[k]`. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const p = perm.map((a) => normalizeAxis("permute", a, x.rank));
  if (p.length !== x.rank || new Set(p).size !== p.length) {
    throw new Error(
      `permute: [${perm}] is not a permutation of the ${x.rank} axes of [${x.shape}].`,
    );
  }
  if (p.every((a, i) => a === i)) return x;
  const strides = stridesOf(x.shape);
  const outShape = p.map((a) => x.shape[a]);
  let out: Tensor;
  if (onCpu()) out = gatherCpu(x, outShape, { offset: 0, strides: p.map((a) => strides[a]) });
  else {
    const coords = new Array<string>(x.rank);
    p.forEach((a, k) => (coords[a] = `c${k}`));
    out = gatherCopy("permute", x, outShape, linear(coords, strides));
  }
  const inverse = new Array<number>(p.length);
  p.forEach((a, k) => (inverse[a] = k));
  return record(out, "permute", [x], (g) => [permute(g, inverse)]);
}

/** Swaps two dimensions (default: the last two). */
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const perm = [...Array(x.rank).keys()];
  const i = normalizeAxis("transpose", a, x.rank), j = normalizeAxis("transpose", b, x.rank);
  [perm[i], perm[j]] = [perm[j], perm[i]];
  return permute(x, perm);
}

/**
 * Takes `[start, end)` along `axis` (negative indices count from the end; `step` > 0).
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function firstToken(tokens: Tensor): Tensor {
 *   return slice(tokens, 1, 0, 1); // [B, T, D] -> [B, 1, D]
 * }
 * ```
 */
export function slice(x: Tensor, axis: number, start: number, end = Infinity, step = 1): Tensor {
  const ax = normalizeAxis("slice", axis, x.rank);
  const n = x.shape[ax];
  const s = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
  const e = Math.min(Math.max(end < 0 ? end + n : end, s), n);
  if (!Number.isInteger(step) || step < 1) {
    throw new Error(`slice: step must be a positive integer, got ${step}.`);
  }
  const len = Math.ceil((e - s) / step);
  const outShape = x.shape.map((d, i) => (i === ax ? len : d));
  const xs = stridesOf(x.shape);
  // On the CPU: the slice starts s rows in and walks the axis `step` rows at a time.
  const along: Strided = {
    offset: s * xs[ax],
    strides: xs.map((d, i) => (i === ax ? d * step : d)),
  };
  let out: Tensor;
  if (onCpu()) out = gatherCpu(x, outShape, along);
  else {
    const coords = x.shape.map((_, i) => (i === ax ? `${s}u + c${i} * ${step}u` : `c${i}`));
    out = gatherCopy("slice", x, outShape, linear(coords, xs));
  }
  return record(out, "slice", [x], (g) => {
    // Scatter back: pad with zeros around the slice (step 1), or place every step-th row.
    if (step === 1) {
      return [
        pad(g, x.shape.map((_, i) => (i === ax ? [s, n - e] : [0, 0])) as [number, number][]),
      ];
    }
    if (onCpu()) return [scatterCpu(g, x.shape, along)];
    const gc = x.shape.map((_, i) => (i === ax ? `(c${i} - ${s}u) / ${step}u` : `c${i}`));
    const inside = `c${ax} >= ${s}u && c${ax} < ${e}u && (c${ax} - ${s}u) % ${step}u == 0u`;
    return [gatherCopy("slice_grad", g, x.shape, linear(gc, stridesOf(g.shape)), inside)];
  });
}

/** Zero padding: `widths[d] = [before, after]` for every dimension. */
export function pad(x: Tensor, widths: readonly (readonly [number, number])[], value = 0): Tensor {
  if (
    widths.length !== x.rank || widths.some(([a, b]) => a < 0 || b < 0 || !Number.isInteger(a + b))
  ) {
    throw new Error(
      `pad: need one [before, after] pair of non-negative integers per dimension of [${x.shape}], got ${
        JSON.stringify(widths)
      }.`,
    );
  }
  if (value !== 0) throw new Error("pad: only zero padding is supported.");
  const outShape = x.shape.map((d, i) => d + widths[i][0] + widths[i][1]);
  const out = onCpu() ? padCpu(x, outShape, widths) : padGpu(x, outShape, widths);
  return record(out, "pad", [x], (g) => {
    let r = g;
    widths.forEach((
      [a],
      i,
    ) => (r = a || r.shape[i] !== x.shape[i] ? slice(r, i, a, a + x.shape[i]) : r));
    return [r];
  });
}

function padCpu(
  x: Tensor,
  outShape: number[],
  widths: readonly (readonly [number, number])[],
): Tensor {
  const os = stridesOf(outShape);
  const offset = widths.reduce((o, [before], i) => o + before * os[i], 0);
  return scatterCpu(x, outShape, { offset, strides: os });
}

function padGpu(
  x: Tensor,
  outShape: number[],
  widths: readonly (readonly [number, number])[],
): Tensor {
  const coords = x.shape.map((_, i) => `(c${i} - ${widths[i][0]}u)`);
  const inside =
    x.shape.map((d, i) => `c${i} >= ${widths[i][0]}u && c${i} < ${widths[i][0] + d}u`).join(
      " && ",
    ) || "true";
  return gatherCopy("pad", x, outShape, linear(coords, stridesOf(x.shape)), inside);
}

/** Reverses the order along the given axes. */
export function flip(x: Tensor, axes: number | number[]): Tensor {
  const list = (Array.isArray(axes) ? axes : [axes]).map((a) => normalizeAxis("flip", a, x.rank));
  const xs = stridesOf(x.shape);
  let out: Tensor;
  if (onCpu()) {
    // Flipped axes start at their last row and walk backwards.
    const offset = list.reduce((o, a) => o + (x.shape[a] - 1) * xs[a], 0);
    out = gatherCpu(x, x.shape, {
      offset: x.size === 0 ? 0 : offset,
      strides: xs.map((d, i) => (list.includes(i) ? -d : d)),
    });
  } else {
    const coords = x.shape.map((d, i) => (list.includes(i) ? `${d - 1}u - c${i}` : `c${i}`));
    out = gatherCopy("flip", x, x.shape, linear(coords, xs));
  }
  return record(out, "flip", [x], (g) => [flip(g, list)]);
}

/** Joins tensors along `axis`; all other dimensions must match. */
export function concat(xs: Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new Error("concat: needs at least one tensor.");
  const ax = normalizeAxis("concat", axis, xs[0].rank);
  for (const [k, t] of xs.entries()) {
    if (
      t.rank !== xs[0].rank || t.shape.some((d, i) => i !== ax && d !== xs[0].shape[i]) ||
      t.dtype !== xs[0].dtype
    ) {
      throw new Error(
        `concat: tensor ${k} has shape [${t.shape}] (${t.dtype}), incompatible with [${
          xs[0].shape
        }] (${xs[0].dtype}) along axis ${ax}.`,
      );
    }
  }
  if (xs.length === 1) return xs[0];
  const outShape = [...xs[0].shape];
  outShape[ax] = xs.reduce((n, t) => n + t.shape[ax], 0);
  const out = emptyTensor(outShape, xs[0].dtype);
  const outStrides = stridesOf(outShape);
  let offset = 0;
  for (const t of xs) {
    if (onCpu()) {
      const to = { offset: wordOffset(out) + offset * outStrides[ax], strides: outStrides };
      copyStrided(words(), t.shape, { offset: wordOffset(t), strides: stridesOf(t.shape) }, to);
      cpu().countOp();
      offset += t.shape[ax];
      continue;
    }
    // Each input writes its block of the output: out coords are its coords shifted along axis.
    const coords = t.shape.map((_, i) => (i === ax ? `c${i} + ${offset}u` : `c${i}`));
    runElementwise({
      label: "concat",
      n: t.size,
      bindings: [
        { binding: { name: "X", type: t.dtype, access: "read" }, tensor: t },
        { binding: { name: "O", type: t.dtype, access: "read_write" }, tensor: out },
      ],
      body: `${coordLines(t.shape)}\n  O[${linear(coords, outStrides)}] = X[i];`,
    });
    offset += t.shape[ax];
  }
  const starts: number[] = [];
  let s = 0;
  for (const t of xs) {
    starts.push(s);
    s += t.shape[ax];
  }
  return record(
    out,
    "concat",
    xs,
    (g) =>
      xs.map((t, k) => (t.requiresGrad ? slice(g, ax, starts[k], starts[k] + t.shape[ax]) : null)),
  );
}

/** A contiguous copy (for when a separate buffer is needed). */
export function clone(x: Tensor): Tensor {
  const out = onCpu()
    ? gatherCpu(x, x.shape, { offset: 0, strides: stridesOf(x.shape) })
    : gatherCopy("clone", x, x.shape, "i");
  return record(out, "clone", [x], (g) => [g]);
}

/** Inserts a size-1 dimension at `axis`. */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const ax = axis < 0 ? axis + x.rank + 1 : axis;
  if (ax < 0 || ax > x.rank) {
    throw new Error(`unsqueeze: axis ${axis} is out of range for shape [${x.shape}].`);
  }
  const shape = [...x.shape];
  shape.splice(ax, 0, 1);
  return reshape(x, shape);
}

/** Removes a size-1 dimension at `axis`. */
export function squeeze(x: Tensor, axis: number): Tensor {
  const ax = normalizeAxis("squeeze", axis, x.rank);
  if (x.shape[ax] !== 1) {
    throw new Error(`squeeze: dimension ${axis} of [${x.shape}] has size ${x.shape[ax]}, not 1.`);
  }
  return reshape(x, x.shape.filter((_, i) => i !== ax));
}
