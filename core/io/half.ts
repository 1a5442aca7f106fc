/**
 * Conversions between float32 and the 16-bit float formats (IEEE half, bfloat16), so that
 * weights can be stored in half precision. Half values travel as raw bit patterns in a
 * `Uint16Array`, which is what safetensors F16/BF16 tensors hold and what every tool agrees on.
 *
 * @module
 */

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/**
 * Converts one number to IEEE half-precision bits, rounding to nearest with ties to even.
 * Overflow gives infinity, tiny values give subnormals or (signed) zero, NaN stays NaN.
 * The number is first rounded to float32 (as it would be when stored in a Float32Array).
 *
 * @example
 * ```ts
 * import { f32ToF16Bits } from "./half.ts";
 * f32ToF16Bits(1); // 0x3c00
 * f32ToF16Bits(65504); // 0x7bff
 * ```
 */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  return f32BitsToF16Bits(u32Scratch[0]);
}

function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) {
    // Keep NaN a NaN (quiet bit set) and infinity an infinity.
    return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  }
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Below 2^-25 everything rounds to zero (2^-25 itself is a tie that goes to even, i.e. 0).
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    // A carry out of the subnormal range lands exactly on the smallest normal: still correct.
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry here may roll the exponent over to 0x1f with zero mantissa: that is infinity, correct.
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

/**
 * Converts IEEE half-precision bits to a number (exact: every half is a float32).
 *
 * @example
 * ```ts
 * import { f16BitsToF32 } from "./half.ts";
 * f16BitsToF32(0x3c00); // 1
 * f16BitsToF32(0x0001); // 2 ** -24
 * ```
 */
export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

let f16Table: Float32Array | undefined;

/**
 * Converts a float32 array to IEEE half bits (round to nearest even; see {@linkcode f32ToF16Bits}).
 *
 * @example
 * ```ts
 * import { f32ToF16 } from "./half.ts";
 * const half = f32ToF16(new Float32Array([1, -2, 0.5])); // Uint16Array [0x3c00, 0xc000, 0x3800]
 * ```
 */
export function f32ToF16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32BitsToF16Bits(bits[i]);
  return out;
}

/**
 * Converts IEEE half bits to float32 (exact).
 *
 * @example
 * ```ts
 * import { f16ToF32 } from "./half.ts";
 * f16ToF32(new Uint16Array([0x3c00, 0x7bff])); // Float32Array [1, 65504]
 * ```
 */
export function f16ToF32(src: Uint16Array): Float32Array {
  if (!f16Table) {
    // A 65536-entry table (256 KiB) makes bulk conversion a single lookup per element.
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16BitsToF32(i);
  }
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f16Table[src[i]];
  return out;
}

/**
 * Converts a float32 array to bfloat16 bits (the upper 16 bits, rounded to nearest even).
 *
 * @example
 * ```ts
 * import { f32ToBf16 } from "./half.ts";
 * f32ToBf16(new Float32Array([1])); // Uint16Array [0x3f80]
 * ```
 */
export function f32ToBf16(src: Float32Array): Uint16Array {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const x = bits[i];
    if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) {
      out[i] = (x >>> 16) | 0x40; // NaN: keep it a quiet NaN rather than rounding to infinity
    } else {
      out[i] = (x + 0x7fff + ((x >>> 16) & 1)) / 65536;
    }
  }
  return out;
}

/**
 * Converts bfloat16 bits to float32 (exact).
 *
 * @example
 * ```ts
 * import { bf16ToF32 } from "./half.ts";
 * bf16ToF32(new Uint16Array([0x3f80])); // Float32Array [1]
 * ```
 */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}
