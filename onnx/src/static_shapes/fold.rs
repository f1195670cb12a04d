//! Constant folding: computing a node on the CPU once all its inputs are constant.

use edgellm::{bail, Error, ErrorCode, Result};
use wonnx::onnx::NodeProto;

use super::dims::{broadcast_indices, element_count, for_each_index, normalize_axis, strides};
use super::infer::{reduced_axes, slice_plan};
use super::node::{attr_int, attribute, label, transpose_perm};
use super::tensor::{Data, Tensor};
use super::ValueShape;

/// The operators [`evaluate`] computes on the CPU when all their inputs are constant.
#[rustfmt::skip]
pub(super) const FOLDABLE: &[&str] = &[
    "Abs", "Add", "Cast", "Concat", "ConstantOfShape", "Div", "Dropout", "Equal", "Exp", "Expand", "Flatten",
    "Gather", "Greater", "Identity", "Less", "Mul", "Neg", "Range", "Reciprocal", "ReduceMean", "ReduceSum",
    "Reshape", "Sign", "Slice", "Sqrt", "Squeeze", "Sub", "Transpose", "Unsqueeze", "Where",
];

/// Compute a node from constant inputs, or None for type combinations this pass leaves alone.
pub(super) fn evaluate(
    node: &NodeProto,
    inputs: &[Option<&Tensor>],
    outputs: &[ValueShape],
) -> Result<Option<Vec<Tensor>>> {
    let op = node.get_op_type();
    let arg = |i: usize| inputs.get(i).copied().flatten();
    // infer.rs folds a node only when the inputs it reads are constants; an input that is still
    // missing here is a graph this pass cannot fold, reported rather than assumed away.
    let input = |i: usize| {
        arg(i).ok_or_else(|| Error::new(ErrorCode::InvalidOnnx, format!("{}: input {i} is missing", label(node))))
    };
    let axis_of = |rank: usize| {
        let axis = attr_int(node, "axis", 0);
        normalize_axis(axis, rank).ok_or_else(|| {
            Error::new(ErrorCode::InvalidOnnx, format!("{}: axis {axis} is out of range for rank {rank}", label(node)))
        })
    };
    let Some(out) = outputs.first() else { bail!(InvalidOnnx, "{}: it has no output", label(node)) };
    let x = input(0)?;
    let data = match op {
        "Identity" | "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" | "Dropout" => Some(x.data.clone()),
        "Cast" => x.data.cast(out.elem_type),
        "Expand" => Some(x.data.pick(&broadcast_indices(&x.dims, &out.dims))),
        "Transpose" => {
            let perm = transpose_perm(node, x.dims.len());
            let in_strides = strides(&x.dims);
            let mut picks = Vec::with_capacity(element_count(&out.dims));
            for_each_index(&out.dims, |index| {
                picks.push(index.iter().zip(&perm).map(|(&i, &p)| i * in_strides[p]).sum());
            });
            Some(x.data.pick(&picks))
        }
        "Gather" => {
            let (indices, axis) = (input(1)?, axis_of(x.dims.len())?);
            let Data::I64(index_values) = &indices.data else { return Ok(None) };
            let (in_strides, axis_len, rank) = (strides(&x.dims), x.dims[axis], indices.dims.len());
            let index_strides = strides(&indices.dims);
            let mut picks = Vec::with_capacity(element_count(&out.dims));
            let mut out_of_range = None;
            for_each_index(&out.dims, |index| {
                let which: usize = index[axis..axis + rank].iter().zip(&index_strides).map(|(i, s)| i * s).sum();
                let mut at = index_values[which];
                if at < 0 {
                    at += axis_len;
                }
                if !(0..axis_len).contains(&at) {
                    out_of_range = Some(index_values[which]);
                    at = 0;
                }
                let outer: usize = index[..axis].iter().zip(&in_strides).map(|(i, s)| i * s).sum();
                let inner: usize = index[axis + rank..].iter().zip(&in_strides[axis + 1..]).map(|(i, s)| i * s).sum();
                picks.push(outer + at as usize * in_strides[axis] + inner);
            });
            if let Some(bad) = out_of_range {
                bail!(InvalidOnnx, "{}: index {bad} is out of range for an axis of {axis_len}", label(node));
            }
            Some(x.data.pick(&picks))
        }
        "Slice" => {
            let plan = slice_plan(node, &x.dims, |i| match arg(i) {
                Some(Tensor { data: Data::I64(v), .. }) => Ok(v.clone()),
                _ => bail!(InvalidOnnx, "{}: its input {i} is not an int64 tensor", label(node)),
            })?;
            let in_strides = strides(&x.dims);
            let mut picks = Vec::with_capacity(element_count(&out.dims));
            for_each_index(&out.dims, |index| {
                let at = index.iter().zip(&plan).zip(&in_strides);
                picks.push(at.map(|((&i, p), s)| (p.start + i as i64 * p.step) as usize * s).sum());
            });
            Some(x.data.pick(&picks))
        }
        "Concat" => {
            let axis = axis_of(x.dims.len())?;
            let parts: Vec<&Tensor> = inputs.iter().flatten().copied().collect();
            let mut offsets = Vec::with_capacity(parts.len());
            let mut total = 0;
            for part in &parts {
                offsets.push(total);
                total += part.dims[axis] as usize;
            }
            let part_strides: Vec<Vec<usize>> = parts.iter().map(|p| strides(&p.dims)).collect();
            let mut picks = Vec::with_capacity(element_count(&out.dims));
            for_each_index(&out.dims, |index| {
                // offsets[0] is 0, so some part always starts at or before the index.
                let k = offsets.iter().rposition(|&o| o <= index[axis]).unwrap_or(0);
                let at = index
                    .iter()
                    .enumerate()
                    .map(|(a, &i)| if a == axis { i - offsets[k] } else { i } * part_strides[k][a])
                    .sum();
                picks.push((k, at));
            });
            Data::pick_from(&parts.iter().map(|p| &p.data).collect::<Vec<_>>(), &picks)
        }
        "ConstantOfShape" => {
            let value = match attribute(node, "value") {
                Some(a) => match Tensor::decode(a.get_t())? {
                    Some(t) if t.data.len() == 1 => t.data,
                    _ => return Ok(None),
                },
                None => Data::F32(vec![0.0]),
            };
            Some(value.pick(&vec![0; element_count(&out.dims)]))
        }
        "Range" => {
            let mut bounds = [0f64; 3];
            for (i, bound) in bounds.iter_mut().enumerate() {
                let Some(&value) = input(i)?.data.as_f64().first() else {
                    bail!(InvalidOnnx, "{}: input {i} is empty", label(node))
                };
                *bound = value;
            }
            let count = element_count(&out.dims);
            match &x.data {
                Data::F32(_) => {
                    Some(Data::F32((0..count).map(|i| (bounds[0] + i as f64 * bounds[2]) as f32).collect()))
                }
                Data::I64(_) => {
                    Some(Data::I64((0..count).map(|i| (bounds[0] + i as f64 * bounds[2]) as i64).collect()))
                }
                Data::Bool(_) => None,
            }
        }
        "Where" => {
            let (a, b) = (input(1)?, input(2)?);
            let Data::Bool(condition) = &x.data else { return Ok(None) };
            let (ci, ai, bi) = (
                broadcast_indices(&x.dims, &out.dims),
                broadcast_indices(&a.dims, &out.dims),
                broadcast_indices(&b.dims, &out.dims),
            );
            let picks: Vec<(usize, usize)> =
                (0..ci.len()).map(|i| if condition[ci[i]] { (0, ai[i]) } else { (1, bi[i]) }).collect();
            Data::pick_from(&[&a.data, &b.data], &picks)
        }
        "ReduceMean" | "ReduceSum" => {
            let Data::F32(values) = &x.data else { return Ok(None) };
            let axes = match arg(1) {
                Some(Tensor { data: Data::I64(axes), .. }) => Some(axes.clone()),
                Some(_) => return Ok(None),
                None => attribute(node, "axes").map(|a| a.get_ints().to_vec()),
            };
            let Some(axes) = reduced_axes(node, axes, x.dims.len()) else {
                bail!(InvalidOnnx, "{}: its axes are out of range", label(node))
            };
            // The output keeps the input's element order with the reduced axes collapsed, so
            // each input element adds into the output element its other indices name.
            let kept: Vec<i64> =
                x.dims.iter().enumerate().map(|(i, &d)| if axes.contains(&i) { 1 } else { d }).collect();
            let kept_strides = strides(&kept);
            let mut sums = vec![0f64; element_count(&kept)];
            let mut values = values.iter();
            for_each_index(&x.dims, |index| {
                let at: usize =
                    (0..index.len()).filter(|a| !axes.contains(a)).map(|a| index[a] * kept_strides[a]).sum();
                sums[at] += values.next().copied().unwrap_or(0.0) as f64;
            });
            let divisor = if op == "ReduceMean" { (element_count(&x.dims) / sums.len().max(1)) as f64 } else { 1.0 };
            Some(Data::F32(sums.iter().map(|s| (s / divisor) as f32).collect()))
        }
        "Abs" | "Neg" | "Sqrt" | "Exp" | "Reciprocal" | "Sign" => match &x.data {
            Data::F32(v) => Some(Data::F32(
                v.iter()
                    .map(|&a| match op {
                        "Abs" => a.abs(),
                        "Neg" => -a,
                        "Sqrt" => a.sqrt(),
                        "Exp" => a.exp(),
                        "Reciprocal" => 1.0 / a,
                        _ => {
                            if a > 0.0 {
                                1.0
                            } else if a < 0.0 {
                                -1.0
                            } else {
                                0.0
                            }
                        }
                    })
                    .collect(),
            )),
            Data::I64(v) => match op {
                "Abs" => Some(Data::I64(v.iter().map(|a| a.wrapping_abs()).collect())),
                "Neg" => Some(Data::I64(v.iter().map(|a| a.wrapping_neg()).collect())),
                "Sign" => Some(Data::I64(v.iter().map(|a| a.signum()).collect())),
                _ => None,
            },
            Data::Bool(_) => None,
        },
        _ => {
            let b = input(1)?;
            let (ia, ib) = (broadcast_indices(&x.dims, &out.dims), broadcast_indices(&b.dims, &out.dims));
            binary(op, &x.data, &b.data, &ia, &ib)
        }
    };
    Ok(data.map(|data| {
        let mut tensors = vec![Tensor { dims: out.dims.clone(), data }];
        if op == "Dropout" && outputs.len() > 1 {
            // Dropout is the identity at inference; its mask keeps everything.
            tensors.push(Tensor { dims: out.dims.clone(), data: Data::Bool(vec![true; element_count(&out.dims)]) });
        }
        tensors
    }))
}

fn binary(op: &str, a: &Data, b: &Data, ia: &[usize], ib: &[usize]) -> Option<Data> {
    fn zip<T: Copy, U>(x: &[T], y: &[T], ia: &[usize], ib: &[usize], f: impl Fn(T, T) -> U) -> Vec<U> {
        ia.iter().zip(ib).map(|(&i, &j)| f(x[i], y[j])).collect()
    }
    Some(match (a, b) {
        (Data::F32(x), Data::F32(y)) => match op {
            "Add" => Data::F32(zip(x, y, ia, ib, |a, b| a + b)),
            "Sub" => Data::F32(zip(x, y, ia, ib, |a, b| a - b)),
            "Mul" => Data::F32(zip(x, y, ia, ib, |a, b| a * b)),
            "Div" => Data::F32(zip(x, y, ia, ib, |a, b| a / b)),
            "Equal" => Data::Bool(zip(x, y, ia, ib, |a, b| a == b)),
            "Less" => Data::Bool(zip(x, y, ia, ib, |a, b| a < b)),
            "Greater" => Data::Bool(zip(x, y, ia, ib, |a, b| a > b)),
            _ => return None,
        },
        (Data::I64(x), Data::I64(y)) => match op {
            "Add" => Data::I64(zip(x, y, ia, ib, |a, b| a.wrapping_add(b))),
            "Sub" => Data::I64(zip(x, y, ia, ib, |a, b| a.wrapping_sub(b))),
            "Mul" => Data::I64(zip(x, y, ia, ib, |a, b| a.wrapping_mul(b))),
            "Div" if y.iter().all(|&d| d != 0) => Data::I64(zip(x, y, ia, ib, |a, b| a.wrapping_div(b))),
            "Equal" => Data::Bool(zip(x, y, ia, ib, |a, b| a == b)),
            "Less" => Data::Bool(zip(x, y, ia, ib, |a, b| a < b)),
            "Greater" => Data::Bool(zip(x, y, ia, ib, |a, b| a > b)),
            _ => return None,
        },
        (Data::Bool(x), Data::Bool(y)) if op == "Equal" => Data::Bool(zip(x, y, ia, ib, |a, b| a == b)),
        _ => return None,
    })
}
