#!/usr/bin/env bash
# Fuzz what edgellm reads from outside with cargo-fuzz (libFuzzer):
#   fuzz/ (the core):       gguf_parse, model_load (and a short generation), tokenizer, template
#   onnx/fuzz/ (ONNX side): embedder_graph (an ONNX graph's load up to the GPU), export (GGUF → ONNX)
#   scripts/fuzz.sh                     every target for 60 s
#   scripts/fuzz.sh --seconds 15 core   ./test.sh's run: the core's targets briefly, on their seeds
#                                       and regressions/ (libFuzzer runs every corpus input first);
#                                       ./test.sh --slow adds the ONNX ones (`onnx`), whose first
#                                       build compiles wgpu instrumented (~15 min on two cores)
#   scripts/fuzz.sh --runs 10000000 gguf_parse    a long run: a number of executions
#   --asan                              AddressSanitizer for the targets whose input reaches unsafe
#                                       code (model_load: the matmuls read weights in place from
#                                       the file's bytes; the ONNX ones); a build of its own
# Seeds are made here, not committed: the tiny models of models/synth.py (tiny-*-fuzz), the first
# bytes of the real models, and the chat templates we know. The corpus a long run (--runs) grows
# lives in the cache ($EDGELLM_CACHE/fuzz/corpus). A crash or leak stops the run with the input saved
# under $EDGELLM_CACHE/fuzz/artifacts/; put it in fuzz/regressions/<target>/ (onnx/fuzz/regressions/)
# with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
CACHE="${EDGELLM_CACHE:-$HOME/.cache/edgellm}"
CORE_TARGETS=(gguf_parse model_load tokenizer template)
ONNX_TARGETS=(embedder_graph export)
seconds=60
runs=""
asan=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --asan) asan=1; shift ;;
    core) targets+=("${CORE_TARGETS[@]}"); shift ;;
    onnx) targets+=("${ONNX_TARGETS[@]}"); shift ;;
    -*) echo "usage: scripts/fuzz.sh [--seconds N | --runs N] [--asan] [core | onnx | target...]" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${CORE_TARGETS[@]}" "${ONNX_TARGETS[@]}")
crate_of() { case "$1" in embedder_graph|export) echo onnx/fuzz ;; *) echo fuzz ;; esac; }

scripts/setup.sh fuzz smollm2-135m gemma3-270m paraphrase-minilm-l3-onnx
export PATH="$CACHE/tools/bin:$PATH"
# The instrumented builds (sanitizer and coverage flags on every crate) get directories of their
# own, one per sanitizer.
source scripts/target-dir.sh
fuzz_target_dir="$CARGO_TARGET_DIR/fuzz"
# One thread: the tiny seed models' matmuls gain nothing from rayon's pool, and a run is
# deterministic (libFuzzer's -jobs is the way to use more cores).
export RAYON_NUM_THREADS=1
# The ONNX crate's wgpu wants a runtime directory when it starts, which a CI shell may lack.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

seeds="$CACHE/fuzz/seeds"
make_seeds() {
  local dir="$seeds/gguf"
  local done="$dir/.made-by-$(sha256sum models/synth.py | cut -c1-16)"
  [ -f "$done" ] && return
  rm -rf "$seeds"
  mkdir -p "$dir" "$seeds/template" "$seeds/onnx"
  for shape in tiny-llama-fuzz tiny-qwen2-fuzz tiny-kquant-fuzz; do
    python3 models/synth.py "$shape" "$dir/$shape.gguf" 2>/dev/null
  done
  # The real files' first bytes: header, metadata, tensor directory, cut at every stage.
  for model in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf; do
    for n in 64 4096 65536; do head -c "$n" "$CACHE/models/$model" > "$dir/$model.$n"; done
  done
  python3 - "$seeds/template" <<'PY'
import sys, pathlib
sys.path.insert(0, "models")
import synth
out = pathlib.Path(sys.argv[1])
for name in ("ZEPHYR_TEMPLATE", "PHI3_TEMPLATE", "MISTRAL_TEMPLATE"):
    (out / name.lower()).write_text(getattr(synth, name) + "\0Be brief.\0Hi\0Hello!\0Bye")
PY
  # The real ONNX embedder's graph (354 nodes: the shape arithmetic, attention, LayerNorm, GELU)
  # with the data of its large weights dropped: their shapes still drive the shape inference,
  # and the seed is 60 KB instead of 70 MB.
  "$CACHE/venv/bin/python" -m pip install --quiet --disable-pip-version-check onnx==1.17.0
  "$CACHE/venv/bin/python" - "$CACHE/models/paraphrase-minilm-l3/paraphrase-MiniLM-L3-v2.onnx" "$seeds/onnx/paraphrase-minilm-l3.onnx" <<'PY'
import sys, onnx
model = onnx.load(sys.argv[1])
for t in model.graph.initializer:
    if len(t.raw_data) > 4096:
        t.ClearField("raw_data")
onnx.save(model, sys.argv[2])
PY
  touch "$done"
}
make_seeds

status=0
for target in "${targets[@]}"; do
  # A long run (--runs) grows the corpus kept in the cache and starts from it next time; a timed
  # run starts from the seeds and regression inputs alone, so that its replay, and ./test.sh's
  # time, do not grow with every run.
  if [ -n "$runs" ]; then corpus="$CACHE/fuzz/corpus/$target"; else corpus=$(mktemp -d); fi
  artifacts="$CACHE/fuzz/artifacts/$target/"
  mkdir -p "$corpus" "$artifacts"
  case "$target" in
    gguf_parse|model_load|export) extra=("$seeds/gguf") ;;
    embedder_graph) extra=("$seeds/onnx") ;;
    template) extra=("$seeds/template") ;;
    *) extra=() ;;
  esac
  # Limits: 2 GB of RSS and 1 GB in one allocation at most (the tiny seeds need a few MB; the
  # reader must refuse what the bytes do not justify), 10 s for any one input.
  # Inputs: whole seed models for the loaders (up to 370 KB); the readers' own paths are fast
  # on short inputs, where truncations are most of what matters.
  case "$target" in model_load|export) max_len=1048576 ;; embedder_graph) max_len=262144 ;; *) max_len=65536 ;; esac
  flags=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -max_len=$max_len -artifact_prefix="$artifacts" -print_final_stats=1)
  [ "$target" = template ] && flags+=(-dict="$root/fuzz/jinja.dict")
  if [ -n "$runs" ]; then flags+=(-runs="$runs"); else flags+=(-max_total_time="$seconds"); fi
  log="$CACHE/fuzz/logs/$target${runs:+.runs}.log"
  mkdir -p "$(dirname "$log")"
  echo "== fuzz $target (log: $log)"
  start=$SECONDS
  # Without a sanitizer by default: the readers, tokenizers and templates are safe Rust, where a
  # bug is a panic, a hang or an allocation, which libFuzzer sees without one, several times
  # faster. --asan adds AddressSanitizer where input reaches unsafe code.
  sanitizer=none
  if [ "$asan" = 1 ]; then case "$target" in model_load|embedder_graph|export) sanitizer=address ;; esac; fi
  crate=$(crate_of "$target")
  if (cd "$crate" && CARGO_TARGET_DIR="$fuzz_target_dir-$sanitizer" cargo +nightly fuzz run --release --sanitizer "$sanitizer" "$target" "$corpus" "${extra[@]}" "$root/$crate/regressions/$target" -- "${flags[@]}") >"$log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "$log" || true
  else
    grep -E -B2 -A30 '^(==[0-9]+==|SUMMARY|thread .* panicked)' "$log" | head -80 >&2 || tail -40 "$log" >&2
    echo "fuzz $target FAILED: the input is under $artifacts" >&2
    status=1
  fi
  echo "== fuzz $target: $((SECONDS - start)) s"
done
exit $status
