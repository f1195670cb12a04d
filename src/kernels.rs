//! Dot products of one quantized weight row with one row of 8-bit activations: the inner loop
//! of every matmul, for the 32-value block formats (Q4_0, Q4_1, Q5_0, Q8_0) and the 256-value
//! K-quants (Q4_K, Q5_K, Q6_K) that Q4_K_M files are made of.
//!
//! candle has a wasm SIMD kernel for Q4_0, Q8_0, Q4_K and Q6_K only, and all of them convert each
//! activation block's f16 scale again for every weight row, with no multi-token path. Ours take
//! activations in [`Q8Row`] form, scales already in f32, which measured 2.8× faster for Q4_1 in
//! V8. A K-quant super-block is handled as its eight 32-value sub-blocks, each with its own
//! scale (and min), against 32-value activation blocks like every other format.
//!
//! The activations are quantized as llama.cpp quantizes them for each weight type, so that a
//! model computes what it computes there: per 32 values with f16 scales (ggml's Q8_0/Q8_1) for
//! the 32-value formats ([`Q8Rows::quantize`]); per 256 values with one f32 scale (ggml's Q8_K)
//! for the K-quants ([`Q8Rows::quantize_k`]), stored as eight blocks that share it.
//!
//! Every kernel has a scalar twin in [`scalar`] that defines its result; the SIMD128 version in
//! [`simd128`] computes the same integer block sums and differs only in the order in which the
//! per-block floats are added (tests/kernels.rs holds them to a relative bound, natively and on
//! wasm32). The public functions pick the SIMD version when the build has `simd128`.
//!
//! Weight formats (ggml's, as they lie in a GGUF file; f16 scales, little-endian):
//! - 32 values per block; value `j < 16` in the low nibble of byte `j`, value `j + 16` in its
//!   high nibble:
//!   - `Q4_0`, 18 bytes: `d, qs[16]`; value `d·(q − 8)`.
//!   - `Q4_1`, 20 bytes: `d, m, qs[16]`; value `d·q + m`.
//!   - `Q5_0`, 22 bytes: `d, qh: u32, qs[16]`; bit `j` of `qh` is value `j`'s fifth bit;
//!     `d·(q − 16)`.
//!   - `Q8_0`, 34 bytes: `d, qs: [i8; 32]`; value `d·q`.
//! - 256 values per super-block, in eight sub-blocks of 32 (ggml's `dequantize_row_q*_K`):
//!   - `Q4_K`, 144 bytes: `d, dmin, scales[12], qs[128]`; sub-block `j` has a 6-bit scale `sc`
//!     and min `m` packed in `scales` ([`k4_scale_min`]) and its values in bytes
//!     `32·(j/2)..` of `qs`, low nibbles for even `j`, high for odd; value `d·sc·q − dmin·m`.
//!   - `Q5_K`, 176 bytes: `d, dmin, scales[12], qh[32], qs[128]`; as Q4_K, plus bit `j` of
//!     `qh[l]` is the fifth bit of value `l` of sub-block `j`.
//!   - `Q6_K`, 210 bytes: `ql[128], qh[64], scales: [i8; 16], d`; sub-block `j` (`n = j/4`,
//!     `k = j%4`) takes nibbles of `ql[64n + 32·(k&1)..]` (high ones for `k ≥ 2`), two more bits
//!     from `qh[32n..] >> 2k`, and the scales `scales[2j]` for its first 16 values and
//!     `scales[2j + 1]` for the rest; value `d·scale·(q − 32)`.

use half::f16;

use crate::matmul::grown;

/// Values per activation block, and per sub-block of every weight format.
pub const BLOCK: usize = 32;
/// Values per K-quant super-block, and per activation scale for them (ggml's `QK_K`).
pub const SUPER_BLOCK: usize = 256;

/// One row of activations quantized to 8 bits in blocks of 32 (ggml's Q8_1 arithmetic).
/// The integers are stored twice: widened to i16 for the SIMD128 kernels (the row is read once
/// per weight row, so widening it once up front takes that work out of the inner loop) and as
/// bytes for the relaxed-SIMD ones.
pub struct Q8Row<'a> {
    pub qs: &'a [i16],
    pub q8: &'a [i8],
    /// Per block: the scale `d`, rounded to f16 as ggml stores it.
    pub d: &'a [f32],
    /// Per block: `d · Σq`, rounded as ggml's Q8_1 stores it (Q4_1's offset term needs it).
    pub s: &'a [f32],
    /// Per block: `d · Σq` in f32, for the K-quants' min term (ggml's Q8_K keeps these sums
    /// exact, as integers; the f16 rounding of `s` would cost them accuracy).
    pub sum: &'a [f32],
}

/// Rows of quantized activations, kept between calls (grown, never shrunk) so that decoding
/// allocates nothing: what [`Q8Row`]s borrow.
#[derive(Default)]
pub struct Q8Rows {
    qs: Vec<i16>,
    q8: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    sum: Vec<f32>,
    /// Values per row.
    cols: usize,
}

impl Q8Rows {
    /// Quantize the rows of `x` (`cols` values each, a multiple of 32) exactly as ggml/candle's
    /// `quantize_row_q8_1` does, keeping the scales as f32.
    pub fn quantize(&mut self, x: &[f32], cols: usize) {
        assert!(cols % BLOCK == 0 && x.len() % cols == 0, "{} values in rows of {cols}", x.len());
        self.make_room(x.len(), cols);
        let blocks = x.as_chunks::<BLOCK>().0.iter().zip(self.qs.as_chunks_mut::<BLOCK>().0.iter_mut());
        for (i, (xb, qb)) in blocks.enumerate() {
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            let (scale, total) = simd128::quantize_block(xb, qb);
            #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
            let (scale, total) = scalar::quantize_block(xb, qb);
            for (q8, &q) in self.q8[i * BLOCK..(i + 1) * BLOCK].iter_mut().zip(qb.iter()) {
                *q8 = q as i8;
            }
            let scale16 = f16::from_f32(scale);
            self.d[i] = scale16.to_f32();
            self.s[i] = (f16::from_f32(total as f32) * scale16).to_f32();
            self.sum[i] = self.d[i] * total as f32;
        }
    }

    /// Quantize the rows of `x` (`cols` values each, a multiple of 256) as ggml's
    /// `quantize_row_q8_K` does for the K-quants' dot products: per 256 values, `q =
    /// min(127, round(−127·x / m))` with `m` the value of largest magnitude, and the scale
    /// `−m / 127` in f32. Each 32-value block carries that shared scale, so the kernels are the
    /// same; `sum` is `d·Σq` per block (ggml's exact `bsums`).
    pub fn quantize_k(&mut self, x: &[f32], cols: usize) {
        assert!(cols % SUPER_BLOCK == 0 && x.len() % cols == 0, "{} values in rows of {cols}", x.len());
        self.make_room(x.len(), cols);
        for (g, xs) in x.chunks_exact(SUPER_BLOCK).enumerate() {
            let scale = scalar::quantize_super_block(xs, &mut self.qs[g * SUPER_BLOCK..(g + 1) * SUPER_BLOCK]);
            for b in g * SUPER_BLOCK / BLOCK..(g + 1) * SUPER_BLOCK / BLOCK {
                let qb = &self.qs[b * BLOCK..(b + 1) * BLOCK];
                for (q8, &q) in self.q8[b * BLOCK..(b + 1) * BLOCK].iter_mut().zip(qb) {
                    *q8 = q as i8;
                }
                let total: i32 = qb.iter().map(|&q| q as i32).sum();
                self.d[b] = scale;
                self.s[b] = scale * total as f32;
                self.sum[b] = scale * total as f32;
            }
        }
    }

    /// Room for `values` in rows of `cols` (grown, never shrunk).
    fn make_room(&mut self, values: usize, cols: usize) {
        grown(&mut self.qs, values);
        grown(&mut self.q8, values);
        for v in [&mut self.d, &mut self.s, &mut self.sum] {
            grown(v, values / BLOCK);
        }
        self.cols = cols;
    }

    /// Row `t` of the last [`Self::quantize`] or [`Self::quantize_k`].
    pub fn row(&self, t: usize) -> Q8Row<'_> {
        let (cols, blocks) = (self.cols, self.cols / BLOCK);
        Q8Row {
            qs: &self.qs[t * cols..(t + 1) * cols],
            q8: &self.q8[t * cols..(t + 1) * cols],
            d: &self.d[t * blocks..(t + 1) * blocks],
            s: &self.s[t * blocks..(t + 1) * blocks],
            sum: &self.sum[t * blocks..(t + 1) * blocks],
        }
    }

    /// Values per row of the last [`Self::quantize`].
    pub fn cols(&self) -> usize {
        self.cols
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

#[inline(always)]
fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16_to_f32(u16::from_le_bytes([bytes[at], bytes[at + 1]]))
}

/// The weight formats with a kernel here, and what their blocks hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightFormat {
    Q4_0,
    Q4_1,
    Q5_0,
    Q8_0,
    Q4K,
    Q5K,
    Q6K,
}

impl WeightFormat {
    /// Whether llama.cpp pairs this format with Q8_K activations (per-256 scales).
    pub const fn is_k_quant(self) -> bool {
        matches!(self, Self::Q4K | Self::Q5K | Self::Q6K)
    }

    /// Bytes of one block (of one super-block for the K-quants).
    pub const fn block_bytes(self) -> usize {
        match self {
            Self::Q4_0 => 18,
            Self::Q4_1 => 20,
            Self::Q5_0 => 22,
            Self::Q8_0 => 34,
            Self::Q4K => 144,
            Self::Q5K => 176,
            Self::Q6K => 210,
        }
    }

    /// 32-value sub-blocks in one block.
    pub const fn sub_blocks(self) -> usize {
        match self {
            Self::Q4_0 | Self::Q4_1 | Self::Q5_0 | Self::Q8_0 => 1,
            Self::Q4K | Self::Q5K | Self::Q6K => 8,
        }
    }

    /// How a sub-block's offset term is formed: Q4_1's `m·s` (ggml's Q8_1 arithmetic), the
    /// K-quants' `−dmin·m·sum`, or none.
    const fn offset(self) -> Offset {
        match self {
            Self::Q4_1 => Offset::TimesS,
            Self::Q4K | Self::Q5K => Offset::TimesSum,
            Self::Q4_0 | Self::Q5_0 | Self::Q8_0 | Self::Q6K => Offset::None,
        }
    }
}

#[derive(PartialEq, Eq)]
enum Offset {
    None,
    TimesS,
    TimesSum,
}

/// Sub-block `j`'s 6-bit scale and min in a Q4_K/Q5_K `scales[12]` (ggml's `get_scale_min_k4`):
/// the first four pairs are the low 6 bits of bytes 0–7; the last four combine a nibble of
/// bytes 8–11 with the top two bits of bytes 0–7.
#[inline(always)]
pub fn k4_scale_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// What one block's header says, decoded once for all its sub-blocks.
struct Header {
    d: f32,
    /// Q4_1: `m`; Q4_K/Q5_K: `dmin`.
    min: f32,
    /// Q4_K/Q5_K: per sub-block, `d·sc` and `−dmin·m`.
    scales: [f32; 8],
    mins: [f32; 8],
}

#[inline(always)]
fn header(format: WeightFormat, wb: &[u8]) -> Header {
    let mut h = Header { d: 0.0, min: 0.0, scales: [0.0; 8], mins: [0.0; 8] };
    match format {
        WeightFormat::Q6K => h.d = f16_at(wb, 208),
        _ => h.d = f16_at(wb, 0),
    }
    if matches!(format, WeightFormat::Q4_1 | WeightFormat::Q4K | WeightFormat::Q5K) {
        h.min = f16_at(wb, 2);
    }
    if matches!(format, WeightFormat::Q4K | WeightFormat::Q5K) {
        for j in 0..8 {
            let (sc, m) = k4_scale_min(j, &wb[4..16]);
            h.scales[j] = h.d * sc as f32;
            h.mins[j] = -h.min * m as f32;
        }
    }
    h
}

impl Header {
    /// Sub-block `j`'s scale (times the integers) and offset (times `s` or `sum`).
    #[inline(always)]
    fn of(&self, format: WeightFormat, j: usize) -> (f32, f32) {
        match format {
            WeightFormat::Q4K | WeightFormat::Q5K => (self.scales[j], self.mins[j]),
            _ => (self.d, self.min),
        }
    }
}

/// Σ w·a over one row of `format` blocks.
#[inline(always)]
pub fn dot(format: WeightFormat, w: &[u8], a: &Q8Row) -> f32 {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    return relaxed::dot(format, w, a);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
    return simd128::dot(format, w, a);
    #[allow(unreachable_code)]
    scalar::dot(format, w, a)
}

/// [`dot`] of one weight row with each of `N` activation rows; equal to `N` calls of `dot`, but
/// in SIMD each weight block is unpacked once for all of them.
#[inline(always)]
pub fn dots<const N: usize>(format: WeightFormat, w: &[u8], a: [&Q8Row; N]) -> [f32; N] {
    #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
    return relaxed::dots(format, w, a);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(target_feature = "relaxed-simd")))]
    return simd128::dots(format, w, a);
    #[allow(unreachable_code)]
    a.map(|a| scalar::dot(format, w, a))
}

/// Checks shared by both versions: `a` covers every sub-block of `w`; returns the blocks of `w`.
#[inline(always)]
fn blocks_of(format: WeightFormat, w: &[u8], a: &Q8Row) -> usize {
    let blocks = w.len() / format.block_bytes();
    let subs = blocks * format.sub_blocks();
    assert!(
        a.qs.len() >= subs * BLOCK
            && a.q8.len() >= subs * BLOCK
            && a.d.len() >= subs
            && a.s.len() >= subs
            && a.sum.len() >= subs,
        "activation row too short"
    );
    blocks
}

/// The term a sub-block's offset multiplies, for activation block `i`.
#[inline(always)]
fn offset_term(format: WeightFormat, a: &Q8Row, i: usize) -> f32 {
    match format.offset() {
        Offset::TimesS => a.s[i],
        Offset::TimesSum => a.sum[i],
        Offset::None => 0.0,
    }
}

/// The reference kernels: plain loops with ggml's arithmetic (integer sums per 32-value
/// sub-block, then `Σ scale·d_a·sum (+ offset·s)` in block order). Natively these are what runs.
pub mod scalar {
    use super::*;

    /// One block of [`Q8Rows::quantize`]: the integers into `q`; returns the scale and Σq.
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

    /// 256 values as ggml's Q8_K (`quantize_row_q8_K_ref`): the integers into `q`; returns the
    /// scale. `nearest_int` there rounds halves to even.
    pub fn quantize_super_block(x: &[f32], q: &mut [i16]) -> f32 {
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in x {
            if v.abs() > amax {
                (amax, max) = (v.abs(), v);
            }
        }
        if amax == 0.0 {
            q.fill(0);
            return 0.0;
        }
        let iscale = -127.0 / max;
        for (q, &v) in q.iter_mut().zip(x) {
            *q = ((iscale * v).round_ties_even() as i32).min(127) as i16;
        }
        1.0 / iscale
    }

    /// Sub-block `j` of block `wb` as integers (Q6_K's already times their 16-value scales),
    /// following ggml's `dequantize_row_*`.
    #[inline(always)]
    pub fn values(format: WeightFormat, wb: &[u8], j: usize) -> [i32; BLOCK] {
        let mut v = [0i32; BLOCK];
        match format {
            WeightFormat::Q4_0 | WeightFormat::Q4_1 => {
                let (qs, zero) = if format == WeightFormat::Q4_0 { (&wb[2..18], 8) } else { (&wb[4..20], 0) };
                for l in 0..16 {
                    v[l] = (qs[l] & 0x0f) as i32 - zero;
                    v[l + 16] = (qs[l] >> 4) as i32 - zero;
                }
            }
            WeightFormat::Q5_0 => {
                let qh = u32::from_le_bytes([wb[2], wb[3], wb[4], wb[5]]);
                for l in 0..16 {
                    v[l] = ((wb[6 + l] & 0x0f) as u32 | ((qh >> l) & 1) << 4) as i32 - 16;
                    v[l + 16] = ((wb[6 + l] >> 4) as u32 | ((qh >> (l + 16)) & 1) << 4) as i32 - 16;
                }
            }
            WeightFormat::Q8_0 => {
                for l in 0..BLOCK {
                    v[l] = wb[2 + l] as i8 as i32;
                }
            }
            WeightFormat::Q4K | WeightFormat::Q5K => {
                let qs = if format == WeightFormat::Q4K { &wb[16 + 32 * (j / 2)..] } else { &wb[48 + 32 * (j / 2)..] };
                for l in 0..BLOCK {
                    let q = if j % 2 == 0 { qs[l] & 0x0f } else { qs[l] >> 4 };
                    let fifth = if format == WeightFormat::Q5K { ((wb[16 + l] >> j) & 1) << 4 } else { 0 };
                    v[l] = (q | fifth) as i32;
                }
            }
            WeightFormat::Q6K => {
                let (n, k) = (j / 4, j % 4);
                let (ql, qh) = (&wb[64 * n + 32 * (k & 1)..], &wb[128 + 32 * n..]);
                for l in 0..BLOCK {
                    let low = if k >= 2 { ql[l] >> 4 } else { ql[l] & 0x0f };
                    let q = (low | ((qh[l] >> (2 * k)) & 3) << 4) as i32 - 32;
                    v[l] = q * wb[192 + 2 * j + l / 16] as i8 as i32;
                }
            }
        }
        v
    }

    #[inline(always)]
    pub fn dot(format: WeightFormat, w: &[u8], a: &Q8Row) -> f32 {
        blocks_of(format, w, a);
        let mut sum = 0f32;
        for (b, wb) in w.chunks_exact(format.block_bytes()).enumerate() {
            let h = header(format, wb);
            for j in 0..format.sub_blocks() {
                let i = b * format.sub_blocks() + j;
                let (scale, offset) = h.of(format, j);
                if format.offset() != Offset::None {
                    sum += offset * offset_term(format, a, i);
                }
                let aq = &a.qs[i * BLOCK..(i + 1) * BLOCK];
                let sumi: i32 = values(format, wb, j).iter().zip(aq).map(|(&q, &a)| q * a as i32).sum();
                sum += sumi as f32 * (scale * a.d[i]);
            }
        }
        sum
    }
}

/// WebAssembly SIMD128 versions: weights widened to i16 lanes and multiplied with the
/// (already widened) activations by `i32x4.dot_i16x8_s`, four per 32 values. [`dots`] does one
/// weight row against `N` activation rows, unpacking each weight sub-block once for all of them
/// (prefill); `dot` is the same code with `N = 1`, so each row's result is identical either way.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
pub mod simd128 {
    use super::*;
    use core::arch::wasm32::*;

    /// The 16 fifth bits in `bits` (one half of a Q5_0 block), as 0x10 or 0 per byte lane.
    #[inline(always)]
    fn fifth_bits(bits: u32) -> v128 {
        let spread = u8x16_swizzle(u32x4_splat(bits), u8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
        let lane_bit = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
        v128_and(u8x16_eq(v128_and(spread, lane_bit), lane_bit), u8x16_splat(0x10))
    }

    /// `lo` = values 0..16 and `hi` = 16..32 as i8 lanes (0..255 when `unsigned`), widened.
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

    /// Sub-block `j` of the block at `wb` as 32 bytes (values 0..16 and 16..32) and the zero
    /// point to subtract from them: for every format but Q8_0 the bytes are the unsigned
    /// quantized values (0..63, top bit clear, as the relaxed kernels need); Q8_0's are the
    /// signed values themselves. SAFETY: `wb` points at one whole block of `format`.
    #[inline(always)]
    pub(super) unsafe fn unpack_bytes(format: WeightFormat, wb: *const u8, j: usize) -> ([v128; 2], i8) {
        let low_nibbles = u8x16_splat(0x0f);
        let load = |at: usize| v128_load(wb.add(at) as *const v128);
        match format {
            WeightFormat::Q4_0 | WeightFormat::Q4_1 => {
                let (q, zero) = if format == WeightFormat::Q4_0 { (load(2), 8) } else { (load(4), 0) };
                ([v128_and(q, low_nibbles), u8x16_shr(q, 4)], zero)
            }
            WeightFormat::Q5_0 => {
                let qh = (wb.add(2) as *const u32).read_unaligned().to_le();
                let q = load(6);
                let lo = v128_or(v128_and(q, low_nibbles), fifth_bits(qh & 0xffff));
                ([lo, v128_or(u8x16_shr(q, 4), fifth_bits(qh >> 16))], 16)
            }
            WeightFormat::Q8_0 => ([load(2), load(18)], 0),
            WeightFormat::Q4K | WeightFormat::Q5K => {
                let at = if format == WeightFormat::Q4K { 16 } else { 48 } + 32 * (j / 2);
                let nibble = |q: v128| if j % 2 == 0 { v128_and(q, low_nibbles) } else { u8x16_shr(q, 4) };
                let (mut lo, mut hi) = (nibble(load(at)), nibble(load(at + 16)));
                if format == WeightFormat::Q5K {
                    let fifth = |qh: v128| v128_and(u8x16_shl(u8x16_shr(qh, j as u32), 4), u8x16_splat(0x10));
                    lo = v128_or(lo, fifth(load(16)));
                    hi = v128_or(hi, fifth(load(32)));
                }
                ([lo, hi], 0)
            }
            WeightFormat::Q6K => {
                let (n, k) = (j / 4, j % 4);
                let (ql, qh) = (64 * n + 32 * (k & 1), 128 + 32 * n);
                let nibble = |q: v128| if k >= 2 { u8x16_shr(q, 4) } else { v128_and(q, low_nibbles) };
                let top = |q: v128| v128_and(u8x16_shl(u8x16_shr(q, 2 * k as u32), 4), u8x16_splat(0x30));
                ([v128_or(nibble(load(ql)), top(load(qh))), v128_or(nibble(load(ql + 16)), top(load(qh + 16)))], 32)
            }
        }
    }

    /// Q6_K sub-block `j`'s scales: of its first 16 values and of the rest.
    /// SAFETY: `wb` points at one whole Q6_K block.
    #[inline(always)]
    pub(super) unsafe fn q6k_scales(wb: *const u8, j: usize) -> (i8, i8) {
        (*wb.add(192 + 2 * j) as i8, *wb.add(193 + 2 * j) as i8)
    }

    /// Sub-block `j` of the block at `wb` as 32 i16 lanes: [`scalar::values`] vectorised.
    /// SAFETY: `wb` points at one whole block of `format`.
    #[inline(always)]
    unsafe fn unpack(format: WeightFormat, wb: *const u8, j: usize) -> [v128; 4] {
        let ([lo, hi], zero) = unpack_bytes(format, wb, j);
        let values = match (format, zero) {
            (WeightFormat::Q8_0, _) => widen(lo, hi, false),
            (_, 0) => widen(lo, hi, true),
            _ => {
                let zero = i8x16_splat(zero);
                widen(i8x16_sub(lo, zero), i8x16_sub(hi, zero), false)
            }
        };
        if format != WeightFormat::Q6K {
            return values;
        }
        let (first, second) = q6k_scales(wb, j);
        let (first, second) = (i16x8_splat(first as i16), i16x8_splat(second as i16));
        let [a, b, c, d] = values;
        [i16x8_mul(a, first), i16x8_mul(b, first), i16x8_mul(c, second), i16x8_mul(d, second)]
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

    /// The loop both SIMD versions run: for each sub-block of `w`, `unpack(wb, j)` unpacks the
    /// weights once for all `N` rows and `block_sum(&weights, a, i)` gives their Σ w·a with row
    /// `a`'s activation block `i` as four i32 lanes; the scales, offsets and float sums are
    /// taken here. SAFETY (of the callers' closures): `wb` points at one whole block, and block
    /// `i` of every row's activations exists (checked by blocks_of here).
    #[inline(always)]
    pub(super) fn accumulate<const N: usize, W>(
        format: WeightFormat,
        w: &[u8],
        a: [&Q8Row; N],
        unpack: impl Fn(*const u8, usize) -> W,
        block_sum: impl Fn(&W, &Q8Row, usize) -> v128,
    ) -> [f32; N] {
        for a in a {
            blocks_of(format, w, a);
        }
        let mut acc = [f32x4_splat(0.0); N];
        let mut offsets = [0f32; N];
        for (b, wb) in w.chunks_exact(format.block_bytes()).enumerate() {
            let h = header(format, wb);
            for j in 0..format.sub_blocks() {
                let i = b * format.sub_blocks() + j;
                let (scale, offset) = h.of(format, j);
                let weights = unpack(wb.as_ptr(), j);
                for t in 0..N {
                    let sum = block_sum(&weights, a[t], i);
                    // SAFETY: i < a[t].d.len(), checked by blocks_of above.
                    let scale = f32x4_splat(scale * unsafe { *a[t].d.get_unchecked(i) });
                    acc[t] = f32x4_add(acc[t], f32x4_mul(f32x4_convert_i32x4(sum), scale));
                    if format.offset() != Offset::None {
                        offsets[t] += offset * offset_term(format, a[t], i);
                    }
                }
            }
        }
        std::array::from_fn(|t| horizontal_sum(acc[t]) + offsets[t])
    }

    /// Σ w·a of one weight row with each of `N` activation rows.
    #[inline(always)]
    pub fn dots<const N: usize>(format: WeightFormat, w: &[u8], a: [&Q8Row; N]) -> [f32; N] {
        // SAFETY: see accumulate; v128 loads and `read_unaligned` need no alignment.
        accumulate(
            format,
            w,
            a,
            |wb, j| unsafe { unpack(format, wb, j) },
            |values, a, i| unsafe { block_sum(values, a.qs.as_ptr().add(i * BLOCK)) },
        )
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

/// Relaxed-SIMD versions (the builds with `relaxed-simd`, which www/engine/runtime.js picks where
/// the engine has it): `i32x4.relaxed_dot_i8x16_i7x16_add` multiplies 16 signed activation bytes
/// by 16 weight bytes and adds the products into four i32 lanes in one instruction (x86's
/// `vpdpbusd` or `pmaddubsw`, Arm's `sdot`), where the SIMD128 kernels widen both sides to i16
/// first. Its result is defined only for weight bytes with the top bit clear, so weights are
/// unpacked without their zero point (0..63) and `zero·Σa` is taken off with the same
/// instruction: the integer sums are exact, the scalar twin's. The pairwise i16 sums inside it
/// stay below 2·127·63, so no platform saturates. Q8_0, whose weights are signed bytes, stays
/// on the SIMD128 kernel.
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
pub mod relaxed {
    use super::simd128::{q6k_scales, unpack_bytes};
    use super::*;
    use core::arch::wasm32::*;

    /// Σ w·a of one weight row with each of `N` activation rows.
    #[inline(always)]
    pub fn dots<const N: usize>(format: WeightFormat, w: &[u8], a: [&Q8Row; N]) -> [f32; N] {
        if format == WeightFormat::Q8_0 {
            return simd128::dots(format, w, a);
        }
        let none = i32x4_splat(0);
        let with_zero_point = matches!(format, WeightFormat::Q4_0 | WeightFormat::Q5_0 | WeightFormat::Q6K);
        // SAFETY: see simd128::accumulate; v128 loads need no alignment.
        let unpack = |wb: *const u8, j: usize| unsafe {
            let (bytes, zero) = unpack_bytes(format, wb, j);
            let scales = if format == WeightFormat::Q6K { q6k_scales(wb, j) } else { (1, 1) };
            (bytes, i8x16_splat(zero), scales)
        };
        let block_sum = |&([lo, hi], zero, (sc0, sc1)): &([v128; 2], v128, (i8, i8)), a: &Q8Row, i: usize| unsafe {
            let q8 = a.q8.as_ptr().add(i * BLOCK);
            let (a0, a1) = (v128_load(q8 as *const v128), v128_load(q8.add(16) as *const v128));
            let mut first = i32x4_relaxed_dot_i8x16_i7x16_add(a0, lo, none);
            let mut second = i32x4_relaxed_dot_i8x16_i7x16_add(a1, hi, none);
            if with_zero_point {
                first = i32x4_sub(first, i32x4_relaxed_dot_i8x16_i7x16_add(a0, zero, none));
                second = i32x4_sub(second, i32x4_relaxed_dot_i8x16_i7x16_add(a1, zero, none));
            }
            if format == WeightFormat::Q6K {
                i32x4_add(i32x4_mul(first, i32x4_splat(sc0 as i32)), i32x4_mul(second, i32x4_splat(sc1 as i32)))
            } else {
                i32x4_add(first, second)
            }
        };
        simd128::accumulate(format, w, a, unpack, block_sum)
    }

    #[inline(always)]
    pub fn dot(format: WeightFormat, w: &[u8], a: &Q8Row) -> f32 {
        dots::<1>(format, w, [a])[0]
    }
}
