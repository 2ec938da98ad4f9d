"""Every workaround that reaches into a library's private API or internal state, in one place.

Each function names the upstream behaviour it works around and the version it was written against.
tests/test_compat.py fails when that behaviour changes (the private name goes, its signature changes, or the
workaround is no longer needed), and pyproject.toml bounds the versions of the libraries touched here.
Not here: the keyword arguments TRL passes to rewards and its log keys (rlft/rewards/, with the reward code).
"""

from __future__ import annotations

from pathlib import Path


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
