"""What the machine offers, read without loading a model (and without importing torch unless needed)."""

from __future__ import annotations

import os
from pathlib import Path

# CPU flag (Linux /proc/cpuinfo name) of bf16 matmul fast enough to train in: Intel AMX (Sapphire Rapids on), where
# a 2048^2 GEMM ran 6.5x faster in bf16 than in fp32 and SFT 1.16x faster end to end: rlft loads bf16 weights there.
# RLFT_CPU_BF16=1 forces that; without AMX or AVX512-BF16, PyTorch's bf16 GEMM is emulated and ~2.5x slower than fp32.
CPU_BF16_FLAGS = ("amx_bf16",)
# AVX512-BF16 alone (Cooper Lake, Zen 4): bf16 weights were not faster for a whole step (fp32 LoRA adapters, a cast in
# every layer), but fp32 weights under bf16 autocast are: sft_only trained at 1.35x the fp32 rate, same loss to 3
# digits (2 cores, 8 steps, ABAB in one run). rlft trains so there; RLFT_CPU_BF16=0 keeps plain fp32.
CPU_AUTOCAST_FLAGS = ("avx512_bf16",)


def _cpu_flags() -> list[str] | None:
    try:
        return Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return None


def cpu_has_bf16() -> bool:
    """Does this CPU multiply bf16 natively? RLFT_CPU_BF16=0/1 overrides the detection."""
    forced = os.environ.get("RLFT_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    flags = _cpu_flags()
    if flags is None:  # not Linux: PyTorch's own view (AMX only shows as a capability there)
        import torch

        return "AMX" in torch.backends.cpu.get_cpu_capability()
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def cpu_bf16_autocast() -> bool:
    """Does this CPU train faster in fp32 weights under bf16 autocast (AVX512-BF16 without AMX)? RLFT_CPU_BF16=0/1
    turns it off (1 picks bf16 weights instead, see `cpu_has_bf16`)."""
    if os.environ.get("RLFT_CPU_BF16", "").strip() in ("0", "1") or cpu_has_bf16():
        return False
    flags = _cpu_flags()
    return flags is not None and any(flag in flags for flag in CPU_AUTOCAST_FLAGS)
