//! One layer's KV cache: the rotated keys and the values of every position a sequence has seen,
//! stored as llama.cpp's `q8_0` cache type stores them — each head of each position as Q8_0
//! blocks (32 values, one f16 scale: 34 bytes where f32 takes 128).
//!
//! Why 8 bits: at 2,048 positions an f32 cache is as large as a small model's file (SmolLM2-135M:
//! 90 MiB beside a 94 MiB file), and f16 would still be half of it; Q8_0 halves f16 again (24
//! MiB), for a rounding llama.cpp offers as a cache type of its own (tests/js/families.test.mjs
//! compares against llama.cpp with that cache). Reading it is cheaper too: a score is a Q8_0 dot
//! product against the query quantized per 32 values (the kernels' Q8_0 path, as ggml's
//! `vec_dot_q8_0_q8_0`), and values are dequantized as they are added up, as ggml's flash
//! attention does for a quantized V.
//!
//! A head whose size is not a multiple of 32 is padded with zeros to one: zeros add nothing to
//! a score, and the values' padding is never read back.

use crate::kernels::{self, BLOCK, Q8_0_BLOCK_BYTES};

/// The cache grows in steps of this many positions (it is sized by what a generation uses, not by
/// the whole context window).
const GROWTH: usize = 64;

pub struct KvCache {
    heads: usize,
    head_dim: usize,
    /// Bytes of one head of one position.
    head_bytes: usize,
    /// Position-major, then head.
    keys: Vec<u8>,
    values: Vec<u8>,
}

impl KvCache {
    pub fn new(heads: usize, head_dim: usize) -> Self {
        let head_bytes = padded_head_dim(head_dim) / BLOCK * Q8_0_BLOCK_BYTES;
        Self { heads, head_dim, head_bytes, keys: Vec::new(), values: Vec::new() }
    }

    /// Bytes of one position's keys and values, for `heads` heads of `head_dim`.
    pub fn bytes_per_position(heads: usize, head_dim: usize) -> usize {
        2 * heads * padded_head_dim(head_dim) / BLOCK * Q8_0_BLOCK_BYTES
    }

    /// Positions there is room for.
    pub fn capacity(&self) -> usize {
        self.keys.len() / (self.heads * self.head_bytes)
    }

    /// Room for at least `positions`, growing in steps (a reallocation copies the cache, so it
    /// should be rare) and by no more than `limit` allows.
    pub fn grow_to(&mut self, positions: usize, limit: usize) {
        if self.capacity() >= positions {
            return;
        }
        let len = positions.next_multiple_of(GROWTH).min(limit).max(positions) * self.heads * self.head_bytes;
        for cache in [&mut self.keys, &mut self.values] {
            // Exactly this much: `resize` alone may double the capacity.
            cache.reserve_exact(len - cache.len());
            cache.resize(len, 0);
        }
    }

    /// Store the keys and values of the positions `pos..`, one row of `heads · head_dim` each in
    /// `k` and `v`.
    pub fn write(&mut self, pos: usize, k: &[f32], v: &[f32]) {
        let at = pos * self.heads * self.head_bytes;
        for (rows, cache) in [(k, &mut self.keys), (v, &mut self.values)] {
            let heads = cache[at..].chunks_exact_mut(self.head_bytes);
            for (x, out) in rows.chunks_exact(self.head_dim).zip(heads) {
                quantize_head(x, out);
            }
        }
    }

    /// The key of head `h` at position `p`, as a row of Q8_0 blocks.
    #[inline]
    pub fn key(&self, p: usize, h: usize) -> &[u8] {
        &self.keys[(p * self.heads + h) * self.head_bytes..][..self.head_bytes]
    }

    /// `out += w · value` of head `h` at position `p`.
    #[inline]
    pub fn add_value(&self, p: usize, h: usize, w: f32, out: &mut [f32]) {
        let row = &self.values[(p * self.heads + h) * self.head_bytes..][..self.head_bytes];
        kernels::add_scaled_q8_0(row, w, &mut out[..self.head_dim]);
    }
}

/// One head's values as Q8_0 blocks, the last one padded with zeros.
fn quantize_head(x: &[f32], out: &mut [u8]) {
    for (x, out) in x.chunks(BLOCK).zip(out.chunks_exact_mut(Q8_0_BLOCK_BYTES)) {
        let mut block = [0f32; BLOCK];
        block[..x.len()].copy_from_slice(x);
        kernels::quantize_row_q8_0(&block, out);
    }
}

/// A head's size rounded up to whole Q8_0 blocks (what a query is quantized to as well).
pub fn padded_head_dim(head_dim: usize) -> usize {
    head_dim.next_multiple_of(BLOCK)
}
