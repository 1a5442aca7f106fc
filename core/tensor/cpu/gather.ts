/**
 * Index ops on the CPU backend (the twins of ops/embedding.ts): `embedding`, `takeAlong` and
 * `gather` all copy rows of `width` elements picked by integer ids, ids[n] choosing row
 * ids[n] among the `rows` rows of block floor(n / perBlock) of the source. An id outside
 * [0, rows) gives a row of NaN forward and no gradient, as in the WGSL. The backward scatters
 * the output gradient back with plain adds (one thread: no atomics needed).
 */

/** How ids address the source: see the module comment. */
export interface RowPick {
  /** Elements per picked row. */
  width: number;
  /** Rows per source block (the valid id range). */
  rows: number;
  /** Consecutive ids that pick from the same block. */
  perBlock: number;
}

/** out[n] = src[block(n)][ids[n]] (rows of `width`), NaN where the id is out of range. */
export function pickRows(src: Float32Array, ids: Int32Array, out: Float32Array, p: RowPick): void {
  const { width, rows, perBlock } = p;
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n], o = n * width;
    if (id >= 0 && id < rows) {
      const s = (Math.floor(n / perBlock) * rows + id) * width;
      out.set(src.subarray(s, s + width), o);
    } else {
      out.fill(NaN, o, o + width);
    }
  }
}

/** Gradient of `pickRows`: gsrc (zeroed first) accumulates g[n] at the row ids[n] picked. */
export function pickRowsGrad(
  g: Float32Array,
  ids: Int32Array,
  gsrc: Float32Array,
  p: RowPick,
): void {
  const { width, rows, perBlock } = p;
  gsrc.fill(0);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n];
    if (id < 0 || id >= rows) continue;
    const s = (Math.floor(n / perBlock) * rows + id) * width, o = n * width;
    for (let d = 0; d < width; d++) gsrc[s + d] += g[o + d];
  }
}
