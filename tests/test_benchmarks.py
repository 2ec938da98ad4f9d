"""The benchmark scripts run: every one parses its arguments, and the GPU benchmark runs end to end on CPU (--tiny),
printing its machine-readable ratio lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ("grpo_vs_trl.py", "sft_vs_trl.py", "generation_ab.py", "gpu_throughput.py", "ppo_profile.py")


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_help(script):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


@pytest.mark.slow
def test_gpu_throughput_tiny_runs_on_cpu():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_throughput.py"), "--tiny"],
                         capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    ratios = dict(re.findall(r"^ratio (\S+) ([0-9.]+)$", out.stdout, re.M))
    assert set(ratios) == {"sft_full_mfu", "sft_lora_mfu", "sft_full_vs_trl", "sft_lora_vs_trl", "grpo_cb_vs_hf",
                           "grpo_defaults_vs_trl_defaults"}, out.stdout
    assert all(float(v) > 0 for v in ratios.values()), ratios
