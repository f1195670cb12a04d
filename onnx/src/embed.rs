//! Sentence embeddings from an ONNX BERT encoder (e.g. paraphrase-MiniLM-L3-v2) on WebGPU
//! through wonnx: tokenizer.json, the graph with its dynamic axes fixed to one text of
//! `seq_len` tokens, mean pooling over real tokens, L2 normalisation — the sentence-transformers
//! recipe, so vectors compare by dot product.

use std::borrow::Cow;

use edgellm::bail;
use edgellm::{Error, ErrorCode, Result};
use protobuf::Message;
use tokenizers::{PaddingParams, PaddingStrategy, TruncationParams};
use wonnx::onnx::{ModelProto, ValueInfoProto};
use wonnx::utils::InputTensor;

use crate::runtime;
use crate::static_shapes::{self, ValueShape};

/// Names errors and GPU sessions.
const WHAT: &str = "ONNX embedder";

const INPUT_IDS: &str = "input_ids";
const ATTENTION_MASK: &str = "attention_mask";
const TOKEN_TYPE_IDS: &str = "token_type_ids";

pub struct OnnxEmbedder {
    session: wonnx::Session,
    tokenizer: tokenizers::Tokenizer,
    /// The graph output holding one vector per token, (1, seq_len, dim).
    token_output: String,
    has_token_type_ids: bool,
    seq_len: usize,
    pub dim: usize,
}

impl OnnxEmbedder {
    /// `onnx_bytes`: a BERT-style sentence-transformers export with inputs `input_ids`,
    /// `attention_mask` (and optionally `token_type_ids`) of dynamic (batch, sequence) axes and
    /// an output of token embeddings (batch, sequence, dim); `tokenizer_json`: its tokenizer.
    /// `seq_len`: the sequence length fixed into the graph; texts are padded or truncated to it.
    ///
    /// The graph is fixed to one text of `seq_len` tokens ([`static_shapes`]); an axis that
    /// cannot be fixed is refused naming the input. Needs WebGPU (natively: Vulkan, Metal or
    /// DX12; Mesa's lavapipe runs it on the CPU).
    pub async fn load(onnx_bytes: &[u8], tokenizer_json: &[u8], seq_len: usize) -> Result<Self> {
        let EmbedderGraph { model, token_output, has_token_type_ids, dim } = EmbedderGraph::prepare(onnx_bytes, seq_len)?;
        let mut tokenizer = tokenizers::Tokenizer::from_bytes(tokenizer_json)
            .map_err(|e| Error::new(ErrorCode::Tokenizer, format!("{WHAT}: tokenizer.json: {e}")))?;
        // The graph has exactly seq_len positions: truncate to them and pad the rest (the file's
        // own settings are whatever the model was trained with).
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: seq_len, ..Default::default() }))
            .map_err(|e| Error::new(ErrorCode::Tokenizer, format!("{WHAT}: tokenizer.json: {e}")))?;
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::Fixed(seq_len), ..Default::default() }));

        runtime::check_gpu().await?;
        let session = runtime::session(model, WHAT).await?;
        Ok(Self { session, tokenizer, token_output, has_token_type_ids, seq_len, dim })
    }

    /// One unit-length vector per text (so the dot product of two is their cosine), each the
    /// mean of the text's token embeddings over its real (not padding) tokens. Texts run one at
    /// a time: the graph is fixed to a batch of one.
    pub async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.iter().any(|t| t.trim().is_empty()) {
            bail!(InvalidRequest, "cannot embed an empty text");
        }
        let mut vectors = Vec::with_capacity(texts.len());
        for text in texts {
            let encoding = self
                .tokenizer
                .encode(*text, true)
                .map_err(|e| Error::new(ErrorCode::Tokenizer, format!("{WHAT}: tokenizing: {e}")))?;
            let ints = |values: &[u32]| -> Vec<i64> { values.iter().map(|&v| v as i64).collect() };
            let (ids, mask) = (ints(encoding.get_ids()), ints(encoding.get_attention_mask()));
            debug_assert_eq!(ids.len(), self.seq_len);
            let type_ids = ints(encoding.get_type_ids());
            let mut inputs = vec![
                (INPUT_IDS, InputTensor::I64(Cow::Borrowed(&ids))),
                (ATTENTION_MASK, InputTensor::I64(Cow::Borrowed(&mask))),
            ];
            if self.has_token_type_ids {
                inputs.push((TOKEN_TYPE_IDS, InputTensor::I64(Cow::Borrowed(&type_ids))));
            }
            let mut outputs = runtime::run(&self.session, &inputs, WHAT).await?;
            let Some(tokens) = outputs.remove(&self.token_output) else {
                bail!(Inference, "{WHAT}: the run returned no '{}'", self.token_output);
            };
            vectors.push(mean_pool_normalized(&tokens, &mask, self.dim));
        }
        Ok(vectors)
    }
}

/// The CPU half of loading an embedder: the graph parsed, its axes fixed to one text of
/// `seq_len` tokens and lowered to what wonnx runs, before any GPU is asked for (the fuzz
/// target onnx/fuzz `embedder_graph` runs exactly this on hostile bytes).
pub struct EmbedderGraph {
    pub model: ModelProto,
    /// The graph output holding one vector per token, (1, seq_len, dim).
    pub token_output: String,
    pub has_token_type_ids: bool,
    pub dim: usize,
}

impl EmbedderGraph {
    pub fn prepare(onnx_bytes: &[u8], seq_len: usize) -> Result<Self> {
        // wonnx multiplies matrices in blocks of 2, 3 or 4 rows and refuses an odd row count.
        if seq_len == 0 || !seq_len.is_multiple_of(2) {
            bail!(
                UnsupportedShape,
                "{WHAT}: the sequence length must be even and positive (wonnx's matrix product), not {seq_len}"
            );
        }
        let mut model = ModelProto::parse_from_bytes(onnx_bytes)
            .map_err(|e| Error::new(ErrorCode::InvalidOnnx, format!("{WHAT}: not an ONNX model: {e}")))?;
        let (sizes, has_token_type_ids) = axis_sizes(&model, seq_len)?;
        let token_output = token_output(&model)?;

        // Pool on the CPU from the token embeddings (a few thousand additions): not every export
        // has a pooling step, and the other outputs of sentence-transformers' exports only echo
        // the inputs.
        static_shapes::keep_outputs(&mut model, &[&token_output])?;
        let sizes: Vec<(&str, i64)> = sizes.iter().map(|(name, size)| (name.as_str(), *size)).collect();
        static_shapes::fix_dynamic_axes(&mut model, &sizes)?;
        static_shapes::lower_for_wonnx(&mut model, WHAT)?;

        let shapes = static_shapes::value_shapes(model.get_graph());
        let dim = match shapes.get(&token_output) {
            Some(ValueShape { dims, .. }) if dims.len() == 3 && dims[..2] == [1, seq_len as i64] && dims[2] > 0 => {
                dims[2] as usize
            }
            other => bail!(
                InvalidOnnx,
                "{WHAT}: output '{token_output}' should be (1, {seq_len}, dim) once the axes are fixed, not {:?}",
                other.map(|s| &s.dims)
            ),
        };
        Ok(Self { model, token_output, has_token_type_ids, dim })
    }
}

/// The mean of the token vectors (rows of `tokens`) whose mask is 1, scaled to unit length.
fn mean_pool_normalized(tokens: &[f32], mask: &[i64], dim: usize) -> Vec<f32> {
    let mut sum = vec![0f32; dim];
    let mut count = 0f32;
    for (row, _) in tokens.chunks_exact(dim).zip(mask).filter(|(_, &m)| m != 0) {
        sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
        count += 1.0;
    }
    let mean: Vec<f32> = sum.iter().map(|s| s / count.max(1.0)).collect();
    let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    mean.iter().map(|v| v / norm).collect()
}

/// The sizes of the graph's dynamic axes (the batch fixed to 1 and the sequence to `seq_len`,
/// under whatever names `input_ids` gives them), and whether it takes `token_type_ids`.
fn axis_sizes(model: &ModelProto, seq_len: usize) -> Result<(Vec<(String, i64)>, bool)> {
    let graph = model.get_graph();
    let initializers: Vec<&str> = graph.get_initializer().iter().map(|t| t.get_name()).collect();
    let inputs: Vec<&ValueInfoProto> =
        graph.get_input().iter().filter(|i| !initializers.contains(&i.get_name())).collect();
    for input in &inputs {
        if ![INPUT_IDS, ATTENTION_MASK, TOKEN_TYPE_IDS].contains(&input.get_name()) {
            bail!(
                InvalidOnnx,
                "{WHAT}: the graph has an input '{}'; a BERT-style embedder takes {INPUT_IDS}, {ATTENTION_MASK} and optionally {TOKEN_TYPE_IDS}",
                input.get_name()
            );
        }
    }
    let input = |name: &str| inputs.iter().find(|i| i.get_name() == name);
    let Some(ids) = input(INPUT_IDS) else { bail!(InvalidOnnx, "{WHAT}: the graph has no input '{INPUT_IDS}'") };
    if input(ATTENTION_MASK).is_none() {
        bail!(InvalidOnnx, "{WHAT}: the graph has no input '{ATTENTION_MASK}'");
    }
    let dims = ids.get_field_type().get_tensor_type().get_shape().get_dim();
    if dims.len() != 2 {
        bail!(UnsupportedShape, "{WHAT}: input '{INPUT_IDS}' has {} axes; (batch, sequence) was expected", dims.len());
    }
    let mut sizes = Vec::new();
    for (axis, (dim, size)) in dims.iter().zip([1, seq_len as i64]).enumerate() {
        if dim.has_dim_value() {
            if dim.get_dim_value() != size {
                bail!(
                    UnsupportedShape,
                    "{WHAT}: input '{INPUT_IDS}': axis {axis} is fixed to {} in the graph, not {size}",
                    dim.get_dim_value()
                );
            }
        } else if dim.has_dim_param() {
            sizes.push((dim.get_dim_param().to_string(), size));
        } else {
            bail!(
                UnsupportedShape,
                "{WHAT}: input '{INPUT_IDS}': axis {axis} has neither a size nor a name, so it cannot be fixed"
            );
        }
    }
    Ok((sizes, inputs.iter().any(|i| i.get_name() == TOKEN_TYPE_IDS)))
}

/// The graph output of token embeddings: the float output of rank 3.
fn token_output(model: &ModelProto) -> Result<String> {
    let float = wonnx::onnx::TensorProto_DataType::FLOAT as i32;
    let candidates: Vec<&ValueInfoProto> = model
        .get_graph()
        .get_output()
        .iter()
        .filter(|o| {
            let t = o.get_field_type().get_tensor_type();
            t.get_elem_type() == float && t.get_shape().get_dim().len() == 3
        })
        .collect();
    match candidates[..] {
        [output] => Ok(output.get_name().to_string()),
        [] => bail!(InvalidOnnx, "{WHAT}: the graph has no token-embedding output (float, of rank 3)"),
        _ => bail!(
            InvalidOnnx,
            "{WHAT}: the graph has several float outputs of rank 3 ({}); which holds the token embeddings is ambiguous",
            candidates.iter().map(|o| format!("'{}'", o.get_name())).collect::<Vec<_>>().join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_averages_real_tokens_only_and_normalises() {
        // Three tokens of dim 2; the last is padding.
        let tokens = [1.0, 0.0, 3.0, 4.0, 100.0, 100.0];
        let v = mean_pool_normalized(&tokens, &[1, 1, 0], 2);
        let mean = [2.0f32, 2.0];
        let norm = (8.0f32).sqrt();
        assert!((v[0] - mean[0] / norm).abs() < 1e-6 && (v[1] - mean[1] / norm).abs() < 1e-6, "{v:?}");
    }
}
