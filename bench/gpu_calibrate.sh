#!/usr/bin/env bash
# One command for a lent GPU machine (a few minutes): the noise-controlled harness check, the serving step
# profile (Llama-3-8B layers: prefill/decode/mixed grid -> profile.json for the serving simulator, held-out
# MAPE), the MoE placement microbenchmark (DeepSeek-V3 experts, EPLB baselines' placements, beside the EPLB
# cost model), the figures, then the GPU-only tests. Everything lands in one folder, at most 8 files:
#   profile.json profile_report.json moe_report.json harness.json summary.md step_time.png moe_layers.png
#   calibrate.log
#
#   bash bench/gpu_calibrate.sh [OUT_DIR] [extra arguments for python -m evaluators.gpu.calibrate]
#
# OUT_DIR defaults to $OUT (set by the device tool) or runs/gpu-calibration (git-ignored). Needs python3
# with torch and numpy (the GPU image has both; elsewhere it installs the pinned wheel if a registry answers).
# GPU_TESTS=0 skips the GPU-only tests. Reads clocks and temperature; never changes a GPU setting.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="${OUT:-$repo/runs/gpu-calibration}"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then out="$1"; shift; fi   # a first argument not an option
out="$(mkdir -p "$out" && cd "$out" && pwd)"
cd "$repo"
py="${PYTHON:-python3}"
log="$out/calibrate.log"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

if ! "$py" -c "import torch, numpy" 2>/dev/null; then
  echo "torch or numpy missing for $py: installing torch==2.13.0 numpy" | tee -a "$log"
  "$py" -m pip install -q "torch==2.13.0" numpy 2>&1 | tee -a "$log" \
    || { echo "cannot install torch here: carry wheels (see the device tool's README)" | tee -a "$log"; exit 1; }
fi
{
  echo "== $(date -u +%FT%TZ) $(uname -srm)"
  "$py" -c "import torch, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available(), 'numpy', numpy.__version__)"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,clocks.max.sm,temperature.gpu,power.draw,power.limit --format=csv || true
} 2>&1 | tee -a "$log"

status=0
"$py" -m evaluators.gpu.calibrate --out "$out" "$@" 2>&1 | tee -a "$log" || status=$?

if [ "${GPU_TESTS:-1}" != 0 ]; then
  echo "== GPU-only tests" | tee -a "$log"
  timeout 300 "$py" -m pytest -q -p no:cacheprovider -rs tests/test_gpu_harness.py tests/test_gpu_serving_profile.py \
    tests/test_gpu_moe.py 2>&1 | tee -a "$log" || status=$((status ? status : 2))
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=clocks.sm,temperature.gpu,power.draw --format=csv 2>&1 | tee -a "$log" || true
echo "== exit $status; files: $(ls "$out" | tr '\n' ' ')" | tee -a "$log"
exit "$status"
