/**
 * Index ops: `embedding` (row gather from a table), `takeAlong` (one position per batch row, e.g.
 * the end-of-text token's feature) and `gather` along the last axis. Their backward passes are
 * scatter-adds written without float atomics: each output element of the gradient is owned by
 * one thread, which loops over the indices that point at it. The CPU kernels are in
 * `cpu/gather.ts`.
 */
import { record } from "../autograd.ts";
import { expectDType, normalizeAxis, sameShape } from "../shape.ts";
import { emptyTensor, sizeOf, type Tensor } from "../tensor.ts";
import { f32Literal, runElementwise } from "../kernels/wgsl.ts";
import { cpu, onCpu } from "../backend.ts";
import {
  embeddingGrad,
  embeddingRows,
  gatherLast,
  gatherLastGrad,
  takeRows,
  takeRowsGrad,
} from "../cpu/gather.ts";
import { f32, i32 } from "../cpu/views.ts";

const NAN = f32Literal(NaN);

/**
 * Looks up rows of `table` [V, D] for integer `ids` [...] (i32), giving [..., D]. An id outside
 * [0, V) yields a row of NaN. The table's gradient adds the output gradients of repeated ids.
 *
 * @example
 * ```ts
 * import type { Tensor } from "../mod.ts";
 * function embed(tokenIds: Tensor, tokenTable: Tensor): Tensor {
 *   return embedding(tokenIds, tokenTable); // [B, T] -> [B, T, D]
 * }
 * ```
 */
export function embedding(ids: Tensor, table: Tensor): Tensor {
  expectDType("embedding", "ids", ids, "i32");
  expectDType("embedding", "table", table, "f32");
  if (table.rank !== 2) {
    throw new Error(
      `embedding: table must be [V, D], got shape [${table.shape}] (ids [${ids.shape}]).`,
    );
  }
  const [V, D] = table.shape;
  const N = ids.size;
  const out = emptyTensor([...ids.shape, D]);
  if (onCpu()) {
    embeddingRows(i32(ids), f32(table), D, f32(out));
    cpu().countOp();
  } else {
    runElementwise({
      label: "embedding",
      n: out.size,
      bindings: [
        { binding: { name: "IDS", type: "i32", access: "read" }, tensor: ids },
        { binding: { name: "TAB", type: "f32", access: "read" }, tensor: table },
        { binding: { name: "O", type: "f32", access: "read_write" }, tensor: out },
      ],
      body: `  let id = IDS[i / ${D}u];
  let ok = id >= 0i && id < ${V}i;
  O[i] = select(${NAN}, TAB[u32(select(0i, id, ok)) * ${D}u + i % ${D}u], ok);`,
    });
  }
  return record(out, "embedding", [table], (g) => {
    const gt = emptyTensor([V, D]);
    if (onCpu()) {
      embeddingGrad(i32(ids), f32(g), D, f32(gt));
      cpu().countOp();
    } else if (V * N <= N * N + V) {
      // One thread per (v, d) sums the gradients of every position holding id v.
      runElementwise({
        label: "embedding_grad",
        n: V * D,
        bindings: [
          { binding: { name: "IDS", type: "i32", access: "read" }, tensor: ids },
          { binding: { name: "G", type: "f32", access: "read" }, tensor: g },
          { binding: { name: "GT", type: "f32", access: "read_write" }, tensor: gt },
        ],
        body: `  let v = i32(i / ${D}u);
  let d = i % ${D}u;
  var acc = 0.0;
  for (var n = 0u; n < ${N}u; n++) { if (IDS[n] == v) { acc += G[n * ${D}u + d]; } }
  GT[i] = acc;`,
      });
    } else {
      // Large vocabularies: zero the table, then the first position holding each id sums the
      // gradients of all positions holding it (one writer per row, no atomics).
      runElementwise({
        label: "embedding_grad_zero",
        n: V * D,
        bindings: [{ binding: { name: "GT", type: "f32", access: "read_write" }, tensor: gt }],
        body: "  GT[i] = 0.0;",
      });
      runElementwise({
        label: "embedding_grad_scatter",
        n: N * D,
        bindings: [
          { binding: { name: "IDS", type: "i32", access: "read" }, tensor: ids },
          { binding: { name: "G", type: "f32", access: "read" }, tensor: g },
          { binding: { name: "GT", type: "f32", access: "read_write" }, tensor: gt },
        ],
        body: `  let n0 = i / ${D}u;
  let d = i % ${D}u;
  let id = IDS[n0];
  if (id < 0i || id >= ${V}i) { return; }
  for (var n = 0u; n < n0; n++) { if (IDS[n] == id) { return; } }
  var acc = 0.0;
  for (var n = n0; n < ${N}u; n++) { if (IDS[n] == id) { acc += G[n * ${D}u + d]; } }
  GT[u32(id) * ${D}u + d] = acc;`,
      });
    }
    return [gt];
  });
}

/**
 * Picks one position per batch row: x [B, T, D] and idx i32 [B] give out[b] = x[b, idx[b]]
 * ([B, D]); e.g. the end-of-text token's feature in a text encoder. Out-of-range indices give NaN.
 */
export function takeAlong(x: Tensor, idx: Tensor): Tensor {
  expectDType("takeAlong", "x", x, "f32");
  expectDType("takeAlong", "idx", idx, "i32");
  if (x.rank !== 3 || idx.rank !== 1 || idx.shape[0] !== x.shape[0]) {
    throw new Error(
      `takeAlong: need x [B, T, D] and idx [B], got x [${x.shape}] and idx [${idx.shape}].`,
    );
  }
  const [B, T, D] = x.shape;
  const out = emptyTensor([B, D]);
  if (onCpu()) {
    takeRows(f32(x), i32(idx), T, D, f32(out));
    cpu().countOp();
  } else {
    runElementwise({
      label: "takeAlong",
      n: B * D,
      bindings: [
        { binding: { name: "X", type: "f32", access: "read" }, tensor: x },
        { binding: { name: "IDX", type: "i32", access: "read" }, tensor: idx },
        { binding: { name: "O", type: "f32", access: "read_write" }, tensor: out },
      ],
      body: `  let b = i / ${D}u;
  let t = IDX[b];
  let ok = t >= 0i && t < ${T}i;
  O[i] = select(${NAN}, X[(b * ${T}u + u32(select(0i, t, ok))) * ${D}u + i % ${D}u], ok);`,
    });
  }
  return record(out, "takeAlong", [x], (g) => {
    const gx = emptyTensor(x.shape);
    if (onCpu()) {
      takeRowsGrad(i32(idx), f32(g), T, D, f32(gx));
      cpu().countOp();
      return [gx];
    }
    runElementwise({
      label: "takeAlong_grad",
      n: B * T * D,
      bindings: [
        { binding: { name: "IDX", type: "i32", access: "read" }, tensor: idx },
        { binding: { name: "G", type: "f32", access: "read" }, tensor: g },
        { binding: { name: "GX", type: "f32", access: "read_write" }, tensor: gx },
      ],
      body: `  let b = i / ${T * D}u;
  let t = (i / ${D}u) % ${T}u;
  GX[i] = select(0.0, G[b * ${D}u + i % ${D}u], IDX[b] == i32(t));`,
    });
    return [gx];
  });
}

/**
 * Gathers along the last axis: x [..., N] and indices i32 [..., K] (same leading dimensions)
 * give out[..., k] = x[..., indices[..., k]]. Only `axis = -1` (or rank - 1) is supported.
 * Out-of-range indices give NaN; repeated indices add their gradients.
 */
export function gather(x: Tensor, axis: number, indices: Tensor): Tensor {
  expectDType("gather", "x", x, "f32");
  expectDType("gather", "indices", indices, "i32");
  const ax = normalizeAxis("gather", axis, x.rank);
  if (ax !== x.rank - 1) {
    throw new Error(
      `gather: only the last axis is supported, got axis ${axis} for x [${x.shape}].`,
    );
  }
  if (indices.rank !== x.rank || !sameShape(indices.shape.slice(0, -1), x.shape.slice(0, -1))) {
    throw new Error(
      `gather: indices [${indices.shape}] must match x [${x.shape}] in all but the last dimension.`,
    );
  }
  const N = x.shape[x.rank - 1], K = indices.shape[indices.rank - 1];
  const rows = sizeOf(x.shape.slice(0, -1));
  const out = emptyTensor(indices.shape);
  if (onCpu()) {
    gatherLast(f32(x), i32(indices), N, K, f32(out));
    cpu().countOp();
  } else {
    runElementwise({
      label: "gather",
      n: out.size,
      bindings: [
        { binding: { name: "X", type: "f32", access: "read" }, tensor: x },
        { binding: { name: "IDX", type: "i32", access: "read" }, tensor: indices },
        { binding: { name: "O", type: "f32", access: "read_write" }, tensor: out },
      ],
      body: `  let r = i / ${K}u;
  let c = IDX[i];
  let ok = c >= 0i && c < ${N}i;
  O[i] = select(${NAN}, X[r * ${N}u + u32(select(0i, c, ok))], ok);`,
    });
  }
  return record(out, "gather", [x], (g) => {
    const gx = emptyTensor(x.shape);
    if (onCpu()) {
      gatherLastGrad(i32(indices), f32(g), N, K, f32(gx));
      cpu().countOp();
      return [gx];
    }
    runElementwise({
      label: "gather_grad",
      n: rows * N,
      bindings: [
        { binding: { name: "IDX", type: "i32", access: "read" }, tensor: indices },
        { binding: { name: "G", type: "f32", access: "read" }, tensor: g },
        { binding: { name: "GX", type: "f32", access: "read_write" }, tensor: gx },
      ],
      body: `  let r = i / ${N}u;
  let n = i32(i % ${N}u);
  var acc = 0.0;
  for (var k = 0u; k < ${K}u; k++) { if (IDX[r * ${K}u + k] == n) { acc += G[r * ${K}u + k]; } }
  GX[i] = acc;`,
    });
    return [gx];
  });
}
