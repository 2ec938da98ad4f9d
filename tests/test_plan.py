"""`rlft plan`: exact parameter counts, sharding arithmetic, the example plans, and the command's messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import messages_rows, write_jsonl, write_recipe
from rlft.errors import RlftError
from rlft.launch import Launch
from rlft.plan import GiB, lora_params, parse_size, plan, shape_of, stage_memory

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "plan"


@pytest.fixture(scope="module")
def tiny_shape(tiny_model_dir):
    from transformers import AutoConfig

    return shape_of(AutoConfig.from_pretrained(tiny_model_dir))


def test_counts_match_the_real_model_and_peft(tiny_model_dir, tiny_shape):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert tiny_shape.params == sum(p.numel() for p in model.parameters())  # tied embeddings counted once
    for lora in ({"r": 4, "target_modules": "all-linear"}, {"r": 8, "target_modules": ["q_proj", "v_proj"]}):
        peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                    LoraConfig(task_type="CAUSAL_LM", **lora))
        trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
        assert lora_params(tiny_shape, lora) == trainable


def test_sharding_arithmetic(tiny_shape):
    stage = {"type": "sft", "lora": None, "args": {"per_device_train_batch_size": 1, "max_length": 64}}
    single = stage_memory(stage, tiny_shape, Launch(), "bfloat16")
    p = tiny_shape.params
    assert single["weights"] == 2 * p and single["optimizer"] == 4 * p  # pure bf16: AdamW moments in bf16
    zero3 = stage_memory(stage, tiny_shape, Launch(kind="zero3", processes=4), "bfloat16")
    assert zero3["optimizer"] == 12 * p / 4 and zero3["gradients"] == 2 * p / 4  # fp32 master + moments, sharded
    zero2 = stage_memory(stage, tiny_shape, Launch(kind="zero2", processes=4), "bfloat16")
    assert zero2["weights"] == 2 * p  # ZeRO-2 keeps whole weights
    offload = stage_memory(stage, tiny_shape, Launch(kind="zero3", processes=4, offload_optimizer=True), "bfloat16")
    assert offload["optimizer"] == 0
    rl = {"type": "grpo", "lora": None, "args": {"per_device_train_batch_size": 4, "max_completion_length": 32,
                                                  "beta": 0.04}}
    lines = stage_memory(rl, tiny_shape, Launch(), "bfloat16")
    assert lines["kv cache"] == 4 * (256 + 32) * tiny_shape.layers * 2 * tiny_shape.kv_hidden * 2
    assert lines["ref+reward"] == 2 * p  # full fine-tuning with beta > 0 keeps a reference copy
    assert stage_memory({**rl, "lora": {"r": 4}}, tiny_shape, Launch(), "bfloat16")["ref+reward"] == 0
    cpu = stage_memory(rl, tiny_shape, Launch(on_gpu=False), "bfloat16")
    assert cpu["kv cache"] == 4 * lines["kv cache"]  # on a CPU one generation batch feeds 4 steps


def test_cpu_generation_batch_default():
    """On a CPU a reward stage generates for 4 optimizer steps at once unless the recipe sizes the batch; on a GPU,
    with vLLM, or for a trainer without the setting (online DPO) TRL's default stays."""
    from trl import GRPOConfig

    from rlft.stages import online_dpo
    from rlft.stages.online import with_generation_batch

    def spg(args, config=GRPOConfig, on_gpu=False):
        return with_generation_batch({"args": args}, config, on_gpu)["args"].get("steps_per_generation")

    assert spg({}) == 4 and spg({"gradient_accumulation_steps": 2}) == 8
    assert spg({"steps_per_generation": 1}) == 1 and spg({"generation_batch_size": 16}) is None
    assert spg({"gradient_accumulation_steps": "2"}) is None  # text: left to the check, which names it
    assert spg({}, on_gpu=True) is None and spg({"use_vllm": True}) is None and spg({}, online_dpo.CONFIG_CLASS) is None


def test_example_plans():
    """The 7B QLoRA example fits a 24 GB GPU at ~5-6 GiB; 70B full fine-tuning needs more than 8 x 80 GB under
    ZeRO-3 but fits on 16, and its LoRA GRPO stage fits on 8."""
    qlora = plan(str(FIXTURES / "qlora_7b.yaml"), gpu_mem="24GB")
    row = qlora["rows"][0]
    assert qlora["model"].params == 6_738_415_616  # Llama-2-7B
    assert 4.5 * GiB < row["total"] < 7 * GiB and row["fits"] == "yes"
    big = plan(str(FIXTURES / "zero3_70b.yaml"), gpus=8, config=str(ROOT / "configs" / "zero3.yaml"))
    assert big["launch"].kind == "zero3" and [r["fits"] for r in big["rows"]] == ["no", "yes"]
    gathered = plan(str(FIXTURES / "zero3_70b.yaml"), ["stages.grpo.args.ds3_gather_for_generation=true"], gpus=8,
                    config=str(ROOT / "configs" / "zero3.yaml"))["rows"][1]
    assert gathered["fits"] == "no"  # TRL's default gathers the whole 16-bit model on each GPU to generate
    assert plan(str(FIXTURES / "zero3_70b.yaml"), gpus=16, config=str(ROOT / "configs" / "zero3.yaml"))["rows"][0][
        "fits"] in ("yes", "tight")
    ddp = plan(str(FIXTURES / "zero3_70b.yaml"), gpus=8, config=str(ROOT / "configs" / "multi_gpu.yaml"))
    assert ddp["rows"][1]["total"] > 3 * big["rows"][1]["total"]  # DDP replicates what ZeRO-3 shards


def test_hub_model_not_cached_says_how_to_plan(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    write_jsonl(tmp_path / "d.jsonl", messages_rows())
    path = write_recipe(tmp_path / "r.yaml", "name: h\nmodel: some-org/not-cached-model\n"
                        "stages: [{name: s, type: sft, data: {train: d.jsonl}}]\n")
    with pytest.raises(RlftError, match="never downloads.*--model-config path/to/config.json"):
        plan(str(path))
    result = plan(str(path), model_config_path=str(FIXTURES / "llama-2-7b" / "config.json"))
    assert result["model"].params == 6_738_415_616


def test_parse_size_and_cli(capsys):
    assert parse_size("80GB") == parse_size("80GiB") == parse_size("80") == 80 * GiB
    assert parse_size("512MB") == 0.5 * GiB
    with pytest.raises(RlftError, match="like 80GB"):
        parse_size("eighty")
    from rlft.cli import main

    main(["plan", str(FIXTURES / "qlora_7b.yaml"), "--gpu-mem", "24GB"])
    out = capsys.readouterr().out
    assert "llama-2-7b" in out and "QLoRA r=16" in out and "peak/device" in out and "yes" in out
