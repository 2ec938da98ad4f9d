"""How the reward stages generate: rlft's speed-ups of HF generation, per hardware, and the checks of `use_vllm`.

TRL's HF-generation path (no vLLM) calls the policy's `generate` on a batch in which each prompt is repeated
`num_generations` times in a row, with the LoRA adapter live in every linear layer. Two things there are waste on a
machine where a step is bound by per-layer overhead and by the prompt's prefill:

  1. Merged adapter: during `generate` each LoRA linear runs as one matmul with W + scale * B @ A (computed into a new
     tensor; the frozen base weight is swapped back untouched afterwards, so the KL reference is exact), instead of
     the base matmul plus two adapter matmuls and a dropout.
  2. Shared prompt prefix: the k copies of a prompt are prefilled once; the KV cache is then repeated k times and
     `generate` continues from it. The sampled continuations are drawn exactly as before.

`speed_up_generation(trainer)` installs both on the trainer's unwrapped policy (a wrapper on the instance's
`generate`; each falls back to the plain call where it does not apply: no adapter, quantized or sharded weights, rows
of a group that differ). It leaves vLLM and continuous batching alone. RLFT_GENERATION_SPEEDUPS=0 turns it off
(for an A/B run, or to rule it out). Which speed-up is on depends on the hardware (HARDWARE_DEFAULTS).

`vllm_problems(stage, launch)` lists what TRL 1.16 refuses with `use_vllm: true`, for `rlft validate` and `rlft plan`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import inspect
import os

import torch

from rlft.compat import merged_adapter  # folds LoRA through PEFT 0.21 internals


# Measured A/B in one process with benchmarks/generation_ab.py. On a GPU the merged copy of the weights costs memory
# for a gain not measured yet (benchmarks/gpu_throughput.py measures it), so it stays off there.
HARDWARE_DEFAULTS = {
    "cpu": {"merge_adapter": True, "share_prefix": True},
    "gpu": {"merge_adapter": False, "share_prefix": True},
}


def speed_up_generation(trainer) -> bool:
    """Install the speed-ups on the policy of a built GRPO/RLOO trainer where it generates with HF `generate`."""
    args = trainer.args
    if os.environ.get("RLFT_GENERATION_SPEEDUPS", "1").strip().lower() in ("0", "false", "no", "off") or \
            getattr(args, "use_vllm", False) or getattr(args, "use_transformers_continuous_batching", False):
        return False
    defaults = HARDWARE_DEFAULTS["gpu" if trainer.accelerator.device.type != "cpu" else "cpu"]
    sharded = getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False)
    wrap_generate(trainer.accelerator.unwrap_model(trainer.model),
                  merge_adapter=defaults["merge_adapter"] and not sharded, share_prefix=defaults["share_prefix"])
    return True


def vllm_problems(stage: dict, launch) -> list[tuple[str, str]]:
    """(sub-path, message) for each reason TRL 1.16 cannot generate this stage with vLLM (`args.use_vllm: true`)."""
    args = stage.get("args") or {}
    if not args.get("use_vllm"):
        return []
    found = []
    if importlib.util.find_spec("vllm") is None:
        found.append(("args.use_vllm", "vLLM is not installed: pip install 'trl[vllm]' (on a Linux machine with a "
                      "CUDA GPU), or remove use_vllm to generate with transformers"))
    if not launch.on_gpu:
        found.append(("args.use_vllm", "vLLM generation needs a GPU and this launch has none; remove use_vllm (rlft "
                      "speeds up transformers' generation on CPU by itself)"))
    mode = args.get("vllm_mode", "colocate")
    if (stage.get("quantization") or {}).get("load_in_8bit"):
        found.append(("quantization.load_in_8bit", "vLLM cannot run 8-bit (bitsandbytes) weights; use load_in_4bit: "
                      "true, or no quantization, or remove use_vllm"))
    tensor_parallel = args.get("vllm_tensor_parallel_size", 1)
    if mode == "colocate" and isinstance(tensor_parallel, int) and tensor_parallel > 0 \
            and launch.processes % tensor_parallel:
        found.append(("args.vllm_tensor_parallel_size", f"is {tensor_parallel}, which does not divide the "
                      f"{launch.processes} training processes; colocated vLLM splits them into groups of that size"))
    if stage.get("lora") is not None and launch.kind == "fsdp":
        found.append(("args.use_vllm", "LoRA with FSDP and vLLM: TRL 1.16 merges the adapter into sharded weights "
                      "for vLLM only under DeepSpeed ZeRO-3 (its FSDP path is marked untested); launch with "
                      "configs/zero3.yaml or configs/multi_gpu.yaml"))
    return found


def wrap_generate(model, merge_adapter: bool = True, share_prefix: bool = True) -> None:
    """Install the speed-ups on `model.generate` (the unwrapped policy the trainer generates with)."""
    plain = model.generate

    @functools.wraps(plain)
    def generate(*args, **kwargs):
        with merged_adapter(model) if merge_adapter else contextlib.nullcontext():
            if share_prefix:
                return generate_shared_prefix(model, plain, *args, **kwargs)
            return plain(*args, **kwargs)

    model.generate = generate


def generate_shared_prefix(model, plain, input_ids=None, attention_mask=None, **kwargs):
    """`generate` whose batch repeats each prompt k times in a row: prefill each prompt once, repeat the cache k times."""
    k = _group_size(input_ids, attention_mask)
    name = _cache_kwarg(model)
    config = kwargs.get("generation_config") or getattr(model, "generation_config", None)
    if k <= 1 or kwargs.get("past_key_values") is not None or kwargs.get("cache") is not None \
            or input_ids.size(1) < 2 or getattr(config, "cache_implementation", None) is not None:
        # a cache of our own is refused beside cache_implementation (static, ...): generate builds that one itself
        return plain(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
    from transformers import DynamicCache  # deferred with transformers, as the rest of this module

    unique_ids, unique_mask = input_ids[::k, :-1], attention_mask[::k, :-1]
    position_ids = (unique_mask.long().cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=getattr(model, "config", None))
    # the module `generate` runs (PeftModel.generate calls the base model's): the prompt's cache is computed as the
    # completion is, outside the autocast accelerate wraps the prepared model's own forward in
    runs = model.get_base_model() if hasattr(model, "get_base_model") else model
    with torch.no_grad():
        runs(input_ids=unique_ids, attention_mask=unique_mask, position_ids=position_ids, use_cache=True,
             logits_to_keep=1, **{name: cache})
    cache.batch_repeat_interleave(k)
    return plain(input_ids=input_ids, attention_mask=attention_mask, **{name: cache}, **kwargs)


def _cache_kwarg(model) -> str:
    """transformers >= 5.2x names the KV cache argument `cache` (`past_key_values` is its deprecated alias)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


def _group_size(input_ids, attention_mask) -> int:
    """The k for which the batch is each prompt repeated k times in a row (1 if it is not)."""
    if input_ids is None or attention_mask is None or input_ids.dim() != 2:
        return 1
    rows = input_ids.size(0)
    for k in range(rows, 1, -1):
        if rows % k:
            continue
        ids, mask = input_ids.view(rows // k, k, -1), attention_mask.view(rows // k, k, -1)
        if torch.equal(ids, ids[:, :1].expand_as(ids)) and torch.equal(mask, mask[:, :1].expand_as(mask)):
            return k
    return 1
