# Sourced (with $carry set) by bench/gpu_protocol_device.sh and bench/gpu_device_run.sh, the second
# device call of each: joins the GGUF halves (part A left in /tmp/m by call 1, part B in $carry),
# checks the SHA-256, fakes the SmolLM2 wheel's package folder in /tmp/pkg, puts the carried
# packages on PYTHONPATH and prints the card and the package versions.
mkdir -p /tmp/m "$OUT"
if [ ! -f /tmp/m/smol.part.aa ]; then
  echo "$(basename "$0"): error: /tmp/m/smol.part.aa is missing (call 1 did not run on this warm machine)" >&2
  exit 3
fi
bash bench/gpu_smollm2_package.sh /tmp/m/smol.part.aa "$carry/smol.part.ab" "$carry/gguf.sha256" /tmp/pkg || exit 3
export PYTHONPATH="/tmp/pkg:/tmp/site:$PWD/$carry/site"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, peft, pandas, recbole; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'pandas', pandas.__version__, 'recbole', recbole.__version__)"
