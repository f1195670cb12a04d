//! Every SIMD dot-product kernel against its scalar reference, on random blocks — natively
//! (where the "SIMD" of candle's types is AVX and ours is the scalar code itself) and on
//! wasm32 with simd128 (`./test.sh` runs this file in Node through wasm-bindgen-test-runner).
//!
//! Integer block sums are exact in both; only the order in which per-block floats are added
//! differs, so results must agree to within a few float roundings of Σ|wᵢ·aᵢ|.

use candle_core::quantized::k_quants::{self as kq, GgmlType};
use edgellm::kernels::{self, Q8Row, WeightFormat};
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
struct Activations {
    qs: Vec<i16>,
    d: Vec<f32>,
    s: Vec<f32>,
}

impl Activations {
    fn new(a: &[f32]) -> Self {
        let blocks = a.len() / 32;
        let mut act = Self { qs: vec![0; a.len()], d: vec![0.0; blocks], s: vec![0.0; blocks] };
        kernels::quantize_q8(a, &mut act.qs, &mut act.d, &mut act.s);
        act
    }
    fn row(&self) -> Q8Row<'_> {
        Q8Row { qs: &self.qs, d: &self.d, s: &self.s }
    }
}

#[test]
fn activation_quantization_matches_candle() {
    for_random_rows(32, |_, a, _| {
        let ours = Activations::new(a);
        let q8_1 = quantize::<kq::BlockQ8_1>(a);
        let q8_0 = quantize::<kq::BlockQ8_0>(a);
        for (i, (b1, b0)) in bytes(&q8_1).chunks_exact(36).zip(bytes(&q8_0).chunks_exact(34)).enumerate() {
            let f16 = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            assert_eq!(ours.d[i], f16(&b1[0..2]));
            assert_eq!(ours.s[i], f16(&b1[2..4]));
            let qs: Vec<u8> = ours.qs[i * 32..(i + 1) * 32].iter().map(|&q| q as i8 as u8).collect();
            assert_eq!(&b1[4..36], &qs[..]);
            assert_eq!(&b0[..], &b1[..2].iter().chain(&b1[4..]).copied().collect::<Vec<u8>>()[..]);
        }
    });
}

/// Our kernel for `format` against its scalar twin (and the SIMD128 one on wasm32), and the
/// scalar twin against candle's scalar `vec_dot_unopt` on candle's activation blocks.
fn own_kernel_matches<W: GgmlType>(format: WeightFormat) {
    for_random_rows(32, |w, a, scale| {
        let wq = quantize::<W>(w);
        let act = Activations::new(a);
        let scalar = kernels::scalar::dot(format, bytes(&wq), &act.row());
        assert_close(&format!("{format:?} dispatch"), kernels::dot(format, bytes(&wq), &act.row()), scalar, scale);
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        assert_close(
            &format!("{format:?} simd128"),
            kernels::simd128::dot(format, bytes(&wq), &act.row()),
            scalar,
            scale,
        );
        let candle = W::vec_dot_unopt(w.len(), &wq, &quantize::<W::VecDotType>(a));
        assert_close(&format!("{format:?} vs candle"), scalar, candle, scale);
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

/// candle's SIMD kernels (simd128 in wasm, AVX natively), which the matmul uses for the
/// K-quants, against candle's scalar loops.
fn candle_simd_matches_scalar<T: GgmlType>(block: usize) {
    for_random_rows(block, |w, a, scale| {
        let (wq, aq) = (quantize::<T>(w), quantize::<T::VecDotType>(a));
        let simd = T::vec_dot(w.len(), &wq, &aq);
        assert_close(&format!("{:?}", T::DTYPE), simd, T::vec_dot_unopt(w.len(), &wq, &aq), scale);
    });
}

#[test]
fn q4_k_kernel_matches_scalar() {
    candle_simd_matches_scalar::<kq::BlockQ4K>(256);
}

#[test]
fn q6_k_kernel_matches_scalar() {
    candle_simd_matches_scalar::<kq::BlockQ6K>(256);
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
    let (rows, cols) = (40, 96);
    let mut rng = Rng(7);
    let weights = quantize::<kq::BlockQ4_1>(&rng.vec(rows * cols));
    let file = bytes(&weights);
    let m = QMatrix::new("w", candle_core::quantized::GgmlDType::Q4_1, rows, cols, 0, file.len()).unwrap();
    for n in [1, 5, 64, 70] {
        let x = rng.vec(n * cols);
        let mut out = vec![0f32; n * rows];
        m.matmul(file, &x, &mut out, &mut Scratch::default());
        for t in 0..n {
            let a = Activations::new(&x[t * cols..(t + 1) * cols]);
            for r in 0..rows {
                let want = kernels::dot(WeightFormat::Q4_1, m.row(file, r), &a.row());
                assert_eq!(out[t * rows + r], want, "row {r} token {t} of {n}");
            }
        }
    }
}
