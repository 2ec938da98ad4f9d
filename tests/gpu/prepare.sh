#!/usr/bin/env bash
# Run HERE (a machine that reaches PyPI), before tests/gpu/check_profiles.sh goes to a GPU machine that reaches
# nothing: downloads, into .whl/ (git-ignored), the wheels that machine lacks, at the versions of this .venv.
#
#   bash tests/gpu/prepare.sh    # ~49 MiB; the carried tree may total 64 MiB
#   then, with the device tool: carry [".whl"], command "bash tests/gpu/check_profiles.sh", timeout_s 540
#
# The GPU image already has torch, transformers (5.17 when last read; rlft needs >= 5.0), accelerate, tokenizers,
# safetensors, rich, pyyaml, pandas, pyarrow, psutil, ninja, msgpack, py-cpuinfo, nvidia-ml-py and einops.
# deepspeed ships only as a source archive: it is built into a wheel here (pure Python; its CUDA ops are compiled on
# first use, and the ZeRO stages used here need none).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
version() { $PY -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p .whl
rm -f .whl/*.whl
BINARY=(bitsandbytes trl peft datasets dill multiprocess hjson pydantic pydantic-core annotated-types
        typing-inspection)
SPECS=()
for name in "${BINARY[@]}"; do
    if ver=$(version "$name" 2>/dev/null); then SPECS+=("$name==$ver"); else SPECS+=("$name"); fi
done
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${SPECS[@]}"
DS=$(version deepspeed 2>/dev/null || $PY -c "print('0.19.8')")
$PY -m pip wheel -q --no-deps --no-build-isolation -w .whl "deepspeed==$DS"
ls -la .whl
du -ch .whl/*.whl | tail -1
