//! A GGUF file's bytes as a loaded model keeps them, and the writer that receives them a piece
//! at a time.
//!
//! Why the header apart: the metadata and tensor table (the header) are read once, at load —
//! the tokenizer, the template and the hyperparameters copy what they need out of them — while
//! the tensor data is read in place for as long as the model lives. Kept in one buffer, the
//! header stays beside the weights for good: 1.7 MiB of SmolLM2's 94 MiB file (its vocabulary
//! and merges), 6.2 MiB of Gemma 3's. Received into a buffer of its own, it is freed once the
//! model is built, and the KV cache grows into the room it leaves (wasm memory never shrinks,
//! so what counts is what is live at the peak).

use std::mem::MaybeUninit;

use crate::bail;
use crate::error::{Error, ErrorCode, Result};
use crate::gguf;

/// A GGUF file, whole or split where its tensor data begins.
pub enum ModelFile {
    /// The whole file in one buffer (the header stays with the weights).
    Whole(Vec<u8>),
    /// `head` is the file up to where its tensor data begins (read at load, then dropped);
    /// `tensors` is the rest.
    Split { head: Vec<u8>, tensors: Vec<u8> },
}

impl ModelFile {
    /// The file's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Self::Whole(bytes) => bytes.len(),
            Self::Split { head, tensors } => head.len() + tensors.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Vec<u8>> for ModelFile {
    fn from(bytes: Vec<u8>) -> Self {
        Self::Whole(bytes)
    }
}

/// The bytes a model keeps (the whole file, or its tensor data), where the weights are used
/// as they lie. Block types need at
/// most 8-byte alignment; a buffer that does not start aligned (no allocator we know of
/// returns one) is copied once into storage that does.
pub enum FileBytes {
    Bytes(Vec<u8>),
    Aligned { words: Vec<u64>, len: usize },
}

impl FileBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        if bytes.as_ptr() as usize % 8 == 0 {
            return Self::Bytes(bytes);
        }
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        Self::Aligned { words, len: bytes.len() }
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            Self::Bytes(b) => b,
            // SAFETY: `words` holds `len` initialised bytes (little-endian, as copied in).
            Self::Aligned { words, len } => unsafe { std::slice::from_raw_parts(words.as_ptr() as *const u8, *len) },
        }
    }
}

/// Header bytes received before the first try to find where the tensor data begins; each try
/// that finds the tables run past what was received doubles it, so a header is parsed about
/// twice in all, however it arrives.
const FIRST_HEADER_TRY: usize = 64 << 10;

/// Receives a file of a known length a piece at a time (a `File` or a download read as a
/// stream) into a [`ModelFile::Split`]: the header into a buffer of its own until the tensor
/// data's start is known, then the tensor data into one buffer of exactly its size.
pub struct ModelFileWriter {
    len: usize,
    head: Vec<u8>,
    /// Allocated once the header is complete.
    tensors: Option<Vec<u8>>,
    /// `head`'s length at the next try to find the tensor data's start.
    next_try: usize,
}

impl ModelFileWriter {
    /// A writer for a file of `len` bytes (the error `too_large` comes when the tensor data's
    /// buffer cannot be had, as soon as its size is known).
    pub fn new(len: usize) -> Self {
        Self { len, head: Vec::new(), tensors: None, next_try: FIRST_HEADER_TRY.min(len) }
    }

    /// Bytes received so far.
    pub fn written(&self) -> usize {
        self.head.len() + self.tensors.as_ref().map_or(0, Vec::len)
    }

    /// Receive the next `n` bytes of the file: `fill(from, room)` copies the chunk's bytes
    /// `from..from + room.len()` into `room`, once or more. A file whose header is not one
    /// edgellm reads is refused here, at its first bytes, with the error loading would give.
    pub fn write(&mut self, n: usize, mut fill: impl FnMut(usize, &mut [MaybeUninit<u8>])) -> Result<()> {
        let at = self.written();
        if n > self.len - at {
            bail!(InvalidRequest, "{n} more bytes after {at} of a file said to have {}", self.len);
        }
        let mut from = 0;
        while from < n {
            let (buffer, room) = match &mut self.tensors {
                Some(tensors) => {
                    let room = n - from;
                    (tensors, room)
                }
                None => {
                    let room = (self.next_try - self.head.len()).min(n - from);
                    self.head.try_reserve(room).map_err(|_| too_large(self.len))?;
                    (&mut self.head, room)
                }
            };
            let start = buffer.len();
            fill(from, &mut buffer.spare_capacity_mut()[..room]);
            // SAFETY: `fill` initialised the `room` bytes after `start`, within capacity
            // (reserved above, or the tensor buffer's exact size, which `n` was checked against).
            unsafe { buffer.set_len(start + room) };
            from += room;
            if self.tensors.is_none() && self.head.len() == self.next_try {
                self.find_tensor_data()?;
            }
        }
        Ok(())
    }

    /// The file received, split where its tensor data begins; refused if it came short.
    pub fn finish(self) -> Result<ModelFile> {
        let written = self.written();
        if written != self.len {
            bail!(InvalidRequest, "the file gave {written} of its {} bytes", self.len);
        }
        Ok(match self.tensors {
            Some(tensors) => ModelFile::Split { head: self.head, tensors },
            // The tables never ended: loading says what is wrong with the file.
            None => ModelFile::Whole(self.head),
        })
    }

    /// With `head` at `next_try` bytes: where the tensor data begins, if the header is
    /// complete; then the tensor buffer is allocated and what `head` holds past the header
    /// moves into it.
    fn find_tensor_data(&mut self) -> Result<()> {
        let Some(start) = gguf::data_start(&self.head, self.len as u64)? else {
            if self.head.len() == self.len {
                bail!(InvalidGguf, "the file ends inside its header");
            }
            self.next_try = (self.next_try * 2).min(self.len);
            return Ok(());
        };
        // A header padded past the file's end (a file without tensor data) keeps it all.
        let start = start.min(self.len);
        if start > self.head.len() {
            // The tables end in the last bytes received; their padding is still to come.
            self.next_try = start;
            return Ok(());
        }
        let mut tensors = Vec::new();
        tensors.try_reserve_exact(self.len - start).map_err(|_| too_large(self.len))?;
        tensors.extend_from_slice(&self.head[start..]);
        self.head.truncate(start);
        self.head.shrink_to_fit();
        self.tensors = Some(tensors);
        Ok(())
    }
}

fn too_large(len: usize) -> Error {
    Error::new(ErrorCode::TooLarge, format!("memory cannot hold a file of {len} bytes"))
}
