/**
 * Fused attention (FlashAttention, Dao et al. 2022): softmax(q k^T * scale + mask) v without ever
 * materialising the [Tq, Tk] score matrix, so memory is O(T) instead of O(T^2).
 *
 * Layout: q [BH, Tq, D], k [BH, Tk, D], v [BH, Tk, Dv], contiguous (the caller expands batch
 * dimensions). One thread owns one row (a query in the forward and dQ kernels, a key in the
 * dK/dV kernel) and keeps that row's vectors and accumulators in registers; the other operand
 * streams through workgroup memory in blocks shared by the workgroup's threads.
 *
 * - Forward: per query, an online softmax over key blocks (running max m and sum l, the
 *   accumulator rescaled by exp(m_old - m_new) once per block); writes O and the row's
 *   log-sum-exp L = m + log(l) (in the units of the scaled, masked scores).
 * - Backward, without float atomics, in two kernels:
 *   1. per query (over key blocks): delta = rowsum(dO * O), P = exp(S - L) recomputed,
 *      dP = dO V^T, dS = P * (dP - delta), dQ = dS K * scale; also stores delta.
 *   2. per key (over query blocks): dV = P^T dO, dK = dS^T Q * scale.
 *
 * Causal masking aligns the ends (query i sees keys j <= i + Tk - Tq, see softmax.ts) and skips
 * whole blocks past the diagonal. The additive mask is read in place through broadcast strides.
 * A row whose keys are all masked yields NaN, as the composed path does.
 */
import { record } from "../autograd.ts";
import { cpu, gpu, onCpu } from "../backend.ts";
import { attentionBackward, attentionForward } from "../cpu/attention.ts";
import { bufferOf, emptyTensor, type Tensor } from "../tensor.ts";
import { broadcastIndexExpr, f32Literal } from "../kernels/wgsl.ts";

/** Largest head dimension (D and Dv) the fused kernels accept. */
export const FLASH_MAX_DIM = 128;

/** Threads (rows) per workgroup. */
const ROWS = 64;
/** Workgroup memory budget (the WebGPU default limit, so every adapter can run it). */
const SHARED_BYTES = 16384;

/** Shapes and options baked into the kernels. */
export interface FlashSpec {
  BH: number;
  Tq: number;
  Tk: number;
  D: number;
  Dv: number;
  scale: number;
  causal: boolean;
  /** Batch dimensions (product BH), for broadcasting the mask. */
  batch: readonly number[];
  mask: Tensor | null;
}

/** Block length for streamed rows of `vec4s` vec4 values each (plus `extra` f32 per row). */
function blockRows(vec4s: number, extra = 0): number {
  let b = 32;
  while (b > 1 && b * (vec4s * 16 + extra * 4) > SHARED_BYTES) b /= 2;
  return b;
}

interface Buf {
  name: string;
  tensor: Tensor;
  rw?: boolean;
}

function declare(bufs: Buf[]): string {
  return bufs.map((b, i) =>
    `@group(0) @binding(${i}) var<storage, ${b.rw ? "read_write" : "read"}> ${b.name}: array<f32>;`
  ).join("\n");
}

/** `fn ld<NAME>(row, c) -> vec4<f32>`: columns 4c..4c+3 of a row of width `w` (0 past w). */
function loader(name: string, w: number): string {
  if (w % 4 === 0) {
    return `fn ld${name}(row: u32, c: u32) -> vec4<f32> {
  let b = row * ${w}u + c * 4u;
  return vec4<f32>(${name}[b], ${name}[b + 1u], ${name}[b + 2u], ${name}[b + 3u]);
}`;
  }
  // Clamp the index so the unselected branch stays in bounds.
  const parts = [0, 1, 2, 3].map((t) =>
    `select(0.0, ${name}[min(b + ${t}u, last)], c * 4u + ${t}u < ${w}u)`
  );
  return `fn ld${name}(row: u32, c: u32) -> vec4<f32> {
  let b = row * ${w}u + c * 4u;
  let last = row * ${w}u + ${w - 1}u;
  return vec4<f32>(${parts.join(", ")});
}`;
}

/** Statements storing the register vector `acc` (times `mul`) into row `row` of `name`. */
function storeRow(name: string, acc: string, w: number, row: string, mul: string): string {
  let s = `    let ob${name} = ${row} * ${w}u;\n`;
  for (let d = 0; d < w; d++) {
    s += `    ${name}[ob${name} + ${d}u] = ${acc}[${d >> 2}][${d & 3}] * ${mul};\n`;
  }
  return s;
}

/** Unrolled sum of dot(a[c], b(c)) over c < n. */
function dots(a: string, b: (c: number) => string, n: number): string {
  return Array.from({ length: n }, (_, c) => `dot(${a}[${c}], ${b(c)})`).join(" + ");
}

/** Unrolled `acc[c] op= expr(c)` for c < n. */
function each(n: number, stmt: (c: number) => string): string {
  return Array.from({ length: n }, (_, c) => `      ${stmt(c)}\n`).join("");
}

/** Common module-scope WGSL: constants, the mask reader and the causal/range predicate. */
function prelude(spec: FlashSpec, bufs: Buf[]): { code: string; maskTerm: string } {
  const { Tq, Tk, causal, mask, batch } = spec;
  let maskFn = "";
  let maskTerm = "";
  if (mask) {
    const full = [...batch, Tq, Tk];
    const padded = [...Array(full.length - mask.rank).fill(1), ...mask.shape];
    const mq = padded[padded.length - 2], mk = padded[padded.length - 1];
    const batchOff = broadcastIndexExpr(batch, padded.slice(0, -2), "bh");
    const sI = mq === 1 ? 0 : mk, sJ = mk === 1 ? 0 : 1;
    bufs.push({ name: "M", tensor: mask });
    maskFn = `fn maskAt(bh: u32, i: u32, j: u32) -> f32 {
  return M[(${batchOff}) * ${mq * mk}u + min(i, ${Tq - 1}u) * ${sI}u + min(j, ${Tk - 1}u) * ${sJ}u];
}`;
    maskTerm = " + maskAt(bh, i, kj)";
  }
  const code = `fn negInf() -> f32 { return ${f32Literal(-Infinity)}; }
fn keyOk(i: u32, j: u32) -> bool {
  return i < ${Tq}u && j < ${Tk}u${causal ? ` && j <= i + ${Tk - Tq}u` : ""};
}
${maskFn}`;
  return { code, maskTerm };
}

function dispatch(label: string, code: string, bufs: Buf[], workgroups: [number, number]): void {
  gpu().dispatch({
    label,
    code,
    bindings: bufs.map((b) => ({
      buffer: bufferOf(b.tensor),
      access: b.rw ? "read_write" : "read",
    })),
    workgroups,
  });
}

/** Exclusive end of the keys any query in [q0, q0 + ROWS) may see (WGSL, uniform). */
function keyEnd(spec: FlashSpec, q0: string): string {
  return spec.causal ? `min(${spec.Tk}u, ${q0} + ${ROWS + spec.Tk - spec.Tq}u)` : `${spec.Tk}u`;
}

/**
 * WGSL loop: the workgroup cooperatively loads rows start..start+rows-1 of head `bh` of the
 * [BH, T, w] input `name` (as `w4` vec4s a row, times `mul`) into the tile `dst`; rows past T
 * read as 0.
 */
function loadTile(
  dst: string,
  name: string,
  start: string,
  rows: number,
  w4: number,
  T: number,
  mul = "",
): string {
  return `    for (var e = lid; e < ${rows * w4}u; e += ${ROWS}u) {
      let r = ${start} + e / ${w4}u;
      ${dst}[e] = select(vec4<f32>(0.0), ld${name}(bh * ${T}u + min(r, ${
    T - 1
  }u), e % ${w4}u)${mul}, r < ${T}u);
    }`;
}

/**
 * WGSL: the start of a per-query kernel (forward, dQ), one thread per query row i of block q0:
 * its row index `qrow` (clamped) and the scaled query in registers `q`.
 */
function queryRow(spec: FlashSpec, D4: number, S: string): string {
  return `  let bh = wg.y;
  let q0 = wg.x * ${ROWS}u;
  let i = q0 + lid;
  let qrow = bh * ${spec.Tq}u + min(i, ${spec.Tq - 1}u);
  var q: array<vec4<f32>, ${D4}>;
${each(D4, (c) => `q[${c}] = ldQ(qrow, ${c}u) * ${S};`)}`;
}

/** WGSL: loads the key block k0..k0+BK-1 into Ks and its values into Vs (per-query kernels). */
function loadKeyBlock(spec: FlashSpec, BK: number, D4: number, V4: number): string {
  return `${loadTile("Ks", "K", "k0", BK, D4, spec.Tk)}
${loadTile("Vs", "V", "k0", BK, V4, spec.Tk)}
    workgroupBarrier();`;
}

/** Forward kernel: returns O [BH, Tq, Dv] and L [BH, Tq]. */
function forward(spec: FlashSpec, q: Tensor, k: Tensor, v: Tensor): { o: Tensor; lse: Tensor } {
  const { BH, Tq, D, Dv } = spec;
  const D4 = Math.ceil(D / 4), V4 = Math.ceil(Dv / 4);
  const BK = blockRows(D4 + V4);
  const o = emptyTensor([...spec.batch, Tq, Dv]);
  const lse = emptyTensor([BH, Tq]);
  const bufs: Buf[] = [
    { name: "Q", tensor: q },
    { name: "K", tensor: k },
    { name: "V", tensor: v },
    { name: "O", tensor: o, rw: true },
    { name: "L", tensor: lse, rw: true },
  ];
  const pre = prelude(spec, bufs);
  const S = f32Literal(spec.scale);
  const code = `${declare(bufs)}
${pre.code}
${loader("Q", D)}
${loader("K", D)}
${loader("V", Dv)}
var<workgroup> Ks: array<vec4<f32>, ${BK * D4}>;
var<workgroup> Vs: array<vec4<f32>, ${BK * V4}>;
@compute @workgroup_size(${ROWS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
${queryRow(spec, D4, S)}
  var acc: array<vec4<f32>, ${V4}>;
  var s: array<f32, ${BK}>;
  let NEG_INF = negInf();
  var m = NEG_INF;
  var l = 0.0;
  let kEnd = ${keyEnd(spec, "q0")};
  for (var k0 = 0u; k0 < kEnd; k0 += ${BK}u) {
${loadKeyBlock(spec, BK, D4, V4)}
    var bm = NEG_INF;
    for (var j = 0u; j < ${BK}u; j++) {
      let kj = k0 + j;
      let x = select(NEG_INF, ${
    dots("q", (c) => `Ks[j * ${D4}u + ${c}u]`, D4)
  }${pre.maskTerm}, keyOk(i, kj));
      s[j] = x;
      bm = max(bm, x);
    }
    let mNew = max(m, bm);
    if (mNew > -3.0e38) {
      let alpha = exp(m - mNew);
      l *= alpha;
${each(V4, (c) => `acc[${c}] *= alpha;`)}
      for (var j = 0u; j < ${BK}u; j++) {
        let p = exp(s[j] - mNew);
        l += p;
${each(V4, (c) => `acc[${c}] = fma(vec4<f32>(p), Vs[j * ${V4}u + ${c}u], acc[${c}]);`)}
      }
      m = mNew;
    }
    workgroupBarrier();
  }
  if (i < ${Tq}u) {
    let inv = 1.0 / l;
${storeRow("O", "acc", Dv, "qrow", "inv")}
    L[qrow] = m + log(l);
  }
}`;
  dispatch("flashAttention", code, bufs, [Math.ceil(Tq / ROWS), BH]);
  return { o, lse };
}

/** Backward pass 1 (per query): dQ, and delta = rowsum(dO * O) for pass 2. */
function backwardDq(
  spec: FlashSpec,
  t: { q: Tensor; k: Tensor; v: Tensor; o: Tensor; lse: Tensor; g: Tensor },
): { dq: Tensor; delta: Tensor } {
  const { BH, Tq, D, Dv } = spec;
  const D4 = Math.ceil(D / 4), V4 = Math.ceil(Dv / 4);
  const BK = blockRows(D4 + V4);
  const dq = emptyTensor(t.q.shape);
  const delta = emptyTensor([BH, Tq]);
  const bufs: Buf[] = [
    { name: "Q", tensor: t.q },
    { name: "K", tensor: t.k },
    { name: "V", tensor: t.v },
    { name: "O", tensor: t.o },
    { name: "L", tensor: t.lse },
    { name: "G", tensor: t.g },
    { name: "DQ", tensor: dq, rw: true },
    { name: "DL", tensor: delta, rw: true },
  ];
  const pre = prelude(spec, bufs);
  const S = f32Literal(spec.scale);
  const code = `${declare(bufs)}
${pre.code}
${loader("Q", D)}
${loader("K", D)}
${loader("V", Dv)}
${loader("O", Dv)}
${loader("G", Dv)}
var<workgroup> Ks: array<vec4<f32>, ${BK * D4}>;
var<workgroup> Vs: array<vec4<f32>, ${BK * V4}>;
@compute @workgroup_size(${ROWS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
${queryRow(spec, D4, S)}
  var go: array<vec4<f32>, ${V4}>;
${each(V4, (c) => `go[${c}] = ldG(qrow, ${c}u);`)}
  let delta = ${dots("go", (c) => `ldO(qrow, ${c}u)`, V4)};
  let lse = L[qrow];
  var acc: array<vec4<f32>, ${D4}>;
  let kEnd = ${keyEnd(spec, "q0")};
  for (var k0 = 0u; k0 < kEnd; k0 += ${BK}u) {
${loadKeyBlock(spec, BK, D4, V4)}
    for (var j = 0u; j < ${BK}u; j++) {
      let kj = k0 + j;
      let x = ${dots("q", (c) => `Ks[j * ${D4}u + ${c}u]`, D4)}${pre.maskTerm};
      let p = select(0.0, exp(x - lse), keyOk(i, kj));
      let dp = ${dots("go", (c) => `Vs[j * ${V4}u + ${c}u]`, V4)};
      let ds = vec4<f32>(p * (dp - delta));
${each(D4, (c) => `acc[${c}] = fma(ds, Ks[j * ${D4}u + ${c}u], acc[${c}]);`)}
    }
    workgroupBarrier();
  }
  if (i < ${Tq}u) {
${storeRow("DQ", "acc", D, "qrow", S)}
    DL[qrow] = delta;
  }
}`;
  dispatch("flashAttention_dq", code, bufs, [Math.ceil(Tq / ROWS), BH]);
  return { dq, delta };
}

/** Backward pass 2 (per key): dK and dV. */
function backwardDkv(
  spec: FlashSpec,
  t: { q: Tensor; k: Tensor; v: Tensor; lse: Tensor; delta: Tensor; g: Tensor },
): { dk: Tensor; dv: Tensor } {
  const { BH, Tq, Tk, D, Dv } = spec;
  const D4 = Math.ceil(D / 4), V4 = Math.ceil(Dv / 4);
  const BQ = blockRows(D4 + V4, 2);
  const dk = emptyTensor(t.k.shape);
  const dv = emptyTensor(t.v.shape);
  const bufs: Buf[] = [
    { name: "Q", tensor: t.q },
    { name: "K", tensor: t.k },
    { name: "V", tensor: t.v },
    { name: "L", tensor: t.lse },
    { name: "DL", tensor: t.delta },
    { name: "G", tensor: t.g },
    { name: "DK", tensor: dk, rw: true },
    { name: "DV", tensor: dv, rw: true },
  ];
  const pre = prelude(spec, bufs);
  const S = f32Literal(spec.scale);
  // Queries before k0 - (Tk - Tq) see none of this block's keys under the causal mask.
  const qStart = spec.causal ? `select(0u, k0 - ${Tk - Tq}u, k0 > ${Tk - Tq}u)` : "0u";
  const code = `${declare(bufs)}
${pre.code}
${loader("Q", D)}
${loader("K", D)}
${loader("V", Dv)}
${loader("G", Dv)}
var<workgroup> Qs: array<vec4<f32>, ${BQ * D4}>;
var<workgroup> Gs: array<vec4<f32>, ${BQ * V4}>;
var<workgroup> Ls: array<f32, ${BQ}>;
var<workgroup> Ds: array<f32, ${BQ}>;
@compute @workgroup_size(${ROWS})
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let bh = wg.y;
  let k0 = wg.x * ${ROWS}u;
  let kj = k0 + lid;
  let krow = bh * ${Tk}u + min(kj, ${Tk - 1}u);
  var kk: array<vec4<f32>, ${D4}>;
${each(D4, (c) => `kk[${c}] = ldK(krow, ${c}u);`)}
  var vv: array<vec4<f32>, ${V4}>;
${each(V4, (c) => `vv[${c}] = ldV(krow, ${c}u);`)}
  var dk: array<vec4<f32>, ${D4}>;
  var dv: array<vec4<f32>, ${V4}>;
  for (var i0 = ${qStart}; i0 < ${Tq}u; i0 += ${BQ}u) {
${loadTile("Qs", "Q", "i0", BQ, D4, Tq, ` * ${S}`)}
${loadTile("Gs", "G", "i0", BQ, V4, Tq)}
    if (lid < ${BQ}u) {
      let r = bh * ${Tq}u + min(i0 + lid, ${Tq - 1}u);
      Ls[lid] = L[r];
      Ds[lid] = DL[r];
    }
    workgroupBarrier();
    for (var r = 0u; r < ${BQ}u; r++) {
      let i = i0 + r;
      let x = ${dots("kk", (c) => `Qs[r * ${D4}u + ${c}u]`, D4)}${pre.maskTerm};
      let p = select(0.0, exp(x - Ls[r]), keyOk(i, kj));
      let dp = ${dots("vv", (c) => `Gs[r * ${V4}u + ${c}u]`, V4)};
      let ds = vec4<f32>(p * (dp - Ds[r]));
      let pv = vec4<f32>(p);
${each(V4, (c) => `dv[${c}] = fma(pv, Gs[r * ${V4}u + ${c}u], dv[${c}]);`)}
${each(D4, (c) => `dk[${c}] = fma(ds, Qs[r * ${D4}u + ${c}u], dk[${c}]);`)}
    }
    workgroupBarrier();
  }
  if (kj < ${Tk}u) {
${storeRow("DK", "dk", D, "krow", "1.0")}
${storeRow("DV", "dv", Dv, "krow", "1.0")}
  }
}`;
  dispatch("flashAttention_dkv", code, bufs, [Math.ceil(Tk / ROWS), BH]);
  return { dk, dv };
}

/**
 * Fused attention on contiguous q [BH, Tq, D], k [BH, Tk, D], v [BH, Tk, Dv] (any leading shape
 * whose product is BH; the caller validates shapes). Returns [BH, Tq, Dv] shaped like
 * [...batch, Tq, Dv]. The mask must not require a gradient.
 */
export function flashAttention(q: Tensor, k: Tensor, v: Tensor, spec: FlashSpec): Tensor {
  const { BH, Tq, Tk, D, Dv } = spec;
  if (D > FLASH_MAX_DIM || Dv > FLASH_MAX_DIM || BH > 65535) {
    throw new Error(
      `flashAttention: head dimensions must be <= ${FLASH_MAX_DIM} and batch*heads <= 65535, got D ${D}, Dv ${Dv}, BH ${BH}.`,
    );
  }
  const outShape = [...spec.batch, Tq, Dv];
  if (BH === 0 || Tq === 0 || Dv === 0) return emptyTensor(outShape);
  if (Tk === 0 || D === 0) {
    // No keys (or empty keys): composed softmax over an empty row; not worth a kernel here.
    throw new Error("flashAttention: Tk and D must be positive.");
  }
  if (onCpu()) return flashAttentionCpu(q, k, v, spec);
  const { o, lse } = forward(spec, q, k, v);
  record(o, "flashAttention", [q, k, v], (g) => {
    const { dq, delta } = backwardDq(spec, { q, k, v, o, lse, g });
    const { dk, dv } = backwardDkv(spec, { q, k, v, lse, delta, g });
    delta.dispose();
    return [dq, dk, dv];
  });
  // Without a tape nobody needs the log-sum-exp again.
  if (!o.node) lse.dispose();
  return o;
}

/**
 * The CPU twin (cpu/attention.ts): scores per group of heads by GEMM, recomputed in the
 * backward, so only O is kept.
 */
function flashAttentionCpu(q: Tensor, k: Tensor, v: Tensor, spec: FlashSpec): Tensor {
  const o = emptyTensor([...spec.batch, spec.Tq, spec.Dv]);
  cpu().countOp();
  attentionForward(spec, { q, k, v, o });
  return record(o, "flashAttention", [q, k, v], (g) => {
    const dq = emptyTensor(q.shape), dk = emptyTensor(k.shape), dv = emptyTensor(v.shape);
    cpu().countOp();
    attentionBackward(spec, { q, k, v, g, dq, dk, dv });
    return [dq, dk, dv];
  });
}
