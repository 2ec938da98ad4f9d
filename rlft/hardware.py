"""What the machine offers, read without loading a model (and without importing torch unless needed)."""

from __future__ import annotations

import os
from pathlib import Path

# CPU flags (Linux /proc/cpuinfo names) of native bf16 matmul: Intel AMX (Sapphire Rapids on), AVX512-BF16 (Cooper
# Lake, Zen 4 on). Without them PyTorch's bf16 GEMM is emulated and ~2.5x slower than fp32; with them a 1024^2 GEMM
# measured 2.4x faster than fp32 on an AVX512-BF16 CPU, 6.5x on an AMX one (benchmarks/sft_vs_trl.py prints both).
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


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
