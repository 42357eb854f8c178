#!/usr/bin/env bash
# Second of two device calls for bench/gpu_protocol.py on a lent GPU that reaches no registry and
# takes at most 64 MiB per call; `bash bench/gpu_prepare_carry.sh` makes .gpu (CARRY1) and .gpu3 (CARRY2):
#   call 1: mkdir -p /tmp/m && cp CARRY1/smol.part.aa /tmp/m/    (first half of the 98 MB GGUF), and
#           python3 -m pip install -q --no-index --no-deps --target /tmp/site CARRY1/whl/*.whl
#           (binary wheels for the machine's Python, e.g. pandas 2.x: the image has pandas 3, which RecBole 1.2.1 fails on)
#   call 2: bash bench/gpu_protocol_device.sh CARRY2 SECONDS [gpu_protocol.py options]
# CARRY2 holds smol.part.ab, gguf.sha256 and site/ (recbole, whose wheel ships ml-100k, and its
# pure-Python needs, gguf, installed with pip --target). The run is stopped after SECONDS so
# that whatever it recorded is still packed into $OUT/gpu_protocol.tgz (the tool returns at most 8
# files, 2 folders deep).
set -uo pipefail
carry=$1 seconds=$2
shift 2
export PYTHONUNBUFFERED=1 ILORA_BENCH_CACHE=/tmp/cache
out=/tmp/gpu_protocol_out
mkdir -p "$out"
source bench/gpu_device_setup.sh
timeout --signal=INT --kill-after=20 "$seconds" python3 bench/gpu_protocol.py --out "$out" "$@" 2>&1 \
  | grep --line-buffered -v -E "Loading weights|FutureWarning|warnings.warn" | tee "$OUT/gpu_protocol.log"
rc=${PIPESTATUS[0]}
tar czf "$OUT/gpu_protocol.tgz" -C "$out" --exclude=./work --exclude=./artifacts .  # records, candidates, leaderboard
echo "gpu_protocol.py exit $rc; packed $(find "$out" -name '*.json' | wc -l) JSON file(s) into \$OUT/gpu_protocol.tgz"
exit "$rc"
