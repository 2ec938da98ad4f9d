"""rlft.speed: the reward stages' generation speed-ups sample exactly what plain `generate` samples, leave the frozen
weights (the KL reference) untouched, and step aside where they do not apply."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlft import compat, speed

PROMPTS = ["Hello there, how are you?", "Fix my code now!!!", "Why is the sky blue? Tell me in detail."]


@pytest.fixture(scope="module")
def lora_model(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.padding_side = "left"
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                           LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)  # as after training: the adapter changes the outputs
    return model.eval(), tokenizer


def encode(tokenizer, prompts, k):
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in prompts for _ in range(k)]
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def test_same_tokens_as_plain_generate_and_weights_untouched(lora_model):
    model, tokenizer = lora_model
    inputs = encode(tokenizer, PROMPTS, k=4)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    plain = model.generate
    kwargs = {**inputs, "max_new_tokens": 12, "pad_token_id": tokenizer.pad_token_id}
    greedy = plain(**kwargs, do_sample=False)
    torch.manual_seed(1)
    sampled = plain(**kwargs, do_sample=True, temperature=1.0, top_k=0)
    speed.wrap_generate(model)
    rows = []  # batch size of each forward: the shared prefill runs the 3 prompts once, not their 12 copies
    hook = model.get_base_model().model.register_forward_pre_hook(  # the decoder: PEFT calls forward directly above it
        lambda module, args, kw: rows.append(kw["input_ids"].shape[0]), with_kwargs=True)
    try:
        assert torch.equal(model.generate(**kwargs, do_sample=False), greedy)
        assert rows[0] == len(PROMPTS) and rows[1] == 4 * len(PROMPTS), rows
        torch.manual_seed(1)
        assert torch.equal(model.generate(**kwargs, do_sample=True, temperature=1.0, top_k=0), sampled)
    finally:
        model.generate = plain
        hook.remove()
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    assert not any(m.merged for m in compat.lora_linears(model))
    # the merge really changes what runs: the adapter's effect is in the merged weights
    layer = compat.lora_linears(model)[0]
    original = layer.get_base_layer().weight
    with speed.merged_adapter(model):
        assert layer.merged and not torch.equal(layer.get_base_layer().weight, original)
    assert layer.get_base_layer().weight is original


def test_group_size():
    ids = torch.tensor([[1, 2], [1, 2], [3, 4], [3, 4], [5, 6], [5, 6]])
    assert speed._group_size(ids, torch.ones_like(ids)) == 2
    assert speed._group_size(ids[:1].repeat(4, 1), torch.ones(4, 2)) == 4
    assert speed._group_size(torch.tensor([[1, 2], [3, 4]]), torch.ones(2, 2)) == 1  # distinct rows: plain generate


def test_env_switch_and_vllm_leave_generate_alone(monkeypatch):
    class Args:
        use_vllm = False
        use_transformers_continuous_batching = False

    class Trainer:
        args = Args()

    monkeypatch.setenv("RLFT_GENERATION_SPEEDUPS", "0")
    assert speed.speed_up_generation(Trainer()) is False
    monkeypatch.delenv("RLFT_GENERATION_SPEEDUPS")
    Trainer.args.use_vllm = True
    assert speed.speed_up_generation(Trainer()) is False


def test_use_vllm_is_checked_at_validate(tmp_path, tiny_model_dir, capsys):
    """use_vllm: true on this machine (no vLLM, no GPU), with 8-bit weights and with greedy_probe: one clear error
    per problem, exit 2."""
    from conftest import prompt_rows, write_jsonl, write_recipe
    from rlft.cli import main
    from rlft.errors import EXIT_USER_ERROR

    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    recipe = write_recipe(tmp_path / "recipe.yaml", f"""name: t
model: {tiny_model_dir}
stages:
  - name: rl
    type: grpo
    data: {{train: prompts.jsonl}}
    rewards: [{{fn: reward_models.guards:repetition_penalty}}]
    lora: {{r: 4, target_modules: all-linear}}
    quantization: {{load_in_8bit: true}}
    greedy_probe: true
    args: {{use_vllm: true, vllm_mode: colocate, vllm_tensor_parallel_size: 2, per_device_train_batch_size: 2,
            num_generations: 2}}
""")
    with pytest.raises(SystemExit) as e:
        main(["validate", str(recipe)])
    assert e.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    if torch.cuda.is_available():
        pytest.skip("the GPU message needs a machine without GPU")
    assert "stages[0].args.use_vllm: vLLM generation needs a GPU" in " ".join(err.split())
    assert "quantization.load_in_8bit: vLLM cannot run 8-bit" in " ".join(err.split())
    assert "greedy_probe: works with transformers' generate only, and args.use_vllm is on" in " ".join(err.split())
    assert "vllm_tensor_parallel_size: is 2, which does not divide the 1 training processes" in " ".join(err.split())
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        assert "vLLM is not installed: pip install 'trl[vllm]'" in " ".join(err.split())


def test_live_lora_dropout_keeps_peft_forward(tiny_model_dir):
    """In train mode a LoRA dropout samples noise on every call; folding the adapter in would drop it."""
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32),
                           LoraConfig(task_type="CAUSAL_LM", r=4, lora_dropout=0.1, target_modules="all-linear"))
    model.train()
    with speed.merged_adapter(model):
        assert not any(m.merged for m in compat.lora_linears(model))
    model.eval()
    with speed.merged_adapter(model):
        assert all(m.merged for m in compat.lora_linears(model))
    assert not any(m.merged for m in compat.lora_linears(model))
