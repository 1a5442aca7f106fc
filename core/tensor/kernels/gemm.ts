/**
 * The one tiled GEMM template. Every matrix product in the engine runs through it: matmul and
 * batched matmul (with transposes), linear layers with a fused bias/activation epilogue, and
 * conv2d and its gradients as implicit GEMMs (im2col happens inside the `readA`/`readB` hooks,
 * the scatter to NCHW inside the `writeC` hook).
 *
 * Each workgroup computes a TM x TN tile of C, each thread a 4x4 register tile; A and B tiles are
 * staged through workgroup memory as vec4 rows so the inner loop is 2 vec4 loads per 16 FMAs.
 */
import { gpu } from "../backend.ts";
import type { Access } from "../webgpu_backend.ts";
import { bufferOf, emptyTensor, type Tensor } from "../tensor.ts";

/** A binding of the GEMM kernel: a tensor and how WGSL sees it. */
export interface GemmBinding {
  name: string;
  tensor: Tensor;
  access: Access;
  /** Element type; `vec4<f32>` binds an f32 tensor (size a multiple of 4) for 16-byte loads. */
  type?: "f32" | "i32" | "u32" | "vec4<f32>";
}

/**
 * A vectorised read hook: the WGSL body of `fn readA4(b: u32, m: u32, k: u32) -> vec4<f32>`
 * (or `readB4(b, k, n)`) returning 4 consecutive elements along `axis`, starting at an index that
 * is a multiple of 4 (all 0 when the start is outside the matrix). The template uses it instead
 * of the scalar hook only when that axis's extent is a multiple of 4, so each vector lies wholly
 * inside or wholly outside the matrix.
 */
export interface GemmRead4<Axis extends string> {
  axis: Axis;
  body: string;
}

/** A GEMM C[b] (M x N) = sum over k of A[b](m, k) * B[b](k, n), with pluggable memory access. */
export interface GemmSpec {
  label: string;
  M: number;
  N: number;
  K: number;
  batch: number;
  bindings: GemmBinding[];
  /** WGSL body of `fn readA(b: u32, m: u32, k: u32) -> f32` (must return 0 outside the matrix). */
  readA: string;
  /** WGSL body of `fn readB(b: u32, k: u32, n: u32) -> f32` (must return 0 outside the matrix). */
  readB: string;
  /** WGSL body of `fn writeC(b: u32, m: u32, n: u32, v: f32)` (only called inside M x N). */
  writeC: string;
  /** Extra module-scope WGSL (helpers used by the hooks). */
  prelude?: string;
  /** Optional vectorised `readA` (A(m..m+3, k) or A(m, k..k+3)); see `GemmRead4`. */
  readA4?: GemmRead4<"m" | "k">;
  /** Optional vectorised `readB` (B(k..k+3, n) or B(k, n..n+3)); see `GemmRead4`. */
  readB4?: GemmRead4<"k" | "n">;
}

const TK = 16;

/** Tile sizes: small problems get 32x32 tiles so fewer threads idle. */
function tiles(M: number, N: number): { TM: number; TN: number } {
  return { TM: M <= 32 ? 32 : 64, TN: N <= 32 ? 32 : 64 };
}

/** Generates the GEMM kernel for a spec (exported for tests and benchmarks). */
export function gemmSource(spec: GemmSpec): { code: string; workgroups: [number, number, number] } {
  return gemmSourceSplit(spec, 1);
}

/**
 * Split-K: how many slices of K to run as separate workgroups when the output has too few tiles
 * to fill a GPU (weight gradients: M x N small, K = batch x pixels huge). Each slice keeps at
 * least 512 of K so the extra pass stays small next to the GEMM.
 */
function splitCount(spec: GemmSpec): number {
  const { TM, TN } = tiles(spec.M, spec.N);
  const wgs = Math.ceil(spec.M / TM) * Math.ceil(spec.N / TN) * spec.batch;
  if (wgs >= 64) return 1;
  const s = Math.min(
    Math.ceil(128 / wgs),
    Math.floor(spec.K / 512),
    Math.floor(65535 / spec.batch),
  );
  return s >= 2 ? s : 1;
}

/** The GEMM kernel; with `splits` > 1 slice z of K is written to PART for `reduceSource`. */
function gemmSourceSplit(
  spec: GemmSpec,
  splits: number,
): { code: string; workgroups: [number, number, number] } {
  const { M, N, K } = spec;
  const chunk = Math.ceil(K / splits / TK) * TK;
  const { TM, TN } = tiles(M, N);
  const tx = TN / 4, ty = TM / 4, threads = tx * ty;
  const decl = declare(spec) +
    (splits > 1
      ? `\n@group(0) @binding(${spec.bindings.length}) var<storage, read_write> PART: array<f32>;`
      : "");
  let fma = "";
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      fma += `      acc[${r * 4 + c}] = fma(a[${r}], b[${c}], acc[${r * 4 + c}]);\n`;
    }
  }
  let store = "";
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      const guard = `  if (m0 + ${r}u < ${M}u && n0 + ${c}u < ${N}u) { `;
      store += splits > 1
        ? `${guard}PART[((split * ${spec.batch}u + batch) * M + m0 + ${r}u) * N + n0 + ${c}u] = acc[${
          r * 4 + c
        }]; }\n`
        : `${guard}writeC(batch, m0 + ${r}u, n0 + ${c}u, acc[${r * 4 + c}]); }\n`;
    }
  }
  const extent = { m: M, n: N, k: K };
  const vecA = spec.readA4 && extent[spec.readA4.axis] % 4 === 0 ? spec.readA4 : null;
  const vecB = spec.readB4 && extent[spec.readB4.axis] % 4 === 0 ? spec.readB4 : null;
  const loop = (count: number, body: string) =>
    `    for (var e = li; e < ${count}u; e += ${threads}u) {\n${body}    }\n`;
  // Stage the tiles; consecutive threads read consecutive k of A and n of B (or vec4s of them).
  let stageA: string, stageB: string;
  if (!vecA) {
    stageA = loop(
      TM * TK,
      `      let mm = e / ${TK}u;\n      let kk = e % ${TK}u;\n` +
        `      As[kk * ${TM / 4}u + mm / 4u][mm % 4u] = readA(batch, tileM + mm, k0 + kk);\n`,
    );
  } else if (vecA.axis === "m") {
    stageA = loop(
      (TM * TK) / 4,
      `      let kk = e / ${TM / 4}u;\n      let mq = e % ${TM / 4}u;\n` +
        `      As[kk * ${TM / 4}u + mq] = readA4(batch, tileM + mq * 4u, k0 + kk);\n`,
    );
  } else {
    let scatter = "";
    for (let j = 0; j < 4; j++) {
      scatter += `      As[(kq * 4u + ${j}u) * ${TM / 4}u + mm / 4u][mm % 4u] = v[${j}];\n`;
    }
    stageA = loop(
      (TM * TK) / 4,
      `      let mm = e / ${TK / 4}u;\n      let kq = e % ${TK / 4}u;\n` +
        `      let v = readA4(batch, tileM + mm, k0 + kq * 4u);\n${scatter}`,
    );
  }
  if (!vecB) {
    stageB = loop(
      TK * TN,
      `      let kk = e / ${TN}u;\n      let nn = e % ${TN}u;\n` +
        `      Bs[kk * ${TN / 4}u + nn / 4u][nn % 4u] = readB(batch, k0 + kk, tileN + nn);\n`,
    );
  } else if (vecB.axis === "n") {
    stageB = loop(
      (TK * TN) / 4,
      `      let kk = e / ${TN / 4}u;\n      let nq = e % ${TN / 4}u;\n` +
        `      Bs[kk * ${TN / 4}u + nq] = readB4(batch, k0 + kk, tileN + nq * 4u);\n`,
    );
  } else {
    let scatter = "";
    for (let j = 0; j < 4; j++) {
      scatter += `      Bs[(kq * 4u + ${j}u) * ${TN / 4}u + nn / 4u][nn % 4u] = v[${j}];\n`;
    }
    stageB = loop(
      (TK * TN) / 4,
      `      let nn = e / ${TK / 4}u;\n      let kq = e % ${TK / 4}u;\n` +
        `      let v = readB4(batch, k0 + kq * 4u, tileN + nn);\n${scatter}`,
    );
  }
  const read4 =
    (vecA ? `fn readA4(b: u32, m: u32, k: u32) -> vec4<f32> {\n${vecA.body}\n}\n` : "") +
    (vecB ? `fn readB4(b: u32, k: u32, n: u32) -> vec4<f32> {\n${vecB.body}\n}\n` : "");
  const code = `${decl}
const M = ${M}u;
const N = ${N}u;
const K = ${K}u;
${spec.prelude ?? ""}
fn readA(b: u32, m: u32, k: u32) -> f32 {
${spec.readA}
}
fn readB(b: u32, k: u32, n: u32) -> f32 {
${spec.readB}
}
fn writeC(b: u32, m: u32, n: u32, v: f32) {
${spec.writeC}
}
${read4}var<workgroup> As: array<vec4<f32>, ${(TK * TM) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(TK * TN) / 4}>;
@compute @workgroup_size(${tx}, ${ty}, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let batch = wg.z ${splits > 1 ? `/ ${splits}u` : ""};
  let split = wg.z ${splits > 1 ? `% ${splits}u` : "* 0u"};
  let tileM = wg.y * ${TM}u;
  let tileN = wg.x * ${TN}u;
  var acc: array<f32, 16>;
  let kEnd = min(K, (split + 1u) * ${chunk}u);
  for (var k0 = split * ${chunk}u; k0 < kEnd; k0 += ${TK}u) {
${stageA}${stageB}    workgroupBarrier();
    for (var kk = 0u; kk < ${TK}u; kk++) {
      let a = As[kk * ${TM / 4}u + lid.y];
      let b = Bs[kk * ${TN / 4}u + lid.x];
${fma}    }
    workgroupBarrier();
  }
  let m0 = tileM + lid.y * 4u;
  let n0 = tileN + lid.x * 4u;
${store}}`;
  return { code, workgroups: [Math.ceil(N / TN), Math.ceil(M / TM), spec.batch * splits] };
}

function declare(spec: GemmSpec): string {
  return spec.bindings.map((b, i) =>
    `@group(0) @binding(${i}) var<storage, ${b.access}> ${b.name}: array<${
      b.type ?? b.tensor.dtype
    }>;`
  ).join("\n");
}

/** Second pass of split-K: sums the slices of PART and hands each element to `writeC`. */
function reduceSource(spec: GemmSpec, splits: number): string {
  const { M, N } = spec;
  const total = spec.batch * M * N;
  let sum = "";
  for (let s = 0; s < splits; s++) sum += `  v += PART[${s * total}u + i];\n`;
  return `${declare(spec)}
@group(0) @binding(${spec.bindings.length}) var<storage, read_write> PART: array<f32>;
const M = ${M}u;
const N = ${N}u;
const K = ${spec.K}u;
${spec.prelude ?? ""}
fn writeC(b: u32, m: u32, n: u32, v: f32) {
${spec.writeC}
}
@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.x;
  if (i >= ${total}u) { return; }
  var v = 0.0;
${sum}  let b = i / ${M * N}u;
  let r = i % ${M * N}u;
  writeC(b, r / N, r % N, v);
}`;
}

/** Runs a GEMM described by `spec`. */
export function runGemm(spec: GemmSpec): void {
  if (spec.M === 0 || spec.N === 0 || spec.batch === 0) return;
  if (spec.batch > 65535) {
    throw new Error(`${spec.label}: batch ${spec.batch} exceeds the 65535 workgroup limit.`);
  }
  const splits = splitCount(spec);
  const { code, workgroups } = gemmSourceSplit(spec, splits);
  const bindings = spec.bindings.map((b) => ({ buffer: bufferOf(b.tensor), access: b.access }));
  if (splits === 1) {
    gpu().dispatch({ label: spec.label, code, bindings, workgroups });
    return;
  }
  const part = emptyTensor([splits * spec.batch * spec.M * spec.N]);
  const withPart = [...bindings, { buffer: bufferOf(part), access: "read_write" as Access }];
  gpu().dispatch({ label: spec.label, code, bindings: withPart, workgroups });
  gpu().dispatch({
    label: `${spec.label}_splitk`,
    code: reduceSource(spec, splits),
    bindings: withPart,
    workgroups: [Math.ceil((spec.batch * spec.M * spec.N) / 256), 1, 1],
  });
  part.dispose();
}
