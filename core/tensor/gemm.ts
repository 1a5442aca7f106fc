/**
 * The one tiled GEMM template. Every matrix product in the engine runs through it: matmul and
 * batched matmul (with transposes), linear layers with a fused bias/activation epilogue, and
 * conv2d and its gradients as implicit GEMMs (im2col happens inside the `readA`/`readB` hooks,
 * the scatter to NCHW inside the `writeC` hook).
 *
 * Each workgroup computes a TM x TN tile of C, each thread a 4x4 register tile; A and B tiles are
 * staged through workgroup memory as vec4 rows so the inner loop is 2 vec4 loads per 16 FMAs.
 */
import { backend } from "./backend.ts";
import type { Access } from "./backend.ts";
import type { Tensor } from "./tensor.ts";

/** A binding of the GEMM kernel: a tensor and how WGSL sees it. */
export interface GemmBinding {
  name: string;
  tensor: Tensor;
  access: Access;
  type?: "f32" | "i32" | "u32";
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
}

const TK = 16;

/** Tile sizes: small problems get 32x32 tiles so fewer threads idle. */
function tiles(M: number, N: number): { TM: number; TN: number } {
  return { TM: M <= 32 ? 32 : 64, TN: N <= 32 ? 32 : 64 };
}

/** Generates the GEMM kernel for a spec (exported for tests and benchmarks). */
export function gemmSource(spec: GemmSpec): { code: string; workgroups: [number, number, number] } {
  const { M, N, K } = spec;
  const { TM, TN } = tiles(M, N);
  const tx = TN / 4, ty = TM / 4, threads = tx * ty;
  const decl = spec.bindings.map((b, i) =>
    `@group(0) @binding(${i}) var<storage, ${b.access}> ${b.name}: array<${
      b.type ?? b.tensor.dtype
    }>;`
  ).join("\n");
  let fma = "";
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      fma += `      acc[${r * 4 + c}] = fma(a[${r}], b[${c}], acc[${r * 4 + c}]);\n`;
    }
  }
  let store = "";
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      store +=
        `  if (m0 + ${r}u < ${M}u && n0 + ${c}u < ${N}u) { writeC(batch, m0 + ${r}u, n0 + ${c}u, acc[${
          r * 4 + c
        }]); }\n`;
    }
  }
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
var<workgroup> As: array<vec4<f32>, ${(TK * TM) / 4}>;
var<workgroup> Bs: array<vec4<f32>, ${(TK * TN) / 4}>;
@compute @workgroup_size(${tx}, ${ty}, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let batch = wg.z;
  let tileM = wg.y * ${TM}u;
  let tileN = wg.x * ${TN}u;
  var acc: array<f32, 16>;
  for (var k0 = 0u; k0 < K; k0 += ${TK}u) {
    // Stage the tiles; consecutive threads read consecutive k of A and n of B.
    for (var e = li; e < ${TM * TK}u; e += ${threads}u) {
      let mm = e / ${TK}u;
      let kk = e % ${TK}u;
      As[kk * ${TM / 4}u + mm / 4u][mm % 4u] = readA(batch, tileM + mm, k0 + kk);
    }
    for (var e = li; e < ${TK * TN}u; e += ${threads}u) {
      let kk = e / ${TN}u;
      let nn = e % ${TN}u;
      Bs[kk * ${TN / 4}u + nn / 4u][nn % 4u] = readB(batch, k0 + kk, tileN + nn);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${TK}u; kk++) {
      let a = As[kk * ${TM / 4}u + lid.y];
      let b = Bs[kk * ${TN / 4}u + lid.x];
${fma}    }
    workgroupBarrier();
  }
  let m0 = tileM + lid.y * 4u;
  let n0 = tileN + lid.x * 4u;
${store}}`;
  return { code, workgroups: [Math.ceil(N / TN), Math.ceil(M / TM), spec.batch] };
}

/** Runs a GEMM described by `spec`. */
export function runGemm(spec: GemmSpec): void {
  if (spec.M === 0 || spec.N === 0 || spec.batch === 0) return;
  if (spec.batch > 65535) {
    throw new Error(`${spec.label}: batch ${spec.batch} exceeds the 65535 workgroup limit.`);
  }
  const { code, workgroups } = gemmSource(spec);
  backend().dispatch({
    label: spec.label,
    code,
    bindings: spec.bindings.map((b) => ({ buffer: b.tensor.buffer, access: b.access })),
    workgroups,
  });
}
