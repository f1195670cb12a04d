//! Reading a node's attributes (and naming the node in errors), and building attributes.

use wonnx::onnx::{AttributeProto, AttributeProto_AttributeType, NodeProto};

pub(super) fn label(node: &NodeProto) -> String {
    let name = match node.get_name() {
        "" => node.get_output().first().map_or("?", String::as_str),
        name => name,
    };
    format!("node '{name}' ({})", node.get_op_type())
}

pub(super) fn attribute<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.get_attribute().iter().find(|a| a.get_name() == name)
}

pub(super) fn attr_int(node: &NodeProto, name: &str, default: i64) -> i64 {
    attribute(node, name).map_or(default, |a| a.get_i())
}

pub(super) fn attr_float(node: &NodeProto, name: &str, default: f32) -> f32 {
    attribute(node, name).map_or(default, |a| a.get_f())
}

pub(super) fn int_attribute(name: &str, value: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.set_name(name.to_string());
    a.set_field_type(AttributeProto_AttributeType::INT);
    a.set_i(value);
    a
}

pub(super) fn ints_attribute(name: &str, values: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.set_name(name.to_string());
    a.set_field_type(AttributeProto_AttributeType::INTS);
    a.set_ints(values.to_vec());
    a
}

pub(super) fn transpose_perm(node: &NodeProto, rank: usize) -> Vec<usize> {
    match attribute(node, "perm") {
        Some(a) => a.get_ints().iter().map(|&p| p as usize).collect(),
        None => (0..rank).rev().collect(),
    }
}
