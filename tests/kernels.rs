//! Every SIMD dot-product kernel against its scalar reference, on random blocks — natively
//! (where the "SIMD" of candle's types is AVX and ours is the scalar code itself) and on
//! wasm32, with simd128 and again with relaxed-simd (`./test.sh` runs this file in Node
//! through wasm-bindgen-test-runner, with Node's relaxed-SIMD flag for the second).
//!
//! Integer block sums are exact in both; only the order in which per-block floats are added
//! differs, so results must agree to within a few float roundings of Σ|wᵢ·aᵢ|.

use candle_core::quantized::k_quants::{self as kq, GgmlType};
use candle_core::quantized::GgmlDType;
use edgellm::kernels::{self, Q8Row, Q8Rows, WeightFormat};
use edgellm::matmul::{QMatrix, Scratch};

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Relative bound on |SIMD − scalar| / Σ|w·a|: 1,536 values at most, f32 sums.
const BOUND: f32 = 1e-5;

/// xorshift64*: reproducible values in (-1, 1) with some larger outliers, like activations.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let u = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32;
        let v = u * 2.0 - 1.0;
        if (self.0 & 63) == 0 {
            v * 8.0
        } else {
            v
        }
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.next()).collect()
    }
}

fn quantize<T: GgmlType>(xs: &[f32]) -> Vec<T> {
    let mut blocks = vec![T::zeros(); xs.len() / T::BLCK_SIZE];
    T::from_float(xs, &mut blocks);
    blocks
}

fn bytes<T>(blocks: &[T]) -> &[u8] {
    // SAFETY: plain-old-data blocks read as bytes.
    unsafe { std::slice::from_raw_parts(blocks.as_ptr() as *const u8, std::mem::size_of_val(blocks)) }
}

fn abs_dot(w: &[f32], a: &[f32]) -> f32 {
    w.iter().zip(a).map(|(w, a)| (w * a).abs()).sum()
}

/// Runs `check(weights, activations, Σ|w·a|)` on random rows of several lengths.
fn for_random_rows(block: usize, mut check: impl FnMut(&[f32], &[f32], f32)) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for blocks in [1, 2, 3, 6, 18, 48] {
        for _ in 0..20 {
            let (w, a) = (rng.vec(blocks * block), rng.vec(blocks * block));
            check(&w, &a, abs_dot(&w, &a));
        }
    }
}

fn assert_close(what: &str, got: f32, want: f32, scale: f32) {
    assert!((got - want).abs() <= BOUND * scale.max(1.0), "{what}: {got} vs {want} (scale {scale})");
}

/// Our activation rows: the same integers and scales as candle's Q8_1 blocks (and Q8_0's,
/// which quantize the same way).
struct Activations(Q8Rows);

impl Activations {
    fn new(a: &[f32]) -> Self {
        let mut rows = Q8Rows::default();
        rows.quantize(a, a.len());
        Self(rows)
    }
    /// As the matmul quantizes them for `format`: per 256 values for the K-quants (ggml's Q8_K).
    fn for_format(a: &[f32], format: WeightFormat) -> Self {
        let mut rows = Q8Rows::default();
        if format.is_k_quant() {
            rows.quantize_k(a, a.len());
        } else {
            rows.quantize(a, a.len());
        }
        Self(rows)
    }
    fn row(&self) -> Q8Row<'_> {
        self.0.row(0)
    }
    /// The activations as the kernels see them: each integer times its block's scale.
    fn dequantized(&self) -> Vec<f32> {
        let row = self.row();
        row.qs.iter().enumerate().map(|(k, &q)| q as f32 * row.d[k / 32]).collect()
    }
}

/// The K-quants' activations are ggml's Q8_K (candle's, which rounds halves away from zero where
/// ggml rounds them to even: random values never land on a half).
#[test]
fn k_quant_activation_quantization_matches_candle_q8k() {
    for_random_rows(256, |_, a, _| {
        let ours = Activations::for_format(a, WeightFormat::Q4K);
        let row = ours.row();
        // BlockQ8K's fields are private to candle; its layout is ggml's: d: f32, qs: [i8; 256],
        // bsums: [i16; 16].
        for (g, block) in bytes(&quantize::<kq::BlockQ8K>(a)).chunks_exact(4 + 256 + 32).enumerate() {
            let d = f32::from_le_bytes(block[..4].try_into().unwrap());
            let bsum = |k: usize| i16::from_le_bytes([block[260 + 2 * k], block[261 + 2 * k]]) as i32;
            for (j, &q) in block[4..260].iter().enumerate() {
                assert_eq!(row.q8[g * 256 + j], q as i8, "value {j} of super-block {g}");
                assert_eq!(row.qs[g * 256 + j], q as i8 as i16);
            }
            for b in 0..8 {
                assert_eq!(row.d[g * 8 + b].to_bits(), d.to_bits(), "super-block {g}");
            }
            for k in 0..16 {
                assert_eq!(row.bsums[g * 16 + k] as i32, bsum(k), "sum {k} of super-block {g}");
            }
        }
    });
}

#[test]
fn activation_quantization_matches_candle() {
    for_random_rows(32, |_, a, _| {
        let activations = Activations::new(a);
        let ours = activations.row();
        let q8_1 = quantize::<kq::BlockQ8_1>(a);
        let q8_0 = quantize::<kq::BlockQ8_0>(a);
        for (i, (b1, b0)) in bytes(&q8_1).chunks_exact(36).zip(bytes(&q8_0).chunks_exact(34)).enumerate() {
            let f16 = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            assert_eq!(ours.d[i], f16(&b1[0..2]));
            assert_eq!(ours.s[i], f16(&b1[2..4]));
            for k in [2 * i, 2 * i + 1] {
                let total: i16 = ours.qs[k * 16..(k + 1) * 16].iter().sum();
                assert_eq!(ours.bsums[k], total);
            }
            let qs: Vec<u8> = ours.qs[i * 32..(i + 1) * 32].iter().map(|&q| q as i8 as u8).collect();
            assert_eq!(&b1[4..36], &qs[..]);
            assert!(ours.q8[i * 32..(i + 1) * 32].iter().zip(&qs).all(|(&q8, &q)| q8 as u8 == q), "the byte copy");
            assert_eq!(&b0[..], &b1[..2].iter().chain(&b1[4..]).copied().collect::<Vec<u8>>()[..]);
        }
    });
}

/// Our kernel for `format` against its scalar twin (and the SIMD128 one on wasm32), and the
/// scalar twin against candle: for the 32-value formats, candle's scalar `vec_dot_unopt` on
/// candle's activation blocks (ggml's Q8_0/Q8_1, the same integers and scales as ours); for the
/// K-quants, whose candle kernels take activations quantized per 256 values (Q8_K), candle's
/// dequantized weights (ggml's `dequantize_row_*`) times our dequantized activations, summed in
/// f64 — the sub-block layouts, scales and mins decode as ggml's do, and the integer sums are
/// exact.
fn own_kernel_matches<W: GgmlType>(format: WeightFormat) {
    for_random_rows(W::BLCK_SIZE, |w, a, scale| {
        let wq = quantize::<W>(w);
        let act = Activations::for_format(a, format);
        let scalar = kernels::scalar::dot(format, bytes(&wq), &act.row());
        assert_close(&format!("{format:?} dispatch"), kernels::dot(format, bytes(&wq), &act.row()), scalar, scale);
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        assert_close(
            &format!("{format:?} simd128"),
            kernels::simd128::dot(format, bytes(&wq), &act.row()),
            scalar,
            scale,
        );
        #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
        assert_close(
            &format!("{format:?} relaxed-simd"),
            kernels::relaxed::dot(format, bytes(&wq), &act.row()),
            scalar,
            scale,
        );
        let reference = if W::BLCK_SIZE == kernels::BLOCK {
            W::vec_dot_unopt(w.len(), &wq, &quantize::<W::VecDotType>(a))
        } else {
            let mut weights = vec![0f32; w.len()];
            W::to_float(&wq, &mut weights);
            weights.iter().zip(act.dequantized()).map(|(&w, a)| w as f64 * a as f64).sum::<f64>() as f32
        };
        assert_close(&format!("{format:?} vs candle"), scalar, reference, scale);
    });
}

#[test]
fn q4_0_kernel_matches_scalar_and_candle() {
    own_kernel_matches::<kq::BlockQ4_0>(WeightFormat::Q4_0);
}

#[test]
fn q4_1_kernel_matches_scalar_and_candle() {
    own_kernel_matches::<kq::BlockQ4_1>(WeightFormat::Q4_1);
}

#[test]
fn q5_0_kernel_matches_scalar_and_candle() {
    own_kernel_matches::<kq::BlockQ5_0>(WeightFormat::Q5_0);
}

#[test]
fn q8_0_kernel_matches_scalar_and_candle() {
    own_kernel_matches::<kq::BlockQ8_0>(WeightFormat::Q8_0);
}

#[test]
fn q4_k_kernel_matches_scalar_and_candle() {
    own_kernel_matches::<kq::BlockQ4K>(WeightFormat::Q4K);
}

#[test]
fn q5_k_kernel_matches_scalar_and_candle() {
    own_kernel_matches::<kq::BlockQ5K>(WeightFormat::Q5K);
}

#[test]
fn q6_k_kernel_matches_scalar_and_candle() {
    own_kernel_matches::<kq::BlockQ6K>(WeightFormat::Q6K);
}

/// The four-row kernel equals four one-row calls exactly, for every format (prefill and decode
/// give the same logits).
#[test]
fn four_rows_at_once_equal_one_at_a_time() {
    let mut rng = Rng(11);
    let formats = [
        (WeightFormat::Q4_0, bytes(&quantize::<kq::BlockQ4_0>(&rng.vec(512))).to_vec()),
        (WeightFormat::Q4_1, bytes(&quantize::<kq::BlockQ4_1>(&rng.vec(512))).to_vec()),
        (WeightFormat::Q5_0, bytes(&quantize::<kq::BlockQ5_0>(&rng.vec(512))).to_vec()),
        (WeightFormat::Q8_0, bytes(&quantize::<kq::BlockQ8_0>(&rng.vec(512))).to_vec()),
        (WeightFormat::Q4K, bytes(&quantize::<kq::BlockQ4K>(&rng.vec(512))).to_vec()),
        (WeightFormat::Q5K, bytes(&quantize::<kq::BlockQ5K>(&rng.vec(512))).to_vec()),
        (WeightFormat::Q6K, bytes(&quantize::<kq::BlockQ6K>(&rng.vec(512))).to_vec()),
    ];
    let xs: Vec<Vec<f32>> = (0..4).map(|_| rng.vec(512)).collect();
    for (format, w) in &formats {
        let acts: Vec<Activations> = xs.iter().map(|x| Activations::for_format(x, *format)).collect();
        let rows = [&acts[0].row(), &acts[1].row(), &acts[2].row(), &acts[3].row()];
        let four = kernels::dots(*format, w, rows);
        for (t, a) in acts.iter().enumerate() {
            assert_eq!(four[t].to_bits(), kernels::dot(*format, w, &a.row()).to_bits(), "{format:?} row {t}");
        }
    }
}

/// The KV cache's rows are ggml's Q8_0 blocks, byte for byte (llama.cpp's `q8_0` cache type).
#[test]
fn kv_rows_quantize_as_ggml_q8_0() {
    for_random_rows(32, |x, _, _| {
        let mut ours = vec![0u8; x.len() / 32 * 34];
        kernels::quantize_row_q8_0(x, &mut ours);
        assert_eq!(ours, bytes(&quantize::<kq::BlockQ8_0>(x)));
    });
}

/// Adding up a Q8_0 value row: the SIMD version equals its scalar twin exactly, both equal
/// `w ·` candle's dequantized row within f32 rounding, and a head shorter than its blocks (a
/// padded one) takes only its own values.
#[test]
fn scaled_q8_0_rows_add_up_as_dequantized() {
    for_random_rows(32, |x, start, _| {
        let row = bytes(&quantize::<kq::BlockQ8_0>(x)).to_vec();
        let mut values = vec![0f32; x.len()];
        kq::BlockQ8_0::to_float(&quantize::<kq::BlockQ8_0>(x), &mut values);
        for len in [x.len(), x.len() - 7] {
            let mut scalar = start[..len].to_vec();
            kernels::scalar::add_scaled_q8_0(&row, 0.37, &mut scalar);
            let mut dispatched = start[..len].to_vec();
            kernels::add_scaled_q8_0(&row, 0.37, &mut dispatched);
            assert_eq!(dispatched, scalar, "SIMD and scalar, {len} values");
            for (i, &got) in scalar.iter().enumerate() {
                let want = start[i] + 0.37 * values[i];
                assert!((got - want).abs() <= 1e-6 * (1.0 + want.abs()), "value {i}: {got} vs {want}");
            }
        }
    });
}

#[test]
fn f16_conversion_is_exact() {
    for bits in (0u16..=0xffff).filter(|b| b & 0x7c00 != 0x7c00) {
        assert_eq!(kernels::f16_to_f32(bits).to_bits(), half::f16::from_bits(bits).to_f32().to_bits(), "{bits:#06x}");
    }
}

/// The batched, tiled, threaded matmul gives for every (row, token) the dot product of that
/// pair alone, for token counts below, at and above one tile.
#[test]
fn matmul_equals_one_dot_per_pair() {
    let mut rng = Rng(7);
    let rows = 40;
    let q4_1 = quantize::<kq::BlockQ4_1>(&rng.vec(rows * 96));
    let q4_k = quantize::<kq::BlockQ4K>(&rng.vec(rows * 256));
    let cases = [
        (GgmlDType::Q4_1, WeightFormat::Q4_1, 96, bytes(&q4_1)),
        (GgmlDType::Q4K, WeightFormat::Q4K, 256, bytes(&q4_k)),
    ];
    for (dtype, format, cols, file) in cases {
        matmul_matches_dots(dtype, format, rows, cols, file, &mut rng);
    }
}

fn matmul_matches_dots(dtype: GgmlDType, format: WeightFormat, rows: usize, cols: usize, file: &[u8], rng: &mut Rng) {
    let m = QMatrix::new("w", dtype, rows, cols, 0, file.len()).unwrap();
    for n in [1, 5, 64, 70] {
        let x = rng.vec(n * cols);
        let mut out = vec![0f32; n * rows];
        m.matmul(file, &x, &mut out, &mut Scratch::default());
        for t in 0..n {
            let a = Activations::for_format(&x[t * cols..(t + 1) * cols], format);
            for r in 0..rows {
                let want = kernels::dot(format, m.row(file, r), &a.row());
                assert_eq!(out[t * rows + r], want, "{format:?} row {r} token {t} of {n}");
            }
        }
    }
}
