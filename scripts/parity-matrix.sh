#!/usr/bin/env bash
# Parity on any machine: convert the entries that have reference weights, then verify them under the
# CPU's default kernels, with one thread, and with kernels capped to AVX2 (the three settings a
# catalog must pass unchanged). One JUnit file per setting; exit 1 when any setting fails.
#   scripts/parity-matrix.sh [OUT] [NAMES]      NAMES: a comma list (default: every entry
#                                               without offline real weights)
# ONEDNN_MAX_CPU_ISA caps OpenVINO's, PyTorch's and TensorFlow's oneDNN, ATEN_CPU_CAPABILITY PyTorch's
# ATen, TF_ENABLE_ONEDNN_OPTS=0 TensorFlow's oneDNN rewrites (read before import, so each setting is
# its own process); ONNX Runtime and TFLite pick kernels from the CPU alone.
set -uo pipefail
out=${1:-zoo-parity}
zoo=${ZOO:-.venv/bin/zoo}
names=${2:-$($zoo list --json | .venv/bin/python -c '
import json, sys
print(",".join(r["name"] for r in json.load(sys.stdin) if "offline" not in r.get("tags", [])))')}
mkdir -p "$out"
echo "== zoo convert --name $names --reference-weights"
$zoo convert --name "$names" --reference-weights -o "$out" || exit 1
status=0
run() {  # setting, then the environment for it
  local setting=$1; shift
  echo "== zoo verify ($setting)"
  env "$@" $zoo verify --name "$names" --reference-weights -o "$out" --junit "$out/junit-$setting.xml" \
    ${THREADS_ARG:+$THREADS_ARG} || status=1
}
run default -u ONEDNN_MAX_CPU_ISA -u ATEN_CPU_CAPABILITY -u TF_ENABLE_ONEDNN_OPTS
THREADS_ARG="--threads 1" run threads-1 -u ONEDNN_MAX_CPU_ISA -u ATEN_CPU_CAPABILITY -u TF_ENABLE_ONEDNN_OPTS
run avx2 ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 TF_ENABLE_ONEDNN_OPTS=0
echo "== parity matrix: $([ $status = 0 ] && echo passed || echo FAILED) (JUnit files in $out)"
exit $status
