//! Shape inference: one pass over a graph's nodes that records every value's static shape and
//! folds (see the `fold` module) every node whose inputs have become constant.

use std::collections::{HashMap, HashSet};

use edgellm::bail;
use edgellm::Result;
use protobuf::RepeatedField;
use wonnx::onnx::{GraphProto, ModelProto, NodeProto, TensorProto};

use super::dims::{broadcast, element_count, matmul_dims, normalize_axes, normalize_axis, reshape_dims};
use super::fold::{evaluate, FOLDABLE};
use super::node::{attr_int, attribute, label, transpose_perm};
use super::tensor::{constant_value, Data, Tensor};
use super::{declared_shape, value_info_proto, ValueShape, BOOL, FLOAT};

/// The largest tensor folded on the CPU: shape arithmetic and position tables are a few
/// thousand values; a graph asking for more (a hostile ConstantOfShape, an Expand to millions)
/// is left to the runtime, which checks its buffers against the GPU's limits, instead of being
/// allocated here.
const MAX_FOLDED_ELEMENTS: usize = 1 << 22;

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
/// The state of one [`infer_shapes`] pass over a graph's nodes, in their (topological) order.
pub(super) struct Pass<'g> {
    shapes: HashMap<String, ValueShape>,
    /// Constant values by name: folded outputs, and the initializers folding has read.
    pub(super) constants: HashMap<String, Tensor>,
    initializers: HashMap<&'g str, &'g TensorProto>,
}

impl<'g> Pass<'g> {
    pub(super) fn new(graph: &'g GraphProto) -> Result<Self> {
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
    pub(super) fn visit(&mut self, node: &NodeProto) -> Result<bool> {
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
            || outputs.iter().any(|o| element_count(&o.dims) > MAX_FOLDED_ELEMENTS)
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
                // A repeated axis leaves fewer new axes than the rank counted on.
                let mut rest = x.dims.iter();
                let dims: Option<Vec<i64>> =
                    (0..rank).map(|i| if axes.contains(&i) { Some(1) } else { rest.next().copied() }).collect();
                match dims {
                    Some(dims) if rest.next().is_none() => shape(x.elem_type, dims),
                    _ => return unsupported("its axes repeat"),
                }
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
pub(super) fn slice_plan(
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
pub(super) fn reduced_axes(node: &NodeProto, axes: Option<Vec<i64>>, rank: usize) -> Option<Vec<usize>> {
    match axes {
        Some(axes) if !axes.is_empty() => normalize_axes(&axes, rank),
        _ if attr_int(node, "noop_with_empty_axes", 0) != 0 => Some(vec![]),
        _ => Some((0..rank).collect()),
    }
}

fn range_count(start: f64, limit: f64, delta: f64) -> i64 {
    ((limit - start) / delta).ceil().max(0.0) as i64
}

pub(super) struct SliceAxis {
    pub(super) start: i64,
    pub(super) step: i64,
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
