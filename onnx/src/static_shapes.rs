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
//!   (LayerNormalization, Erf, MatMul of a stack by a matrix) into ones it runs, with the same
//!   math, and refuses with the operator's name whatever is left that wonnx cannot run.

use std::collections::{HashMap, HashSet};

use edgellm::bail;
use edgellm::Result;
use protobuf::{ProtobufEnum, RepeatedField};
use wonnx::onnx::{
    AttributeProto, AttributeProto_AttributeType, GraphProto, ModelProto, NodeProto, TensorProto, TensorProto_DataType,
    ValueInfoProto,
};

use crate::runtime;

const FLOAT: i32 = TensorProto_DataType::FLOAT as i32;
const INT64: i32 = TensorProto_DataType::INT64 as i32;
const BOOL: i32 = TensorProto_DataType::BOOL as i32;

/// The newest ONNX opset wonnx 0.5.1 accepts (its Softmax refuses later ones).
const WONNX_MAX_OPSET: i64 = 15;

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

/// Infer the static shape of every value of a graph whose inputs all have static shapes, write
/// them as `value_info` (and into the graph outputs), and fold on the CPU every node whose inputs
/// are all constant (Constant, Shape and Size nodes always are once shapes are static). Folded
/// nodes are removed; the constants that remaining nodes use become initializers.
pub fn infer_shapes(model: &mut ModelProto) -> Result<()> {
    let graph = model.get_graph();
    let mut pass = Pass::new(graph)?;
    let mut kept = HashSet::new();
    for (index, node) in graph.get_node().iter().enumerate() {
        if !pass.visit(node)? {
            kept.insert(index);
        }
    }
    let kept_nodes = || graph.get_node().iter().enumerate().filter(|(i, _)| kept.contains(i)).map(|(_, n)| n);

    let output_names: HashSet<&str> = graph.get_output().iter().map(|o| o.get_name()).collect();
    let mut used: HashSet<String> = output_names.iter().map(|n| n.to_string()).collect();
    for node in kept_nodes() {
        used.extend(node.get_input().iter().filter(|n| !n.is_empty()).cloned());
    }
    let mut folded: Vec<&String> =
        pass.constants.keys().filter(|n| used.contains(*n) && !pass.initializers.contains_key(n.as_str())).collect();
    folded.sort();
    let folded: Vec<TensorProto> = folded.into_iter().map(|name| pass.constants[name].encode(name)).collect();

    let mut value_info = Vec::new();
    for node in kept_nodes() {
        for name in node.get_output().iter().filter(|n| !n.is_empty() && !output_names.contains(n.as_str())) {
            value_info.push(value_info_proto(name, &pass.shapes[name]));
        }
    }
    let mut outputs = Vec::new();
    for output in graph.get_output() {
        let name = output.get_name();
        if pass.constants.contains_key(name) {
            bail!(
                UnsupportedShape,
                "output '{name}' is a constant once the input sizes are fixed; wonnx cannot return a constant"
            );
        }
        match pass.shapes.get(name) {
            Some(shape) => outputs.push(value_info_proto(name, shape)),
            None => bail!(InvalidOnnx, "output '{name}' is not produced by any node"),
        }
    }

    // Only now change the graph, so that an error leaves it as it was.
    let graph = model.mut_graph();
    let nodes: Vec<NodeProto> =
        graph.take_node().into_iter().enumerate().filter(|(i, _)| kept.contains(i)).map(|(_, n)| n).collect();
    // Original initializers first, in their order, then the folded constants still in use.
    let mut initializers: Vec<TensorProto> =
        graph.take_initializer().into_iter().filter(|t| used.contains(t.get_name())).collect();
    initializers.extend(folded);
    graph.set_node(RepeatedField::from_vec(nodes));
    graph.set_initializer(RepeatedField::from_vec(initializers));
    graph.set_value_info(RepeatedField::from_vec(value_info));
    graph.set_output(RepeatedField::from_vec(outputs));
    Ok(())
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

/// Rewrite a statically shaped graph (after [`fix_dynamic_axes`]) into operators and variants
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

// ---- shape inference and constant folding -------------------------------------------------

/// The state of one [`infer_shapes`] pass over a graph's nodes, in their (topological) order.
struct Pass<'g> {
    shapes: HashMap<String, ValueShape>,
    /// Constant values by name: folded outputs, and the initializers folding has read.
    constants: HashMap<String, Tensor>,
    initializers: HashMap<&'g str, &'g TensorProto>,
}

impl<'g> Pass<'g> {
    fn new(graph: &'g GraphProto) -> Result<Self> {
        let initializers: HashMap<&str, &TensorProto> =
            graph.get_initializer().iter().map(|t| (t.get_name(), t)).collect();
        let mut shapes: HashMap<String, ValueShape> = initializers
            .iter()
            .map(|(name, t)| {
                (name.to_string(), ValueShape { elem_type: t.get_data_type(), dims: t.get_dims().to_vec() })
            })
            .collect();
        for input in graph.get_input() {
            if !initializers.contains_key(input.get_name()) {
                shapes.insert(input.get_name().to_string(), declared_shape(input)?);
            }
        }
        Ok(Self { shapes, constants: HashMap::new(), initializers })
    }

    fn is_constant(&self, name: &str) -> bool {
        self.constants.contains_key(name) || self.initializers.contains_key(name)
    }

    /// Decode a constant (lazily: only what folding needs; the big weights never are).
    fn load(&mut self, name: &str) -> Result<Option<&Tensor>> {
        if !self.constants.contains_key(name) {
            let Some(initializer) = self.initializers.get(name) else { return Ok(None) };
            let Some(tensor) = Tensor::decode(initializer)? else { return Ok(None) };
            self.constants.insert(name.to_string(), tensor);
        }
        Ok(self.constants.get(name))
    }

    fn input_shape(&self, node: &NodeProto, index: usize) -> Result<ValueShape> {
        let Some(name) = node.get_input().get(index).filter(|n| !n.is_empty()) else {
            bail!(InvalidOnnx, "{}: input {index} is missing", label(node));
        };
        match self.shapes.get(name) {
            Some(shape) => Ok(shape.clone()),
            None => bail!(InvalidOnnx, "{}: its input '{name}' is not produced by any earlier node", label(node)),
        }
    }

    fn has_input(node: &NodeProto, index: usize) -> bool {
        node.get_input().get(index).is_some_and(|n| !n.is_empty())
    }

    /// An input that steers the operator (a shape, axes, slice bounds) as integers; it must be
    /// constant once the input sizes are fixed.
    fn const_ints(&mut self, node: &NodeProto, index: usize) -> Result<Vec<i64>> {
        let Some(name) = node.get_input().get(index).filter(|n| !n.is_empty()).cloned() else {
            bail!(InvalidOnnx, "{}: input {index} is missing", label(node));
        };
        match self.load(&name)? {
            Some(Tensor { data: Data::I64(values), .. }) => Ok(values.clone()),
            Some(_) => bail!(InvalidOnnx, "{}: its input '{name}' is not an int64 tensor", label(node)),
            None => bail!(
                UnsupportedShape,
                "{}: its input '{name}' is computed at run time, but wonnx needs it constant once the input sizes are fixed",
                label(node)
            ),
        }
    }

    /// Axes from the `axes` input (newer opsets) or attribute (older ones); None if neither.
    fn axes(&mut self, node: &NodeProto, input: usize) -> Result<Option<Vec<i64>>> {
        if Self::has_input(node, input) {
            return Ok(Some(self.const_ints(node, input)?));
        }
        Ok(attribute(node, "axes").map(|a| a.get_ints().to_vec()))
    }

    /// Record the node's outputs; returns whether it was folded into constants.
    fn visit(&mut self, node: &NodeProto) -> Result<bool> {
        let folded = match node.get_op_type() {
            "Constant" => Some(vec![constant_value(node)?]),
            "Shape" => {
                let dims = self.input_shape(node, 0)?.dims;
                let rank = dims.len() as i64;
                let clamp = |i: i64| (if i < 0 { i + rank } else { i }).clamp(0, rank) as usize;
                let (start, end) = (clamp(attr_int(node, "start", 0)), clamp(attr_int(node, "end", rank)));
                let values = dims[start..end.max(start)].to_vec();
                Some(vec![Tensor { dims: vec![values.len() as i64], data: Data::I64(values) }])
            }
            "Size" => {
                let count = self.input_shape(node, 0)?.dims.iter().product();
                Some(vec![Tensor { dims: vec![], data: Data::I64(vec![count]) }])
            }
            _ => None,
        };
        let (outputs, folded) = match folded {
            Some(tensors) => (tensors.iter().map(Tensor::shape).collect(), Some(tensors)),
            None => {
                let outputs = self.infer(node)?;
                let folded = self.fold(node, &outputs)?;
                (outputs, folded)
            }
        };
        for (index, name) in node.get_output().iter().enumerate().filter(|(_, n)| !n.is_empty()) {
            let Some(shape) = outputs.get(index) else {
                bail!(UnsupportedOperator, "{}: its output {index} ('{name}') is not supported", label(node));
            };
            self.shapes.insert(name.clone(), shape.clone());
        }
        let Some(tensors) = folded else { return Ok(false) };
        for (name, tensor) in node.get_output().iter().zip(tensors) {
            if !name.is_empty() {
                self.constants.insert(name.clone(), tensor);
            }
        }
        Ok(true)
    }

    /// Evaluate the node on the CPU if all its inputs are constant and it is one this pass can
    /// evaluate.
    fn fold(&mut self, node: &NodeProto, outputs: &[ValueShape]) -> Result<Option<Vec<Tensor>>> {
        if !FOLDABLE.contains(&node.get_op_type())
            || !node.get_input().iter().all(|n| n.is_empty() || self.is_constant(n))
        {
            return Ok(None);
        }
        for name in node.get_input().iter().filter(|n| !n.is_empty()) {
            if self.load(name)?.is_none() {
                return Ok(None); // a type this pass does not evaluate: leave it to the runtime
            }
        }
        let inputs: Vec<Option<&Tensor>> =
            node.get_input().iter().map(|n| if n.is_empty() { None } else { self.constants.get(n) }).collect();
        evaluate(node, &inputs, outputs)
    }

    fn infer(&mut self, node: &NodeProto) -> Result<Vec<ValueShape>> {
        let op = node.get_op_type();
        let unsupported =
            |what: &str| -> Result<Vec<ValueShape>> { bail!(UnsupportedShape, "{}: {what}", label(node)) };
        let shape = |elem_type: i32, dims: Vec<i64>| ValueShape { elem_type, dims };
        let x = self.input_shape(node, 0);

        if SAME_SHAPE.contains(&op) {
            let x = x?;
            let mut outputs = vec![x.clone()];
            match op {
                // Dropout's optional mask output.
                "Dropout" => outputs.push(shape(BOOL, x.dims.clone())),
                // LayerNormalization's optional Mean and InvStdDev outputs.
                "LayerNormalization" => {
                    let axis = normalize_axis(attr_int(node, "axis", -1), x.dims.len()).unwrap_or(0);
                    let reduced: Vec<i64> =
                        x.dims.iter().enumerate().map(|(i, &d)| if i < axis { d } else { 1 }).collect();
                    outputs.push(shape(FLOAT, reduced.clone()));
                    outputs.push(shape(FLOAT, reduced));
                }
                _ => {}
            }
            return Ok(outputs);
        }
        if BROADCAST.contains(&op) || op == "Where" {
            let inputs: Vec<ValueShape> =
                (0..node.get_input().len()).map(|i| self.input_shape(node, i)).collect::<Result<_>>()?;
            let dims: Vec<&[i64]> = inputs.iter().map(|s| s.dims.as_slice()).collect();
            let Some(out) = broadcast(&dims) else {
                return unsupported(&format!("its input shapes {dims:?} do not broadcast"));
            };
            let elem_type = match op {
                "Where" => inputs[1].elem_type,
                op if COMPARISON.contains(&op) => BOOL,
                _ => inputs[0].elem_type,
            };
            return Ok(vec![shape(elem_type, out)]);
        }

        let out = match op {
            "Cast" => shape(attr_int(node, "to", FLOAT as i64) as i32, x?.dims),
            "MatMul" => {
                let (a, b) = (x?, self.input_shape(node, 1)?);
                match matmul_dims(&a.dims, &b.dims) {
                    Some(dims) => shape(a.elem_type, dims),
                    None => return unsupported(&format!("cannot multiply {:?} by {:?}", a.dims, b.dims)),
                }
            }
            "Gemm" => {
                let (a, b) = (x?, self.input_shape(node, 1)?);
                if a.dims.len() != 2 || b.dims.len() != 2 {
                    return unsupported("Gemm needs two matrices");
                }
                let m = if attr_int(node, "transA", 0) != 0 { a.dims[1] } else { a.dims[0] };
                let n = if attr_int(node, "transB", 0) != 0 { b.dims[0] } else { b.dims[1] };
                shape(a.elem_type, vec![m, n])
            }
            "Gather" => {
                let (data, indices) = (x?, self.input_shape(node, 1)?);
                let Some(axis) = normalize_axis(attr_int(node, "axis", 0), data.dims.len()) else {
                    return unsupported("its axis is out of range");
                };
                let mut dims = data.dims[..axis].to_vec();
                dims.extend(&indices.dims);
                dims.extend(&data.dims[axis + 1..]);
                shape(data.elem_type, dims)
            }
            "Reshape" => {
                let x = x?;
                let target = self.const_ints(node, 1)?;
                match reshape_dims(&x.dims, &target, attr_int(node, "allowzero", 0) != 0) {
                    Some(dims) => shape(x.elem_type, dims),
                    None => return unsupported(&format!("cannot reshape {:?} to {target:?}", x.dims)),
                }
            }
            "Flatten" => {
                let x = x?;
                // Flatten's axis may also be the rank: everything before it.
                let Some(axis) = normalize_axis(attr_int(node, "axis", 1), x.dims.len() + 1) else {
                    return unsupported("its axis is out of range");
                };
                shape(x.elem_type, vec![x.dims[..axis].iter().product(), x.dims[axis..].iter().product()])
            }
            "Transpose" => {
                let x = x?;
                let perm = transpose_perm(node, x.dims.len());
                let mut sorted = perm.clone();
                sorted.sort_unstable();
                if sorted != (0..x.dims.len()).collect::<Vec<_>>() {
                    return unsupported(&format!("its permutation {perm:?} does not fit rank {}", x.dims.len()));
                }
                shape(x.elem_type, perm.iter().map(|&p| x.dims[p]).collect())
            }
            "Unsqueeze" => {
                let x = x?;
                let axes = self.axes(node, 1)?.unwrap_or_default();
                let rank = x.dims.len() + axes.len();
                let Some(axes) = normalize_axes(&axes, rank).filter(|a| !a.is_empty()) else {
                    return unsupported("its axes are missing or out of range");
                };
                let mut rest = x.dims.iter();
                shape(x.elem_type, (0..rank).map(|i| if axes.contains(&i) { 1 } else { *rest.next().unwrap() }).collect())
            }
            "Squeeze" => {
                let x = x?;
                let axes = match self.axes(node, 1)? {
                    Some(axes) => match normalize_axes(&axes, x.dims.len()) {
                        Some(axes) => axes,
                        None => return unsupported("its axes are out of range"),
                    },
                    None => (0..x.dims.len()).filter(|&i| x.dims[i] == 1).collect(),
                };
                shape(x.elem_type, x.dims.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect())
            }
            "Concat" => {
                let inputs: Vec<ValueShape> =
                    (0..node.get_input().len()).map(|i| self.input_shape(node, i)).collect::<Result<_>>()?;
                let rank = inputs[0].dims.len();
                let Some(axis) = normalize_axis(attr_int(node, "axis", 0), rank) else {
                    return unsupported("its axis is out of range");
                };
                let mut dims = inputs[0].dims.clone();
                dims[axis] = 0;
                for s in &inputs {
                    if s.dims.len() != rank || (0..rank).any(|i| i != axis && s.dims[i] != inputs[0].dims[i]) {
                        return unsupported("its inputs differ in shape beyond the concatenation axis");
                    }
                    dims[axis] += s.dims[axis];
                }
                shape(inputs[0].elem_type, dims)
            }
            op if op.starts_with("Reduce") => {
                let x = x?;
                let axes = self.axes(node, 1)?;
                let Some(axes) = reduced_axes(node, axes, x.dims.len()) else {
                    return unsupported("its axes are out of range");
                };
                let keep = attr_int(node, "keepdims", 1) != 0;
                let dims = x
                    .dims
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &d)| match (axes.contains(&i), keep) {
                        (false, _) => Some(d),
                        (true, true) => Some(1),
                        (true, false) => None,
                    })
                    .collect();
                shape(x.elem_type, dims)
            }
            "Slice" => {
                let x = x?;
                let plan = slice_plan(node, &x.dims, |i| self.const_ints(node, i))?;
                shape(x.elem_type, plan.iter().map(|p| p.count).collect())
            }
            "Expand" => {
                let x = x?;
                let target = self.const_ints(node, 1)?;
                match broadcast(&[&x.dims, &target]) {
                    Some(dims) => shape(x.elem_type, dims),
                    None => return unsupported(&format!("cannot expand {:?} to {target:?}", x.dims)),
                }
            }
            "ConstantOfShape" => {
                let dims = self.const_ints(node, 0)?;
                let elem_type = attribute(node, "value").map_or(FLOAT, |a| a.get_t().get_data_type());
                shape(elem_type, dims)
            }
            "Range" => {
                let elem_type = x?.elem_type;
                let mut bounds = Vec::new();
                for i in 0..3 {
                    match self.load(&node.get_input()[i])? {
                        Some(t) if t.data.len() == 1 => bounds.push(t.data.as_f64()[0]),
                        _ => return unsupported("its bounds are computed at run time"),
                    }
                }
                shape(elem_type, vec![range_count(bounds[0], bounds[1], bounds[2])])
            }
            _ => bail!(
                UnsupportedOperator,
                "{}: the ONNX operator {op} is not supported by the static-shape pass (its output shape cannot be inferred)",
                label(node)
            ),
        };
        Ok(vec![out])
    }
}

/// Per data axis: where a Slice starts, its step and how many elements it takes. `input_ints`
/// reads the node's constant integer inputs.
fn slice_plan(
    node: &NodeProto,
    dims: &[i64],
    mut input_ints: impl FnMut(usize) -> Result<Vec<i64>>,
) -> Result<Vec<SliceAxis>> {
    let has_input = |i: usize| node.get_input().get(i).is_some_and(|n| !n.is_empty());
    // Opset 10 moved starts/ends/axes from attributes to inputs and added steps.
    let (starts, ends, axes, steps) = if has_input(1) {
        let (starts, ends) = (input_ints(1)?, input_ints(2)?);
        let axes = if has_input(3) { Some(input_ints(3)?) } else { None };
        let steps = if has_input(4) { Some(input_ints(4)?) } else { None };
        (starts, ends, axes, steps)
    } else {
        let ints = |name: &str| attribute(node, name).map(|a| a.get_ints().to_vec());
        (ints("starts").unwrap_or_default(), ints("ends").unwrap_or_default(), ints("axes"), None)
    };
    let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        bail!(InvalidOnnx, "{}: its starts, ends, axes and steps differ in length", label(node));
    }
    let mut plan: Vec<SliceAxis> = dims.iter().map(|&d| SliceAxis { start: 0, step: 1, count: d }).collect();
    for i in 0..starts.len() {
        let Some(axis) = normalize_axis(axes[i], dims.len()) else {
            bail!(InvalidOnnx, "{}: its axis {} is out of range", label(node), axes[i]);
        };
        let (dim, step) = (dims[axis], steps[i]);
        if step == 0 {
            bail!(InvalidOnnx, "{}: a step of 0", label(node));
        }
        let resolve = |v: i64| if v < 0 { v.saturating_add(dim) } else { v };
        let (start, end) = (resolve(starts[i]), resolve(ends[i]));
        let (start, count) = if step > 0 {
            let (start, end) = (start.clamp(0, dim), end.clamp(0, dim));
            (start, ((end - start + step - 1) / step).max(0))
        } else {
            let (start, end) = (start.clamp(0, dim - 1), end.clamp(-1, dim - 1));
            (start, ((start - end - step - 1) / -step).max(0))
        };
        plan[axis] = SliceAxis { start, step, count };
    }
    Ok(plan)
}

/// The axes a Reduce* node reduces: its `axes` (input or attribute), all of them when empty,
/// none with `noop_with_empty_axes`.
fn reduced_axes(node: &NodeProto, axes: Option<Vec<i64>>, rank: usize) -> Option<Vec<usize>> {
    match axes {
        Some(axes) if !axes.is_empty() => normalize_axes(&axes, rank),
        _ if attr_int(node, "noop_with_empty_axes", 0) != 0 => Some(vec![]),
        _ => Some((0..rank).collect()),
    }
}

fn range_count(start: f64, limit: f64, delta: f64) -> i64 {
    ((limit - start) / delta).ceil().max(0.0) as i64
}

struct SliceAxis {
    start: i64,
    step: i64,
    count: i64,
}

/// Operators whose first output has the shape and type of their first input.
#[rustfmt::skip]
const SAME_SHAPE: &[&str] = &[
    "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "BatchNormalization", "Ceil", "Celu", "Clip", "Cos",
    "Cosh", "Dropout", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "Identity",
    "InstanceNormalization", "LayerNormalization", "LeakyRelu", "Log", "LogSoftmax", "LpNormalization", "Mish", "Neg",
    "Not", "Reciprocal", "Relu", "Round", "Selu", "Shrink", "Sigmoid", "Sign", "Sin", "Sinh", "Softmax", "Softplus",
    "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu",
];

/// Element-wise operators over inputs broadcast together (numpy rules).
#[rustfmt::skip]
const BROADCAST: &[&str] = &[
    "Add", "And", "BitShift", "Div", "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Max", "Mean",
    "Min", "Mod", "Mul", "Or", "PRelu", "Pow", "Sub", "Sum", "Xor",
];

/// The broadcast operators whose result is boolean.
const COMPARISON: &[&str] = &["And", "Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual", "Or", "Xor"];

/// The operators [`evaluate`] computes on the CPU when all their inputs are constant.
#[rustfmt::skip]
const FOLDABLE: &[&str] = &[
    "Abs", "Add", "Cast", "Concat", "ConstantOfShape", "Div", "Dropout", "Equal", "Exp", "Expand", "Flatten",
    "Gather", "Greater", "Identity", "Less", "Mul", "Neg", "Range", "Reciprocal", "ReduceMean", "ReduceSum",
    "Reshape", "Sign", "Slice", "Sqrt", "Squeeze", "Sub", "Transpose", "Unsqueeze", "Where",
];

/// Compute a node from constant inputs, or None for type combinations this pass leaves alone.
fn evaluate(node: &NodeProto, inputs: &[Option<&Tensor>], outputs: &[ValueShape]) -> Result<Option<Vec<Tensor>>> {
    let op = node.get_op_type();
    let out = &outputs[0];
    let x = inputs[0].expect("folded nodes have their first input");
    let arg = |i: usize| inputs.get(i).copied().flatten();
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
            let (indices, axis) = (arg(1).unwrap(), normalize_axis(attr_int(node, "axis", 0), x.dims.len()).unwrap());
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
            let axis = normalize_axis(attr_int(node, "axis", 0), x.dims.len()).unwrap();
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
                let k = offsets.iter().rposition(|&o| o <= index[axis]).unwrap();
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
            let bounds: Vec<f64> = (0..3).map(|i| arg(i).unwrap().data.as_f64()[0]).collect();
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
            let (a, b) = (arg(1).unwrap(), arg(2).unwrap());
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
            let axes = reduced_axes(node, axes, x.dims.len()).unwrap();
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
                sums[at] += *values.next().unwrap() as f64;
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
                "Abs" => Some(Data::I64(v.iter().map(|a| a.abs()).collect())),
                "Neg" => Some(Data::I64(v.iter().map(|a| -a).collect())),
                "Sign" => Some(Data::I64(v.iter().map(|a| a.signum()).collect())),
                _ => None,
            },
            Data::Bool(_) => None,
        },
        _ => {
            let b = arg(1).unwrap();
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
            "Div" if y.iter().all(|&d| d != 0) => Data::I64(zip(x, y, ia, ib, |a, b| a / b)),
            "Equal" => Data::Bool(zip(x, y, ia, ib, |a, b| a == b)),
            "Less" => Data::Bool(zip(x, y, ia, ib, |a, b| a < b)),
            "Greater" => Data::Bool(zip(x, y, ia, ib, |a, b| a > b)),
            _ => return None,
        },
        (Data::Bool(x), Data::Bool(y)) if op == "Equal" => Data::Bool(zip(x, y, ia, ib, |a, b| a == b)),
        _ => return None,
    })
}

// ---- constants ----------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq)]
enum Data {
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

    fn len(&self) -> usize {
        match self {
            Data::F32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::Bool(v) => v.len(),
        }
    }

    fn pick(&self, indices: &[usize]) -> Data {
        match self {
            Data::F32(v) => Data::F32(indices.iter().map(|&i| v[i]).collect()),
            Data::I64(v) => Data::I64(indices.iter().map(|&i| v[i]).collect()),
            Data::Bool(v) => Data::Bool(indices.iter().map(|&i| v[i]).collect()),
        }
    }

    /// Elements picked as (which source, index in it); None if the sources differ in type.
    fn pick_from(sources: &[&Data], picks: &[(usize, usize)]) -> Option<Data> {
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

    fn as_f64(&self) -> Vec<f64> {
        match self {
            Data::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::I64(v) => v.iter().map(|&x| x as f64).collect(),
            Data::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    fn cast(&self, to: i32) -> Option<Data> {
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
struct Tensor {
    dims: Vec<i64>,
    data: Data,
}

impl Tensor {
    fn shape(&self) -> ValueShape {
        ValueShape { elem_type: self.data.elem_type(), dims: self.dims.clone() }
    }

    /// The tensor's values, or None for an element type this pass does not evaluate.
    fn decode(t: &TensorProto) -> Result<Option<Tensor>> {
        let raw = t.get_raw_data();
        let data = match t.get_data_type() {
            FLOAT if raw.is_empty() => Data::F32(t.get_float_data().to_vec()),
            FLOAT => Data::F32(raw.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()),
            INT64 if raw.is_empty() => Data::I64(t.get_int64_data().to_vec()),
            INT64 => Data::I64(raw.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect()),
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

    fn encode(&self, name: &str) -> TensorProto {
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
fn constant_value(node: &NodeProto) -> Result<Tensor> {
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

// ---- lowering for wonnx -------------------------------------------------------------------

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
        let name = (1..).map(|i| format!("{base}_{i}")).find(|n| !self.taken.contains(n)).unwrap();
        self.taken.insert(name.clone());
        name
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

fn label(node: &NodeProto) -> String {
    let name = match node.get_name() {
        "" => node.get_output().first().map_or("?", String::as_str),
        name => name,
    };
    format!("node '{name}' ({})", node.get_op_type())
}

fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.get_attribute().iter().find(|a| a.get_name() == name)
}

fn attr_int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attribute(node, name).map_or(default, |a| a.get_i())
}

fn attr_float(node: &NodeProto, name: &str, default: f32) -> f32 {
    attribute(node, name).map_or(default, |a| a.get_f())
}

fn int_attribute(name: &str, value: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.set_name(name.to_string());
    a.set_field_type(AttributeProto_AttributeType::INT);
    a.set_i(value);
    a
}

fn ints_attribute(name: &str, values: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.set_name(name.to_string());
    a.set_field_type(AttributeProto_AttributeType::INTS);
    a.set_ints(values.to_vec());
    a
}

fn transpose_perm(node: &NodeProto, rank: usize) -> Vec<usize> {
    match attribute(node, "perm") {
        Some(a) => a.get_ints().iter().map(|&p| p as usize).collect(),
        None => (0..rank).rev().collect(),
    }
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

fn normalize_axis(axis: i64, rank: usize) -> Option<usize> {
    let axis = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&axis).then_some(axis as usize)
}

fn normalize_axes(axes: &[i64], rank: usize) -> Option<Vec<usize>> {
    axes.iter().map(|&a| normalize_axis(a, rank)).collect()
}

fn element_count(dims: &[i64]) -> usize {
    dims.iter().product::<i64>() as usize
}

fn strides(dims: &[i64]) -> Vec<usize> {
    let mut strides = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1] as usize;
    }
    strides
}

/// Call `f` with every multi-index of a tensor of `dims`, in element order.
fn for_each_index(dims: &[i64], mut f: impl FnMut(&[usize])) {
    let count = element_count(dims);
    let mut index = vec![0usize; dims.len()];
    for _ in 0..count {
        f(&index);
        for axis in (0..dims.len()).rev() {
            index[axis] += 1;
            if index[axis] < dims[axis] as usize {
                break;
            }
            index[axis] = 0;
        }
    }
}

/// numpy broadcasting of several shapes; None if they do not broadcast.
fn broadcast(shapes: &[&[i64]]) -> Option<Vec<i64>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1; rank];
    for shape in shapes {
        let offset = rank - shape.len();
        for (i, &d) in shape.iter().enumerate() {
            let o = &mut out[offset + i];
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

/// For each element of a tensor of `out` dims, the index of the element it comes from in a
/// tensor of `dims` broadcast to `out`.
fn broadcast_indices(dims: &[i64], out: &[i64]) -> Vec<usize> {
    let offset = out.len() - dims.len();
    let in_strides = strides(dims);
    let mut indices = Vec::with_capacity(element_count(out));
    for_each_index(out, |index| {
        indices.push((0..dims.len()).filter(|&a| dims[a] != 1).map(|a| index[offset + a] * in_strides[a]).sum());
    });
    indices
}

fn matmul_dims(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    let (a_vector, b_vector) = (a.len() == 1, b.len() == 1);
    if a_vector {
        a.insert(0, 1);
    }
    if b_vector {
        b.push(1);
    }
    if a.len() < 2 || b.len() < 2 || a[a.len() - 1] != b[b.len() - 2] {
        return None;
    }
    let mut out = broadcast(&[&a[..a.len() - 2], &b[..b.len() - 2]])?;
    if !a_vector {
        out.push(a[a.len() - 2]);
    }
    if !b_vector {
        out.push(b[b.len() - 1]);
    }
    Some(out)
}

fn reshape_dims(input: &[i64], target: &[i64], allow_zero: bool) -> Option<Vec<i64>> {
    let total: i64 = input.iter().product();
    let mut out: Vec<i64> = target
        .iter()
        .enumerate()
        .map(|(i, &d)| if d == 0 && !allow_zero { input.get(i).copied() } else { Some(d) })
        .collect::<Option<_>>()?;
    let unknown: Vec<usize> = (0..out.len()).filter(|&i| out[i] == -1).collect();
    if unknown.len() > 1 || out.iter().any(|&d| d < -1) {
        return None;
    }
    if let Some(&i) = unknown.first() {
        let known: i64 = out.iter().filter(|&&d| d != -1).product();
        if known == 0 || total % known != 0 {
            return None;
        }
        out[i] = total / known;
    }
    (out.iter().product::<i64>() == total).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgellm::ErrorCode;
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
            graph(
                vec![input("X", &["batch", "sequence", "4"])],
                vec![input("Y", &["a", "b", "c"])],
                vec![],
                vec![],
                nodes,
            ),
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
        let mut m =
            model_with_opset(graph(vec![input("X", &["n"])], vec![input("Y", &["k"])], vec![], vec![], nodes), 13);
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
        let ln =
            node(vec!["X", "scale", "bias"], vec!["Y"], "ln", "LayerNormalization", vec![int_attribute("axis", -1)]);
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
}
