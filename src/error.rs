//! Error kinds with stable codes.
//!
//! Every failure that reaches a caller (Rust, the CLI or JavaScript) carries a `code` that
//! programs can match on and a `message` written for the person who has to fix the input.
//! The codes are part of the public API: add new ones, never rename old ones.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The bytes are not a well-formed GGUF file (magic, version, truncation, bad offsets).
    InvalidGguf,
    /// A tensor uses a quantization type edgellm cannot compute with.
    UnsupportedTensorType,
    /// `general.architecture` names a model family edgellm has no backend for.
    UnsupportedArchitecture,
    /// A metadata key the model or tokenizer needs is absent or has the wrong type.
    MissingMetadata,
    /// The model would not fit in the memory available (wasm32 has a 4 GiB address space).
    TooLarge,
    /// The prompt does not fit in the model's context window.
    ContextOverflow,
    /// The request itself is malformed (bad sampling value, empty prompt, unknown role...).
    InvalidRequest,
    /// The tokenizer could not be built or could not encode/decode.
    Tokenizer,
    /// The chat template could not be parsed or rendered.
    Template,
    /// The model failed while computing.
    Inference,
    /// Safetensors weights, config.json or tokenizer.json of a non-GGUF model are unusable.
    InvalidWeights,
    /// The bytes are not a usable ONNX model (not protobuf, no graph, bad initializer).
    InvalidOnnx,
    /// The ONNX graph uses an operator (or an operator variant) the WebGPU runtime lacks.
    UnsupportedOperator,
    /// An ONNX input has a dynamic dimension that cannot be fixed to a static size.
    UnsupportedShape,
    /// WebGPU is missing (no `navigator.gpu`, no adapter, no device): the ONNX backend cannot
    /// run; the GGUF/CPU backend still can.
    WebGpuUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidGguf => "invalid_gguf",
            Self::UnsupportedTensorType => "unsupported_tensor_type",
            Self::UnsupportedArchitecture => "unsupported_architecture",
            Self::MissingMetadata => "missing_metadata",
            Self::TooLarge => "too_large",
            Self::ContextOverflow => "context_overflow",
            Self::InvalidRequest => "invalid_request",
            Self::Tokenizer => "tokenizer_error",
            Self::Template => "template_error",
            Self::Inference => "inference_error",
            Self::InvalidWeights => "invalid_weights",
            Self::InvalidOnnx => "invalid_onnx",
            Self::UnsupportedOperator => "unsupported_operator",
            Self::UnsupportedShape => "unsupported_shape",
            Self::WebGpuUnavailable => "webgpu_unavailable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.message, self.code.as_str())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand used throughout the crate: `bail!(InvalidGguf, "…{}", x)`.
#[macro_export]
macro_rules! bail {
    ($code:ident, $($arg:tt)*) => {
        return Err($crate::error::Error::new($crate::error::ErrorCode::$code, format!($($arg)*)))
    };
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::new(ErrorCode::Inference, e.to_string())
    }
}

impl From<minijinja::Error> for Error {
    fn from(e: minijinja::Error) -> Self {
        // `{:#}` includes the template source location, which is what a user fixing a template needs.
        Error::new(ErrorCode::Template, format!("chat template: {e:#}"))
    }
}
