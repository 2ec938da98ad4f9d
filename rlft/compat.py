"""Every workaround that reaches into a library's private API or internal state, in one place.

Each function names the upstream behaviour it works around and the version it was written against.
tests/test_compat.py fails when that behaviour changes (the private name goes, its signature changes, or the
workaround is no longer needed), and pyproject.toml bounds the versions of the libraries touched here.
Not here: the keyword arguments TRL passes to rewards and its log keys (rlft/rewards/, with the reward code).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import warnings
from pathlib import Path

BNB_CPU_LOGGER = "bitsandbytes.backends.cpu.ops"
GRADIENT_CHECKPOINTING_WARNING = "`is_gradient_checkpointing` is deprecated"


def quiet_library_noise() -> None:
    """Silence two library messages that say nothing about the user's run (called on `import rlft`).

    bitsandbytes (CPU backend): PEFT imports bitsandbytes whenever it is installed, and its CPU backend then warns on
    every command, from the `bitsandbytes.backends.cpu.ops` logger, that an optional speed-up kernel (the `kernels`
    package) is missing, with or without quantization in the recipe. It has a working fallback; other bitsandbytes
    messages still show.
    peft 0.21 reads `model.is_gradient_checkpointing`, which transformers 5 renamed (`is_activation_checkpointing`)
    and warns about (FutureWarning) on every LoRA run; the user can do nothing about it. Remove once PEFT reads the
    new name.
    """
    logging.getLogger(BNB_CPU_LOGGER).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=GRADIENT_CHECKPOINTING_WARNING, category=FutureWarning)


# TRL 1.16: the trainer's private methods `rlft run --profile` times (method -> profile part; None: decided per call,
# reference or policy log-probs). They are wrapped on the trainer instance, only to time them; a method a trainer
# lacks is skipped, so a rename in TRL would silently move its time into `other` (tests/test_compat.py catches it).
TRL_PROFILED_METHODS = {
    "training_step": "forward_backward",
    "_prepare_inputs": "rollout_other",
    "_calculate_rewards": "rewards",  # GRPOTrainer, RLOOTrainer
    "_calculate_rewards_from_functions": "rewards",  # OnlineDPOTrainer
    "_get_per_token_logps_and_entropies": None,  # GRPOTrainer, RLOOTrainer
}


def wrap_trl_trainer_methods(trainer, wrap, per_call_part) -> None:
    """Replace each of TRL_PROFILED_METHODS the trainer has by `wrap(part, method)` on the instance.

    `per_call_part(trainer, *args, **kwargs)` names the part of a call whose part is None. An offline trainer's
    `_prepare_inputs` (no `_calculate_rewards*`: it only moves a batch to the device) is left alone.
    """
    rollout = any(hasattr(trainer, m) for m in ("_calculate_rewards", "_calculate_rewards_from_functions"))
    for method, part in TRL_PROFILED_METHODS.items():
        if not hasattr(trainer, method) or (method == "_prepare_inputs" and not rollout):
            continue
        if part is None:
            part = functools.partial(per_call_part, trainer)
        setattr(trainer, method, wrap(part, getattr(trainer, method)))


# TRL 1.16, GRPOTrainer and RLOOTrainer: the greedy probe (rlft.greedy_probe) marks and re-weighs the greedy rows in the
# trainer's reward step and logs beside TRL's own per-step metrics. TRL has no hook for either; tests/test_compat.py
# checks both private methods and their signatures.
def wrap_trl_rewards(trainer, wrap) -> None:
    """Replace the trainer's reward step, `_calculate_rewards(inputs, prompts, completions, completion_ids_list)` ->
    a (completions, reward functions) tensor gathered over the processes, by `wrap(step)` on the instance."""
    trainer._calculate_rewards = wrap(trainer._calculate_rewards)


def log_trl_metric(trainer, name: str, value: float) -> None:
    """Add `value` to the trainer's metrics of this step (averaged and written with TRL's own at the next log)."""
    trainer._log_metric(name, value)


@contextlib.contextmanager
def merged_adapter(model):
    """LoRA linears run with their adapter folded into a copy of the weight; originals restored on exit.

    peft 0.21: `lora.Linear.forward` calls the base layer alone when `module.merged` is true, and `merged` is
    `bool(module.merged_adapters)`. PEFT's own `merge()` adds the delta into the base weight in place (and `unmerge()`
    subtracts it again, which is not bit-exact, and the KL reference runs on the same weights). Here the merged
    weight is a new tensor (`get_base_layer().weight + get_delta_weight(a)`), swapped in for the call and swapped back
    after, with `merged_adapters` set so PEFT's forward does not add the delta a second time. Skipped where PEFT's
    forward differs from a plain matmul: adapters disabled, already merged, a live `lora_dropout` (train mode, p > 0),
    a LoRA variant (DoRA and the others PEFT routes through `module.lora_variant`), `lora_bias`, and weights not in
    fp32 (a bf16 weight plus a small delta rounds the delta away, where PEFT adds the adapter's output unrounded).
    """
    import torch

    swapped = []
    try:
        with torch.no_grad():
            for module in lora_linears(model):
                active = [a for a in module.active_adapters if a in module.lora_A]
                base = module.get_base_layer()
                if not active or module.merged or module.disable_adapters or _dropout_live(module, active) \
                        or _not_plain(module, active) or base.weight.dtype != torch.float32:
                    continue  # PEFT's forward computes something else than W + B@A here: keep it
                weight = base.weight
                merged = weight.detach().clone()
                for adapter in active:
                    merged += module.get_delta_weight(adapter).to(merged.dtype)
                base.weight = torch.nn.Parameter(merged, requires_grad=False)
                module.merged_adapters = list(active)  # PEFT's forward then calls the base layer alone
                swapped.append((module, base, weight))
        yield
    finally:
        for module, base, weight in swapped:
            base.weight = weight
            module.merged_adapters = []


def _not_plain(module, adapters) -> bool:
    """A LoRA variant (DoRA, ...) or a LoRA bias: PEFT's forward and merge are more than `get_delta_weight`."""
    variants = getattr(module, "lora_variant", {})
    bias = getattr(module, "lora_bias", {})
    return any(a in variants or bias.get(a, False) for a in adapters)


def _dropout_live(module, adapters) -> bool:
    import torch

    return module.training and any(not isinstance(module.lora_dropout[a], torch.nn.Identity) for a in adapters)


def is_trl_reference(trainer, model) -> bool:
    """True when a log-prob pass of `trainer` (GRPO/RLOO) runs TRL's KL reference: its own `ref_model`, the policy inside
    PEFT's `disable_adapter()`, or (re-training an existing adapter) the copy TRL activates under the name "ref"."""
    if model is not None and model is getattr(trainer, "ref_model", None):
        return True
    from peft.tuners.tuners_utils import BaseTunerLayer  # peft: deferred like the rest of this module's PEFT imports

    for module in trainer.accelerator.unwrap_model(model).modules():
        if isinstance(module, BaseTunerLayer):
            return bool(module.disable_adapters) or list(module.active_adapters) == ["ref"]
    return False


def lora_linears(model) -> list:
    """PEFT's LoRA `Linear` layers of `model` whose base weight is a plain tensor (else none: nothing to fold)."""
    import torch

    try:
        from peft.tuners.lora import Linear
    except ImportError:
        return []
    modules = [m for m in model.modules() if isinstance(m, Linear)]
    # Quantized (bitsandbytes) or sharded (ZeRO-3/FSDP) weights cannot be summed in place of a plain tensor.
    if any(type(m.get_base_layer()) is not torch.nn.Linear or m.get_base_layer().weight.numel() == 0
           for m in modules):
        return []
    return modules


def reset_accelerate_state() -> None:
    """Forget accelerate's process-wide state after the process group is destroyed.

    accelerate 1.15: `AcceleratorState` and `PartialState` keep their state in class-level `_shared_state` dicts (a
    singleton per process) and have no public reset; after `destroy_process_group` they still describe the dead
    group, so a second run in the same process (a test, a notebook) would use it. `AcceleratorState._reset_state
    (reset_partial_state=True)` is what accelerate's own tests call.
    """
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def forget_deepspeed_config() -> None:
    """Clear the ZeRO-3 setting a finished stage left in transformers, before one process loads a model alone.

    transformers 5.24: building `TrainingArguments` under DeepSpeed ZeRO-3 registers its `HfDeepSpeedConfig` in the
    module global `transformers.integrations.deepspeed._hf_deepspeed_config_weak_ref`; while it is alive, every
    `from_pretrained` partitions the weights with collectives that all ranks must enter, so a load on rank 0 only
    (the LoRA merge) hangs. `unset_hf_deepspeed_config()` (meant for unit tests) clears it; the next stage's
    TrainingArguments sets it again.
    """
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()


def load_gguf_dequantized(gguf: Path, dtype):
    """A causal LM loaded from a `.gguf` file as a plain model of `dtype` that `save_pretrained` accepts.

    transformers 5.24 loads GGUF through `GgufHfQuantizer`: with the `kernels` package installed it keeps quantized
    weights packed (`GgufLinear`), and without `dequantize` it leaves the model marked quantized (`hf_quantizer`,
    `config.quantization_config`), so `save_pretrained` refuses it ("quantized with gguf and is not serializable").
    `GgufConfig(dequantize=True)` (from transformers' GGUF rewrite) unpacks every weight into plain tensors and drops that
    marking. Before it rlft cleared `model.hf_quantizer` and `config.quantization_config` by hand.
    """
    from transformers import AutoModelForCausalLM, GgufConfig

    gguf = Path(gguf)
    return AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=dtype,
                                                quantization_config=GgufConfig(dequantize=True))


def fix_tied_token_head(model) -> None:
    """Give PEFT's wrapped LM head the `bias` TRL reads.

    peft 0.21: with tied embeddings and `trainable_token_indices`, PEFT wraps the output embedding in a
    `TrainableTokensWrapper` whose `.weight` includes the new rows but which has no `.bias` attribute. TRL 1.16's
    fused LM-head paths read `lm_head.weight` and `lm_head.bias` (GRPOTrainer), so they fail with AttributeError.
    The wrapped head has no bias, so `None` is the true value.
    """
    head = model.get_output_embeddings()
    if type(head).__name__ == "TrainableTokensWrapper" and not hasattr(head, "bias"):
        head.bias = None


# TRL 1.16: the fused LM head of every trainer (trl.trainer.utils.add_fused_lm_head) ------------------------------
# Scored positions x vocabulary above which the full logits (kept in fp32 for the backward, with their log-softmax)
# would take too much memory: TRL's tiled kernel runs instead. 2^27 = ~1 GiB of fp32 logits, e.g. 2,700 positions of
# a 49k vocabulary.
LM_HEAD_NATIVE_MAX_LOGITS = 2**27


def cpu_lm_head_enabled() -> bool:
    return os.environ.get("RLFT_CPU_LM_HEAD", "1").strip().lower() not in ("0", "false", "no", "off")


def install_cpu_lm_head() -> bool:
    """On a CPU, make TRL's fused LM head score only the labelled positions, in one GEMM (idempotent; False where
    TRL has no such head or RLFT_CPU_LM_HEAD=0).

    TRL 1.16's trainers (SFT, GRPO/RLOO, DPO, ...) never build full logits: `trl.trainer.utils.add_fused_lm_head`
    patches the model so that `model(..., labels=..., fused_lm_head=True)` returns per-token log-probs, computed by
    `ChunkedLogProbFunction` in vocabulary tiles. That saves GPU memory; on a CPU it costs time twice over:
      1. Every position is scored, the masked ones too (a chat row's prompt, padding, a GRPO prompt): TRL leaves them
         out (`compact`) only where `_use_triton(device)`, keeping tile shapes fixed for compilers elsewhere. Eager
         CPU code recompiles nothing.
      2. Without Triton each tile is folded by a chain of fp32 torch ops, and the backward recomputes the tiles and
         runs both gradient GEMMs as fp32 `addmm_` on fp32 copies: the CPU's fp32 rate, not its bf16 rate.
    Here `_use_triton` (in trl.trainer.utils, where it only decides `compact`) is true on a CPU, and
    `_ChunkedLogProbFunction` computes CPU rows with `lm_head_log_probs`: the head's own GEMM under the trainer's
    autocast, a log-softmax in fp32, autograd for the gradient. The head was 41% of an SFT step of
    recipes/sft_only.yaml (torch profiler); benchmarks/sft_vs_trl.py measures the stage against plain TRL. Off a
    CPU, and above LM_HEAD_NATIVE_MAX_LOGITS (memory), TRL's kernel runs unchanged. tests/test_lm_head.py compares
    both against TRL's kernel and fails when the private names go.
    """
    try:
        from trl.trainer import utils
    except ImportError:
        return False
    if not cpu_lm_head_enabled() or not hasattr(utils, "_ChunkedLogProbFunction") or not hasattr(utils, "_use_triton"):
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
            if hidden.device.type != "cpu" or hidden.size(0) * weight.size(0) > LM_HEAD_NATIVE_MAX_LOGITS:
                return kernel.apply(hidden, weight, bias, targets, temperature, chunk_size, final_logit_softcapping,
                                    logit_scale, outputs)
            return lm_head_log_probs(hidden, weight, bias, targets, temperature, final_logit_softcapping,
                                     logit_scale, outputs)

    return CpuAwareLogProb


def lm_head_log_probs(hidden, weight, bias, targets, temperature: float, softcap: float | None = None,
                      logit_scale: float = 1.0, outputs=()):
    """(log p(target), entropy, log sum p^2, mean logit, target is the argmax) per row of `hidden`, as TRL's kernel
    returns them: the logits scaled, soft-capped, then divided by the temperature; None for what `outputs` omits."""
    import torch

    z = torch.nn.functional.linear(hidden, weight, bias).float()
    if logit_scale != 1.0:  # each of these is a pass over positions x vocabulary, and another in the backward
        z = z * logit_scale
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    if temperature != 1.0:
        z = z / temperature
    log_p = torch.log_softmax(z, dim=-1)
    picked = log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_p.exp() * log_p).sum(-1) if "entropy" in outputs else None
    with torch.no_grad():  # TRL marks these three non-differentiable
        sum_sq = torch.logsumexp(2 * log_p, dim=-1) if "log_sum_sq_probs" in outputs else None
        mean_logits = z.mean(-1) if "mean_logits" in outputs else None
        is_top1 = z.argmax(-1) == targets if "is_top1" in outputs else None
    return picked, entropy, sum_sq, mean_logits, is_top1
