//! Static shapes for wonnx: fixing an ONNX graph's dynamic axes and everything that follows.
//!
//! wonnx compiles one shader per node for fixed tensor sizes and has no shape inference of its
//! own: every graph input needs fixed dimensions, every intermediate value a `value_info` entry,
//! and the inputs that steer Reshape, Unsqueeze and the reduce operators must be constants.
//! Exported transformer graphs have dynamic batch and sequence axes and compute those steering
//! inputs at run time from the input's shape (Shape → Gather → Unsqueeze → Concat; position ids
//! as a Slice of a table; token type ids as an Expand of zeros). Once the axes are fixed all of
//! that is constant:
//!
//! - [`fix_dynamic_axes`] gives each named dynamic axis its size, then runs [`infer_shapes`];
//! - [`infer_shapes`] records every value's shape and folds on the CPU every node whose inputs
//!   have become constant, which removes the shape arithmetic (and the Slice, Expand, Where,
//!   ConstantOfShape... nodes wonnx cannot run) from the graph;
//! - [`lower_for_wonnx`] rewrites the operators wonnx lacks or runs only in part
//!   (LayerNormalization, Erf, Softmax, MatMul of a stack by a matrix) into ones it runs, with the same
//!   math, and refuses with the operator's name whatever is left that wonnx cannot run.

mod dims;
mod fold;
mod infer;
mod lower;
mod node;
mod tensor;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use edgellm::bail;
use edgellm::Result;
use protobuf::{ProtobufEnum, RepeatedField};
use wonnx::onnx::{GraphProto, ModelProto, TensorProto, TensorProto_DataType, ValueInfoProto};

pub use infer::infer_shapes;
pub use lower::lower_for_wonnx;

const FLOAT: i32 = TensorProto_DataType::FLOAT as i32;
const INT64: i32 = TensorProto_DataType::INT64 as i32;
const BOOL: i32 = TensorProto_DataType::BOOL as i32;

/// A value's element type (an ONNX `TensorProto.DataType` number) and static dimensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueShape {
    pub elem_type: i32,
    pub dims: Vec<i64>,
}

/// Give the graph's dynamic input axes static sizes, then infer every value's shape and fold
/// what has become constant ([`infer_shapes`]).
///
/// `sizes` maps axis names (an input dimension's `dim_param`, e.g. `("sequence_length", 128)`)
/// to sizes. Every dynamic dimension of every graph input must be named there; the error for
/// one that is not (or that has neither a size nor a name) names the input and the axis.
pub fn fix_dynamic_axes(model: &mut ModelProto, sizes: &[(&str, i64)]) -> Result<()> {
    if let Some((name, size)) = sizes.iter().find(|(_, size)| *size <= 0) {
        bail!(UnsupportedShape, "the size {size} given for the axis '{name}' is not positive");
    }
    let graph = model.mut_graph();
    let initializers: HashSet<String> = graph.get_initializer().iter().map(|t| t.get_name().to_string()).collect();
    let mut used = HashSet::new();
    for input in graph.mut_input().iter_mut() {
        // Old exports list their weights as inputs too; wonnx (and this pass) treats those as the
        // constants they are.
        if initializers.contains(input.get_name()) {
            continue;
        }
        let name = input.get_name().to_string();
        let field_type = input.mut_field_type();
        if !field_type.has_tensor_type() || !field_type.get_tensor_type().has_shape() {
            bail!(
                UnsupportedShape,
                "input '{name}' has no tensor shape (not even a rank), so its axes cannot be fixed"
            );
        }
        for (axis, dim) in field_type.mut_tensor_type().mut_shape().mut_dim().iter_mut().enumerate() {
            if dim.has_dim_value() {
                continue;
            }
            if !dim.has_dim_param() {
                bail!(
                    UnsupportedShape,
                    "input '{name}': axis {axis} has neither a size nor a name, so it cannot be fixed"
                );
            }
            let param = dim.get_dim_param().to_string();
            match sizes.iter().find(|(axis_name, _)| *axis_name == param) {
                Some(&(_, size)) => {
                    dim.set_dim_value(size);
                    used.insert(param);
                }
                None => bail!(
                    UnsupportedShape,
                    "input '{name}': axis {axis} ('{param}') is dynamic and no size was given for it (sizes were given for: {})",
                    sizes.iter().map(|(n, _)| format!("'{n}'")).collect::<Vec<_>>().join(", ")
                ),
            }
        }
    }
    if let Some((name, _)) = sizes.iter().find(|(name, _)| !used.contains(*name)) {
        bail!(UnsupportedShape, "no dynamic input axis is named '{name}'");
    }
    infer_shapes(model)
}

/// Keep only the named graph outputs, and only the nodes, initializers and value infos they need.
pub fn keep_outputs(model: &mut ModelProto, names: &[&str]) -> Result<()> {
    let graph = model.mut_graph();
    for name in names {
        if !graph.get_output().iter().any(|o| o.get_name() == *name) {
            bail!(InvalidOnnx, "the graph has no output '{name}'");
        }
    }
    let outputs: Vec<ValueInfoProto> =
        graph.take_output().into_iter().filter(|o| names.contains(&o.get_name())).collect();
    let mut needed: HashSet<String> = outputs.iter().map(|o| o.get_name().to_string()).collect();
    graph.set_output(RepeatedField::from_vec(outputs));

    let mut kept = Vec::new();
    for node in graph.take_node().into_iter().rev() {
        if node.get_output().iter().any(|o| needed.contains(o)) {
            needed.extend(node.get_input().iter().filter(|n| !n.is_empty()).cloned());
            kept.push(node);
        }
    }
    kept.reverse();
    graph.set_node(RepeatedField::from_vec(kept));
    let initializers: Vec<TensorProto> =
        graph.take_initializer().into_iter().filter(|t| needed.contains(t.get_name())).collect();
    graph.set_initializer(RepeatedField::from_vec(initializers));
    let value_info: Vec<ValueInfoProto> =
        graph.take_value_info().into_iter().filter(|v| needed.contains(v.get_name())).collect();
    graph.set_value_info(RepeatedField::from_vec(value_info));
    Ok(())
}

/// The shapes the graph declares: inputs, initializers, value infos and outputs (those with
/// static dimensions).
pub fn value_shapes(graph: &GraphProto) -> HashMap<String, ValueShape> {
    let mut shapes = HashMap::new();
    for info in graph.get_input().iter().chain(graph.get_value_info()).chain(graph.get_output()) {
        if let Ok(shape) = declared_shape(info) {
            shapes.insert(info.get_name().to_string(), shape);
        }
    }
    for t in graph.get_initializer() {
        shapes
            .insert(t.get_name().to_string(), ValueShape { elem_type: t.get_data_type(), dims: t.get_dims().to_vec() });
    }
    shapes
}

fn declared_shape(info: &ValueInfoProto) -> Result<ValueShape> {
    let name = info.get_name();
    let field_type = info.get_field_type();
    if !field_type.has_tensor_type() || !field_type.get_tensor_type().has_shape() {
        bail!(UnsupportedShape, "'{name}' has no tensor shape");
    }
    let tensor_type = field_type.get_tensor_type();
    let mut dims = Vec::new();
    for (axis, dim) in tensor_type.get_shape().get_dim().iter().enumerate() {
        if !dim.has_dim_value() {
            bail!(
                UnsupportedShape,
                "input '{name}': axis {axis} ('{}') is dynamic; fix it to a size first (fix_dynamic_axes)",
                dim.get_dim_param()
            );
        }
        dims.push(dim.get_dim_value());
    }
    Ok(ValueShape { elem_type: tensor_type.get_elem_type(), dims })
}

fn value_info_proto(name: &str, shape: &ValueShape) -> ValueInfoProto {
    let elem_type = TensorProto_DataType::from_i32(shape.elem_type).unwrap_or(TensorProto_DataType::UNDEFINED);
    wonnx::utils::tensor_of_type(name, &shape.dims, elem_type)
}
