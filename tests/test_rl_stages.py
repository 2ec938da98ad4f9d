"""Real runs of every reward-driven stage on the tiny random model: each takes a few steps and changes the trainable
weights; per-reward metrics land in metrics.jsonl; after a LoRA SFT stage the RL stage's reference is the SFT policy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import messages_rows, preference_rows, prompt_rows, write_jsonl, write_recipe
from rlft.run import run

ROOT = Path(__file__).resolve().parent.parent
LORA = "lora: {r: 4, lora_alpha: 8, target_modules: all-linear}"
GEN = "per_device_train_batch_size: 2, num_generations: 2, max_completion_length: 8, learning_rate: 1.0e-2"
REWARDS_PY = '''
def length(prompts, completions, **kwargs):
    return [len(c[-1]["content"]) / 100 for c in completions]

def brevity(prompts, completions, target_words=20, **kwargs):
    return [-abs(len(c[-1]["content"].split()) - target_words) / target_words for c in completions]

async def length_async(prompts, completions, **kwargs):  # an LLM judge's shape: every stage awaits it
    return [len(c[-1]["content"]) / 100 for c in completions]
'''


@pytest.fixture
def folder(tmp_path) -> Path:
    (tmp_path / "my_rewards.py").write_text(REWARDS_PY)
    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    write_jsonl(tmp_path / "prefs.jsonl", preference_rows())
    write_jsonl(tmp_path / "sft.jsonl", messages_rows())
    return tmp_path


def recipe(folder: Path, model_dir, stages: str) -> Path:
    return write_recipe(folder / "recipe.yaml", f"name: t\nmodel: {model_dir}\nseed: 0\nstages:\n{stages}")


SFT_LORA = f"""
  - name: sft
    type: sft
    data: {{train: sft.jsonl}}
    {LORA}
    args: {{max_steps: 2, per_device_train_batch_size: 2, learning_rate: 5.0e-2, max_length: 128}}
"""


def metrics(root: Path, stage: str) -> list[dict]:
    rows = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["stage"] == stage]


def changed(before: Path, after: Path) -> int:
    """How many tensors differ between two full-weight model folders."""
    a, b = load_file(before / "model.safetensors"), load_file(after / "model.safetensors")
    return sum(not torch.equal(a[k], b[k]) for k in a if k in b and a[k].shape == b[k].shape)


def lora_b_norm(stage_dir: Path) -> float:
    weights = load_file(stage_dir / "adapter_model.safetensors")
    return sum(float(w.abs().sum()) for k, w in weights.items() if "lora_B" in k)


def test_grpo_file_dotted_kwargs_weights_metrics(folder, tiny_model_dir):
    root = run(recipe(folder, tiny_model_dir, f"""
  - name: rl
    type: grpo
    data: {{train: prompts.jsonl}}
    rewards:
      - fn: my_rewards.py:length               # file path, relative to the recipe
      - fn: reward_models.politeness:politeness  # dotted path
        weight: 0.5
        kwargs: {{target_words: 60}}
      - fn: my_rewards.py:brevity
        weight: 0.2
        kwargs: {{target_words: 3}}
    args: {{max_steps: 2, {GEN}}}
"""), output_dir=str(folder / "run"))
    stage = root / "stages" / "00_rl"
    assert changed(tiny_model_dir, stage) > 5
    first = metrics(root, "rl")[0]
    means = [first[f"rewards/{name}/mean"] for name in ("length", "politeness", "brevity")]
    assert first["reward"] == pytest.approx(means[0] + 0.5 * means[1] + 0.2 * means[2], abs=1e-5)
    info = json.loads((stage / "rlft_stage.json").read_text())
    assert [r["weight"] for r in info["rewards"]] == [1.0, 0.5, 0.2]


def test_ppo_after_lora_sft_reference_is_the_sft_policy(folder, tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM
    from trl import GRPOTrainer

    captured, sped_up = [], []
    original = GRPOTrainer._generate_and_score_completions

    def capture(self, inputs):
        # rlft.speed wrapped the policy's generate (functools.wraps leaves __wrapped__) on the real trainer
        sped_up.append(hasattr(self.accelerator.unwrap_model(self.model).generate, "__wrapped__"))
        out = original(self, inputs)
        captured.append({k: v.detach().clone() for k, v in out.items() if isinstance(v, torch.Tensor)})
        return out

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", capture)
    root = run(recipe(folder, tiny_model_dir, SFT_LORA + f"""
  - name: ppo
    type: ppo
    data: {{train: prompts.jsonl}}
    rewards: [{{fn: my_rewards.py:length}}]
    {LORA}
    args: {{max_steps: 2, beta: 0.5, temperature: 1.0, {GEN}}}
"""), output_dir=str(folder / "run"))
    assert lora_b_norm(root / "stages" / "01_ppo") > 0
    assert sped_up and all(sped_up)
    args = torch.load(root / "stages" / "01_ppo" / "training_args.bin", weights_only=False)
    assert (args.scale_rewards, args.loss_type, args.num_iterations, args.beta) == ("batch", "dapo", 2, 0.5)
    batch = captured[0]
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    keep = batch["completion_mask"].bool()
    sft = per_token_logps(AutoModelForCausalLM.from_pretrained(root / "stages" / "00_sft" / "merged"), ids, mask,
                          batch["completion_ids"])
    base = per_token_logps(AutoModelForCausalLM.from_pretrained(tiny_model_dir), ids, mask, batch["completion_ids"])
    ref = batch["ref_per_token_logps"]
    assert torch.allclose(ref[keep], sft[keep], atol=1e-4)  # the reference is the SFT policy ...
    assert (ref[keep] - base[keep]).abs().max() > 1e-2  # ... and not the base model under the adapter


def per_token_logps(model, ids, mask, completion_ids) -> torch.Tensor:
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, -completion_ids.shape[1] - 1:-1]
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)


def test_dpo_on_preferences_after_lora_sft_reference_is_the_sft_policy(folder, tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer

    trainers = []
    original = DPOTrainer.train

    def keep(self, *args, **kwargs):
        trainers.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DPOTrainer, "train", keep)
    sft_with_token = SFT_LORA.replace("    args:", "    special_tokens: ['<|polite|>']\n    args:")
    root = run(recipe(folder, tiny_model_dir, sft_with_token + """
  - name: dpo
    type: dpo
    data: {train: prefs.jsonl}
    args: {max_steps: 2, per_device_train_batch_size: 2, learning_rate: 1.0e-2, max_length: 128}
"""), output_dir=str(folder / "run"))
    merged, dpo = root / "stages" / "00_sft" / "merged", root / "stages" / "01_dpo"
    assert changed(merged, dpo) > 5
    # tokenizer, chat template and the SFT stage's new token carry over
    tokenizer = AutoTokenizer.from_pretrained(dpo)
    assert tokenizer.convert_tokens_to_ids("<|polite|>") == len(AutoTokenizer.from_pretrained(tiny_model_dir))
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(tiny_model_dir).chat_template
    trainer = trainers[0]
    batch = next(iter(trainer.get_train_dataloader()))
    ref_chosen, ref_rejected = trainer.compute_ref_log_probs(trainer.ref_model, batch)
    for source, should_match in ((merged, True), (tiny_model_dir, False)):
        logps = sequence_logps(AutoModelForCausalLM.from_pretrained(source), batch)
        close = torch.allclose(torch.cat([ref_chosen, ref_rejected]), logps, atol=1e-3)
        assert close == should_match, source


def sequence_logps(model, batch) -> torch.Tensor:
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    token = torch.log_softmax(logits.float(), -1).gather(-1, batch["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token * batch["completion_mask"][:, 1:]).sum(1)


def test_dpo_on_policy_pairs_ranked_by_rewards(folder, tiny_model_dir):
    root = run(recipe(folder, tiny_model_dir, """
  - name: dpo
    type: dpo
    data: {train: prompts.jsonl}
    rewards: [{fn: my_rewards.py:length_async, name: length}]
    pairs: {k: 3, max_new_tokens: 8, max_prompts: 4}
    lora: {r: 4, lora_alpha: 8, target_modules: all-linear}
    args: {max_steps: 2, per_device_train_batch_size: 2, learning_rate: 1.0e-2, max_length: 128}
"""), output_dir=str(folder / "run"))
    stage = root / "stages" / "00_dpo"
    assert lora_b_norm(stage) > 0
    pairs = [json.loads(line) for line in (stage / "pairs.jsonl").read_text().splitlines()]
    assert 0 < len(pairs) <= 4 and all(p["margin"] > 0 and p["chosen_score"] > p["rejected_score"] for p in pairs)
    assert all(p["chosen_score"] == pytest.approx(len(p["chosen"][0]["content"]) / 100) for p in pairs)
    logged = metrics(root, "dpo")[0]
    assert logged["pairs/kept"] == len(pairs) and "rewards/length/mean" in logged


def test_rloo_trains(folder, tiny_model_dir):
    root = run(recipe(folder, tiny_model_dir, f"""
  - name: rloo
    type: rloo
    data: {{train: prompts.jsonl}}
    rewards: [{{fn: my_rewards.py:length_async, name: length}}]
    args: {{max_steps: 2, {GEN}}}
"""), output_dir=str(folder / "run"))
    assert changed(tiny_model_dir, root / "stages" / "00_rloo") > 5
    assert "rewards/length/mean" in metrics(root, "rloo")[0]


def test_online_dpo_trains_and_logs_each_reward(folder, tiny_model_dir):
    root = run(recipe(folder, tiny_model_dir, """
  - name: odpo
    type: online_dpo
    data: {train: prompts.jsonl}
    rewards:
      - {fn: my_rewards.py:length_async, name: length}  # async beside sync; TRL's online DPO calls them synchronously
      - {fn: my_rewards.py:brevity, weight: 0.5}
    args: {max_steps: 2, per_device_train_batch_size: 2, max_new_tokens: 8, learning_rate: 1.0e-2, max_length: 128}
"""), output_dir=str(folder / "run"))
    assert changed(tiny_model_dir, root / "stages" / "00_odpo") > 5
    first = metrics(root, "odpo")[0]
    assert {"rewards/length/mean", "rewards/brevity/mean", "objective/scores"} <= set(first)


def test_reward_model_stage_becomes_a_reward_not_the_policy(folder, tiny_model_dir):
    root = run(recipe(folder, tiny_model_dir, f"""
  - name: rm
    type: reward_model
    data: {{train: prefs.jsonl}}
    args: {{max_steps: 2, per_device_train_batch_size: 2, learning_rate: 1.0e-2, max_length: 128}}
  - name: rl
    type: grpo
    data: {{train: prompts.jsonl}}
    rewards: [{{model: rm}}, {{fn: my_rewards.py:length, weight: 0.1}}]
    args: {{max_steps: 1, {GEN}}}
"""), output_dir=str(folder / "run"))
    rm, rl = root / "stages" / "00_rm", root / "stages" / "01_rl"
    assert changed(tiny_model_dir, rm) > 5  # the backbone trained (the score head is new)
    assert json.loads((rm / "config.json").read_text())["architectures"] == ["LlamaForSequenceClassification"]
    assert json.loads((rl / "rlft_stage.json").read_text())["base_model"] == str(tiny_model_dir)  # not the RM
    assert "rewards/rm_rm/mean" in metrics(root, "rl")[0]
    assert changed(tiny_model_dir, rl) > 5


@pytest.mark.slow
def test_polite_recipe_rewards_check_on_embedded_model(capsys):
    from rlft import cli

    cli.main(["rewards", "check", str(ROOT / "recipes" / "polite_assistant.yaml"), "--n", "2", "--k", "2",
              "--output-dir", "/nonexistent-run-folder"])
    out = capsys.readouterr().out
    assert "politeness" in out and "sampled from the recipe's model" in out


@pytest.mark.parametrize("shift, processors", [
    (0.0, ""), (1.0, ""), (0.0, "repetition_penalty: 1.3, "), (0.0, "generation_kwargs: {min_new_tokens: 8}, ")])
def test_ppo_old_logprobs_from_sampling_equal_a_forward(folder, tiny_model_dir, monkeypatch, shift, processors):
    """The PPO ratio's old log-probs come from the sampling pass (rlft.speed) once the first batch agreed with TRL's
    forward; each batch's old log-probs equal a forward of the policy that sampled it. With shift 1.0 the logits the
    recorder captures are moved by a fixed random vector: the first batch disagrees, the reuse turns off and TRL's
    forward serves every batch. A repetition penalty or min_new_tokens changes what is sampled, not what TRL's forward
    computes: the recorder keeps the raw logits' log-probs, and the reuse stays on."""
    from trl import GRPOTrainer

    from rlft import speed

    plain = GRPOTrainer._get_per_token_logps_and_entropies
    original = GRPOTrainer._generate_and_score_completions
    capture = speed.SampledLogprobs.capture
    offset = {}

    def shifted(self, module, inputs, output):
        capture(self, module, inputs, output)
        if shift:
            offset.setdefault("v", torch.randn(self._raw.size(-1), generator=torch.Generator().manual_seed(0)) * shift)
            self._raw = self._raw + offset["v"]

    monkeypatch.setattr(speed.SampledLogprobs, "capture", shifted)
    gaps, trainers = [], []

    def checked(self, inputs):
        out = original(self, inputs)
        trainers.append(self)
        ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
        mask = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
        keep = out["completion_mask"].bool()
        with torch.no_grad():  # the policy has not been updated since it sampled this batch
            truth, _, _ = plain(self, self.model, ids, mask, out["completion_ids"].size(1))
        gaps.append((out["old_per_token_logps"] - truth)[keep].abs().max().item())
        return out

    monkeypatch.setattr(GRPOTrainer, "_generate_and_score_completions", checked)
    run(recipe(folder, tiny_model_dir, f"""
  - name: ppo
    type: ppo
    data: {{train: prompts.jsonl}}
    rewards: [{{fn: my_rewards.py:length}}]
    {LORA}
    args: {{max_steps: 6, steps_per_generation: 1, temperature: 0.05, {processors}{GEN}}}
"""), output_dir=str(folder / "run"))
    recorder = trainers[0].rlft_sampled_logprobs
    assert len(gaps) == 3  # num_iterations 2: a batch every 2 steps
    assert max(gaps) < 1e-2, gaps  # every batch, served or computed: the old policy's (fp32 rounding, x20 at T 0.05)
    if not shift:
        assert recorder.enabled and recorder.gap < 1e-3 and recorder.served == 2
    else:
        assert not recorder.enabled and recorder.gap > speed.SAMPLED_LOGPROB_TOLERANCE and recorder.served == 0, \
            recorder.gap


RECORDING_REWARD = '''
import json, pathlib

def recorded(prompts, completions, completion_ids, **kwargs):
    with open(pathlib.Path(__file__).with_name("batches.jsonl"), "a") as f:
        f.write(json.dumps({"prompts": prompts, "completion_ids": completion_ids}) + "\\n")
    return [float(len(c[-1]["content"])) for c in completions]
'''


@pytest.mark.parametrize("stage_type", ["ppo", "rloo"])
def test_greedy_probe_decodes_the_first_of_each_group_greedily(folder, tiny_model_dir, stage_type, monkeypatch):
    """`greedy_probe: true`: in the batch the rewards score, the first completion of each prompt's group takes the
    policy's likeliest token at every step (the greedy reply) while the others are sampled; the first generation batch
    is the starting model's, so the check is one forward of that model. The greedy replies are scored and logged, and
    trained on only when they score below their group's samples."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer, RLOOTrainer

    trainer_class = RLOOTrainer if stage_type == "rloo" else GRPOTrainer
    original = trainer_class._generate_and_score_completions
    advantages = []

    def kept(self, inputs):
        out = original(self, inputs)
        advantages.append(out["advantages"].tolist())
        return out

    monkeypatch.setattr(trainer_class, "_generate_and_score_completions", kept)
    (folder / "recording.py").write_text(RECORDING_REWARD)
    root = run(recipe(folder, tiny_model_dir, f"""
  - name: rl
    type: {stage_type}
    data: {{train: prompts.jsonl}}
    rewards: [{{fn: recording.py:recorded}}]
    greedy_probe: true
    {LORA}
    args: {{max_steps: 1, per_device_train_batch_size: 8, num_generations: 4, steps_per_generation: 1,
            max_completion_length: 8, temperature: 1.0}}
"""), output_dir=str(folder / "run"))
    batch = json.loads((folder / "batches.jsonl").read_text().splitlines()[0])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    greedy_tokens, sampled_tokens, firsts = [], [], 0
    for i, (prompt, completion) in enumerate(zip(batch["prompts"], batch["completion_ids"])):
        first = i == 0 or prompt != batch["prompts"][i - 1]
        firsts += first
        ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
        with torch.no_grad():
            logits = model(torch.tensor([list(ids) + completion])).logits[0, len(ids) - 1:-1]
        picked = logits.gather(1, torch.tensor(completion)[:, None])[:, 0]
        is_top = (picked >= logits.max(-1).values - 1e-4).tolist()
        (greedy_tokens if first else sampled_tokens).extend(is_top)
    assert firsts == 2 and len(batch["prompts"]) == 8  # two prompts, four completions each
    assert all(greedy_tokens), greedy_tokens
    assert sum(sampled_tokens) < 0.5 * len(sampled_tokens)  # temperature 1 on a random model: mostly not the top
    lengths = [len(tokenizer.decode(c, skip_special_tokens=True)) for c in batch["completion_ids"]]
    for probe in (0, 4):  # trained on only when it scores below its group's samples: a negative advantage, else 0
        below = lengths[probe] < sum(lengths[probe + 1:probe + 4]) / 3
        assert advantages[0][probe] < 0 if below else advantages[0][probe] == 0.0, (lengths, advantages)
    assert any(advantages[0][i] for i in (1, 2, 3, 5, 6, 7))
    logged = metrics(root, "rl")[0]
    assert logged["greedy_probe/reward"] == pytest.approx((lengths[0] + lengths[4]) / 2, rel=1e-3)
    assert logged["greedy_probe/opening_share"] in (0.0, 0.5, 1.0)  # of the two greedy replies
