//! Matrix products against weights that stay quantized, read in place from the model file's
//! bytes — no copy, no expansion to f32.
//!
//! `x · Wᵀ` for `n` activation rows: each row of `x` is quantized once to the 8-bit format the
//! weight type pairs with (ggml's `vec_dot_type`), then every (weight row, activation row) pair
//! is one block dot product. The work is split by weight rows across rayon's pool (a
//! single-threaded build runs the same code on the calling thread), and for prefill the
//! activation rows are taken in tiles so a tile stays in cache while a chunk of weight rows
//! streams past it: the weights are read once per tile instead of once per token.
//!
//! Dot products for Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q5_K and Q6_K — every type a Q4_0, Q4_1,
//! Q4_K_M or Q5_K_M file holds — come from [`crate::kernels`] (ours; SIMD128 in wasm); for the
//! rest (Q2_K, Q3_K, Q5_1, floats) from candle's `GgmlType::vec_dot`.

use candle_core::quantized::k_quants::{self as kq, GgmlType};
use candle_core::quantized::GgmlDType;
use half::{bf16, f16};
use rayon::prelude::*;

use crate::bail;
use crate::error::Result;
use crate::kernels::{self, Q8Rows, WeightFormat};

/// Activation rows per tile during prefill: 64 rows of 1,536 values quantized to 8 bits are
/// ~100 KB, which stays in L2 while the weights stream through.
const TOKEN_TILE: usize = 64;
/// Smallest number of weight rows handed to one task; smaller chunks cost more in scheduling
/// than they gain in balance.
const MIN_ROWS_PER_TASK: usize = 16;

/// A weight matrix `rows × cols` (`cols` contiguous), stored in ggml format at `offset` in
/// the model file.
#[derive(Debug, Clone)]
pub struct QMatrix {
    pub dtype: GgmlDType,
    pub rows: usize,
    pub cols: usize,
    offset: usize,
    row_bytes: usize,
}

/// Quantized activations, kept between calls so decoding allocates nothing.
#[derive(Default)]
pub struct Scratch {
    /// The input of our kernels, in the [`Q8Row`] form they read: per-32 scales for the
    /// 32-value formats, per-256 scales for the K-quants (as llama.cpp quantizes for each).
    rows: Q8Rows,
    rows_k: Q8Rows,
    /// candle's activation blocks; u64 elements are aligned for every block type.
    blocks: Vec<u64>,
}

/// Threads the matmuls are split across: rayon's pool (1 where there are no threads).
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Types this module can multiply with; anything else is refused when the model loads.
pub fn supported(dtype: GgmlDType) -> bool {
    use GgmlDType::*;
    matches!(dtype, F32 | F16 | BF16 | Q4_0 | Q4_1 | Q5_0 | Q5_1 | Q8_0 | Q2K | Q3K | Q4K | Q5K | Q6K)
}

/// Calls `$f::<BlockType>($args)` for the block type of `$dtype`.
macro_rules! with_block_type {
    ($dtype:expr, $f:ident($($arg:expr),*)) => {
        match $dtype {
            GgmlDType::F32 => $f::<f32>($($arg),*),
            GgmlDType::F16 => $f::<f16>($($arg),*),
            GgmlDType::BF16 => $f::<bf16>($($arg),*),
            GgmlDType::Q4_0 => $f::<kq::BlockQ4_0>($($arg),*),
            GgmlDType::Q4_1 => $f::<kq::BlockQ4_1>($($arg),*),
            GgmlDType::Q5_0 => $f::<kq::BlockQ5_0>($($arg),*),
            GgmlDType::Q5_1 => $f::<kq::BlockQ5_1>($($arg),*),
            GgmlDType::Q8_0 => $f::<kq::BlockQ8_0>($($arg),*),
            GgmlDType::Q2K => $f::<kq::BlockQ2K>($($arg),*),
            GgmlDType::Q3K => $f::<kq::BlockQ3K>($($arg),*),
            GgmlDType::Q4K => $f::<kq::BlockQ4K>($($arg),*),
            GgmlDType::Q5K => $f::<kq::BlockQ5K>($($arg),*),
            GgmlDType::Q6K => $f::<kq::BlockQ6K>($($arg),*),
            other => unreachable!("{other:?} is refused at load"),
        }
    };
}

impl QMatrix {
    /// A view of `rows × cols` values of `dtype` at `offset..` in a file of `file_len` bytes.
    /// Checked here so that every later access is in bounds and aligned for its block type.
    pub fn new(name: &str, dtype: GgmlDType, rows: usize, cols: usize, offset: usize, file_len: usize) -> Result<Self> {
        if !supported(dtype) {
            bail!(UnsupportedTensorType, "tensor '{name}' has type {dtype:?}, which edgellm cannot multiply");
        }
        if cols == 0 || cols % dtype.block_size() != 0 {
            bail!(InvalidGguf, "tensor '{name}': rows of {cols} values do not divide into {dtype:?} blocks");
        }
        let row_bytes = cols / dtype.block_size() * dtype.type_size();
        let end = rows.checked_mul(row_bytes).and_then(|len| len.checked_add(offset));
        if end.is_none_or(|end| end > file_len) {
            bail!(InvalidGguf, "tensor '{name}' ({rows}×{cols} {dtype:?}) runs past the end of the file");
        }
        if offset % block_align(dtype) != 0 {
            bail!(InvalidGguf, "tensor '{name}' is not aligned in the file (offset {offset})");
        }
        Ok(Self { dtype, rows, cols, offset, row_bytes })
    }

    pub fn row<'a>(&self, file: &'a [u8], r: usize) -> &'a [u8] {
        &file[self.offset + r * self.row_bytes..][..self.row_bytes]
    }

    /// Row `r` expanded to f32 (embedding lookup).
    pub fn dequantize_row(&self, file: &[u8], r: usize, out: &mut [f32]) {
        fn run<W: GgmlType>(row: &[u8], out: &mut [f32]) {
            W::to_float(blocks::<W>(row), out)
        }
        with_block_type!(self.dtype, run(self.row(file, r), &mut out[..self.cols]))
    }

    /// `out[t·rows + r] = Σ_c W[r, c] · x[t·cols + c]` for the `x.len() / cols` rows of `x`.
    pub fn matmul(&self, file: &[u8], x: &[f32], out: &mut [f32], scratch: &mut Scratch) {
        matmul_each(file, x, &mut [(self, out)], scratch)
    }
}

/// `x · Wᵀ` into each `out` for several matrices that take the same input (attention's q, k
/// and v; the MLP's gate and up): the input is quantized once for all of them, and the
/// matrices our kernels multiply run in one parallel pass. One pass, not one each, because
/// each pass costs every thread a wake-up and a barrier — in wasm a futex round trip through
/// the browser — per layer, per token in decode and per chunk in prefill.
pub fn matmul_each(file: &[u8], x: &[f32], products: &mut [(&QMatrix, &mut [f32])], scratch: &mut Scratch) {
    let (mut quantized, mut quantized_k) = (false, false);
    for (m, _) in products.iter() {
        assert_eq!(x.len() % m.cols, 0, "matmul input of {} for {} columns", x.len(), m.cols);
        match own_kernel(m.dtype) {
            Some(format) if format.is_k_quant() && !quantized_k => {
                scratch.rows_k.quantize_k(x, m.cols);
                quantized_k = true;
            }
            Some(format) if !format.is_k_quant() && !quantized => {
                scratch.rows.quantize(x, m.cols);
                quantized = true;
            }
            _ => {}
        }
    }
    let mut own: [Option<OwnProduct>; MAX_PRODUCTS] = Default::default();
    assert!(products.len() <= MAX_PRODUCTS, "{} products of one input", products.len());
    for (slot, (m, out)) in own.iter_mut().zip(products.iter_mut()) {
        let n = x.len() / m.cols;
        match own_kernel(m.dtype) {
            Some(format) => {
                let rows = if format.is_k_quant() { &scratch.rows_k } else { &scratch.rows };
                assert_eq!(rows.cols(), m.cols);
                assert!(out.len() >= n * m.rows, "matmul output of {} for {n}×{}", out.len(), m.rows);
                *slot = Some(OwnProduct { m, format, rows, out: DisjointOut(out.as_mut_ptr()) });
            }
            None => with_block_type!(m.dtype, matmul_candle(m, file, x, out, &mut scratch.blocks)),
        }
    }
    matmul_own(file, x.len() / products.first().map_or(1, |(m, _)| m.cols), &own);
}

/// Matrices one call of [`matmul_each`] takes at most (q, k and v).
const MAX_PRODUCTS: usize = 3;

/// One product for our kernels: `m` times the activation rows `rows`, into `out`.
struct OwnProduct<'a> {
    m: &'a QMatrix,
    format: WeightFormat,
    rows: &'a Q8Rows,
    out: DisjointOut,
}

fn block_align(dtype: GgmlDType) -> usize {
    fn align<W: GgmlType>() -> usize {
        std::mem::align_of::<W>()
    }
    with_block_type!(dtype, align())
}

/// Weight or activation bytes as ggml blocks (all `#[repr(C)]` in candle, ggml's layout).
fn blocks<W: GgmlType>(bytes: &[u8]) -> &[W] {
    assert_eq!(bytes.len() % std::mem::size_of::<W>(), 0);
    assert_eq!(bytes.as_ptr() as usize % std::mem::align_of::<W>(), 0, "misaligned {:?} blocks", W::DTYPE);
    // SAFETY: size and alignment checked above; the block types are plain old data.
    unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const W, bytes.len() / std::mem::size_of::<W>()) }
}

/// The weight types with a kernel in [`crate::kernels`].
fn own_kernel(dtype: GgmlDType) -> Option<WeightFormat> {
    Some(match dtype {
        GgmlDType::Q4_0 => WeightFormat::Q4_0,
        GgmlDType::Q4_1 => WeightFormat::Q4_1,
        GgmlDType::Q5_0 => WeightFormat::Q5_0,
        GgmlDType::Q8_0 => WeightFormat::Q8_0,
        GgmlDType::Q4K => WeightFormat::Q4K,
        GgmlDType::Q5K => WeightFormat::Q5K,
        GgmlDType::Q6K => WeightFormat::Q6K,
        _ => return None,
    })
}

/// An output pointer that rayon tasks may share because each writes disjoint elements.
#[derive(Clone, Copy)]
pub(crate) struct DisjointOut(pub(crate) *mut f32);
// SAFETY: users write only elements no other task touches (see their SAFETY comments).
unsafe impl Send for DisjointOut {}
unsafe impl Sync for DisjointOut {}

/// `out[t·rows + r] = (weight row r) · (activation row t)` for every row of each product and
/// each of `n` activation rows, all in one parallel pass: each product's weight rows split
/// into tasks as [`for_each_pair`] splits one matrix's.
fn matmul_own(file: &[u8], n: usize, products: &[Option<OwnProduct>]) {
    let split: [(usize, usize); MAX_PRODUCTS] =
        std::array::from_fn(|i| products[i].as_ref().map_or((1, 0), |p| task_rows(p.m)));
    let total: usize = split.iter().map(|&(_, count)| count).sum();
    (0..total).into_par_iter().for_each(|task| {
        let (mut product, mut task) = (0, task);
        while task >= split[product].1 {
            task -= split[product].1;
            product += 1;
        }
        let Some(p) = &products[product] else { return };
        let first = task * split[product].0;
        let rows = first..(first + split[product].0).min(p.m.rows);
        let (m, a) = (p.m, p.rows);
        // `format` is a constant in each arm, so the kernel's match folds away.
        match p.format {
            WeightFormat::Q4_0 => {
                rows_times(m, file, n, rows, p.out, |w, t, r| own_dots(WeightFormat::Q4_0, a, w, t, r))
            }
            WeightFormat::Q4_1 => {
                rows_times(m, file, n, rows, p.out, |w, t, r| own_dots(WeightFormat::Q4_1, a, w, t, r))
            }
            WeightFormat::Q5_0 => {
                rows_times(m, file, n, rows, p.out, |w, t, r| own_dots(WeightFormat::Q5_0, a, w, t, r))
            }
            WeightFormat::Q8_0 => {
                rows_times(m, file, n, rows, p.out, |w, t, r| own_dots(WeightFormat::Q8_0, a, w, t, r))
            }
            WeightFormat::Q4K => rows_times(m, file, n, rows, p.out, |w, t, r| own_dots(WeightFormat::Q4K, a, w, t, r)),
            WeightFormat::Q5K => rows_times(m, file, n, rows, p.out, |w, t, r| own_dots(WeightFormat::Q5K, a, w, t, r)),
            WeightFormat::Q6K => rows_times(m, file, n, rows, p.out, |w, t, r| own_dots(WeightFormat::Q6K, a, w, t, r)),
        }
    });
}

/// `results[i]` = the weight row `w` against activation row `tokens.start + i` of `rows`: four
/// activation rows per kernel call (each weight block unpacked once for four tokens), then one
/// at a time.
#[inline(always)]
fn own_dots(format: WeightFormat, rows: &Q8Rows, w: &[u8], tokens: std::ops::Range<usize>, results: &mut [f32]) {
    let row = |t: usize| rows.row(t);
    let mut t = tokens.start;
    for four in results.chunks_exact_mut(4) {
        four.copy_from_slice(&kernels::dots(format, w, [&row(t), &row(t + 1), &row(t + 2), &row(t + 3)]));
        t += 4;
    }
    for result in results.chunks_exact_mut(4).into_remainder() {
        *result = kernels::dot(format, w, &row(t));
        t += 1;
    }
}

/// Weight rows per task for `m`, and the number of tasks: four per thread, so that a slow
/// thread is balanced out, but never fewer rows than [`MIN_ROWS_PER_TASK`].
fn task_rows(m: &QMatrix) -> (usize, usize) {
    let per = m.rows.div_ceil(rayon::current_num_threads() * 4).max(MIN_ROWS_PER_TASK);
    (per, m.rows.div_ceil(per))
}

/// `out[t·rows + r] = (weight row r) · (activation row t)` for every row of `m` and each of `n`
/// activation rows, in a parallel pass of its own (candle's kernels).
/// `dots(w, tokens, results)` fills `results[i]` for activation row `tokens.start + i`.
fn for_each_pair(
    m: &QMatrix,
    file: &[u8],
    n: usize,
    out: &mut [f32],
    dots: impl Fn(&[u8], std::ops::Range<usize>, &mut [f32]) + Sync,
) {
    assert!(out.len() >= n * m.rows, "matmul output of {} for {n}×{}", out.len(), m.rows);
    let out = DisjointOut(out.as_mut_ptr());
    let (per, count) = task_rows(m);
    (0..count)
        .into_par_iter()
        .for_each(|task| rows_times(m, file, n, task * per..((task + 1) * per).min(m.rows), out, &dots));
}

/// The weight rows `rows` of `m` against the `n` activation rows, a tile of them at a time so
/// that the tile stays in cache while the rows stream past: `out[t·m.rows + r]`. A function of
/// its own for each `dots` (and so each weight format, folded in), not inlined into the pass:
/// seven copies of it in one function made the 1-thread wasm prefill ~7% slower.
#[inline(never)]
fn rows_times(
    m: &QMatrix,
    file: &[u8],
    n: usize,
    rows: std::ops::Range<usize>,
    out: DisjointOut,
    dots: impl Fn(&[u8], std::ops::Range<usize>, &mut [f32]),
) {
    let mut results = [0f32; TOKEN_TILE];
    for t0 in (0..n).step_by(TOKEN_TILE) {
        let tile = t0..(t0 + TOKEN_TILE).min(n);
        for r in rows.clone() {
            dots(m.row(file, r), tile.clone(), &mut results[..tile.len()]);
            for (t, &v) in tile.clone().zip(&results) {
                // SAFETY: r < m.rows and t < n, and out holds n·m.rows (asserted by the
                // callers); row r belongs to this task alone.
                unsafe { *out.0.add(t * m.rows + r) = v };
            }
        }
    }
}

/// `buf[..len]`, growing the vector if needed (never shrinking: no reallocation per token).
pub(crate) fn grown<T: Default + Clone>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    if buf.len() < len {
        buf.resize(len, T::default());
    }
    &mut buf[..len]
}

/// Other types (K-quants, Q5_1, floats): candle's `vec_dot`, with activations in candle's
/// block type for them.
fn matmul_candle<W: GgmlType>(m: &QMatrix, file: &[u8], x: &[f32], out: &mut [f32], storage: &mut Vec<u64>) {
    let cols = m.cols;
    let n = x.len() / cols;
    assert_eq!(x.len(), n * cols, "matmul input of {} for {cols} columns", x.len());
    let act_blocks = cols / W::VecDotType::BLCK_SIZE;
    let words = (n * act_blocks * std::mem::size_of::<W::VecDotType>()).div_ceil(8);
    let storage = grown(storage, words);
    // SAFETY: u64 storage is aligned for every block type and `words` covers n rows of blocks.
    let acts: &mut [W::VecDotType] =
        unsafe { std::slice::from_raw_parts_mut(storage.as_mut_ptr() as *mut W::VecDotType, n * act_blocks) };
    for (xr, ar) in x.chunks_exact(cols).zip(acts.chunks_exact_mut(act_blocks)) {
        if W::DIRECT_COPY {
            W::VecDotType::direct_copy(xr, ar)
        } else {
            W::VecDotType::from_float(xr, ar)
        }
    }
    let acts: &[W::VecDotType] = acts;
    for_each_pair(m, file, n, out, |w, tokens, results| {
        for (t, result) in tokens.zip(results) {
            *result = W::vec_dot(cols, blocks::<W>(w), &acts[t * act_blocks..(t + 1) * act_blocks]);
        }
    });
}
