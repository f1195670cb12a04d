//! Tests of the public entry points; most span inference, folding and lowering.

use super::infer::Pass;
use super::lower::WONNX_MAX_OPSET;
use super::node::{int_attribute, label};
use super::tensor::{Data, Tensor};
use super::*;
use edgellm::ErrorCode;
use wonnx::onnx::NodeProto;
use wonnx::utils::{graph, model_with_opset, node, tensor_of_type};

fn input(name: &str, dims: &[&str]) -> ValueInfoProto {
    let mut info = tensor_of_type(name, &[], TensorProto_DataType::FLOAT);
    let shape = info.mut_field_type().mut_tensor_type().mut_shape();
    for d in dims {
        let mut dim = wonnx::onnx::TensorShapeProto_Dimension::new();
        match d.parse::<i64>() {
            Ok(v) => dim.set_dim_value(v),
            Err(_) => dim.set_dim_param(d.to_string()),
        }
        shape.mut_dim().push(dim);
    }
    info
}

fn int64s(name: &str, values: &[i64]) -> TensorProto {
    Tensor { dims: vec![values.len() as i64], data: Data::I64(values.to_vec()) }.encode(name)
}

fn floats(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    Tensor { dims: dims.to_vec(), data: Data::F32(values.to_vec()) }.encode(name)
}

/// Y = Reshape(X, Concat(Unsqueeze(Gather(Shape(X), 0)), [-1, 2])): a reshape target computed
/// at run time from X's dynamic shape, as exported attention layers do.
fn dynamic_reshape_model() -> ModelProto {
    let nodes = vec![
        node(vec!["X"], vec!["shape"], "shape", "Shape", vec![]),
        node(vec!["shape", "zero"], vec!["batch"], "gather", "Gather", vec![]),
        node(vec!["batch", "zero_axis"], vec!["batch_1d"], "unsqueeze", "Unsqueeze", vec![]),
        node(vec!["batch_1d", "rest"], vec!["target"], "concat", "Concat", vec![int_attribute("axis", 0)]),
        node(vec!["X", "target"], vec!["Y"], "reshape", "Reshape", vec![]),
    ];
    let mut zero = int64s("zero", &[0]);
    zero.set_dims(vec![]);
    let initializers = vec![zero, int64s("zero_axis", &[0]), int64s("rest", &[-1, 2])];
    let mut m = model_with_opset(
        graph(vec![input("X", &["batch", "sequence", "4"])], vec![input("Y", &["a", "b", "c"])], vec![], vec![], nodes),
        17,
    );
    m.mut_graph().set_initializer(RepeatedField::from_vec(initializers));
    m
}

#[test]
fn fixing_axes_folds_shape_arithmetic_and_records_every_shape() {
    let mut m = dynamic_reshape_model();
    fix_dynamic_axes(&mut m, &[("batch", 1), ("sequence", 6)]).unwrap();
    let g = m.get_graph();
    // Only the Reshape remains; its target is a folded constant.
    assert_eq!(g.get_node().len(), 1);
    assert_eq!(g.get_node()[0].get_op_type(), "Reshape");
    let target = g.get_initializer().iter().find(|t| t.get_name() == "target").unwrap();
    assert_eq!(target.get_int64_data(), &[1, -1, 2]);
    let shapes = value_shapes(g);
    assert_eq!(shapes["X"].dims, vec![1, 6, 4]);
    assert_eq!(shapes["Y"], ValueShape { elem_type: FLOAT, dims: vec![1, 12, 2] });
}

#[test]
fn an_axis_without_a_size_is_refused_naming_the_input() {
    let mut m = dynamic_reshape_model();
    let e = fix_dynamic_axes(&mut m, &[("batch", 1)]).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsupportedShape);
    assert!(e.message.contains("input 'X'") && e.message.contains("'sequence'"), "{}", e.message);

    // An axis with neither a size nor a name cannot be fixed at all.
    let mut m = dynamic_reshape_model();
    m.mut_graph().mut_input()[0].mut_field_type().mut_tensor_type().mut_shape().mut_dim()[1].clear_dim_param();
    let e = fix_dynamic_axes(&mut m, &[("batch", 1), ("sequence", 6)]).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsupportedShape);
    assert!(e.message.contains("input 'X': axis 1"), "{}", e.message);
}

#[test]
fn an_operator_wonnx_lacks_is_refused_by_name() {
    let nodes = vec![node(vec!["X"], vec!["Y"], "swish", "HardSwish", vec![])];
    let mut m = model_with_opset(
        graph(vec![input("X", &["n", "8"])], vec![input("Y", &["n", "8"])], vec![], vec![], nodes),
        14,
    );
    fix_dynamic_axes(&mut m, &[("n", 2)]).unwrap();
    let e = lower_for_wonnx(&mut m, "tiny graph").unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsupportedOperator);
    assert!(e.message.contains("HardSwish") && e.message.contains("tiny graph"), "{}", e.message);
}

#[test]
fn an_operator_the_pass_cannot_shape_is_refused_by_name() {
    let nodes = vec![node(vec!["X"], vec!["Y"], "topk", "TopK", vec![])];
    let mut m = model_with_opset(graph(vec![input("X", &["n"])], vec![input("Y", &["k"])], vec![], vec![], nodes), 13);
    let e = fix_dynamic_axes(&mut m, &[("n", 4)]).unwrap_err();
    assert_eq!(e.code, ErrorCode::UnsupportedOperator);
    assert!(e.message.contains("TopK"), "{}", e.message);
}

/// Lower a one-node graph, then make its input a constant and fold the lowered graph on the
/// CPU: the result of the rewrite, without a GPU.
fn lower_and_fold(op_node: NodeProto, x: &[f32], extra: Vec<TensorProto>) -> (ModelProto, Vec<f32>) {
    let n = x.len() as i64;
    let mut m = model_with_opset(
        graph(
            vec![input("X", &["1", &n.to_string()])],
            vec![input("Y", &["1", &n.to_string()])],
            vec![],
            vec![],
            vec![op_node],
        ),
        17,
    );
    m.mut_graph().set_initializer(RepeatedField::from_vec(extra));
    infer_shapes(&mut m).unwrap();
    lower_for_wonnx(&mut m, "test").unwrap();
    let lowered = m.clone();
    let g = m.mut_graph();
    g.set_input(RepeatedField::new());
    g.mut_initializer().push(floats("X", &[1, n], x));
    // The output itself cannot be constant for wonnx, but here it is what we want: read it
    // from the pass directly.
    let mut pass = Pass::new(g).unwrap();
    for node in g.get_node().to_vec() {
        assert!(pass.visit(&node).unwrap(), "{} was not folded", label(&node));
    }
    let Data::F32(y) = pass.constants["Y"].data.clone() else { panic!() };
    (lowered, y)
}

#[test]
fn erf_becomes_operators_wonnx_has_with_float_precision() {
    let x = [-3.0, -1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 2.0];
    let erf = [-0.999_977_9, -0.842_700_8, -0.520_499_9, 0.0, 0.276_326_4, 0.520_499_9, 0.842_700_8, 0.995_322_3];
    let (lowered, y) = lower_and_fold(node(vec!["X"], vec!["Y"], "erf", "Erf", vec![]), &x, vec![]);
    assert!(lowered.get_graph().get_node().iter().all(|n| n.get_op_type() != "Erf"));
    for (got, want) in y.iter().zip(erf) {
        assert!((got - want).abs() < 4e-7, "erf: {got} vs {want}");
    }
}

#[test]
fn layer_normalization_becomes_operators_wonnx_has() {
    let x = [1.0, 2.0, 4.0, 8.0];
    let scale = floats("scale", &[4], &[1.0, 2.0, 1.0, 0.5]);
    let bias = floats("bias", &[4], &[0.0, 0.0, 1.0, 0.0]);
    let ln = node(vec!["X", "scale", "bias"], vec!["Y"], "ln", "LayerNormalization", vec![int_attribute("axis", -1)]);
    let (lowered, y) = lower_and_fold(ln, &x, vec![scale, bias]);
    assert!(lowered.get_graph().get_node().iter().all(|n| n.get_op_type() != "LayerNormalization"));
    assert_eq!(lowered.get_opset_import()[0].get_version(), WONNX_MAX_OPSET);
    let mean = 3.75f32;
    let std = ((x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0) + 1e-5).sqrt();
    let want: Vec<f32> = x
        .iter()
        .zip([1.0, 2.0, 1.0, 0.5])
        .zip([0.0, 0.0, 1.0, 0.0])
        .map(|((v, s), b)| (v - mean) / std * s + b)
        .collect();
    for (got, want) in y.iter().zip(want) {
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
}

#[test]
fn a_stack_times_a_matrix_becomes_a_flat_matmul() {
    let nodes = vec![node(vec!["X", "W"], vec!["Y"], "mm", "MatMul", vec![])];
    let mut m = model_with_opset(
        graph(vec![input("X", &["1", "s", "4"])], vec![input("Y", &["1", "s", "2"])], vec![], vec![], nodes),
        13,
    );
    m.mut_graph().mut_initializer().push(floats("W", &[4, 2], &[0.0; 8]));
    fix_dynamic_axes(&mut m, &[("s", 6)]).unwrap();
    lower_for_wonnx(&mut m, "test").unwrap();
    let g = m.get_graph();
    let ops: Vec<&str> = g.get_node().iter().map(|n| n.get_op_type()).collect();
    assert_eq!(ops, ["Reshape", "MatMul", "Reshape"]);
    let shapes = value_shapes(g);
    assert_eq!(shapes[g.get_node()[1].get_output()[0].as_str()].dims, vec![6, 2]);
    assert_eq!(shapes["Y"].dims, vec![1, 6, 2]);
}

#[test]
fn slice_expand_where_and_gather_fold_like_onnx() {
    // Position ids: Slice(table, 0, sequence) then Gather from an embedding table.
    let table = Tensor { dims: vec![1, 8], data: Data::I64((0..8).collect()) };
    let embeddings = floats("E", &[8, 2], &(0..16).map(|v| v as f32).collect::<Vec<_>>());
    let nodes = vec![
        node(vec!["table", "start", "end", "axis"], vec!["ids"], "slice", "Slice", vec![]),
        node(vec!["E", "ids"], vec!["pos"], "gather", "Gather", vec![]),
        node(vec!["ids", "shape"], vec!["wide"], "expand", "Expand", vec![]),
        node(vec!["wide", "ids"], vec!["same"], "eq", "Equal", vec![]),
        node(vec!["same", "wide", "ids"], vec!["picked"], "where", "Where", vec![]),
        node(vec!["X", "pos"], vec!["Y"], "add", "Add", vec![]),
    ];
    let mut m = model_with_opset(
        graph(vec![input("X", &["1", "3", "2"])], vec![input("Y", &["1", "3", "2"])], vec![], vec![], nodes),
        13,
    );
    let g = m.mut_graph();
    g.mut_initializer().extend([
        table.encode("table"),
        int64s("start", &[1]),
        int64s("end", &[-4]),
        int64s("axis", &[1]),
        int64s("shape", &[2, 1, 3]),
        embeddings,
    ]);
    g.mut_output().push(input("picked", &["2", "1", "3"]));
    let e = infer_shapes(&mut m).unwrap_err();
    // "picked" folded to a constant: an output wonnx could not return, said by name.
    assert!(e.message.contains("'picked'"), "{}", e.message);

    m.mut_graph().mut_output().pop();
    infer_shapes(&mut m).unwrap();
    let g = m.get_graph();
    let pos = g.get_initializer().iter().find(|t| t.get_name() == "pos").unwrap();
    assert_eq!(pos.get_dims(), &[1, 3, 2]);
    assert_eq!(pos.get_float_data(), &[2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
}
