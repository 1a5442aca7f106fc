/**
 * NaN and infinities in generated WGSL, written so that every WebGPU implementation accepts them.
 *
 * WGSL forbids a constant expression that evaluates to a non-finite value: `bitcast<f32>(0xff800000u)`
 * is a const-expression (a builtin applied to a literal), and "it is a shader-creation error if
 * the value ... is not finite" (https://www.w3.org/TR/WGSL/#const-expr and the `bitcast` overflow
 * rules in https://www.w3.org/TR/WGSL/#floating-point-evaluation). Naga (Deno) accepted it; Tint
 * (Chrome) rejects it with `error: value -inf cannot be represented as 'f32'`.
 *
 * So a non-finite value is read from a module-scope `var<private>` holding its bit pattern:
 * reading a variable is a runtime expression, never constant-evaluated by the validator (driver
 * compilers still fold it, so the cost is nil). `nonFiniteF32` gives the expression and
 * `declareNonFinite` prepends the variables a module's source uses; the WebGPU backend applies
 * the latter to every kernel, so kernel code only ever calls `f32Literal`.
 */

/** Bit patterns (IEEE 754 binary32) and the WGSL variable holding each. */
const VALUES = [
  { name: "UNCLIP_F32_NAN_BITS", bits: "0x7fc00000u", is: (x: number) => Number.isNaN(x) },
  { name: "UNCLIP_F32_POS_INF_BITS", bits: "0x7f800000u", is: (x: number) => x === Infinity },
  { name: "UNCLIP_F32_NEG_INF_BITS", bits: "0xff800000u", is: (x: number) => x === -Infinity },
] as const;

/** A runtime WGSL f32 expression for NaN or an infinity (`null` for a finite `x`). */
export function nonFiniteF32(x: number): string | null {
  const v = VALUES.find((v) => v.is(x));
  return v ? `bitcast<f32>(${v.name})` : null;
}

/** `code` with the `var<private>` declarations its non-finite expressions read, first. */
export function declareNonFinite(code: string): string {
  const used = VALUES.filter((v) => code.includes(v.name));
  if (used.length === 0) return code;
  const decls = used.map((v) => `var<private> ${v.name}: u32 = ${v.bits};`).join("\n");
  return `${decls}\n${code}`;
}
