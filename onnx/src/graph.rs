//! A small builder for static-shape ONNX graphs: every value it creates carries its shape, so
//! the graph it writes has the `value_info` for each intermediate that wonnx requires (wonnx
//! does no shape inference of its own).

use protobuf::ProtobufEnum;
use wonnx::onnx::{AttributeProto, ModelProto, NodeProto, TensorProto, TensorProto_DataType, ValueInfoProto};
use wonnx::utils::{attribute, initializer_int64, model_with_opset, node, tensor};

/// Opset 13: the newest whose Softmax and ReduceMean wonnx implements (ReduceMean still takes
/// its axes as an attribute there).
pub const OPSET: i64 = 13;

/// A named value and its shape.
#[derive(Clone, Debug)]
pub struct Value {
    pub name: String,
    pub dims: Vec<i64>,
}

#[derive(Default)]
pub struct GraphBuilder {
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    infos: Vec<ValueInfoProto>,
    initializers: Vec<TensorProto>,
    nodes: Vec<NodeProto>,
    prefix: String,
    count: usize,
}

impl GraphBuilder {
    /// Names of values created from now on start with `prefix` ("l3." for layer 3).
    pub fn set_prefix(&mut self, prefix: &str) {
        self.prefix = prefix.to_string();
    }

    pub fn input(&mut self, name: &str, dims: &[i64]) -> Value {
        self.inputs.push(tensor(name, dims));
        Value { name: name.into(), dims: dims.into() }
    }

    /// Make `v` (a node's output) a graph output named `name`. The value is renamed where it is
    /// produced and used, rather than copied through an Identity node, which wonnx removes.
    pub fn output(&mut self, v: &Value, name: &str) {
        for n in &mut self.nodes {
            for io in n.mut_output().iter_mut() {
                if *io == v.name {
                    *io = name.to_string();
                }
            }
            for io in n.mut_input().iter_mut() {
                if *io == v.name {
                    *io = name.to_string();
                }
            }
        }
        self.infos.retain(|i| i.get_name() != v.name);
        self.outputs.push(tensor(name, &v.dims));
    }

    /// Add a float initializer (weights, tables, constants).
    pub fn weight(&mut self, t: TensorProto) -> Value {
        let v = Value { name: t.get_name().to_string(), dims: t.get_dims().to_vec() };
        self.initializers.push(t);
        v
    }

    pub fn constant(&mut self, name: &str, data: Vec<f32>, dims: &[i64]) -> Value {
        self.weight(float_tensor(&format!("{}{name}", self.prefix), &data, dims))
    }

    pub fn int64_constant(&mut self, name: &str, data: Vec<i64>, dims: &[i64]) -> Value {
        let name = format!("{}{name}", self.prefix);
        self.initializers.push(initializer_int64(&name, data, dims.to_vec()));
        Value { name, dims: dims.into() }
    }

    /// Apply `op`, whose single output has shape `dims`.
    pub fn op(&mut self, op: &str, inputs: &[&Value], attrs: Vec<AttributeProto>, dims: &[i64]) -> Value {
        self.count += 1;
        let name = format!("{}{}{}", self.prefix, op.to_lowercase(), self.count);
        let input_names: Vec<&str> = inputs.iter().map(|v| v.name.as_str()).collect();
        self.nodes.push(node(input_names, vec![&name], &name, op, attrs));
        self.infos.push(tensor(&name, dims));
        Value { name, dims: dims.into() }
    }

    pub fn reshape(&mut self, x: &Value, dims: &[i64]) -> Value {
        self.count += 1;
        let name = format!("{}shape{}", self.prefix, self.count);
        let rank = dims.len() as i64;
        self.initializers.push(initializer_int64(&name, dims.to_vec(), vec![rank]));
        let shape = Value { name, dims: vec![rank] };
        self.op("Reshape", &[x, &shape], vec![], dims)
    }

    pub fn matmul(&mut self, a: &Value, b: &Value) -> Value {
        let mut dims = a.dims.clone();
        if let (Some(d), Some(&n)) = (dims.last_mut(), b.dims.last()) {
            *d = n;
        }
        self.op("MatMul", &[a, b], vec![], &dims)
    }

    /// An elementwise binary op; the output takes the broadcast shape.
    pub fn binary(&mut self, op: &str, a: &Value, b: &Value) -> Value {
        let rank = a.dims.len().max(b.dims.len());
        let pad = |d: &[i64]| [vec![1; rank - d.len()], d.to_vec()].concat();
        let dims: Vec<i64> = pad(&a.dims).iter().zip(pad(&b.dims)).map(|(&x, y)| x.max(y)).collect();
        self.op(op, &[a, b], vec![], &dims)
    }

    pub fn unary(&mut self, op: &str, x: &Value) -> Value {
        self.op(op, &[x], vec![], &x.dims.clone())
    }

    pub fn transpose(&mut self, x: &Value, perm: &[i64]) -> Value {
        let dims: Vec<i64> = perm.iter().map(|&p| x.dims[p as usize]).collect();
        self.op("Transpose", &[x], vec![attribute("perm", perm.to_vec())], &dims)
    }

    /// Concatenate along the first axis (the only one wonnx concatenates correctly: it joins
    /// the flat buffers).
    pub fn concat0(&mut self, a: &Value, b: &Value) -> Value {
        let mut dims = a.dims.clone();
        dims[0] += b.dims[0];
        self.op("Concat", &[a, b], vec![attribute("axis", 0i64)], &dims)
    }

    pub fn finish(self, doc: &str) -> ModelProto {
        let mut g = wonnx::utils::graph(self.inputs, self.outputs, self.infos, self.initializers, self.nodes);
        g.set_name(doc.to_string());
        let mut model = model_with_opset(g, OPSET);
        model.set_producer_name("edgellm".into());
        model.set_doc_string(doc.to_string());
        model
    }
}

/// A float tensor stored as raw little-endian bytes (compact in protobuf, read by wonnx).
pub fn float_tensor(name: &str, data: &[f32], dims: &[i64]) -> TensorProto {
    assert_eq!(dims.iter().product::<i64>() as usize, data.len(), "tensor '{name}'");
    let mut t = TensorProto::new();
    t.set_name(name.to_string());
    t.set_dims(dims.to_vec());
    t.set_data_type(TensorProto_DataType::FLOAT.value());
    t.set_raw_data(data.iter().flat_map(|x| x.to_le_bytes()).collect());
    t
}
