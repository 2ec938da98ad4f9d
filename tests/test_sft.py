"""Real SFT runs through TRL on a tiny random model: every data format, LoRA, QLoRA, special tokens."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import CHAT, messages_rows, write_jsonl, write_recipe
from rlft.run import run

LORA = "lora: {r: 4, lora_alpha: 8, target_modules: all-linear}"
ARGS = "args: {max_steps: 2, per_device_train_batch_size: 2, learning_rate: 1.0e-2, max_length: 128}"


def sft_recipe(tmp_path, model_dir, data_block: str, extra: str = LORA) -> str:
    return write_recipe(tmp_path / "recipe.yaml", f"""
name: t
model: {model_dir}
seed: 0
stages:
  - name: sft
    type: sft
    data: {data_block}
    {extra}
    {ARGS}
""")


def lora_b_norm(stage_dir) -> float:
    weights = load_file(stage_dir / "adapter_model.safetensors")
    b = [w for k, w in weights.items() if "lora_B" in k]
    assert b, f"no LoRA B matrices in {sorted(weights)[:5]}"
    return sum(float(w.abs().sum()) for w in b)


FORMATS = {
    "messages": (messages_rows(), "{train: data.jsonl}"),
    "prompt_completion": ([{"prompt": q, "completion": a} for q, a in CHAT], "{train: data.jsonl}"),
    "instruction": ([{"instruction": q, "input": "", "output": a} for q, a in CHAT], "{train: data.jsonl}"),
    "text": ([{"text": f"Q: {q}\nA: {a}"} for q, a in CHAT], "{train: data.jsonl}"),
    "mapped": ([{"conversation": r["messages"]} for r in messages_rows()],
               "{train: data.jsonl, format: messages, columns: {messages: conversation}}"),
}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_each_format_trains_lora(tmp_path, tiny_model_dir, fmt):
    rows, block = FORMATS[fmt]
    write_jsonl(tmp_path / "data.jsonl", rows)
    root = run(sft_recipe(tmp_path, tiny_model_dir, block), output_dir=str(tmp_path / "run"))
    stage = root / "stages" / "00_sft"
    # LoRA B starts at zero: any non-zero value means the optimiser really updated the adapter
    assert lora_b_norm(stage) > 0
    assert (stage / "stage_complete.json").is_file()


def test_full_finetune_changes_weights(tmp_path, tiny_model_dir):
    write_jsonl(tmp_path / "data.jsonl", messages_rows())
    root = run(sft_recipe(tmp_path, tiny_model_dir, "{train: data.jsonl}", extra=""), output_dir=str(tmp_path / "run"))
    before = load_file(tiny_model_dir / "model.safetensors")
    after = load_file(root / "stages" / "00_sft" / "model.safetensors")
    changed = [k for k in before if k in after and not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2


@pytest.mark.parametrize("bits", [4, 8])
def test_qlora_trains(tmp_path, tiny_model_dir, bits):
    pytest.importorskip("bitsandbytes")
    write_jsonl(tmp_path / "data.jsonl", messages_rows())
    recipe = sft_recipe(tmp_path, tiny_model_dir, "{train: data.jsonl}",
                        extra=f"{LORA}\n    quantization: {{load_in_{bits}bit: true}}")
    root = run(recipe, output_dir=str(tmp_path / "run"))
    stage = root / "stages" / "00_sft"
    assert lora_b_norm(stage) > 0
    config = json.loads((stage / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA"


def test_special_tokens_grow_vocab_train_and_reload(tmp_path, tiny_model_dir):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    rows = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": f"<|polite|> {a}"}]}
            for q, a in CHAT]
    write_jsonl(tmp_path / "data.jsonl", rows)
    recipe = sft_recipe(tmp_path, tiny_model_dir, "{train: data.jsonl}", extra=f"{LORA}\n    special_tokens: ['<|polite|>']")
    root = run(recipe, output_dir=str(tmp_path / "run"))
    stage = root / "stages" / "00_sft"
    base_vocab = len(AutoTokenizer.from_pretrained(tiny_model_dir))
    tok = AutoTokenizer.from_pretrained(stage)
    assert len(tok) == base_vocab + 1
    new_id = tok.convert_tokens_to_ids("<|polite|>")
    assert new_id == base_vocab
    # the new row is saved with the adapter, small (not the whole embedding matrix) and trained
    saved = load_file(stage / "adapter_model.safetensors")
    token_keys = [k for k in saved if "trainable_tokens" in k]
    assert token_keys, sorted(saved)[:10]
    assert (stage / "adapter_model.safetensors").stat().st_size < 2_000_000
    model = AutoPeftModelForCausalLM.from_pretrained(stage)
    emb = model.get_input_embeddings()
    assert emb.weight.shape[0] == base_vocab + 1
    reloaded_row = emb.weight[new_id].detach()
    assert torch.allclose(reloaded_row, saved[token_keys[0]].reshape(-1, reloaded_row.shape[0])[0])
    # a second reload gives the same row: the trained values come from the adapter, not from random resizing
    again = AutoPeftModelForCausalLM.from_pretrained(stage).get_input_embeddings().weight[new_id].detach()
    assert torch.equal(reloaded_row, again)


def test_cpu_defaults_are_recorded_and_recipe_values_win(tmp_path, tiny_model_dir):
    """On a CPU with short rows rlft trains with eager attention and length-grouped batches; the stage folder records
    the config it ran with (every default resolved), and a recipe's own attention and sampler win."""
    rows, block = FORMATS["messages"]
    write_jsonl(tmp_path / "data.jsonl", rows)
    stage = run(sft_recipe(tmp_path, tiny_model_dir, block), output_dir=str(tmp_path / "run")) / "stages" / "00_sft"
    ran = json.loads((stage / "trainer_config.json").read_text())
    expected = "sdpa" if torch.cuda.is_available() else "eager"  # eager is rlft's choice on a CPU only
    assert (ran["config_class"], ran["attn_implementation"]) == ("SFTConfig", expected)
    assert ran["args"]["train_sampling_strategy"] == "group_by_length"
    assert (ran["args"]["max_length"], ran["args"]["learning_rate"]) == (128, 1.0e-2)  # the recipe's values

    text = sft_recipe(tmp_path, tiny_model_dir, block).read_text()
    text = text.replace("seed: 0", "seed: 0\nattn_implementation: sdpa").replace(
        "max_length: 128", "max_length: 128, train_sampling_strategy: random")
    stage = run(write_recipe(tmp_path / "own.yaml", text), output_dir=str(tmp_path / "own")) / "stages" / "00_sft"
    ran = json.loads((stage / "trainer_config.json").read_text())
    assert (ran["attn_implementation"], ran["args"]["train_sampling_strategy"]) == ("sdpa", "random")


def test_long_rows_keep_transformers_attention(tmp_path, tiny_model_dir):
    """Eager attention keeps batch x heads x length^2 weights per layer for the backward: past 512 tokens rlft leaves
    transformers' default (sdpa)."""
    rows, block = FORMATS["messages"]
    write_jsonl(tmp_path / "data.jsonl", rows)
    text = sft_recipe(tmp_path, tiny_model_dir, block).read_text().replace("max_length: 128", "max_length: 1024")
    stage = run(write_recipe(tmp_path / "long.yaml", text), output_dir=str(tmp_path / "run")) / "stages" / "00_sft"
    assert json.loads((stage / "trainer_config.json").read_text())["attn_implementation"] == "sdpa"
