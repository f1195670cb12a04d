//! Compact weight storage for exported shards: 8-bit integers with one f32 scale per block of
//! 32 values along a weight's first axis (its input dimension), about 1.1 bytes per weight
//! instead of 4. wonnx computes only in f32 and has no DequantizeLinear, so the host expands
//! these back to f32 ([`expand_int8`]) just before a shard is compiled for the GPU.
//!
//! In a shard, an INT8 initializer `W` comes with a FLOAT initializer `W.int8_scale` of shape
//! `[ceil(rows / 32), cols]`: `W_f32[r, c] = W[r, c] · scale[r / 32, c]`.

use edgellm::bail;
use edgellm::Result;
use protobuf::ProtobufEnum;
use wonnx::onnx::{ModelProto, TensorProto, TensorProto_DataType};

use crate::graph::float_tensor;

pub const BLOCK: usize = 32;
pub const SCALE_SUFFIX: &str = ".int8_scale";

/// `data` (`dims = [rows, cols]`, row-major) as an INT8 tensor and its scales.
pub fn int8_tensors(name: &str, data: &[f32], dims: &[i64]) -> [TensorProto; 2] {
    let (rows, cols) = (dims[0] as usize, dims[1] as usize);
    let blocks = rows.div_ceil(BLOCK);
    let mut scales = vec![0f32; blocks * cols];
    for (r, row) in data.chunks_exact(cols).enumerate() {
        let s = &mut scales[(r / BLOCK) * cols..][..cols];
        for (s, &x) in s.iter_mut().zip(row) {
            *s = s.max(x.abs());
        }
    }
    for s in &mut scales {
        *s /= 127.0;
    }
    let mut q = Vec::with_capacity(data.len());
    for (r, row) in data.chunks_exact(cols).enumerate() {
        let s = &scales[(r / BLOCK) * cols..][..cols];
        q.extend(row.iter().zip(s).map(|(&x, &s)| if s == 0.0 { 0u8 } else { (x / s).round() as i8 as u8 }));
    }
    let mut t = TensorProto::new();
    t.set_name(name.to_string());
    t.set_dims(dims.to_vec());
    t.set_data_type(TensorProto_DataType::INT8.value());
    t.set_raw_data(q);
    [t, float_tensor(&format!("{name}{SCALE_SUFFIX}"), &scales, &[blocks as i64, cols as i64])]
}

/// Replace every INT8 weight of `model` and its scales by the f32 weight.
pub fn expand_int8(model: &mut ModelProto) -> Result<()> {
    let graph = model.mut_graph();
    let initializers = graph.take_initializer().into_vec();
    let (scales, mut rest): (Vec<_>, Vec<_>) =
        initializers.into_iter().partition(|t| t.get_name().ends_with(SCALE_SUFFIX));
    let mut used = 0;
    for t in &mut rest {
        if t.get_data_type() != TensorProto_DataType::INT8.value() {
            continue;
        }
        let name = t.get_name().to_string();
        let Some(scale) = scales.iter().find(|s| s.get_name() == format!("{name}{SCALE_SUFFIX}")) else {
            bail!(InvalidOnnx, "INT8 weight '{name}' has no '{name}{SCALE_SUFFIX}' scales");
        };
        let dims = t.get_dims();
        let (rows, cols) = match dims {
            [r, c] if *r > 0 && *c > 0 => (*r as usize, *c as usize),
            _ => bail!(InvalidOnnx, "INT8 weight '{name}' has shape {dims:?}; two dimensions were expected"),
        };
        let q = t.get_raw_data();
        let s: Vec<f32> =
            le_f32s(scale.get_raw_data());
        if q.len() != rows * cols || s.len() != rows.div_ceil(BLOCK) * cols {
            bail!(InvalidOnnx, "INT8 weight '{name}' or its scales do not match the shape {rows}×{cols}");
        }
        let mut out = Vec::with_capacity(rows * cols);
        for (r, row) in q.chunks_exact(cols).enumerate() {
            let s = &s[(r / BLOCK) * cols..][..cols];
            out.extend(row.iter().zip(s).map(|(&q, &s)| q as i8 as f32 * s));
        }
        *t = float_tensor(&name, &out, dims);
        used += 1;
    }
    if used != scales.len() {
        bail!(InvalidOnnx, "{} INT8 scale tensors have no INT8 weight", scales.len() - used);
    }
    graph.set_initializer(rest.into());
    for info in graph.mut_value_info().iter_mut() {
        if info.get_name().ends_with(SCALE_SUFFIX) {
            continue;
        }
        let tensor_type = info.mut_field_type().mut_tensor_type();
        if tensor_type.get_elem_type() == TensorProto_DataType::INT8.value() {
            tensor_type.set_elem_type(TensorProto_DataType::FLOAT.value());
        }
    }
    let infos = graph.take_value_info().into_iter().filter(|i| !i.get_name().ends_with(SCALE_SUFFIX)).collect();
    graph.set_value_info(infos);
    Ok(())
}

/// Rows of an `[rows, cols]` table, kept in its stored form (f32, or INT8 with scales) and
/// expanded one row at a time: the token embedding lookup runs on the host.
pub struct Table {
    cols: usize,
    values: Vec<f32>,
    int8: Option<(Vec<u8>, Vec<f32>)>,
    rows: usize,
}

impl Table {
    pub fn from_initializers(model: &ModelProto, name: &str) -> Result<Self> {
        let inits = model.get_graph().get_initializer();
        let Some(t) = inits.iter().find(|t| t.get_name() == name) else {
            bail!(InvalidOnnx, "the shard has no initializer '{name}'");
        };
        let (rows, cols) = match t.get_dims() {
            [r, c] if *r > 0 && *c > 0 => (*r as usize, *c as usize),
            d => bail!(InvalidOnnx, "'{name}' has shape {d:?}; two dimensions were expected"),
        };
        if t.get_data_type() == TensorProto_DataType::INT8.value() {
            let Some(s) = inits.iter().find(|s| s.get_name() == format!("{name}{SCALE_SUFFIX}")) else {
                bail!(InvalidOnnx, "INT8 table '{name}' has no scales");
            };
            let (q, s) = (t.get_raw_data().to_vec(), le_f32s(s.get_raw_data()));
            if q.len() != rows * cols || s.len() != rows.div_ceil(BLOCK) * cols {
                bail!(InvalidOnnx, "INT8 table '{name}' or its scales do not match {rows}×{cols}");
            }
            return Ok(Self { cols, rows, values: Vec::new(), int8: Some((q, s)) });
        }
        let values = le_f32s(t.get_raw_data());
        if values.len() != rows * cols {
            bail!(InvalidOnnx, "table '{name}' holds {} values, not {rows}×{cols}", values.len());
        }
        Ok(Self { cols, rows, values, int8: None })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn row(&self, r: usize) -> Vec<f32> {
        match &self.int8 {
            None => self.values[r * self.cols..][..self.cols].to_vec(),
            Some((q, s)) => {
                let s = &s[(r / BLOCK) * self.cols..][..self.cols];
                q[r * self.cols..][..self.cols].iter().zip(s).map(|(&q, &s)| q as i8 as f32 * s).collect()
            }
        }
    }
}

/// The f32s of a tensor's little-endian `raw_data` (a trailing partial value is ignored; the
/// callers check the count against the shape).
pub fn le_f32s(raw: &[u8]) -> Vec<f32> {
    raw.as_chunks::<4>().0.iter().map(|b| f32::from_le_bytes(*b)).collect()
}
