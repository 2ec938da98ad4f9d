"""What the machine offers, read without loading a model (and without importing torch unless needed)."""

from __future__ import annotations

import os
from pathlib import Path

# CPU flag (Linux /proc/cpuinfo name) of bf16 matmul fast enough to train in: Intel AMX (Sapphire Rapids on), where
# a 2048^2 GEMM ran 6.5x faster in bf16 than in fp32 and SFT 1.16x faster end to end. AVX512-BF16 alone (Cooper Lake,
# Zen 4) makes a bare GEMM ~2.4x faster, but a whole step is not faster there as far as measured (the LoRA adapters
# stay fp32 and every layer casts), so it keeps fp32 until benchmarks/sft_vs_trl.py says otherwise; RLFT_CPU_BF16=1
# forces bf16. Without either, PyTorch's bf16 GEMM is emulated and ~2.5x slower than fp32.
CPU_BF16_FLAGS = ("amx_bf16",)


def cpu_has_bf16() -> bool:
    """Does this CPU multiply bf16 natively? RLFT_CPU_BF16=0/1 overrides the detection."""
    forced = os.environ.get("RLFT_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: PyTorch's own view (AMX only shows as a capability there)
        import torch

        return "AMX" in torch.backends.cpu.get_cpu_capability()
    return any(flag in flags for flag in CPU_BF16_FLAGS)
