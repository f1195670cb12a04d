//! Lowering for wonnx: rewriting the operators wonnx lacks or runs only in part into ones it runs.

use std::collections::{HashMap, HashSet};

use edgellm::bail;
use edgellm::Result;
use protobuf::RepeatedField;
use wonnx::onnx::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};

use super::dims::normalize_axis;
use super::node::{attr_float, attr_int, int_attribute, ints_attribute, label};
use super::tensor::{Data, Tensor};
use super::{infer_shapes, value_shapes, ValueShape};
use crate::runtime;

/// The newest ONNX opset wonnx 0.5.1 accepts (its Softmax refuses later ones).
pub(super) const WONNX_MAX_OPSET: i64 = 15;

/// Rewrite a statically shaped graph (after [`fix_dynamic_axes`](super::fix_dynamic_axes)) into operators and variants
/// wonnx runs, with the same math, and check that it uses no other operator. `what` names the
/// model in errors.
///
/// - LayerNormalization (opset 17) becomes ReduceMean, Sub, Mul, Add, Sqrt, Div.
/// - Softmax becomes ReduceMax, Sub, Exp, ReduceSum, Div (wonnx's own is NaN on SwiftShader).
/// - Erf (the exact GELU) becomes Abramowitz & Stegun 7.1.26, |error| ≤ 1.5e-7, i.e. float
///   precision: wonnx has no Erf.
/// - MatMul of a stack of matrices (rank > 2) by one matrix, which wonnx refuses, becomes
///   Reshape to one tall matrix, MatMul, Reshape back (free in wonnx: reshapes alias buffers).
/// - Unsqueeze and Squeeze with an `axes` input (opset 13 on) become a Reshape to their static
///   output shape: wonnx forwards their buffer but moves only Reshape's second input into an
///   attribute, and asserts (panics) on a forwarding node with two inputs.
/// - The opset is lowered to 15 when it is newer: opsets 16 and 17 only added operators
///   (LayerNormalization, rewritten here; the others refused below) and bfloat16 types, so every
///   operator wonnx runs means the same at 15.
pub fn lower_for_wonnx(model: &mut ModelProto, what: &str) -> Result<()> {
    let shapes = value_shapes(model.get_graph());
    let mut lowering = Lowering::new(model.get_graph());
    let graph = model.mut_graph();
    for node in graph.take_node().into_iter() {
        match node.get_op_type() {
            "LayerNormalization" => lowering.layer_normalization(&node, &shapes)?,
            "Erf" => lowering.erf(&node),
            "Softmax" => lowering.softmax(&node, &shapes)?,
            "MatMul" => lowering.matmul(node, &shapes),
            "Unsqueeze" | "Squeeze" if node.get_input().len() > 1 => lowering.reshape(&node, &shapes)?,
            _ => lowering.nodes.push(node),
        }
    }
    graph.set_node(RepeatedField::from_vec(lowering.nodes));
    graph.mut_initializer().extend(lowering.initializers);
    for opset in model.mut_opset_import().iter_mut() {
        if (opset.get_domain().is_empty() || opset.get_domain() == "ai.onnx") && opset.get_version() > WONNX_MAX_OPSET {
            opset.set_version(WONNX_MAX_OPSET);
        }
    }
    infer_shapes(model)?;
    runtime::check_operators(model, what)
}

/// Rewritten nodes, and the constants they use, for [`lower_for_wonnx`].
struct Lowering {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    scalars: HashMap<u32, String>,
    /// Every value name in use, so that new ones never clash (even on a second lowering).
    taken: HashSet<String>,
}

impl Lowering {
    fn new(graph: &GraphProto) -> Self {
        let mut taken: HashSet<String> = graph.get_input().iter().map(|i| i.get_name().to_string()).collect();
        taken.extend(graph.get_initializer().iter().map(|t| t.get_name().to_string()));
        taken.extend(graph.get_node().iter().flat_map(|n| n.get_output().iter().cloned()));
        Self { nodes: Vec::new(), initializers: Vec::new(), scalars: HashMap::new(), taken }
    }

    /// `base` with the first numeric suffix no value has.
    fn fresh(&mut self, base: &str) -> String {
        let mut i = 1;
        loop {
            let name = format!("{base}_{i}");
            if self.taken.insert(name.clone()) {
                return name;
            }
            i += 1;
        }
    }

    /// Append a node computing `op` into `output`, or into a fresh value named after `base` if None.
    fn push(
        &mut self,
        base: &str,
        op: &str,
        inputs: &[&str],
        attributes: Vec<AttributeProto>,
        output: Option<&str>,
    ) -> String {
        let name = self.fresh(&format!("{base}/wonnx/{op}"));
        let output = output.map_or_else(|| name.clone(), str::to_string);
        let mut node = NodeProto::new();
        node.set_name(name);
        node.set_op_type(op.to_string());
        node.set_input(inputs.iter().map(|s| s.to_string()).collect());
        node.set_output(RepeatedField::from_vec(vec![output.clone()]));
        node.set_attribute(RepeatedField::from_vec(attributes));
        self.nodes.push(node);
        output
    }

    fn op(&mut self, base: &str, op: &str, inputs: &[&str]) -> String {
        self.push(base, op, inputs, vec![], None)
    }

    /// A shared f32 constant of shape [1] (broadcast by wonnx against any tensor).
    fn scalar(&mut self, value: f32) -> String {
        if let Some(name) = self.scalars.get(&value.to_bits()) {
            return name.clone();
        }
        let name = self.fresh(&format!("wonnx/scalar/{value:e}"));
        self.initializers.push(Tensor { dims: vec![1], data: Data::F32(vec![value]) }.encode(&name));
        self.scalars.insert(value.to_bits(), name.clone());
        name
    }

    fn ints(&mut self, base: &str, values: &[i64]) -> String {
        let name = self.fresh(&format!("{base}/wonnx/shape"));
        self.initializers
            .push(Tensor { dims: vec![values.len() as i64], data: Data::I64(values.to_vec()) }.encode(&name));
        name
    }

    /// y = (x − mean) / √(var + ε) · scale + bias over the last axis.
    fn layer_normalization(&mut self, node: &NodeProto, shapes: &HashMap<String, ValueShape>) -> Result<()> {
        let inputs = node.get_input();
        let x = inputs[0].as_str();
        let Some(rank) = shapes.get(x).map(|s| s.dims.len()) else {
            bail!(UnsupportedShape, "{}: the shape of its input '{x}' is unknown", label(node));
        };
        if rank == 0 || normalize_axis(attr_int(node, "axis", -1), rank) != Some(rank - 1) {
            bail!(UnsupportedOperator, "{}: LayerNormalization is supported over the last axis only", label(node));
        }
        if node.get_output().iter().skip(1).any(|o| !o.is_empty()) {
            bail!(UnsupportedOperator, "{}: its Mean and InvStdDev outputs are not supported", label(node));
        }
        let (output, epsilon) = (node.get_output()[0].as_str(), attr_float(node, "epsilon", 1e-5));
        let last_axis = || vec![ints_attribute("axes", &[-1]), int_attribute("keepdims", 1)];
        let mean = self.push(output, "ReduceMean", &[x], last_axis(), None);
        let centered = self.op(output, "Sub", &[x, &mean]);
        let squared = self.op(output, "Mul", &[&centered, &centered]);
        let variance = self.push(output, "ReduceMean", &[&squared], last_axis(), None);
        let epsilon = self.scalar(epsilon);
        let shifted = self.op(output, "Add", &[&variance, &epsilon]);
        let deviation = self.op(output, "Sqrt", &[&shifted]);
        let normalized = self.op(output, "Div", &[&centered, &deviation]);
        match inputs.get(2).filter(|b| !b.is_empty()) {
            Some(bias) => {
                let scaled = self.op(output, "Mul", &[&normalized, &inputs[1]]);
                self.push(output, "Add", &[&scaled, bias], vec![], Some(output));
            }
            None => {
                self.push(output, "Mul", &[&normalized, &inputs[1]], vec![], Some(output));
            }
        }
        Ok(())
    }

    /// softmax(x) = exp(x − max) / Σ exp(x − max) along `axis`, from ReduceMax, Sub, Exp,
    /// ReduceSum and Div: wonnx's Softmax shader starts its maximum at `log(0)`, which WGSL
    /// leaves undefined (SwiftShader's WebGPU gives NaN). The graph is opset ≥ 13 here, where
    /// Softmax normalises one axis (default −1).
    fn softmax(&mut self, node: &NodeProto, shapes: &HashMap<String, ValueShape>) -> Result<()> {
        let (x, output) = (node.get_input()[0].as_str(), node.get_output()[0].as_str());
        let Some(rank) = shapes.get(x).map(|s| s.dims.len()) else {
            bail!(UnsupportedShape, "{}: the shape of its input '{x}' is unknown", label(node));
        };
        let Some(axis) = normalize_axis(attr_int(node, "axis", -1), rank) else {
            bail!(UnsupportedOperator, "{}: its axis is out of range", label(node));
        };
        let max = self.push(
            output,
            "ReduceMax",
            &[x],
            vec![ints_attribute("axes", &[axis as i64]), int_attribute("keepdims", 1)],
            None,
        );
        let shifted = self.op(output, "Sub", &[x, &max]);
        let exp = self.op(output, "Exp", &[&shifted]);
        let axes = self.ints(output, &[axis as i64]);
        let sum = self.push(output, "ReduceSum", &[&exp, &axes], vec![int_attribute("keepdims", 1)], None);
        self.push(output, "Div", &[&exp, &sum], vec![], Some(output));
        Ok(())
    }

    /// erf(x) = sign(x)·(1 − (a1·t + a2·t² + a3·t³ + a4·t⁴ + a5·t⁵)·e^(−x²)), t = 1/(1 + p·|x|)
    /// (Abramowitz & Stegun 7.1.26; |error| ≤ 1.5e-7).
    fn erf(&mut self, node: &NodeProto) {
        const P: f32 = 0.327_591_1;
        // The published coefficients, as published.
        #[allow(clippy::excessive_precision)]
        const A: [f32; 5] = [0.254_829_592, -0.284_496_736, 1.421_413_741, -1.453_152_027, 1.061_405_429];
        let (x, output) = (node.get_input()[0].as_str(), node.get_output()[0].as_str());
        let magnitude = self.op(output, "Abs", &[x]);
        let p = self.scalar(P);
        let scaled = self.op(output, "Mul", &[&magnitude, &p]);
        let one = self.scalar(1.0);
        let denominator = self.op(output, "Add", &[&scaled, &one]);
        let t = self.op(output, "Reciprocal", &[&denominator]);
        // Horner: ((((a5·t + a4)·t + a3)·t + a2)·t + a1)·t
        let a5 = self.scalar(A[4]);
        let mut polynomial = self.op(output, "Mul", &[&t, &a5]);
        for &a in A[..4].iter().rev() {
            let a = self.scalar(a);
            let sum = self.op(output, "Add", &[&polynomial, &a]);
            polynomial = self.op(output, "Mul", &[&sum, &t]);
        }
        let square = self.op(output, "Mul", &[x, x]);
        let negated = self.op(output, "Neg", &[&square]);
        let gaussian = self.op(output, "Exp", &[&negated]);
        let tail = self.op(output, "Mul", &[&polynomial, &gaussian]);
        let magnitude_erf = self.op(output, "Sub", &[&one, &tail]);
        let sign = self.op(output, "Sign", &[x]);
        self.push(output, "Mul", &[&sign, &magnitude_erf], vec![], Some(output));
    }

    /// The node as a Reshape to its (static) output shape.
    fn reshape(&mut self, node: &NodeProto, shapes: &HashMap<String, ValueShape>) -> Result<()> {
        let output = node.get_output()[0].as_str();
        let Some(shape) = shapes.get(output) else {
            bail!(UnsupportedShape, "{}: the shape of its output '{output}' is unknown", label(node));
        };
        let target = self.ints(output, &shape.dims);
        self.push(output, "Reshape", &[&node.get_input()[0], &target], vec![], Some(output));
        Ok(())
    }

    /// A·B with A of rank > 2 and B a matrix: wonnx multiplies stacks only by stacks of the same
    /// rank, so multiply A's rows as one tall matrix instead.
    fn matmul(&mut self, node: NodeProto, shapes: &HashMap<String, ValueShape>) {
        let (a, b) = (node.get_input()[0].as_str(), node.get_input()[1].as_str());
        let (Some(a_shape), Some(b_shape)) = (shapes.get(a), shapes.get(b)) else {
            self.nodes.push(node);
            return;
        };
        let (a_dims, b_dims) = (&a_shape.dims, &b_shape.dims);
        if a_dims.len() <= 2 || b_dims.len() != 2 {
            self.nodes.push(node);
            return;
        }
        let output = node.get_output()[0].as_str();
        let rows: i64 = a_dims[..a_dims.len() - 1].iter().product();
        let flat_shape = self.ints(output, &[rows, b_dims[0]]);
        let flat = self.op(output, "Reshape", &[a, &flat_shape]);
        let product = self.op(output, "MatMul", &[&flat, b]);
        let mut out_dims = a_dims[..a_dims.len() - 1].to_vec();
        out_dims.push(b_dims[1]);
        let out_shape = self.ints(output, &out_dims);
        self.push(output, "Reshape", &[&product, &out_shape], vec![], Some(output));
    }
}

// ---- helpers ------------------------------------------------------------------------------
