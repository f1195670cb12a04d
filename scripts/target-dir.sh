# Sourced by build.sh, test.sh and scripts/fuzz.sh: where cargo writes what it builds.
# In the cache ($EDGELLM_CACHE/target), not in the clone: CI tests a clean clone each time, and
# with the outputs kept here it compiles only edgellm's own crates again, not their hundreds of
# dependencies in five configurations (about half of a cold run's time on two cores). Cargo's
# fingerprints keep this correct: a change of source, flags or toolchain rebuilds what it
# touches. Builds with other target features or toolchains get directories of their own under
# it (relaxed/, threads/, onnx/, fuzz/), as flags that differ would rebuild each other's
# outputs. Set CARGO_TARGET_DIR to build elsewhere.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${EDGELLM_CACHE:-$HOME/.cache/edgellm}/target}"
