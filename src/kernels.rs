//! Dot products of one quantized weight row with one row of 8-bit activations: the inner loop
//! of every matmul, for the 32-value block formats (Q4_0, Q4_1, Q5_0, Q8_0) and the 256-value
//! K-quants (Q4_K, Q5_K, Q6_K) that Q4_K_M files are made of. The KV cache's rows are Q8_0 too:
//! [`quantize_row_q8_0`] writes them, [`dot`] scores them and [`add_scaled_q8_0`] adds values up.
//!
//! candle has a wasm SIMD kernel for Q4_0, Q8_0, Q4_K and Q6_K only, and all of them convert each
//! activation block's f16 scale again for every weight row, with no multi-token path. Ours take
//! activations in [`Q8Row`] form, scales already in f32, which measured 2.8× faster for Q4_1 in
//! V8.
//!
//! The activations are quantized as llama.cpp quantizes them for each weight type, so that a
//! model computes what it computes there: per 32 values with f16 scales (ggml's Q8_0/Q8_1) for
//! the 32-value formats ([`Q8Rows::quantize`]); per 256 values with one f32 scale (ggml's Q8_K)
//! for the K-quants ([`Q8Rows::quantize_k`]), with the sums of each 16 integers.
//!
//! A 32-value block is one integer sum times its float scales. A K-quant super-block is summed
//! as ggml sums it (`ggml_vec_dot_q4_K_q8_K` and its siblings): each sub-block's integer sum
//! times its integer scale, added up in integers over the 256 values, then one float step
//! against the activations' shared scale; the mins (and Q6_K's zero point, 32) come off as the
//! activations' per-16 sums times the integer mins ([`SuperBlockScales`]). Per 32 values that
//! leaves only integer work in the inner loop.
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
    /// Per block: the scale `d`, rounded to f16 as ggml stores it ([`Q8Rows::quantize`]), or
    /// the super-block's f32 scale, the same in its eight blocks ([`Q8Rows::quantize_k`]).
    pub d: &'a [f32],
    /// Per block: `d · Σq`, rounded as ggml's Q8_1 stores it (Q4_1's offset term needs it);
    /// rows of [`Q8Rows::quantize`] only.
    pub s: &'a [f32],
    /// Per 16 values: `Σq`, exact (ggml's Q8_K `bsums`), for the K-quants' mins and zero point.
    pub bsums: &'a [i16],
}

/// Rows of quantized activations, kept between calls (grown, never shrunk) so that decoding
/// allocates nothing: what [`Q8Row`]s borrow.
#[derive(Default)]
pub struct Q8Rows {
    qs: Vec<i16>,
    q8: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    bsums: Vec<i16>,
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
            let (scale, total) = quantize_block(xb, qb);
            let scale16 = f16::from_f32(scale);
            self.d[i] = scale16.to_f32();
            self.s[i] = (f16::from_f32(total as f32) * scale16).to_f32();
        }
        self.copy_bytes_and_sum(x.len());
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
            self.d[g * SUPER_BLOCK / BLOCK..(g + 1) * SUPER_BLOCK / BLOCK].fill(scale);
        }
        self.copy_bytes_and_sum(x.len());
    }

    /// The integers of the first `values` as bytes too, and their sums per 16.
    fn copy_bytes_and_sum(&mut self, values: usize) {
        for (q8, &q) in self.q8[..values].iter_mut().zip(&self.qs[..values]) {
            *q8 = q as i8;
        }
        for (sum, qs) in self.bsums.iter_mut().zip(self.qs[..values].chunks_exact(16)) {
            *sum = qs.iter().sum();
        }
    }

    /// Room for `values` in rows of `cols` (grown, never shrunk).
    fn make_room(&mut self, values: usize, cols: usize) {
        grown(&mut self.qs, values);
        grown(&mut self.q8, values);
        grown(&mut self.d, values / BLOCK);
        grown(&mut self.s, values / BLOCK);
        grown(&mut self.bsums, values / 16);
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
            bsums: &self.bsums[t * cols / 16..(t + 1) * cols / 16],
        }
    }

    /// Values per row of the last [`Self::quantize`].
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// One block of [`Q8Rows::quantize`]: the SIMD version where the build has it.
#[inline(always)]
fn quantize_block(x: &[f32; BLOCK], q: &mut [i16; BLOCK]) -> (f32, i32) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::quantize_block(x, q);
    #[allow(unreachable_code)]
    scalar::quantize_block(x, q)
}

/// Bytes of a Q8_0 block: an f16 scale and 32 signed bytes.
pub const Q8_0_BLOCK_BYTES: usize = WeightFormat::Q8_0.block_bytes();

/// `x` (a multiple of 32 values) as Q8_0 blocks into `out`, as ggml's `quantize_row_q8_0`
/// writes them (scale `max|x|/127` stored as f16, values rounded half away from zero): the KV
/// cache's format, read back by [`dot`] with [`WeightFormat::Q8_0`] and by [`add_scaled_q8_0`].
pub fn quantize_row_q8_0(x: &[f32], out: &mut [u8]) {
    assert!(
        x.len() % BLOCK == 0 && out.len() == x.len() / BLOCK * Q8_0_BLOCK_BYTES,
        "{} values into {} bytes",
        x.len(),
        out.len()
    );
    let mut q = [0i16; BLOCK];
    for (xb, ob) in x.as_chunks::<BLOCK>().0.iter().zip(out.as_chunks_mut::<Q8_0_BLOCK_BYTES>().0) {
        let (scale, _) = quantize_block(xb, &mut q);
        ob[..2].copy_from_slice(&f16::from_f32(scale).to_le_bytes());
        for (o, &q) in ob[2..].iter_mut().zip(&q) {
            *o = q as i8 as u8;
        }
    }
}

/// `out += w · row` for a row of Q8_0 blocks, dequantized on the way (as ggml's flash attention
/// adds up a quantized V). `out` may stop short of the row's last block (a padded head).
#[inline(always)]
pub fn add_scaled_q8_0(row: &[u8], w: f32, out: &mut [f32]) {
    assert!(row.len() % Q8_0_BLOCK_BYTES == 0 && out.len() <= row.len() / Q8_0_BLOCK_BYTES * BLOCK);
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return simd128::add_scaled_q8_0(row, w, out);
    #[allow(unreachable_code)]
    scalar::add_scaled_q8_0(row, w, out)
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

    /// Whether a 32-value block has an offset term, Q4_1's `m·s` (ggml's Q8_1 arithmetic).
    /// The K-quants' mins are in [`SuperBlockScales`].
    const fn has_offset(self) -> bool {
        matches!(self, Self::Q4_1)
    }
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

/// A 32-value block's scale `d` and Q4_1's offset `m` (0 for the others).
#[inline(always)]
fn block_scale_and_offset(format: WeightFormat, wb: &[u8]) -> (f32, f32) {
    (f16_at(wb, 0), if format.has_offset() { f16_at(wb, 2) } else { 0.0 })
}

/// A K-quant super-block's scales as integers per 16 values: value `l`, with `q` its unsigned
/// quantized value, is `d·scales[l/16]·q − dmin·mins[l/16]`. Q4_K/Q5_K give each 32-value
/// sub-block one scale and min (so both its halves carry them); Q6_K's values are
/// `d·scale·(q − 32)`, so its mins are `32·scale` and `dmin` is `d`.
pub struct SuperBlockScales {
    pub d: f32,
    pub dmin: f32,
    pub scales: [i16; 16],
    pub mins: [i16; 16],
}

impl SuperBlockScales {
    #[inline(always)]
    pub fn of(format: WeightFormat, wb: &[u8]) -> Self {
        let (mut scales, mut mins) = ([0i16; 16], [0i16; 16]);
        if format == WeightFormat::Q6K {
            for h in 0..16 {
                scales[h] = wb[192 + h] as i8 as i16;
                mins[h] = 32 * scales[h];
            }
            let d = f16_at(wb, 208);
            return Self { d, dmin: d, scales, mins };
        }
        for j in 0..8 {
            let (sc, m) = k4_scale_min(j, &wb[4..16]);
            scales[2 * j..2 * j + 2].fill(sc as i16);
            mins[2 * j..2 * j + 2].fill(m as i16);
        }
        Self { d: f16_at(wb, 0), dmin: f16_at(wb, 2), scales, mins }
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
            && a.bsums.len() >= subs * BLOCK / 16,
        "activation row too short"
    );
    blocks
}

/// The reference kernels: plain loops with ggml's arithmetic (an integer sum per 32-value block,
/// then `Σ scale·d_a·sum (+ offset·s)` in block order; for the K-quants an integer sum per
/// super-block, then `d_a·(d·sum − dmin·mins)` in super-block order). Natively these are what
/// runs.
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

    /// [`super::add_scaled_q8_0`]: per block, the scale times `w`, then each value times that.
    #[inline(always)]
    pub fn add_scaled_q8_0(row: &[u8], w: f32, out: &mut [f32]) {
        for (o, b) in out.chunks_mut(BLOCK).zip(row.as_chunks::<Q8_0_BLOCK_BYTES>().0) {
            let wd = w * f16_at(b, 0);
            for (o, &q) in o.iter_mut().zip(&b[2..]) {
                *o += wd * (q as i8 as f32);
            }
        }
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

    /// Sub-block `j` of block `wb` as integers, following ggml's `dequantize_row_*`: the
    /// signed values of a 32-value block, the unsigned quantized values (0..64) of a K-quant
    /// sub-block, whose scales, mins and zero point are in [`SuperBlockScales`].
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
                    v[l] = (low | ((qh[l] >> (2 * k)) & 3) << 4) as i32;
                }
            }
        }
        v
    }

    #[inline(always)]
    pub fn dot(format: WeightFormat, w: &[u8], a: &Q8Row) -> f32 {
        blocks_of(format, w, a);
        if format.is_k_quant() {
            return dot_k(format, w, a);
        }
        let mut sum = 0f32;
        for (i, wb) in w.chunks_exact(format.block_bytes()).enumerate() {
            let (scale, offset) = block_scale_and_offset(format, wb);
            if format.has_offset() {
                sum += offset * a.s[i];
            }
            let aq = &a.qs[i * BLOCK..(i + 1) * BLOCK];
            let sumi: i32 = values(format, wb, 0).iter().zip(aq).map(|(&q, &a)| q * a as i32).sum();
            sum += sumi as f32 * (scale * a.d[i]);
        }
        sum
    }

    /// The K-quants, super-block by super-block as ggml sums them.
    #[inline(always)]
    fn dot_k(format: WeightFormat, w: &[u8], a: &Q8Row) -> f32 {
        let mut sum = 0f32;
        for (g, wb) in w.chunks_exact(format.block_bytes()).enumerate() {
            let s = SuperBlockScales::of(format, wb);
            let mut dot = 0i32;
            for j in 0..8 {
                let aq = &a.qs[(8 * g + j) * BLOCK..][..BLOCK];
                for (h, (v, aq)) in values(format, wb, j).chunks_exact(16).zip(aq.chunks_exact(16)).enumerate() {
                    let part: i32 = v.iter().zip(aq).map(|(&q, &a)| q * a as i32).sum();
                    dot += s.scales[2 * j + h] as i32 * part;
                }
            }
            let bsums = &a.bsums[16 * g..16 * (g + 1)];
            let mins: i32 = s.mins.iter().zip(bsums).map(|(&m, &b)| m as i32 * b as i32).sum();
            let d = a.d[8 * g];
            sum += (d * s.d) * dot as f32 - (d * s.dmin) * mins as f32;
        }
        sum
    }
}

/// WebAssembly SIMD128 versions: weights widened to i16 lanes (the K-quants' times their integer
/// scales) and multiplied with the (already widened) activations by `i32x4.dot_i16x8_s`, four per
/// 32 values. [`dots`] does one
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

    /// The 32-value block at `wb` as 32 bytes (values 0..16 and 16..32) and the zero point to
    /// subtract from them: for every format but Q8_0 the bytes are the unsigned quantized
    /// values (top bit clear, as the relaxed kernels need); Q8_0's are the signed values
    /// themselves. SAFETY: `wb` points at one whole block of `format`.
    #[inline(always)]
    pub(super) unsafe fn unpack_bytes(format: WeightFormat, wb: *const u8) -> ([v128; 2], i8) {
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
            WeightFormat::Q4K | WeightFormat::Q5K | WeightFormat::Q6K => unreachable!("K-quants unpack by super-block"),
        }
    }

    /// Bit `from` of every byte of `v` moved to bit `to`, the other bits cleared: 16-bit
    /// shifts, which x86 has (byte shifts it has not), by constants once inlined.
    #[inline(always)]
    fn move_bits(v: v128, from: u32, to: u32, width: u32) -> v128 {
        let mask = u8x16_splat((((1u32 << width) - 1) << to) as u8);
        let moved = if to >= from { u16x8_shl(v, to - from) } else { u16x8_shr(v, from - to) };
        v128_and(moved, mask)
    }

    /// The eight sub-blocks of the K-quant super-block at `wb` as 32 unsigned bytes each
    /// (values 0..16 and 16..32 of the sub-block; below 64): [`scalar::values`] vectorised,
    /// with every shift a constant. SAFETY: `wb` points at one whole super-block of `format`.
    #[inline(always)]
    pub(super) unsafe fn unpack_super_block(format: WeightFormat, wb: *const u8) -> [[v128; 2]; 8] {
        let load = |at: usize| v128_load(wb.add(at) as *const v128);
        let low = |q: v128| v128_and(q, u8x16_splat(0x0f));
        let high = |q: v128| move_bits(q, 4, 0, 4);
        let mut subs = [[u8x16_splat(0); 2]; 8];
        match format {
            WeightFormat::Q4K | WeightFormat::Q5K => {
                // Sub-blocks 2p and 2p + 1 are the low and high nibbles of the same 32 bytes.
                let qs = if format == WeightFormat::Q4K { 16 } else { 48 };
                for p in 0..4 {
                    let (q0, q1) = (load(qs + 32 * p), load(qs + 32 * p + 16));
                    subs[2 * p] = [low(q0), low(q1)];
                    subs[2 * p + 1] = [high(q0), high(q1)];
                }
                if format == WeightFormat::Q5K {
                    let (qh0, qh1) = (load(16), load(32));
                    for (j, sub) in subs.iter_mut().enumerate() {
                        let j = j as u32;
                        *sub = [v128_or(sub[0], move_bits(qh0, j, 4, 1)), v128_or(sub[1], move_bits(qh1, j, 4, 1))];
                    }
                }
            }
            WeightFormat::Q6K => {
                // Half n of 128 values: sub-block 4n + k takes the low nibbles of ql bytes
                // 32·(k & 1).. for k < 2, the high ones for k ≥ 2, and bits 2k, 2k + 1 of qh.
                for n in 0..2 {
                    let ql: [v128; 4] = std::array::from_fn(|i| load(64 * n + 16 * i));
                    let (qh0, qh1) = (load(128 + 32 * n), load(144 + 32 * n));
                    for k in 0..4 {
                        let nibble = if k < 2 { low } else { high };
                        let (q0, q1) = (ql[2 * (k & 1)], ql[2 * (k & 1) + 1]);
                        let top = |qh: v128| move_bits(qh, 2 * k as u32, 4, 2);
                        subs[4 * n + k] = [v128_or(nibble(q0), top(qh0)), v128_or(nibble(q1), top(qh1))];
                    }
                }
            }
            _ => unreachable!("32-value blocks unpack one at a time"),
        }
        subs
    }

    /// A 32-value block at `wb` as 32 i16 lanes: [`scalar::values`] vectorised.
    /// SAFETY: `wb` points at one whole block of `format`.
    #[inline(always)]
    unsafe fn unpack(format: WeightFormat, wb: *const u8) -> [v128; 4] {
        let ([lo, hi], zero) = unpack_bytes(format, wb);
        match (format, zero) {
            (WeightFormat::Q8_0, _) => widen(lo, hi, false),
            (_, 0) => widen(lo, hi, true),
            _ => {
                let zero = i8x16_splat(zero);
                widen(i8x16_sub(lo, zero), i8x16_sub(hi, zero), false)
            }
        }
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

    /// The 32-value formats' loop, both SIMD versions': for each block of `w`, `unpack(wb)`
    /// unpacks the weights once for all `N` rows and `block_sum(&weights, a, i)` gives their
    /// Σ w·a with row `a`'s activation block `i` as four i32 lanes; the scales, offsets and
    /// float sums are taken here. SAFETY (of the callers' closures): `wb` points at one whole
    /// block, and block `i` of every row's activations exists (checked by blocks_of here).
    #[inline(always)]
    pub(super) fn accumulate<const N: usize, W>(
        format: WeightFormat,
        w: &[u8],
        a: [&Q8Row; N],
        unpack: impl Fn(*const u8) -> W,
        block_sum: impl Fn(&W, &Q8Row, usize) -> v128,
    ) -> [f32; N] {
        for a in a {
            blocks_of(format, w, a);
        }
        let mut acc = [f32x4_splat(0.0); N];
        let mut offsets = [0f32; N];
        for (i, wb) in w.chunks_exact(format.block_bytes()).enumerate() {
            let (scale, offset) = block_scale_and_offset(format, wb);
            let weights = unpack(wb.as_ptr());
            for t in 0..N {
                let sum = block_sum(&weights, a[t], i);
                // SAFETY: i < a[t].d.len() and a[t].s.len(), checked by blocks_of above.
                let scale = f32x4_splat(scale * unsafe { *a[t].d.get_unchecked(i) });
                acc[t] = f32x4_add(acc[t], f32x4_mul(f32x4_convert_i32x4(sum), scale));
                if format.has_offset() {
                    offsets[t] += offset * unsafe { *a[t].s.get_unchecked(i) };
                }
            }
        }
        std::array::from_fn(|t| horizontal_sum(acc[t]) + offsets[t])
    }

    /// Byte-swizzle masks that copy i16 lane `k` of a vector into all eight lanes.
    const LANE_SPLATS: [v128; 8] = {
        let mut masks = [u8x16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0); 8];
        let mut k = 0;
        while k < 8 {
            let (lo, hi) = (2 * k as u8, 2 * k as u8 + 1);
            masks[k] = u8x16(lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi);
            k += 1;
        }
        masks
    };

    /// [`SuperBlockScales`] in vectors: `mins[0]` holds the i16 mins of values 0..128,
    /// `mins[1]` of 128..256; `splats[j]` the scales of sub-block `j`'s two halves, each in
    /// every i16 lane.
    pub(super) struct SuperBlockLanes {
        d: f32,
        dmin: f32,
        mins: [v128; 2],
        splats: [[v128; 2]; 8],
    }

    impl SuperBlockLanes {
        /// SAFETY: `wb` points at one whole super-block of `format`.
        #[inline(always)]
        unsafe fn of(format: WeightFormat, wb: *const u8) -> Self {
            let f16_at = |at: usize| f16_to_f32((wb.add(at) as *const u16).read_unaligned().to_le());
            let splat = |v: v128, lane: usize| u8x16_swizzle(v, LANE_SPLATS[lane]);
            let mut splats = [[u8x16_splat(0); 2]; 8];
            if format == WeightFormat::Q6K {
                let bytes = v128_load(wb.add(192) as *const v128);
                let scales = [i16x8_extend_low_i8x16(bytes), i16x8_extend_high_i8x16(bytes)];
                for h in 0..16 {
                    splats[h / 2][h % 2] = splat(scales[h / 8], h % 8);
                }
                let d = f16_at(208);
                return Self { d, dmin: d, mins: scales.map(|s| i16x8_shl(s, 5)), splats };
            }
            // The eight 6-bit scales and mins out of `scales[12]` four bytes at a time, as
            // ggml's kernels unpack them ([`k4_scale_min`] one by one).
            let word = |i: usize| (wb.add(4 + 4 * i) as *const u32).read_unaligned().to_le();
            let (w0, w1, w2) = (word(0), word(1), word(2));
            let (six, nibble, two) = (0x3f3f_3f3f, 0x0f0f_0f0f, 0x0303_0303);
            let packed = u32x4(
                w0 & six,
                (w2 & nibble) | (((w0 >> 6) & two) << 4),
                w1 & six,
                ((w2 >> 4) & nibble) | (((w1 >> 6) & two) << 4),
            );
            let scales = u16x8_extend_low_u8x16(packed);
            for (j, halves) in splats.iter_mut().enumerate() {
                let scale = splat(scales, j);
                *halves = [scale, scale];
            }
            // Each min twice: one per 32 values, lanes per 16.
            let mins = u8x16_swizzle(packed, u8x16(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15));
            let mins = [u16x8_extend_low_u8x16(mins), u16x8_extend_high_u8x16(mins)];
            Self { d: f16_at(0), dmin: f16_at(2), mins, splats }
        }
    }

    /// The K-quants' loop, both SIMD versions': each super-block of `w` is unpacked once for
    /// all `N` rows, and for each sub-block `unpack(&bytes, scales)` prepares its weights
    /// (`scales`: the splatted scales of its two halves) and `sub_block_sum(&weights, a, i)`
    /// gives Σ scale·q·a with row `a`'s activation block `i` as four i32 lanes, added up in
    /// integers over the super-block; the mins, the float scales and the float sums are taken
    /// here, once per super-block. SAFETY (of the callers' closures): block `i` of every row's
    /// activations exists (checked by blocks_of here).
    #[inline(always)]
    pub(super) fn accumulate_k<const N: usize, W>(
        format: WeightFormat,
        w: &[u8],
        a: [&Q8Row; N],
        unpack: impl Fn(&[v128; 2], [v128; 2]) -> W,
        sub_block_sum: impl Fn(&W, &Q8Row, usize) -> v128,
    ) -> [f32; N] {
        for a in a {
            blocks_of(format, w, a);
        }
        let mut acc = [f32x4_splat(0.0); N];
        for (g, wb) in w.chunks_exact(format.block_bytes()).enumerate() {
            // SAFETY: `wb` is one whole super-block; block 8g + 7 and bsums 16g + 15 of every
            // row exist (blocks_of above); v128 loads need no alignment.
            let (s, subs) =
                unsafe { (SuperBlockLanes::of(format, wb.as_ptr()), unpack_super_block(format, wb.as_ptr())) };
            let mut sums = [i32x4_splat(0); N];
            for (j, (bytes, &scales)) in subs.iter().zip(&s.splats).enumerate() {
                let weights = unpack(bytes, scales);
                for t in 0..N {
                    sums[t] = i32x4_add(sums[t], sub_block_sum(&weights, a[t], 8 * g + j));
                }
            }
            for t in 0..N {
                let (mins, d) = unsafe {
                    let bsums = a[t].bsums.as_ptr().add(16 * g) as *const v128;
                    let mins = i32x4_add(
                        i32x4_dot_i16x8(s.mins[0], v128_load(bsums)),
                        i32x4_dot_i16x8(s.mins[1], v128_load(bsums.add(1))),
                    );
                    (mins, *a[t].d.get_unchecked(8 * g))
                };
                let dot = f32x4_mul(f32x4_convert_i32x4(sums[t]), f32x4_splat(d * s.d));
                acc[t] =
                    f32x4_add(acc[t], f32x4_sub(dot, f32x4_mul(f32x4_convert_i32x4(mins), f32x4_splat(d * s.dmin))));
            }
        }
        acc.map(horizontal_sum)
    }

    /// Σ w·a of one weight row with each of `N` activation rows.
    #[inline(always)]
    pub fn dots<const N: usize>(format: WeightFormat, w: &[u8], a: [&Q8Row; N]) -> [f32; N] {
        // SAFETY: see accumulate and accumulate_k; v128 loads and `read_unaligned` need no
        // alignment.
        let block_sum =
            |values: &[v128; 4], a: &Q8Row, i: usize| unsafe { block_sum(values, a.qs.as_ptr().add(i * BLOCK)) };
        if !format.is_k_quant() {
            return accumulate(format, w, a, |wb| unsafe { unpack(format, wb) }, block_sum);
        }
        // The K-quants' unsigned values (below 64) times their scales fit in i16 lanes.
        let unpack_scaled = |&[lo, hi]: &[v128; 2], [first, second]: [v128; 2]| {
            let [a, b, c, d] = widen(lo, hi, true);
            [i16x8_mul(a, first), i16x8_mul(b, first), i16x8_mul(c, second), i16x8_mul(d, second)]
        };
        accumulate_k(format, w, a, unpack_scaled, block_sum)
    }

    #[inline(always)]
    pub fn dot(format: WeightFormat, w: &[u8], a: &Q8Row) -> f32 {
        dots::<1>(format, w, [a])[0]
    }

    /// [`scalar::add_scaled_q8_0`] four lanes at a time, with the same operations (so the same
    /// results): bytes widened to i32 lanes, converted, times `w·d`, added.
    #[inline(always)]
    pub fn add_scaled_q8_0(row: &[u8], w: f32, out: &mut [f32]) {
        let (full, tail) = out.as_chunks_mut::<BLOCK>();
        let blocks = row.as_chunks::<Q8_0_BLOCK_BYTES>().0;
        for (o, b) in full.iter_mut().zip(blocks) {
            let wd = f32x4_splat(w * f16_at(b, 0));
            // SAFETY: bytes 2..34 of the block are its values and `o` holds 32 f32; v128 loads
            // and stores need no alignment.
            unsafe {
                for (k, bytes) in
                    [v128_load(b.as_ptr().add(2) as *const v128), v128_load(b.as_ptr().add(18) as *const v128)]
                        .into_iter()
                        .enumerate()
                {
                    let halves = [i16x8_extend_low_i8x16(bytes), i16x8_extend_high_i8x16(bytes)];
                    for (m, v) in halves.into_iter().enumerate() {
                        for (n, v) in [i32x4_extend_low_i16x8(v), i32x4_extend_high_i16x8(v)].into_iter().enumerate() {
                            let at = o.as_mut_ptr().add(16 * k + 8 * m + 4 * n) as *mut v128;
                            v128_store(at, f32x4_add(v128_load(at), f32x4_mul(wd, f32x4_convert_i32x4(v))));
                        }
                    }
                }
            }
        }
        if !tail.is_empty() {
            scalar::add_scaled_q8_0(&row[full.len() * Q8_0_BLOCK_BYTES..], w, tail);
        }
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
/// stay below 2·127·63, so no platform saturates. The K-quants take those pairwise sums
/// themselves (`i16x8.relaxed_dot_i8x16_i7x16_s`, x86's `pmaddubsw`) and multiply them by their
/// integer scales into i32 lanes (`i32x4.dot_i16x8_s`), as ggml's AVX2 kernels do. Q8_0, whose
/// weights are signed bytes, stays on the SIMD128 kernel.
#[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
pub mod relaxed {
    use super::simd128::{accumulate, accumulate_k, unpack_bytes};
    use super::*;
    use core::arch::wasm32::*;

    /// Σ w·a of one weight row with each of `N` activation rows.
    #[inline(always)]
    pub fn dots<const N: usize>(format: WeightFormat, w: &[u8], a: [&Q8Row; N]) -> [f32; N] {
        if format == WeightFormat::Q8_0 {
            return simd128::dots(format, w, a);
        }
        // SAFETY (all three closures): see simd128::accumulate and accumulate_k; v128 loads
        // need no alignment.
        let activations = |a: &Q8Row, i: usize| unsafe {
            let q8 = a.q8.as_ptr().add(i * BLOCK);
            (v128_load(q8 as *const v128), v128_load(q8.add(16) as *const v128))
        };
        if format.is_k_quant() {
            // Pairwise products in i16 lanes (`pmaddubsw`: below 2·127·63, so nothing
            // saturates), then times the scales into i32 lanes (`pmaddwd`).
            let unpack = |&bytes: &[v128; 2], scales: [v128; 2]| (bytes, scales);
            let sub_block_sum = |&([lo, hi], [first, second]): &([v128; 2], [v128; 2]), a: &Q8Row, i: usize| {
                let (a0, a1) = activations(a, i);
                let (p0, p1) = (i16x8_relaxed_dot_i8x16_i7x16(a0, lo), i16x8_relaxed_dot_i8x16_i7x16(a1, hi));
                if format == WeightFormat::Q6K {
                    i32x4_add(i32x4_dot_i16x8(p0, first), i32x4_dot_i16x8(p1, second))
                } else {
                    // One scale for both halves, and their sums below 2·2·127·31.
                    i32x4_dot_i16x8(i16x8_add(p0, p1), first)
                }
            };
            return accumulate_k(format, w, a, unpack, sub_block_sum);
        }
        let none = i32x4_splat(0);
        let with_zero_point = matches!(format, WeightFormat::Q4_0 | WeightFormat::Q5_0);
        let unpack = |wb: *const u8| unsafe {
            let (bytes, zero) = unpack_bytes(format, wb);
            (bytes, i8x16_splat(zero))
        };
        let block_sum = |&([lo, hi], zero): &([v128; 2], v128), a: &Q8Row, i: usize| {
            let (a0, a1) = activations(a, i);
            let mut first = i32x4_relaxed_dot_i8x16_i7x16_add(a0, lo, none);
            let mut second = i32x4_relaxed_dot_i8x16_i7x16_add(a1, hi, none);
            if with_zero_point {
                first = i32x4_sub(first, i32x4_relaxed_dot_i8x16_i7x16_add(a0, zero, none));
                second = i32x4_sub(second, i32x4_relaxed_dot_i8x16_i7x16_add(a1, zero, none));
            }
            i32x4_add(first, second)
        };
        accumulate(format, w, a, unpack, block_sum)
    }

    #[inline(always)]
    pub fn dot(format: WeightFormat, w: &[u8], a: &Q8Row) -> f32 {
        dots::<1>(format, w, [a])[0]
    }
}
