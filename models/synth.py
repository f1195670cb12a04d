#!/usr/bin/env python3
"""Write a GGUF with a real model's exact layout and random weights, for speed benchmarks.

A benchmark of load time, prefill and decode speed needs a model's shapes and tensor types, not its
weights: `tinyllama-shape` is TinyLlama-1.1B-Chat-v1.0 as llama.cpp quantizes it to Q4_K_M (the
same hyperparameters, tensor names, shapes and per-tensor types, its LLaMA-2 vocabulary and its
Zephyr chat template) with random weights, so it can be made on a machine that cannot download the
real file. Its answers are noise.

    python3 models/synth.py tinyllama-shape OUT.gguf

models/fetch.py runs this for registry entries with `"synthetic": NAME`. The output is
deterministic (fixed seeds, pinned numpy and gguf), so the registry records its sha256.

- The quantized blocks are written as random bytes directly (no float weights are quantized):
  Q4_K blocks with `dmin = 7.5 d` and mins equal to scales, so `d sc q - dmin m = d sc (q - 7.5)`
  has zero mean over uniform 4-bit q; Q6_K blocks with random-sign scales. Both are scaled to a
  weight std of about 0.02, as in a trained model. Norm weights are F32 ones.
- The output rows of the 256 byte-fallback tokens (<0x00>..<0xFF>) are zero, so greedy decoding
  never picks a lone byte (which would be invalid UTF-8 on its own).
- The vocabulary (tokens and SentencePiece scores) comes from npm `llama-tokenizer-js`, which
  package.json pins: it ships LLaMA-2's tokens and ranked merges, and a merged token scores minus
  the rank of the first merge that makes it (as tests/fixtures/llama-vocab.mjs does).

numpy and gguf are pinned: when this Python lacks those versions, the script installs them into
a virtual environment in the cache ($EDGELLM_CACHE or ~/.cache/edgellm, under venv/) and re-runs
itself there.
"""
import base64
import importlib
import importlib.metadata
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = Path(os.environ.get("EDGELLM_CACHE", Path.home() / ".cache" / "edgellm"))
VENV = CACHE / "venv"
PINS = {"numpy": "2.4.6", "gguf": "0.19.0"}
TOKENIZER_JS = REPO / "node_modules" / "llama-tokenizer-js" / "llama-tokenizer.js"

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
        "vocab": "llama-tokenizer-js",
        "template": ZEPHYR_TEMPLATE,
        "seed": 1_100_000_000,
        "weight_std": 0.02,
    },
}

QK_K = 256
Q4_K_BYTES = 144  # d: f16, dmin: f16, scales[12], qs[128]
Q6_K_BYTES = 210  # ql[128], qh[64], scales[16] (int8), d: f16
LLAMA_FTYPE_MOSTLY_Q4_K_M = 15


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

def llama_vocab():
    """LLaMA-2's SentencePiece vocabulary from npm llama-tokenizer-js: (tokens, scores, types)."""
    if not TOKENIZER_JS.exists():
        print("node_modules lacks llama-tokenizer-js: running scripts/setup.sh node", file=sys.stderr)
        subprocess.run(["bash", str(REPO / "scripts" / "setup.sh"), "node"], check=True, cwd=REPO)
    src = TOKENIZER_JS.read_text(encoding="utf-8")

    def constant(name):
        found = re.search(rf'const {name} = "([A-Za-z0-9+/=]*)"', src)
        if not found:
            sys.exit(f"{TOKENIZER_JS} has no {name}: not the llama-tokenizer-js version package.json pins?")
        return base64.b64decode(found.group(1))

    import numpy as np

    # The vocabulary: tokens in id order, '\n'-separated UTF-8. The merges: little-endian u16 id
    # pairs, in priority order; the library ranks merge k as 2k+1.
    tokens = constant("llama_vocab_base64").decode("utf-8").split("\n")
    pairs = np.frombuffer(constant("llama_merges_binary"), dtype="<u2").reshape(-1, 2)
    if len(tokens) != 32000 or tokens[:3] != ["<unk>", "<s>", "</s>"] or tokens[3] != "<0x00>" or tokens[258] != "<0xFF>":
        sys.exit(f"{TOKENIZER_JS}: unexpected vocabulary layout")
    ids = {t: i for i, t in enumerate(tokens)}
    scores = [0.0] * len(tokens)
    for k, (left, right) in enumerate(pairs.tolist()):
        merged = ids[tokens[left] + tokens[right]]
        scores[merged] = min(scores[merged], -float(2 * k + 1))
    # llama.cpp token types: 1 normal, 2 unknown, 3 control, 6 byte.
    types = [2, 3, 3] + [6] * 256 + [1] * (len(tokens) - 259)
    return tokens, scores, types


# ---- tensors -------------------------------------------------------------------------------------

def use_more_bits(i, n):
    """llama.cpp's choice of the layers whose attn_v and ffn_down get more bits (Q4_K_M: Q6_K)."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def tensor_plan(s):
    """(name, rows, cols, type) in file order; rows x cols is the matrix (GGUF dims are cols, rows)."""
    e, f, n = s["embedding_length"], s["feed_forward_length"], s["block_count"]
    kv = e // s["head_count"] * s["head_count_kv"]
    vocab = 32000
    plan = [("token_embd.weight", vocab, e, "Q4_K")]
    for i in range(n):
        more = "Q6_K" if use_more_bits(i, n) else "Q4_K"
        plan += [
            (f"blk.{i}.attn_norm.weight", 1, e, "F32"),
            (f"blk.{i}.attn_q.weight", e, e, "Q4_K"),
            (f"blk.{i}.attn_k.weight", kv, e, "Q4_K"),
            (f"blk.{i}.attn_v.weight", kv, e, more),
            (f"blk.{i}.attn_output.weight", e, e, "Q4_K"),
            (f"blk.{i}.ffn_norm.weight", 1, e, "F32"),
            (f"blk.{i}.ffn_gate.weight", f, e, "Q4_K"),
            (f"blk.{i}.ffn_up.weight", f, e, "Q4_K"),
            (f"blk.{i}.ffn_down.weight", e, f, more),
        ]
    plan += [("output_norm.weight", 1, e, "F32"), ("output.weight", vocab, e, "Q6_K")]
    return plan


def random_bytes(rng, n):
    import numpy as np

    return np.frombuffer(bytearray(rng.bytes(n)), dtype=np.uint8)


def f16(x):
    import numpy as np

    return np.ascontiguousarray(x, dtype=np.float16).view(np.uint8).reshape(-1, 2)


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
    m = sc
    # ggml's get_scale_min_k4 packing: bytes 0-3 scales 0-3 (low 6 bits), 4-7 mins 0-3, 8-11 the
    # low nibbles of scales/mins 4-7; their top 2 bits sit in bits 6-7 of bytes 0-3 / 4-7.
    packed = np.empty((n_blocks, 12), dtype=np.uint8)
    packed[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    packed[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    packed[:, 8:12] = (sc[:, 4:8] & 0x0F) | ((m[:, 4:8] & 0x0F) << 4)
    blocks[:, 0:2] = f16(d)
    blocks[:, 2:4] = f16(dmin)
    blocks[:, 4:16] = packed
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


def tensor_data(rng, rows, cols, qtype, std):
    import numpy as np

    if qtype == "F32":
        return np.ones(cols, dtype=np.float32)
    n_blocks = rows * cols // QK_K
    blocks = (q4_k_blocks if qtype == "Q4_K" else q6_k_blocks)(rng, n_blocks, std)
    return blocks.reshape(rows, -1)


# ---- the file ------------------------------------------------------------------------------------

def write(shape_name, out):
    import numpy as np
    import gguf

    s = SHAPES[shape_name]
    tokens, scores, types = llama_vocab()
    w = gguf.GGUFWriter(str(out), s["architecture"])
    w.add_name(s["name"])
    w.add_file_type(LLAMA_FTYPE_MOSTLY_Q4_K_M)
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(s["context_length"])
    w.add_embedding_length(s["embedding_length"])
    w.add_block_count(s["block_count"])
    w.add_feed_forward_length(s["feed_forward_length"])
    w.add_head_count(s["head_count"])
    w.add_head_count_kv(s["head_count_kv"])
    w.add_rope_dimension_count(s["rope_dimension_count"])
    w.add_rope_freq_base(s["rope_freq_base"])
    w.add_layer_norm_rms_eps(s["rms_epsilon"])
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_pad_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_chat_template(s["template"])

    qtypes = {"F32": gguf.GGMLQuantizationType.F32, "Q4_K": gguf.GGMLQuantizationType.Q4_K,
              "Q6_K": gguf.GGMLQuantizationType.Q6_K}
    row_bytes = {"Q4_K": Q4_K_BYTES, "Q6_K": Q6_K_BYTES}
    plan = tensor_plan(s)
    for name, rows, cols, qtype in plan:
        if qtype == "F32":
            w.add_tensor_info(name, (cols,), np.dtype(np.float32), cols * 4)
        else:
            shape = (rows, cols // QK_K * row_bytes[qtype])  # bytes; gguf infers (rows, cols)
            w.add_tensor_info(name, shape, np.dtype(np.uint8), shape[0] * shape[1], raw_dtype=qtypes[qtype])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    # Tensor by tensor, each from its own seeded stream, so memory stays at one tensor.
    for index, (name, rows, cols, qtype) in enumerate(plan):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([s["seed"], index])))
        data = tensor_data(rng, rows, cols, qtype, s["weight_std"])
        if name == "output.weight":
            data[3:259] = 0  # the byte-fallback tokens <0x00>..<0xFF>: never predicted
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
