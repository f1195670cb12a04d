//! Shared by the native test files: where the real models are, and a GGUF writer for crafted files.
#![allow(dead_code)]

use std::path::PathBuf;

use edgellm::timing::native_clock;
use edgellm::{LoadOptions, Model};

pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
pub const GEMMA3: &str = "gemma-3-270m-q4_k_m.gguf";

/// The fetched models (`python3 models/fetch.py …`, done by test.sh), or `$EDGELLM_MODELS`.
pub fn model_path(file: &str) -> PathBuf {
    let dir = std::env::var_os("EDGELLM_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/edgellm/models"));
    let path = dir.join(file);
    assert!(
        path.exists(),
        "{} is missing: run ./test.sh, or python3 models/fetch.py smollm2-135m gemma3-270m",
        path.display()
    );
    path
}

pub fn model_bytes(file: &str) -> Vec<u8> {
    std::fs::read(model_path(file)).unwrap()
}

pub fn load(file: &str) -> Model {
    Model::load(model_bytes(file), &LoadOptions::default(), native_clock).unwrap()
}

/// Writes GGUF v3 bytes field by field, so tests can produce both valid files and every kind
/// of broken one.
#[derive(Default)]
pub struct GgufWriter {
    pub buf: Vec<u8>,
}

#[derive(Clone)]
pub enum V<'a> {
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(&'a str),
    Strs(&'a [&'a str]),
    F32s(&'a [f32]),
    I32s(&'a [i32]),
}

impl GgufWriter {
    pub fn header(version: u32, tensors: u64, kvs: u64) -> Self {
        let mut w = Self::default();
        w.buf.extend_from_slice(b"GGUF");
        w.u32(version).u64(tensors).u64(kvs);
        w
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
        self
    }
    pub fn kv(&mut self, key: &str, v: V) -> &mut Self {
        self.str(key);
        match v {
            V::U32(x) => self.u32(4).u32(x),
            V::I32(x) => self.u32(5).u32(x as u32),
            V::F32(x) => self.u32(6).u32(x.to_bits()),
            V::Bool(b) => {
                self.u32(7);
                self.buf.push(b as u8);
                self
            }
            V::Str(s) => self.u32(8).str(s),
            V::Strs(items) => {
                self.u32(9).u32(8).u64(items.len() as u64);
                for s in items {
                    self.str(s);
                }
                self
            }
            V::F32s(items) => {
                self.u32(9).u32(6).u64(items.len() as u64);
                for x in items {
                    self.u32(x.to_bits());
                }
                self
            }
            V::I32s(items) => {
                self.u32(9).u32(5).u64(items.len() as u64);
                for x in items {
                    self.u32(*x as u32);
                }
                self
            }
        }
    }
    /// A tensor directory entry; dims innermost first, as GGUF stores them.
    pub fn tensor(&mut self, name: &str, dims: &[u64], ty: u32, offset: u64) -> &mut Self {
        self.str(name).u32(dims.len() as u32);
        for &d in dims {
            self.u64(d);
        }
        self.u32(ty).u64(offset)
    }
    /// Pad to the 32-byte alignment and append the tensor data.
    pub fn data(&mut self, bytes: &[u8]) -> &mut Self {
        while !self.buf.len().is_multiple_of(32) {
            self.buf.push(0);
        }
        self.buf.extend_from_slice(bytes);
        self
    }
    pub fn bytes(&self) -> Vec<u8> {
        self.buf.clone()
    }
}
