"""The LM head's per-token log-probs on a CPU: only the scored positions, in one GEMM, instead of TRL's tiles.

TRL 1.16's trainers (SFT, GRPO/RLOO, DPO, ...) never build full logits: `trl.trainer.utils.add_fused_lm_head` patches
the model so that `model(..., labels=..., fused_lm_head=True)` returns per-token log-probs, computed by
`ChunkedLogProbFunction` in vocabulary tiles. That saves GPU memory; on a CPU it costs time twice over:

  1. Every position is scored, the masked ones too (the prompt of a chat row, padding, and in GRPO/RLOO the whole
     prompt): on a Triton device TRL scores only the positions whose label is not -100, elsewhere it keeps the tile
     shapes fixed for compilers that would recompile on each new shape. Eager CPU code recompiles nothing.
  2. Without Triton each tile is folded by a series of fp32 torch ops, and the backward recomputes the tiles and
     accumulates both gradient GEMMs in fp32 (`addmm_` on fp32 copies), at the fp32 rate of the CPU rather than its
     bf16 rate.

`install()` makes TRL's fused head score only the labelled positions on a CPU, and computes them with the LM head's
own GEMM (under the trainer's autocast, as the rest of the model), a log-softmax in fp32 and autograd for the
gradient. On the SFT of recipes/sft_only.yaml the head took 41% of a CPU step (torch profiler), and
benchmarks/sft_vs_trl.py measures the stage against plain TRL. Outside a CPU, and where the scored logits would
exceed NATIVE_MAX_LOGITS (memory), TRL's kernel runs unchanged. RLFT_CPU_LM_HEAD=0 turns it off.
"""

from __future__ import annotations

import os

import torch

# Scored positions x vocabulary above which the full logits (kept in fp32 for the backward, with their log-softmax)
# would take too much memory: TRL's tiled kernel runs instead. 2^27 = ~1 GiB of fp32 logits, e.g. 2,700 positions of
# a 49k vocabulary.
NATIVE_MAX_LOGITS = 2**27


def enabled() -> bool:
    return os.environ.get("RLFT_CPU_LM_HEAD", "1").strip().lower() not in ("0", "false", "no", "off")


def install() -> bool:
    """Patch TRL's fused LM head (idempotent); False where TRL has none or RLFT_CPU_LM_HEAD=0."""
    try:
        from trl.trainer import utils
    except ImportError:
        return False
    if not enabled() or not hasattr(utils, "_ChunkedLogProbFunction") or not hasattr(utils, "_use_triton"):
        return False
    if getattr(utils._ChunkedLogProbFunction, "rlft", False):
        return True
    kernel, use_triton = utils._ChunkedLogProbFunction, utils._use_triton
    utils._ChunkedLogProbFunction = _cpu_aware(kernel)
    # in utils, `_use_triton` only decides whether the masked positions are left out (`compact`)
    utils._use_triton = lambda device: device.type == "cpu" or use_triton(device)
    return True


def _cpu_aware(kernel):
    class CpuAwareLogProb:
        """TRL's `ChunkedLogProbFunction.apply` signature; native on a CPU, TRL's kernel elsewhere."""

        rlft = True

        @staticmethod
        def apply(hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping=None,
                  logit_scale=1.0, outputs=("entropy", "log_sum_sq_probs", "mean_logits", "is_top1")):
            if hidden.device.type != "cpu" or hidden.size(0) * weight.size(0) > NATIVE_MAX_LOGITS:
                return kernel.apply(hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping,
                                    logit_scale, outputs)
            return log_probs(hidden, weight, bias, targets, temperature, final_logit_softcapping, logit_scale, outputs)

    return CpuAwareLogProb


def log_probs(hidden, weight, bias, targets, temperature: float, softcap: float | None = None,
              logit_scale: float = 1.0, outputs=()):
    """(log p(target), entropy, log sum p^2, mean logit, target is the argmax) per row of `hidden`, as TRL's kernel
    returns them: the logits scaled, soft-capped, then divided by the temperature; None for what `outputs` omits."""
    z = torch.nn.functional.linear(hidden, weight, bias).float() * logit_scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    z = z / temperature
    log_p = torch.log_softmax(z, dim=-1)
    picked = log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_p.exp() * log_p).sum(-1) if "entropy" in outputs else None
    with torch.no_grad():  # TRL marks these three non-differentiable
        sum_sq = torch.logsumexp(2 * log_p, dim=-1) if "log_sum_sq_probs" in outputs else None
        mean_logits = z.mean(-1) if "mean_logits" in outputs else None
        is_top1 = z.argmax(-1) == targets if "is_top1" in outputs else None
    return picked, entropy, sum_sq, mean_logits, is_top1
