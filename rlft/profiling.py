"""`rlft run --profile`: where a stage's training time and memory go, without changing what TRL does.

Each part's time is exclusive (a part nested in another is taken out of its parent), so the parts add up to the
stage's training time; what no hook covers (data loading, logging, checkpoints) is `other`.

  generation        the policy's `generate` / `generate_batch` (HF or continuous batching), or vLLM's
  rewards           the trainer scoring completions (every reward function and reward model)
  reference         the KL reference's log-probs (a separate model, or the policy with its adapter disabled)
  policy_logprobs   the policy's log-probs without gradient (old log-probs for the PPO ratio)
  rollout_other     the rest of making a batch: tokenizing, decoding, padding, advantages
  forward_backward  the training step's forward and backward
  optimizer         the optimizer step (between the Trainer's on_pre_optimizer_step and on_optimizer_step)

Peak memory is per part and for the stage: resident set size on CPU (Linux's VmHWM, reset at each part boundary
through /proc/self/clear_refs), `torch.cuda.max_memory_allocated` on a GPU.

How: a TrainerCallback for the optimizer and the stage's span; the unwrapped model's `generate` is wrapped on the
instance; the trainer's own (TRL-private) methods that make a rollout are wrapped on the instance
(compat.TRL_PROFILED_METHODS; a test fails if TRL renames them). The wrappers only time and pass everything through.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from rlft import compat

PARTS = ("generation", "rewards", "reference", "policy_logprobs", "rollout_other", "forward_backward", "optimizer")
LABELS = {"generation": "generate", "rewards": "rewards", "reference": "ref fwd", "policy_logprobs": "old logp",
          "rollout_other": "rollout", "forward_backward": "fwd+bwd", "optimizer": "optim", "other": "other"}
GENERATE = ("generate", "generate_batch")  # on the unwrapped model


class Memory:
    """Peak memory since the last `reset()`: RSS on CPU, allocated CUDA memory on a GPU (in MB)."""

    def __init__(self):
        self.cuda = torch.cuda.is_available()
        self.kind = "cuda_max_allocated" if self.cuda else "rss"
        self._can_reset = not self.cuda and _try_clear_refs()

    def peak_mb(self) -> float:
        if self.cuda:
            return torch.cuda.max_memory_allocated() / 2**20
        status = _proc_status()
        if "VmHWM" in status and self._can_reset:
            return status["VmHWM"] / 1024
        import resource  # no per-part reset possible: the process's peak so far

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        elif self._can_reset:
            _try_clear_refs()


class Profiler(TrainerCallback):
    """Exclusive time and peak memory per part of a training run; `result()` is what profile.json holds."""

    def __init__(self):
        self.memory = Memory()
        self.seconds = {p: 0.0 for p in PARTS}
        self.calls = {p: 0 for p in PARTS}
        self.peak = {}
        self.stack: list[list] = []  # [part, start of its current slice]
        self.started = self.ended = None
        self.start_mb = None

    # --- timing ------------------------------------------------------------------------------------------------
    def _boundary(self) -> None:
        """Close the running slice of the part on top (time and memory), start a new one."""
        now = time.perf_counter()
        top = self.stack[-1][0] if self.stack else "other"
        if self.stack:
            self.seconds[top] += now - self.stack[-1][1]
            self.stack[-1][1] = now
        self.peak[top] = max(self.peak.get(top, 0.0), self.memory.peak_mb())
        self.memory.reset()

    def push(self, part: str) -> None:
        self._boundary()
        self.calls[part] += 1
        self.stack.append([part, time.perf_counter()])

    def pop(self) -> None:
        self._boundary()
        self.stack.pop()
        if self.stack:
            self.stack[-1][1] = time.perf_counter()

    def timed(self, part, fn):
        """`fn` wrapped to count as `part` (a name, or a function of the call's arguments giving one or None)."""

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            name = part(*args, **kwargs) if callable(part) else part
            if name is None or self.started is None or self.ended is not None:
                return fn(*args, **kwargs)
            self.push(name)
            try:
                return fn(*args, **kwargs)
            finally:
                self.pop()

        return wrapper

    # --- callback events ---------------------------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        self.start_mb = self.memory.peak_mb()
        self.memory.reset()
        self.started = time.perf_counter()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.started is not None and self.ended is None:
            self.push("optimizer")

    def on_optimizer_step(self, args, state, control, **kwargs):
        if self.stack and self.stack[-1][0] == "optimizer":
            self.pop()

    def on_train_end(self, args, state, control, **kwargs):
        self._boundary()
        self.ended = time.perf_counter()

    def result(self) -> dict:
        total = (self.ended or time.perf_counter()) - (self.started or time.perf_counter())
        parts = {p: {"seconds": round(s, 6), "calls": self.calls[p], "peak_mb": round(self.peak.get(p, 0.0), 1)}
                 for p, s in self.seconds.items() if self.calls[p]}
        other = max(0.0, total - sum(self.seconds.values()))
        parts["other"] = {"seconds": round(other, 6), "peak_mb": round(self.peak.get("other", 0.0), 1)}
        return {"seconds": round(total, 3), "parts": parts, "memory": self.memory.kind,
                "start_mb": round(self.start_mb or 0.0, 1),
                "peak_mb": round(max([p["peak_mb"] for p in parts.values()] + [0.0]), 1)}


def attach(trainer) -> Profiler:
    """Hook a profiler into a built trainer (before `train()`); returns it."""
    profiler = Profiler()
    trainer.add_callback(profiler)
    compat.wrap_trl_trainer_methods(trainer, profiler.timed, _logprob_part)
    model = trainer.accelerator.unwrap_model(trainer.model)
    for method in GENERATE:
        if hasattr(model, method):
            setattr(model, method, profiler.timed("generation", getattr(model, method)))
    vllm = getattr(trainer, "vllm_generation", None)
    if vllm is not None and hasattr(vllm, "generate"):
        vllm.generate = profiler.timed("generation", vllm.generate)
    return profiler


def write(profiler: Profiler, path: Path) -> dict:
    """Write the profile as JSON, atomically; returns it."""
    result = profiler.result()
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, path)
    return result


def _logprob_part(trainer, model, *args, **kwargs) -> str | None:
    """A log-prob pass with gradient is part of the training step; without, it is the reference or old log-probs."""
    if torch.is_grad_enabled():
        return None
    return "reference" if compat.is_trl_reference(trainer, model) else "policy_logprobs"


def _proc_status() -> dict:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    out = {}
    for line in lines:
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            out[key] = int(value.split()[0])
    return out


def _try_clear_refs() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False
