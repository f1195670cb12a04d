//! Constants on the host: a tensor's values, decoded from and encoded to ONNX `TensorProto`s.

use edgellm::bail;
use edgellm::Result;
use wonnx::onnx::{NodeProto, TensorProto};

use super::dims::element_count;
use super::node::label;
use super::{ValueShape, BOOL, FLOAT, INT64};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Data {
    F32(Vec<f32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

impl Data {
    fn elem_type(&self) -> i32 {
        match self {
            Data::F32(_) => FLOAT,
            Data::I64(_) => INT64,
            Data::Bool(_) => BOOL,
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::Bool(v) => v.len(),
        }
    }

    pub(super) fn pick(&self, indices: &[usize]) -> Data {
        match self {
            Data::F32(v) => Data::F32(indices.iter().map(|&i| v[i]).collect()),
            Data::I64(v) => Data::I64(indices.iter().map(|&i| v[i]).collect()),
            Data::Bool(v) => Data::Bool(indices.iter().map(|&i| v[i]).collect()),
        }
    }

    /// Elements picked as (which source, index in it); None if the sources differ in type.
    pub(super) fn pick_from(sources: &[&Data], picks: &[(usize, usize)]) -> Option<Data> {
        match sources[0] {
            Data::F32(_) => {
                let v: Option<Vec<&Vec<f32>>> =
                    sources.iter().map(|s| if let Data::F32(v) = s { Some(v) } else { None }).collect();
                v.map(|v| Data::F32(picks.iter().map(|&(k, i)| v[k][i]).collect()))
            }
            Data::I64(_) => {
                let v: Option<Vec<&Vec<i64>>> =
                    sources.iter().map(|s| if let Data::I64(v) = s { Some(v) } else { None }).collect();
                v.map(|v| Data::I64(picks.iter().map(|&(k, i)| v[k][i]).collect()))
            }
            Data::Bool(_) => {
                let v: Option<Vec<&Vec<bool>>> =
                    sources.iter().map(|s| if let Data::Bool(v) = s { Some(v) } else { None }).collect();
                v.map(|v| Data::Bool(picks.iter().map(|&(k, i)| v[k][i]).collect()))
            }
        }
    }

    pub(super) fn as_f64(&self) -> Vec<f64> {
        match self {
            Data::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Data::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    pub(super) fn cast(&self, to: i32) -> Option<Data> {
        Some(match (self, to) {
            (_, t) if t == self.elem_type() => self.clone(),
            (Data::F32(v), INT64) => Data::I64(v.iter().map(|&x| x as i64).collect()),
            (Data::F32(v), BOOL) => Data::Bool(v.iter().map(|&x| x != 0.0).collect()),
            (Data::I64(v), FLOAT) => Data::F32(v.iter().map(|&x| x as f32).collect()),
            (Data::I64(v), BOOL) => Data::Bool(v.iter().map(|&x| x != 0).collect()),
            (Data::Bool(v), FLOAT) => Data::F32(v.iter().map(|&x| x as u8 as f32).collect()),
            (Data::Bool(v), INT64) => Data::I64(v.iter().map(|&x| x as i64).collect()),
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Tensor {
    pub(super) dims: Vec<i64>,
    pub(super) data: Data,
}

impl Tensor {
    pub(super) fn shape(&self) -> ValueShape {
        ValueShape { elem_type: self.data.elem_type(), dims: self.dims.clone() }
    }

    /// The tensor's values, or None for an element type this pass does not evaluate.
    pub(super) fn decode(t: &TensorProto) -> Result<Option<Tensor>> {
        let raw = t.get_raw_data();
        let data = match t.get_data_type() {
            FLOAT if raw.is_empty() => Data::F32(t.get_float_data().to_vec()),
            FLOAT => Data::F32(crate::compact::le_f32s(raw)),
            INT64 if raw.is_empty() => Data::I64(t.get_int64_data().to_vec()),
            INT64 => Data::I64(raw.as_chunks::<8>().0.iter().map(|b| i64::from_le_bytes(*b)).collect()),
            BOOL if raw.is_empty() => Data::Bool(t.get_int32_data().iter().map(|&b| b != 0).collect()),
            BOOL => Data::Bool(raw.iter().map(|&b| b != 0).collect()),
            _ => return Ok(None),
        };
        let dims = t.get_dims().to_vec();
        if data.len() != element_count(&dims) {
            bail!(
                InvalidOnnx,
                "tensor '{}' holds {} values for dimensions {dims:?} (external data is not supported)",
                t.get_name(),
                data.len()
            );
        }
        Ok(Some(Tensor { dims, data }))
    }

    pub(super) fn encode(&self, name: &str) -> TensorProto {
        let mut t = TensorProto::new();
        t.set_name(name.to_string());
        t.set_dims(self.dims.clone());
        t.set_data_type(self.data.elem_type());
        match &self.data {
            Data::F32(v) => t.set_float_data(v.clone()),
            // wonnx reads int64 initializers from int64_data only, never from raw_data.
            Data::I64(v) => t.set_int64_data(v.clone()),
            Data::Bool(v) => t.set_int32_data(v.iter().map(|&b| b as i32).collect()),
        }
        t
    }
}

/// The value of a Constant node, whichever attribute holds it.
pub(super) fn constant_value(node: &NodeProto) -> Result<Tensor> {
    let Some(a) = node.get_attribute().first() else {
        bail!(InvalidOnnx, "{}: it has no value", label(node));
    };
    let tensor = match a.get_name() {
        "value" => Tensor::decode(a.get_t())?,
        "value_float" => Some(Tensor { dims: vec![], data: Data::F32(vec![a.get_f()]) }),
        "value_floats" => {
            Some(Tensor { dims: vec![a.get_floats().len() as i64], data: Data::F32(a.get_floats().to_vec()) })
        }
        "value_int" => Some(Tensor { dims: vec![], data: Data::I64(vec![a.get_i()]) }),
        "value_ints" => Some(Tensor { dims: vec![a.get_ints().len() as i64], data: Data::I64(a.get_ints().to_vec()) }),
        _ => None,
    };
    match tensor {
        Some(tensor) => Ok(tensor),
        None => bail!(
            UnsupportedOperator,
            "{}: its value ('{}') has a type that is not supported",
            label(node),
            a.get_name()
        ),
    }
}
