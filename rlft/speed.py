"""How the reward stages generate: rlft's speed-ups of HF generation, per hardware, and the checks of `use_vllm`.

TRL's HF-generation path (no vLLM) calls the policy's `generate` on a batch in which each prompt is repeated
`num_generations` times in a row, with the LoRA adapter live in every linear layer. Two things there are waste on a
machine where a step is bound by per-layer overhead and by the prompt's prefill:

  1. Merged adapter: during `generate` each LoRA linear runs as one matmul with W + scale * B @ A (computed into a new
     tensor; the frozen base weight is swapped back untouched afterwards, so the KL reference is exact), instead of
     the base matmul plus two adapter matmuls and a dropout.
  2. Shared prompt prefix: the k copies of a prompt are prefilled once; the KV cache is then repeated k times and
     `generate` continues from it. The sampled continuations are drawn exactly as before.

  3. Old log-probs from the sampling pass: when the PPO ratio needs the log-probs of the policy that sampled (later
     updates on one generation batch, or num_iterations > 1), TRL runs one more forward over the whole batch. The
     policy computed those log-probs while it sampled; rlft keeps them (log-softmax of the model's raw logits over
     the temperature, as TRL's forward computes them, whatever logits processors such as a repetition penalty or
     min_new_tokens then did to the sampling) and the forward is skipped. The first batch of a run runs TRL's forward
     as well and compares: the reuse stays on only when the two agree (SAMPLED_LOGPROB_TOLERANCE).

`speed_up_generation(trainer)` installs them on the trainer's unwrapped policy (a wrapper on the instance's
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

from rlft import compat
from rlft.compat import merged_adapter  # folds LoRA through PEFT 0.21 internals


# Measured A/B in one process with benchmarks/generation_ab.py. On a GPU the merged copy of the weights costs memory
# for a gain not measured yet (benchmarks/gpu_throughput.py measures it), so it stays off there.
HARDWARE_DEFAULTS = {
    "cpu": {"merge_adapter": True, "share_prefix": True, "sampled_logprobs": True},
    "gpu": {"merge_adapter": False, "share_prefix": True, "sampled_logprobs": True},
}
# Sampled vs recomputed old log-probs, first batch: the mean absolute difference per completion token (log-prob units)
# above which the reuse is turned off. Rounding alone differs by less: on an AVX512-BF16 CPU rlft samples in fp32 and
# trains under bf16 autocast, 0.035 apart on the flagship recipe (an fp32 sampler and its bf16 forward: the ratio of
# the first update is exp(+-0.035), far inside PPO's 0.2 clip); in one dtype it is ~1e-4. A different distribution
# differs by more: a sampling temperature off by half moves it by ~0.5.
SAMPLED_LOGPROB_TOLERANCE = 0.1


def speed_up_generation(trainer) -> bool:
    """Install the speed-ups on the policy of a built GRPO/RLOO trainer where it generates with HF `generate`."""
    args = trainer.args
    if os.environ.get("RLFT_GENERATION_SPEEDUPS", "1").strip().lower() in ("0", "false", "no", "off") or \
            getattr(args, "use_vllm", False) or getattr(args, "use_transformers_continuous_batching", False):
        return False
    defaults = HARDWARE_DEFAULTS["gpu" if trainer.accelerator.device.type != "cpu" else "cpu"]
    sharded = getattr(trainer, "is_deepspeed_enabled", False) or getattr(trainer, "is_fsdp_enabled", False)
    recorder = None
    if defaults["sampled_logprobs"] and hasattr(trainer, "_get_per_token_logps_and_entropies") and \
            os.environ.get("RLFT_SAMPLED_LOGPROBS", "1").strip().lower() not in ("0", "false", "no", "off"):
        recorder = SampledLogprobs(getattr(trainer, "temperature", None) or args.temperature)
        reuse_sampled_logprobs(trainer, recorder)
        trainer.rlft_sampled_logprobs = recorder  # its `gap` and `enabled` say how the first batch compared
    wrap_generate(trainer.accelerator.unwrap_model(trainer.model),
                  merge_adapter=defaults["merge_adapter"] and not sharded, share_prefix=defaults["share_prefix"],
                  recorder=recorder)
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


def wrap_generate(model, merge_adapter: bool = True, share_prefix: bool = True, recorder=None) -> None:
    """Install the speed-ups on `model.generate` (the unwrapped policy the trainer generates with); `recorder`, a
    `SampledLogprobs`, keeps the log-probs of what each call samples."""
    plain = model.generate

    @functools.wraps(plain)
    def generate(*args, **kwargs):
        hook = None
        if recorder is not None and recorder.enabled and _samples(model, kwargs):
            from transformers import LogitsProcessorList

            recorder.start(kwargs.get("input_ids", args[0] if args else None))
            kwargs["logits_processor"] = LogitsProcessorList([*(kwargs.get("logits_processor") or []), recorder])
            hook = _runs(model).register_forward_hook(recorder.capture)
        try:
            with merged_adapter(model) if merge_adapter else contextlib.nullcontext():
                if share_prefix:
                    out = generate_shared_prefix(model, plain, *args, **kwargs)
                else:
                    out = plain(*args, **kwargs)
        finally:
            if hook is not None:
                hook.remove()
        if recorder is not None and recorder.recording:
            recorder.finish(out)
        return out

    model.generate = generate


def _samples(model, kwargs) -> bool:
    """Plain sampling: one sequence per row, no beams."""
    config = kwargs.get("generation_config") or getattr(model, "generation_config", None)
    return bool(getattr(config, "do_sample", False)) and (getattr(config, "num_beams", 1) or 1) == 1


def _runs(model):
    """The module whose forward `generate` calls each step (PeftModel.generate runs the base model's)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


class SampledLogprobs:
    """Keeps log p(token) of each sampled token as TRL's forward computes it: from the model's raw logits.

    `capture`, a forward hook on the model `generate` runs, holds the last position's logits of each step, before any
    logits processor (repetition penalty, min_new_tokens, ...) changes them; `generate` then calls the recorder as a
    logits processor, once per step, and it turns them into a log-softmax over the temperature. The token sampled
    shows up as the last input id of the next call (and of the returned sequences for the last step), so each step
    keeps one log-softmax of the batch, never the logits of the whole generation. `take(ids, mask)` hands the
    log-probs to the first forward they fit, once.
    """

    def __init__(self, temperature: float):
        self.temperature = float(temperature or 1.0)
        self.enabled = True
        self.recording = False
        self.verified = False
        self.gap = None  # first batch: mean |sampled - recomputed| per completion token
        self.served = 0  # forwards skipped
        self._steps, self._last, self._raw, self._prompt_len = [], None, None, 0
        self.tokens = self.logprobs = None

    def start(self, input_ids) -> None:
        self.recording, self._steps, self._last, self._raw = True, [], None, None
        self._prompt_len = input_ids.size(1) if input_ids is not None else 0
        self.tokens = self.logprobs = None

    def capture(self, module, inputs, output) -> None:
        """Forward hook: the step's raw next-token logits."""
        logits = output.logits if hasattr(output, "logits") else output[0]
        self._raw = logits[:, -1, :].detach()

    def __call__(self, input_ids, scores):
        if self._last is not None:
            self._steps.append(self._last.gather(1, input_ids[:, -1:]))
        raw = self._raw if self._raw is not None and self._raw.shape == scores.shape else scores
        self._last = torch.log_softmax(raw.float() / self.temperature, dim=-1)
        self._raw = None
        return scores

    def finish(self, sequences) -> None:
        self.recording = False
        ids = sequences if torch.is_tensor(sequences) else getattr(sequences, "sequences", None)
        if ids is None or self._last is None:
            self._steps, self._last = [], None
            return
        self._steps.append(self._last.gather(1, ids[:, -1:]))
        steps, self._steps, self._last = torch.cat(self._steps, dim=1), [], None
        tokens = ids[:, self._prompt_len:]
        if steps.size(1) == tokens.size(1):
            self.tokens, self.logprobs = tokens, steps

    def take(self, input_ids, attention_mask, logits_to_keep: int):
        """The kept log-probs (rows, logits_to_keep) if they belong to exactly these completions, else None."""
        tokens, logprobs, self.tokens, self.logprobs = self.tokens, self.logprobs, None, None
        if tokens is None or tokens.size(0) != input_ids.size(0) or tokens.size(1) < logits_to_keep:
            return None
        tokens, logprobs = tokens[:, :logits_to_keep].to(input_ids.device), logprobs[:, :logits_to_keep]
        live = attention_mask[:, -logits_to_keep:].bool()
        if not torch.equal(tokens[live], input_ids[:, -logits_to_keep:][live]):
            return None
        return logprobs.to(input_ids.device)


def reuse_sampled_logprobs(trainer, recorder: SampledLogprobs) -> None:
    """Serve the trainer's old-log-prob forward (no gradient, the policy with its adapter) from `recorder`."""
    computed = trainer._get_per_token_logps_and_entropies

    @functools.wraps(computed)
    def per_token_logps(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs):
        if torch.is_grad_enabled() or not recorder.enabled or kwargs.get("compute_entropy") \
                or compat.is_trl_reference(trainer, model):
            return computed(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
        kept = recorder.take(input_ids, attention_mask, logits_to_keep)
        if kept is None:
            return computed(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
        if recorder.verified:
            recorder.served += 1
            return kept, None, None
        result = computed(model, input_ids, attention_mask, logits_to_keep, *args, **kwargs)
        live = attention_mask[:, -logits_to_keep:].bool()
        gap = (result[0].float() - kept.float()).abs()[live].mean().item() if live.any() else 0.0
        recorder.verified, recorder.enabled, recorder.gap = True, gap <= SAMPLED_LOGPROB_TOLERANCE, gap
        print(f"old log-probs of the PPO ratio: {'kept while sampling' if recorder.enabled else 'recomputed'} (first "
              f"batch: sampled vs TRL's forward differ by {gap:.2g} per token; "
              f"{'within' if recorder.enabled else 'over'} {SAMPLED_LOGPROB_TOLERANCE})")
        return result

    trainer._get_per_token_logps_and_entropies = per_token_logps


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
    runs = _runs(model)
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
