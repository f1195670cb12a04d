//! Dot products of one quantized weight row with one row of 8-bit activations: the inner loop
//! of every matmul for the 32-value block formats (Q4_0, Q4_1, Q5_0, Q8_0).
//!
//! candle has a wasm SIMD kernel for Q4_0 and Q8_0 only, none for Q4_1 or Q5_0, and all of them
//! convert each activation block's f16 scale again for every weight row. Ours take activations
//! in [`Q8Row`] form — the same integers and the same (f16-rounded) scales as ggml's Q8_0/Q8_1,
//! but with the scales already in f32 — which measured 2.8× faster for Q4_1 in V8.
//!
//! Every kernel has a scalar twin in [`scalar`] that defines its result; the SIMD128 version in
//! [`simd128`] computes the same integer block sums and differs only in the order in which the
//! per-block floats are added (tests/kernels.rs holds them to a relative bound, natively and on
//! wasm32). The public functions pick the SIMD version when the build has `simd128`.
//!
//! Weight formats (ggml's, as they lie in a GGUF file; 32 values per block, f16 scales; value
//! `j < 16` in the low nibble of byte `j`, value `j + 16` in its high nibble):
//! - `Q4_0`, 18 bytes: `d, qs[16]`; value `d·(q − 8)`.
//! - `Q4_1`, 20 bytes: `d, m, qs[16]`; value `d·q + m`.
//! - `Q5_0`, 22 bytes: `d, qh: u32, qs[16]`; bit `j` of `qh` is value `j`'s fifth bit; `d·(q − 16)`.
//! - `Q8_0`, 34 bytes: `d, qs: [i8; 32]`; value `d·q`.

use half::f16;

pub const BLOCK: usize = 32;

/// One row of activations quantized to 8 bits in blocks of 32 (ggml's Q8_1 arithmetic).
/// The integers are stored widened to i16: the row is read once per weight row, so widening
/// it once up front takes that work out of the inner loop.
pub struct Q8Row<'a> {
    pub qs: &'a [i16],
    /// Per block: the scale `d`, rounded to f16 as ggml stores it.
    pub d: &'a [f32],
    /// Per block: `d · Σq`, rounded as ggml's Q8_1 stores it (Q4_1's offset term needs it).
    pub s: &'a [f32],
}

/// Quantize `x` (a multiple of 32 long) into `qs`, `d`, `s` exactly as ggml/candle's
/// `quantize_row_q8_1` does, keeping the scales as f32.
pub fn quantize_q8(x: &[f32], qs: &mut [i16], d: &mut [f32], s: &mut [f32]) {
    for (((xb, qb), d), s) in x.chunks_exact(BLOCK).zip(qs.chunks_exact_mut(BLOCK)).zip(d.iter_mut()).zip(s.iter_mut())
    {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        let (scale, sum) = simd128::quantize_block(xb.try_into().unwrap(), qb.try_into().unwrap());
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        let (scale, sum) = scalar::quantize_block(xb, qb);
        let scale16 = f16::from_f32(scale);
        *d = scale16.to_f32();
        *s = (f16::from_f32(sum as f32) * scale16).to_f32();
    }
}

/// `f32::round` (halves away from zero), exactly, without the libm call it becomes in wasm and
/// without a branch: `x − trunc(x)` is exact.
#[inline(always)]
fn round_half_away(x: f32) -> f32 {
    let t = x.trunc();
    let up = if (x - t).abs() >= 0.5 { 1f32 } else { 0f32 };
    t + up.copysign(x)
}

/// IEEE half → single, exact for every finite half (normals and subnormals) without a branch:
/// move exponent and mantissa into place and rescale by 2^112. There is no hardware conversion
/// in wasm, and `half`'s software path branches.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    const TWO_POW_112: f32 = f32::from_bits(0x7780_0000);
    let magnitude = f32::from_bits(((h & 0x7fff) as u32) << 13) * TWO_POW_112;
    f32::from_bits(magnitude.to_bits() | (((h & 0x8000) as u32) << 16))
}

/// The weight formats with a kernel here, and what their blocks hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    Q4_0,
    Q4_1,
    Q5_0,
    Q8_0,
}

impl WeightFormat {
    pub const fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q8_0 => 34,
        }
    }
}

/// Σ w·a over one row of `format` blocks.
#[inline(always)]
pub fn dot(format: WeightFormat, w: &[u8], a: &Q8Row) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::dot(format, w, a);
    #[allow(unreachable_code)]
    scalar::dot(format, w, a)
}

/// [`dot`] of one weight row with each of `N` activation rows; equal to `N` calls of `dot`, but
/// in SIMD each weight block is unpacked once for all of them.
#[inline(always)]
pub fn dots<const N: usize>(format: WeightFormat, w: &[u8], a: [&Q8Row; N]) -> [f32; N] {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::dots(format, w, a);
    #[allow(unreachable_code)]
    a.map(|a| scalar::dot(format, w, a))
}

/// Checks shared by both versions: `a` covers every block of `w`.
#[inline(always)]
fn blocks_of(format: WeightFormat, w: &[u8], a: &Q8Row) -> usize {
    let blocks = w.len() / format.block_bytes();
    assert!(a.qs.len() >= blocks * BLOCK && a.d.len() >= blocks && a.s.len() >= blocks, "activation row too short");
    blocks
}

/// The reference kernels: plain loops with ggml's arithmetic (integer block sums, then
/// `Σ d_w·d_a·sum (+ m·s)` in block order). Natively these are what runs.
pub mod scalar {
    use super::*;

    /// One block of [`quantize_q8`]: the integers into `q`; returns the scale and Σq.
    pub fn quantize_block(x: &[f32], q: &mut [i16]) -> (f32, i32) {
        // Comparisons, not f32::max, which wasm builds call out to libm for.
        let amax = x.iter().fold(0f32, |m, v| if v.abs() > m { v.abs() } else { m });
        let scale = amax / 127.0;
        let inverse = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        for (q, x) in q.iter_mut().zip(x) {
            *q = round_half_away(x * inverse) as i16;
        }
        (scale, q.iter().map(|&q| q as i32).sum())
    }

    /// Σ over one block of `lo(j)·a[j] + hi(j)·a[j + 16]` for j < 16: the weight values as
    /// integers from the low and high nibble of byte j (plain loops the compiler vectorises).
    #[inline(always)]
    fn nibble_block(qs: &[u8], a: &[i16], value: impl Fn(usize, u8) -> (i32, i32)) -> i32 {
        let mut sum = 0i32;
        for j in 0..16 {
            let (lo, hi) = value(j, qs[j]);
            sum += lo * a[j] as i32 + hi * a[j + 16] as i32;
        }
        sum
    }

    #[inline(always)]
    pub fn dot(format: WeightFormat, w: &[u8], a: &Q8Row) -> f32 {
        let blocks = blocks_of(format, w, a);
        let mut sum = 0f32;
        for (i, wb) in w.chunks_exact(format.block_bytes()).take(blocks).enumerate() {
            let scale = f16_to_f32(u16::from_le_bytes([wb[0], wb[1]])) * a.d[i];
            let aq = &a.qs[i * BLOCK..(i + 1) * BLOCK];
            let sumi = match format {
                WeightFormat::Q4_0 => nibble_block(&wb[2..18], aq, |_, q| ((q & 0x0f) as i32 - 8, (q >> 4) as i32 - 8)),
                WeightFormat::Q4_1 => {
                    sum += f16_to_f32(u16::from_le_bytes([wb[2], wb[3]])) * a.s[i];
                    nibble_block(&wb[4..20], aq, |_, q| ((q & 0x0f) as i32, (q >> 4) as i32))
                }
                WeightFormat::Q5_0 => {
                    let qh = u32::from_le_bytes([wb[2], wb[3], wb[4], wb[5]]);
                    nibble_block(&wb[6..22], aq, |j, q| {
                        let lo = (q & 0x0f) as i32 | (((qh >> j) & 1) << 4) as i32;
                        let hi = (q >> 4) as i32 | (((qh >> (j + 16)) & 1) << 4) as i32;
                        (lo - 16, hi - 16)
                    })
                }
                WeightFormat::Q8_0 => wb[2..34].iter().zip(aq).map(|(&w, &a)| w as i8 as i32 * a as i32).sum(),
            };
            sum += sumi as f32 * scale;
        }
        sum
    }
}

/// WebAssembly SIMD128 versions: weights widened to i16 lanes and multiplied with the
/// (already widened) activations by `i32x4.dot_i16x8_s`, four per 32 values. [`dots`] does one
/// weight row against `N` activation rows, unpacking each weight block once for all of them
/// (prefill); `dot` is the same code with `N = 1`, so each row's result is identical either way.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod simd128 {
    use super::*;
    use core::arch::wasm32::*;

    /// One weight block unpacked: 32 values in four i16x8 lanes, its scale, and (Q4_1) offset.
    struct Block {
        values: [v128; 4],
        scale: f32,
        offset: f32,
    }

    /// The 16 fifth bits in `bits` (one half of a Q5_0 block), as 0x10 or 0 per byte lane.
    #[inline(always)]
    fn fifth_bits(bits: u32) -> v128 {
        let spread = u8x16_swizzle(u32x4_splat(bits), u8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
        let lane_bit = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
        v128_and(u8x16_eq(v128_and(spread, lane_bit), lane_bit), u8x16_splat(0x10))
    }

    /// `lo` = values 0..16 and `hi` = 16..32 as i8 lanes (0..15 when `unsigned`), widened.
    #[inline(always)]
    fn widen(lo: v128, hi: v128, unsigned: bool) -> [v128; 4] {
        if unsigned {
            [
                u16x8_extend_low_u8x16(lo),
                u16x8_extend_high_u8x16(lo),
                u16x8_extend_low_u8x16(hi),
                u16x8_extend_high_u8x16(hi),
            ]
        } else {
            [
                i16x8_extend_low_i8x16(lo),
                i16x8_extend_high_i8x16(lo),
                i16x8_extend_low_i8x16(hi),
                i16x8_extend_high_i8x16(hi),
            ]
        }
    }

    /// SAFETY: `wb` points at one whole block of `format`.
    #[inline(always)]
    unsafe fn unpack(format: WeightFormat, wb: *const u8) -> Block {
        let scale = f16_to_f32((wb as *const u16).read_unaligned());
        let low_nibbles = u8x16_splat(0x0f);
        let mut offset = 0.0;
        let values = match format {
            WeightFormat::Q4_0 => {
                let q = v128_load(wb.add(2) as *const v128);
                let eight = i8x16_splat(8);
                widen(i8x16_sub(v128_and(q, low_nibbles), eight), i8x16_sub(u8x16_shr(q, 4), eight), false)
            }
            WeightFormat::Q4_1 => {
                offset = f16_to_f32((wb.add(2) as *const u16).read_unaligned());
                let q = v128_load(wb.add(4) as *const v128);
                widen(v128_and(q, low_nibbles), u8x16_shr(q, 4), true)
            }
            WeightFormat::Q5_0 => {
                let qh = (wb.add(2) as *const u32).read_unaligned().to_le();
                let q = v128_load(wb.add(6) as *const v128);
                let sixteen = i8x16_splat(16);
                let lo = i8x16_sub(v128_or(v128_and(q, low_nibbles), fifth_bits(qh & 0xffff)), sixteen);
                let hi = i8x16_sub(v128_or(u8x16_shr(q, 4), fifth_bits(qh >> 16)), sixteen);
                widen(lo, hi, false)
            }
            WeightFormat::Q8_0 => {
                widen(v128_load(wb.add(2) as *const v128), v128_load(wb.add(18) as *const v128), false)
            }
        };
        Block { values, scale, offset }
    }

    /// Σ over the block of w·a as four i32 lanes. SAFETY: `a` points at 32 i16 values.
    #[inline(always)]
    unsafe fn block_sum(w: &[v128; 4], a: *const i16) -> v128 {
        let a = a as *const v128;
        i32x4_add(
            i32x4_add(i32x4_dot_i16x8(w[0], v128_load(a)), i32x4_dot_i16x8(w[1], v128_load(a.add(1)))),
            i32x4_add(i32x4_dot_i16x8(w[2], v128_load(a.add(2))), i32x4_dot_i16x8(w[3], v128_load(a.add(3)))),
        )
    }

    #[inline(always)]
    fn horizontal_sum(v: v128) -> f32 {
        f32x4_extract_lane::<0>(v)
            + f32x4_extract_lane::<1>(v)
            + f32x4_extract_lane::<2>(v)
            + f32x4_extract_lane::<3>(v)
    }

    /// Σ w·a of one weight row with each of `N` activation rows.
    #[inline(always)]
    pub fn dots<const N: usize>(format: WeightFormat, w: &[u8], a: [&Q8Row; N]) -> [f32; N] {
        let blocks = w.len() / format.block_bytes();
        for a in a {
            blocks_of(format, w, a);
        }
        let mut acc = [f32x4_splat(0.0); N];
        let mut offsets = [0f32; N];
        for i in 0..blocks {
            // SAFETY: block i lies within w (blocks = len / block_bytes), and its activations
            // within every a.qs, a.d, a.s (checked by blocks_of above); v128 loads and
            // `read_unaligned` need no alignment.
            unsafe {
                let block = unpack(format, w.as_ptr().add(i * format.block_bytes()));
                for t in 0..N {
                    let sum = block_sum(&block.values, a[t].qs.as_ptr().add(i * BLOCK));
                    let scale = f32x4_splat(block.scale * *a[t].d.get_unchecked(i));
                    acc[t] = f32x4_add(acc[t], f32x4_mul(f32x4_convert_i32x4(sum), scale));
                    if format == WeightFormat::Q4_1 {
                        offsets[t] += block.offset * *a[t].s.get_unchecked(i);
                    }
                }
            }
        }
        std::array::from_fn(|t| horizontal_sum(acc[t]) + offsets[t])
    }

    #[inline(always)]
    pub fn dot(format: WeightFormat, w: &[u8], a: &Q8Row) -> f32 {
        dots::<1>(format, w, [a])[0]
    }

    /// [`scalar::quantize_block`] four lanes at a time, with the same IEEE operations (so the
    /// same results). Values are finite activations, for which `pmax` equals `max`.
    #[inline(always)]
    pub fn quantize_block(x: &[f32; BLOCK], q: &mut [i16; BLOCK]) -> (f32, i32) {
        // SAFETY: eight 4-lane loads cover the 32 values of `x`; unaligned loads are allowed.
        let v: [v128; 8] = std::array::from_fn(|i| unsafe { v128_load(x.as_ptr().add(4 * i) as *const v128) });
        let m = v.iter().fold(f32x4_splat(0.0), |m, &v| f32x4_pmax(m, f32x4_abs(v)));
        let amax = f32x4_extract_lane::<0>(m)
            .max(f32x4_extract_lane::<1>(m))
            .max(f32x4_extract_lane::<2>(m))
            .max(f32x4_extract_lane::<3>(m));
        let scale = amax / 127.0;
        let inverse = f32x4_splat(if scale != 0.0 { 1.0 / scale } else { 0.0 });
        let (half, one, sign) = (f32x4_splat(0.5), f32x4_splat(1.0), f32x4_splat(-0.0));
        let mut sum = i32x4_splat(0);
        let ints: [v128; 8] = std::array::from_fn(|i| {
            let y = f32x4_mul(v[i], inverse);
            let t = f32x4_trunc(y);
            let up = v128_and(f32x4_ge(f32x4_abs(f32x4_sub(y, t)), half), one);
            let rounded = f32x4_add(t, v128_or(up, v128_and(y, sign)));
            let int = i32x4_trunc_sat_f32x4(rounded);
            sum = i32x4_add(sum, int);
            int
        });
        for (i, pair) in ints.chunks_exact(2).enumerate() {
            // SAFETY: 4 stores of 8 i16 cover the 32 values of `q`.
            unsafe { v128_store(q.as_mut_ptr().add(8 * i) as *mut v128, i16x8_narrow_i32x4(pair[0], pair[1])) };
        }
        let total = i32x4_extract_lane::<0>(sum)
            + i32x4_extract_lane::<1>(sum)
            + i32x4_extract_lane::<2>(sum)
            + i32x4_extract_lane::<3>(sum);
        (scale, total)
    }
}
