/**
 * Index kernels of the CPU backend: row lookups (`embedding`, `takeAlong`, `gather`) and their
 * scatter-add gradients. Gradients add in ascending position order into float32, the order the
 * WGSL kernels use, so both backends round the same way. Out-of-range indices read NaN and
 * receive no gradient.
 */

/** out[n, :] = table[ids[n], :] (NaN rows for ids outside [0, V)). */
export function embeddingRows(
  ids: Int32Array,
  table: Float32Array,
  D: number,
  out: Float32Array,
): void {
  const V = table.length / D;
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n];
    if (id >= 0 && id < V) out.set(table.subarray(id * D, id * D + D), n * D);
    else out.fill(NaN, n * D, n * D + D);
  }
}

/** gt[v, :] = sum of g[n, :] over the positions n with ids[n] == v. */
export function embeddingGrad(ids: Int32Array, g: Float32Array, D: number, gt: Float32Array): void {
  const V = gt.length / D;
  gt.fill(0);
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n];
    if (id < 0 || id >= V) continue;
    const row = id * D, src = n * D;
    for (let d = 0; d < D; d++) gt[row + d] += g[src + d];
  }
}

/** out[b, :] = x[b, idx[b], :] for x [B, T, D] (NaN rows for idx outside [0, T)). */
export function takeRows(
  x: Float32Array,
  idx: Int32Array,
  T: number,
  D: number,
  out: Float32Array,
): void {
  for (let b = 0; b < idx.length; b++) {
    const t = idx[b];
    if (t >= 0 && t < T) {
      const src = (b * T + t) * D;
      out.set(x.subarray(src, src + D), b * D);
    } else out.fill(NaN, b * D, b * D + D);
  }
}

/** gx[b, idx[b], :] = g[b, :], zero elsewhere. */
export function takeRowsGrad(
  idx: Int32Array,
  g: Float32Array,
  T: number,
  D: number,
  gx: Float32Array,
): void {
  gx.fill(0);
  for (let b = 0; b < idx.length; b++) {
    const t = idx[b];
    if (t >= 0 && t < T) gx.set(g.subarray(b * D, b * D + D), (b * T + t) * D);
  }
}

/** out[r, k] = x[r, idx[r, k]] over rows of length N (x) and K (idx, out). */
export function gatherLast(
  x: Float32Array,
  idx: Int32Array,
  N: number,
  K: number,
  out: Float32Array,
): void {
  for (let i = 0; i < idx.length; i++) {
    const c = idx[i];
    out[i] = c >= 0 && c < N ? x[((i / K) | 0) * N + c] : NaN;
  }
}

/** gx[r, n] = sum of g[r, k] over the k with idx[r, k] == n. */
export function gatherLastGrad(
  idx: Int32Array,
  g: Float32Array,
  N: number,
  K: number,
  gx: Float32Array,
): void {
  gx.fill(0);
  for (let i = 0; i < idx.length; i++) {
    const c = idx[i];
    if (c >= 0 && c < N) gx[((i / K) | 0) * N + c] += g[i];
  }
}
