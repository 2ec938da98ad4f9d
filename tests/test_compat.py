"""rlft/compat.py: each workaround of a library's private API, and a test that fails when upstream changes it.

A failure here after an upgrade means: the private name moved or changed (update compat.py), or upstream fixed the
behaviour (drop the workaround), then move the version bound in pyproject.toml.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import warnings

import numpy as np
import pytest
import torch

from rlft import compat


def test_accelerate_state_reset_still_private_and_still_clears_both_singletons():
    from accelerate.state import AcceleratorState, PartialState

    assert "reset_partial_state" in inspect.signature(AcceleratorState._reset_state).parameters
    assert not hasattr(PartialState, "reset")  # no public way yet: the private one is still needed
    PartialState(cpu=True)
    assert PartialState._shared_state != {}
    compat.reset_accelerate_state()
    assert PartialState._shared_state == {} and AcceleratorState._shared_state == {}


def test_deepspeed_global_is_still_a_module_global_that_unset_clears():
    from transformers.integrations import deepspeed

    class Zero3:  # what HfDeepSpeedConfig answers; a real one needs deepspeed and GPUs
        def is_zero3(self):
            return True

    assert hasattr(deepspeed, "_hf_deepspeed_config_weak_ref")
    config = Zero3()
    deepspeed.set_hf_deepspeed_config(config)
    try:
        assert deepspeed.is_deepspeed_zero3_enabled()  # still set after the stage: from_pretrained would partition
        compat.forget_deepspeed_config()
        assert not deepspeed.is_deepspeed_zero3_enabled()
    finally:
        deepspeed.unset_hf_deepspeed_config()


def write_tiny_gguf(path, quantized: bool = True):
    """A 1-layer Llama in GGUF (one Q8_0 matrix), written with the gguf package: seconds, no download."""
    import gguf

    vocab, hidden, inter, heads, kv = 32, 32, 64, 2, 1
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_block_count(1)
    w.add_feed_forward_length(inter)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"t{i}" for i in range(vocab)])
    rng = np.random.default_rng(0)
    head_dim = hidden // heads
    shapes = {"token_embd": (vocab, hidden), "output_norm": (hidden,), "output": (vocab, hidden),
              "blk.0.attn_norm": (hidden,), "blk.0.ffn_norm": (hidden,), "blk.0.attn_q": (hidden, hidden),
              "blk.0.attn_k": (kv * head_dim, hidden), "blk.0.attn_v": (kv * head_dim, hidden),
              "blk.0.attn_output": (hidden, hidden), "blk.0.ffn_gate": (inter, hidden),
              "blk.0.ffn_up": (inter, hidden), "blk.0.ffn_down": (hidden, inter)}
    for name, shape in shapes.items():
        values = (rng.standard_normal(shape) * 0.02).astype(np.float32)
        if quantized and name == "blk.0.ffn_up":
            q = gguf.quants.quantize(values, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(f"{name}.weight", q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        else:
            w.add_tensor(f"{name}.weight", values)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_gguf_loaded_model_is_still_refused_by_save_pretrained_and_dequantize_makes_it_plain(tmp_path):
    from transformers import AutoModelForCausalLM

    path = write_tiny_gguf(tmp_path / "tiny.gguf")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32)
    with pytest.raises(ValueError, match="not serializable"):  # still needed: transformers refuses to save it
        plain.save_pretrained(tmp_path / "refused")

    model = compat.load_gguf_dequantized(path, torch.float32)
    assert getattr(model, "hf_quantizer", None) is None and getattr(model.config, "quantization_config", None) is None
    assert all(type(m) is torch.nn.Linear for n, m in model.named_modules() if n.endswith(("_proj", "lm_head")))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    model.save_pretrained(tmp_path / "out")
    assert "quantization_config" not in json.loads((tmp_path / "out" / "config.json").read_text())
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    ids = torch.tensor([[1, 2, 3]])
    assert torch.allclose(again(ids).logits, model(ids).logits)
    assert torch.allclose(again(ids).logits, plain(ids).logits, atol=1e-5)  # the same weights as transformers reads


def test_tied_trainable_token_head_still_lacks_bias_that_trl_reads(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer import utils as trl_utils

    assert "lm_head.bias" in inspect.getsource(trl_utils.add_fused_lm_head)  # TRL reads the head's bias
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"], trainable_token_indices=[0, 1],
                                             task_type="CAUSAL_LM"))
    head = model.get_output_embeddings()
    assert type(head).__name__ == "TrainableTokensWrapper"
    assert not hasattr(head, "bias")  # still needed: PEFT's wrapper has no bias
    compat.fix_tied_token_head(model)
    assert head.bias is None


def test_bitsandbytes_cpu_kernel_notice_still_comes_from_the_silenced_logger():
    ops = pytest.importorskip("bitsandbytes.backends.cpu.ops")
    assert ops.logger.name == compat.BNB_CPU_LOGGER  # renamed upstream: the notice would show again
    assert "pip install kernels" in inspect.getsource(ops)  # gone upstream: drop the silencing
    compat.quiet_library_noise()
    assert not ops.logger.isEnabledFor(logging.WARNING)


def test_peft_still_reads_is_gradient_checkpointing_and_transformers_still_warns(tiny_model_dir):
    from peft import peft_model
    from transformers import AutoModelForCausalLM

    assert "is_gradient_checkpointing" in inspect.getsource(peft_model)  # PEFT reads the new name: drop the filter
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.is_gradient_checkpointing
    texts = [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert any(re.match(compat.GRADIENT_CHECKPOINTING_WARNING, t) for t in texts), texts  # filter still matches
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compat.quiet_library_noise()
        model.is_gradient_checkpointing
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]


@pytest.mark.parametrize("name", ["GRPOTrainer", "RLOOTrainer", "OnlineDPOTrainer"])
def test_trl_trainer_methods_the_profiler_wraps_still_exist(name):
    """Fails when TRL renames a method `--profile` times (its time would silently fall into `other`)."""
    import trl

    if name == "OnlineDPOTrainer":
        from trl.experimental.online_dpo import OnlineDPOTrainer as trainer
    else:
        trainer = getattr(trl, name)
    expected = {"training_step", "_prepare_inputs", "_calculate_rewards_from_functions"} if name == "OnlineDPOTrainer" \
        else set(compat.TRL_PROFILED_METHODS) - {"_calculate_rewards_from_functions"} | {"_generate_single_turn"}
    for method in expected:
        assert callable(getattr(trainer, method, None)), f"{name}.{method}"


@pytest.mark.parametrize("name", ["GRPOTrainer", "RLOOTrainer"])
def test_trl_reward_step_and_metric_log_the_greedy_probe_uses_still_exist(name):
    """Fails when TRL renames or reshapes the reward step `compat.wrap_trl_rewards` replaces, or `_log_metric`."""
    import trl

    trainer = getattr(trl, name)
    assert list(inspect.signature(trainer._calculate_rewards).parameters) == \
        ["self", "inputs", "prompts", "completions", "completion_ids_list"]
    assert list(inspect.signature(trainer._log_metric).parameters) == ["self", "name", "value"]
    assert "reward_weights" in inspect.getsource(trainer.__init__)


def test_peft_lora_forward_still_skips_the_delta_when_merged_adapters_is_set():
    """rlft folds LoRA into a weight copy and sets `merged_adapters`; PEFT must then run the base layer alone."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(torch.nn.Sequential(torch.nn.Linear(8, 6)),
                           LoraConfig(r=2, target_modules=["0"], init_lora_weights=False)).eval()
    layer = compat.lora_linears(model)[0]
    base = layer.get_base_layer()
    weight = base.weight
    x = torch.randn(3, 8)
    with torch.no_grad():
        unmerged = model(x)
        assert not torch.allclose(unmerged, base(x), atol=1e-4)  # the adapter really changes the output
        with compat.merged_adapter(model):
            assert layer.merged and base.weight is not weight
            merged = model(x)
            assert torch.allclose(merged, base(x))  # PEFT called the base layer alone: no delta added twice
        assert torch.allclose(merged, unmerged, atol=1e-5)
        assert base.weight is weight and not layer.merged
        assert torch.equal(model(x), unmerged)
