#!/usr/bin/env bash
# GPU check of configs/zero2.yaml, zero3.yaml and fsdp.yaml with LoRA and QLoRA, plus SFT -> GRPO under ZeRO-3, on
# one GPU; prints a table (and writes it to $OUT when set). Runs from the repository root on a fresh CUDA machine:
#
#   bash tests/gpu/check_profiles.sh                         # all cases, ~4-6 min on one H100 (install included)
#   bash tests/gpu/check_profiles.sh --only zero3:qlora      # one case
#
# Install: from .whl/ when it is there (an offline GPU machine: run tests/gpu/prepare.sh first on a machine with PyPI
# and carry .whl), else from PyPI with pip install -e '.[qlora,deepspeed]'.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python3}
started=$(date +%s)
if compgen -G ".whl/*.whl" >/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    $PY -m pip install -q -e '.[qlora,deepspeed]'
fi
$PY - <<'PY'
import importlib.metadata as m, torch
names = ("torch", "transformers", "trl", "peft", "accelerate", "deepspeed", "bitsandbytes", "datasets")
print("versions:", ", ".join(f"{n} {m.version(n)}" for n in names))
print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
PY
echo "install: $(( $(date +%s) - started )) s"
$PY tests/gpu/check_profiles.py "$@"
