//! The one module that talks to wonnx (and through it to the GPU): WebGPU detection, graph
//! checks, session creation and runs. Everything else in this crate builds graphs or tensors.

use std::collections::HashMap;

use edgellm::bail;
use edgellm::{Error, ErrorCode, Result};
use wonnx::onnx::ModelProto;
use wonnx::utils::{InputTensor, OutputTensor};
use wonnx::{CompileError, SessionError};

/// The operators wonnx 0.5.1 compiles to shaders (compiler.rs) or removes while optimising the
/// graph (optimizer.rs: Constant, Shape, Size, and the reshaping ops it folds into buffers).
pub const SUPPORTED_OPERATORS: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "And",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "AveragePool",
    "BatchNormalization",
    "Cast",
    "Ceil",
    "Celu",
    "Clip",
    "Concat",
    "Constant",
    "Conv",
    "ConvLeakyRelu",
    "ConvMish",
    "ConvRelu",
    "Cos",
    "Cosh",
    "Div",
    "Dropout",
    "Elu",
    "Equal",
    "Exp",
    "Flatten",
    "Floor",
    "Gather",
    "Gemm",
    "GlobalAveragePool",
    "Greater",
    "GreaterOrEqual",
    "Identity",
    "LeakyRelu",
    "Less",
    "LessOrEqual",
    "Log",
    "MatMul",
    "MaxPool",
    "Mod",
    "Mul",
    "Neg",
    "OneHot",
    "Or",
    "PRelu",
    "Pad",
    "Pow",
    "Reciprocal",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "Relu",
    "Reshape",
    "Resize",
    "Round",
    "Shape",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Size",
    "Softmax",
    "Softplus",
    "Softsign",
    "Split",
    "Sqrt",
    "Squeeze",
    "Sub",
    "Tan",
    "Tanh",
    "Transpose",
    "Unsqueeze",
];

/// Refuse a graph that uses an operator wonnx lacks, naming it, before wonnx sees it (wonnx
/// reports some of these only when it reaches the node, and panics on a few).
pub fn check_operators(model: &ModelProto, what: &str) -> Result<()> {
    for node in model.get_graph().get_node() {
        let op = node.get_op_type();
        if !SUPPORTED_OPERATORS.contains(&op) {
            bail!(
                UnsupportedOperator,
                "{what}: node '{}' uses the ONNX operator {op}, which the WebGPU runtime (wonnx) does not implement",
                node.get_name()
            );
        }
    }
    Ok(())
}

fn error(what: &str, e: SessionError) -> Error {
    let code = match &e {
        SessionError::GpuError(wonnx::GpuError::CompileError { error, .. }) => match error {
            CompileError::UnimplementedOp(_) | CompileError::UnimplementedVariant { .. } => {
                ErrorCode::UnsupportedOperator
            }
            _ => ErrorCode::InvalidOnnx,
        },
        SessionError::IrError(_) | SessionError::OpsetError(_) | SessionError::UnknownOnnxOpsetVersion => {
            ErrorCode::InvalidOnnx
        }
        _ => ErrorCode::Inference,
    };
    Error::new(code, format!("{what}: {e}"))
}

/// Is there a WebGPU/Vulkan/Metal/DX12 adapter? wonnx panics (which kills a wasm module) when
/// there is none, so every session is created only after this said yes. Returns the adapter's
/// description.
pub async fn check_gpu() -> Result<String> {
    #[cfg(target_arch = "wasm32")]
    {
        let global = js_sys::global();
        let navigator = js_sys::Reflect::get(&global, &"navigator".into()).unwrap_or_default();
        let gpu = js_sys::Reflect::get(&navigator, &"gpu".into()).unwrap_or_default();
        if gpu.is_undefined() || gpu.is_null() {
            bail!(
                WebGpuUnavailable,
                "this browser has no WebGPU (navigator.gpu is missing): ONNX models cannot run here; GGUF models run on the CPU"
            );
        }
    }
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::util::backend_bits_from_env().unwrap_or(wgpu::Backends::PRIMARY),
        ..Default::default()
    });
    match wgpu::util::initialize_adapter_from_env_or_default(&instance, wgpu::Backends::PRIMARY, None).await {
        Some(adapter) => {
            let info = adapter.get_info();
            // Browsers hide the adapter's name unless asked for it explicitly.
            let name = if info.name.is_empty() { "WebGPU adapter" } else { info.name.as_str() };
            Ok(format!("{name} ({:?}, {:?})", info.backend, info.device_type))
        }
        None => bail!(
            WebGpuUnavailable,
            "no WebGPU adapter is available (no GPU, or GPU access is disabled): ONNX models cannot run here; GGUF models run on the CPU"
        ),
    }
}

/// Compile a graph for the GPU. `what` names it in errors ("layer 3", "paraphrase-MiniLM").
pub async fn session(model: ModelProto, what: &str) -> Result<wonnx::Session> {
    check_operators(&model, what)?;
    wonnx::Session::from_model(model).await.map_err(|e| error(what, e))
}

/// Run a compiled graph on f32 inputs; returns its outputs by name.
pub async fn run(
    session: &wonnx::Session,
    inputs: &[(&str, InputTensor<'_>)],
    what: &str,
) -> Result<HashMap<String, Vec<f32>>> {
    let inputs: HashMap<String, InputTensor<'_>> =
        inputs.iter().map(|(name, t)| (name.to_string(), t.clone())).collect();
    let outputs = session.run(&inputs).await.map_err(|e| error(what, e))?;
    outputs
        .into_iter()
        .map(|(name, t)| match t {
            OutputTensor::F32(v) => Ok((name, v)),
            other => bail!(InvalidOnnx, "{what}: output '{name}' is {other:?}-typed; f32 was expected"),
        })
        .collect()
}
