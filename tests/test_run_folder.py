"""The run folder, resuming, merge and chat on a tiny model, and validation of every shipped recipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import CHAT, messages_rows, write_jsonl, write_recipe
from rlft.errors import RlftError
from rlft.run import run
from rlft.stages import load

ROOT = Path(__file__).resolve().parent.parent
# Every recipe shipped in recipes/ (recursively); adding one means adding it here, so none is skipped silently.
SHIPPED_RECIPES = {"sft_only.yaml", "polite_assistant.yaml", "polite_dpo.yaml", "custom_reward.yaml",
                   "remote_reward.yaml", "hacked_politeness.yaml"}


def test_every_shipped_recipe_validates():
    found = sorted(ROOT.glob("recipes/**/*.yaml"))
    names = {p.name for p in found}
    assert names == SHIPPED_RECIPES, f"recipes/ holds {sorted(names)}; update SHIPPED_RECIPES"
    checked = 0
    for path in found:
        recipe = load(path)
        assert recipe["stages"], path
        checked += 1
    assert checked == len(names) == len(SHIPPED_RECIPES) == 6


def recipe(tmp_path, model_dir, max_steps=2, extra_args="") -> Path:
    write_jsonl(tmp_path / "data.jsonl", messages_rows())
    return write_recipe(tmp_path / "recipe.yaml", f"""
name: folder-test
model: {model_dir}
seed: 0
stages:
  - name: sft
    type: sft
    data: {{train: data.jsonl, eval_split: 0.34}}
    lora: {{r: 4, lora_alpha: 8, target_modules: all-linear}}
    args: {{max_steps: {max_steps}, per_device_train_batch_size: 2, learning_rate: 1.0e-2, save_steps: 1 {extra_args}}}
""")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("run")
    return run(recipe(tmp, tiny_model_dir), output_dir=str(tmp / "run")), tmp


def test_run_folder_contents(finished_run):
    root, tmp = finished_run
    resolved = yaml.safe_load((root / "recipe.resolved.yaml").read_text())
    assert resolved["stages"][0]["args"]["max_steps"] == 2 and resolved["dtype"] == "auto"
    lock = json.loads((root / "lock.json").read_text())
    for package in ("torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        assert lock["packages"][package]
    data_file = str((tmp / "data.jsonl").resolve())
    assert len(lock["files"][data_file]) == 64
    assert lock["recipe"]["sha256"]
    rows = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train_rows] == [1, 2] and all(r["stage"] == "sft" for r in rows)
    assert any("eval_loss" in r for r in rows)
    assert list((root / "tensorboard" / "sft").glob("events.out.tfevents.*"))
    stage = root / "stages" / "00_sft"
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "chat_template.jinja",
                 "rlft_stage.json", "stage_complete.json"):
        assert (stage / name).is_file(), name
    assert not list(stage.glob("*.bin")) or {p.name for p in stage.glob("*.bin")} == {"training_args.bin"}
    assert list((stage / "checkpoints").glob("checkpoint-*"))


def test_adapter_loads_with_peft(finished_run):
    from peft import AutoPeftModelForCausalLM

    root, _ = finished_run
    model = AutoPeftModelForCausalLM.from_pretrained(root / "stages" / "00_sft")
    assert model.peft_config["default"].r == 4


def test_rerun_skips_finished_stage_and_reports_changed_recipe(finished_run, tiny_model_dir, capsys):
    root, tmp = finished_run
    stage = root / "stages" / "00_sft"
    before = (stage / "adapter_model.safetensors").stat().st_mtime_ns
    run(tmp / "recipe.yaml", output_dir=str(root))
    assert (stage / "adapter_model.safetensors").stat().st_mtime_ns == before  # skipped, not retrained
    assert "skipped" in capsys.readouterr().out
    with pytest.raises(RlftError, match="finished with a different recipe.*--fresh"):
        run(tmp / "recipe.yaml", ["stages.sft.args.learning_rate=0.5"], output_dir=str(root))


def test_interrupted_stage_resumes_from_checkpoint(tmp_path, tiny_model_dir):
    path = recipe(tmp_path, tiny_model_dir, max_steps=3)
    root = run(path, ["stages.sft.args.max_steps=1"], output_dir=str(tmp_path / "run"))
    stage = root / "stages" / "00_sft"
    # pretend the stage was killed after its first checkpoint: no completion marker, the started marker kept
    (stage / "stage_complete.json").unlink()
    started = json.loads((stage / "stage_started.json").read_text())
    from rlft.provenance import section_hash

    resolved = load(path)
    started["section_hash"] = section_hash("", resolved["stages"][0], resolved, tmp_path)
    (stage / "stage_started.json").write_text(json.dumps(started))
    run(path, output_dir=str(root))
    steps = [json.loads(line)["step"] for line in (root / "metrics.jsonl").read_text().splitlines()
             if '"loss"' in line]
    assert steps == [1, 2, 3]  # step 1 from the first process, 2 and 3 resumed from checkpoint-1


def test_fresh_starts_over(finished_run, tmp_path, tiny_model_dir, capsys):
    path = recipe(tmp_path, tiny_model_dir, max_steps=1)
    root = run(path, output_dir=str(tmp_path / "run"))
    (root / "notes.txt").write_text("mine")  # rlft did not write it: --fresh keeps it and says so
    before = (root / "stages" / "00_sft" / "stage_complete.json").stat().st_mtime_ns
    capsys.readouterr()
    run(path, output_dir=str(root), fresh=True)
    assert (root / "notes.txt").read_text() == "mine"
    assert "kept 1 entry it did not write: notes.txt" in capsys.readouterr().out
    assert (root / "stages" / "00_sft" / "stage_complete.json").stat().st_mtime_ns != before  # trained again
    steps = [json.loads(line)["step"] for line in (root / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    assert steps == [1]  # the old metrics went with the old run


def test_merge_and_chat(finished_run, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, _ = finished_run
    out = tmp_path / "merged"
    proc = subprocess.run([sys.executable, "-m", "rlft.cli", "merge", str(root), "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    # merged weights give the same logits as base + adapter
    from peft import AutoPeftModelForCausalLM

    peft_model = AutoPeftModelForCausalLM.from_pretrained(root / "stages" / "00_sft")
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    assert torch.allclose(merged(ids).logits, peft_model(ids).logits, atol=1e-4)

    proc = subprocess.run([sys.executable, "-m", "rlft.cli", "chat", str(root), "--prompt", CHAT[0][0],
                           "--max-new-tokens", "8"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # what chat printed is exactly the greedy continuation of the chat-templated prompt
    tok = AutoTokenizer.from_pretrained(root / "stages" / "00_sft")
    rendered = tok.apply_chat_template([{"role": "user", "content": CHAT[0][0]}], tokenize=False,
                                       add_generation_prompt=True)
    ids = tok(rendered, return_tensors="pt", add_special_tokens=False)
    out = peft_model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    new = out[0, ids["input_ids"].shape[1]:]
    assert len(new) > 0
    assert proc.stdout.strip() == tok.decode(new, skip_special_tokens=True).strip()


def test_template_round_trip_instruction(tmp_path, tiny_model_dir):
    """The instruction template used in training is saved and used again by chat."""
    from transformers import AutoTokenizer

    from rlft.data import format_prompt
    from rlft.data import render_instruction

    rows = [{"instruction": q, "input": "", "output": a} for q, a in CHAT]
    write_jsonl(tmp_path / "data.jsonl", rows)
    template = "<<INSTR>> {instruction} {input}\\n<<ANSWER>> "
    path = write_recipe(tmp_path / "recipe.yaml", f"""
name: tpl
model: {tiny_model_dir}
stages:
  - name: sft
    type: sft
    data: {{train: data.jsonl, template: "{template}"}}
    lora: {{r: 4, target_modules: all-linear}}
    args: {{max_steps: 1}}
""")
    root = run(path, output_dir=str(tmp_path / "run"))
    stage = root / "stages" / "00_sft"
    info = json.loads((stage / "rlft_stage.json").read_text())
    assert info["template"] == {"kind": "instruction", "template": "<<INSTR>> {instruction} {input}\n<<ANSWER>> "}
    tok = AutoTokenizer.from_pretrained(stage)
    assert format_prompt(tok, info["template"], "Hi") == render_instruction("Hi", "", info["template"]["template"])
    assert format_prompt(tok, info["template"], "Hi") == "<<INSTR>> Hi \n<<ANSWER>> "


def test_template_round_trip_chat(finished_run):
    from transformers import AutoTokenizer

    from rlft.data import format_prompt

    root, _ = finished_run
    stage = root / "stages" / "00_sft"
    info = json.loads((stage / "rlft_stage.json").read_text())
    assert info["template"] == {"kind": "chat"}
    tok = AutoTokenizer.from_pretrained(stage)
    rendered = format_prompt(tok, info["template"], "Hello")
    assert rendered.endswith("<|im_start|>assistant\n") and "<|im_start|>user\nHello<|im_end|>" in rendered
    assert (stage / "chat_template.jinja").read_text() == tok.chat_template


def test_dry_run_builds_everything_and_trains_nothing(tmp_path, tiny_model_dir, capsys):
    path = recipe(tmp_path, tiny_model_dir)
    root = run(path, output_dir=str(tmp_path / "run"), dry_run=True)
    assert not (tmp_path / "run").exists()  # the real run folder is not touched
    assert not (root / "metrics.jsonl").exists()  # no step ran
    assert not list(root.glob("stages/*/stage_complete.json"))
    assert "dry run" in capsys.readouterr().out


def test_dry_run_of_sft_then_ppo_loads_every_stage(tmp_path, tiny_model_dir, capsys):
    """A dry run trains nothing, so the PPO stage after a LoRA SFT stage has no adapter to merge: it loads the model
    the SFT stage started from (it used to load a half-written folder and fail with a tokenizer traceback)."""
    from conftest import prompt_rows

    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    path = recipe(tmp_path, tiny_model_dir)
    path.write_text(path.read_text() + """
  - name: ppo
    type: ppo
    data: {train: prompts.jsonl}
    rewards: [{fn: reward_models.guards:repetition_penalty}]
    lora: {r: 4, target_modules: all-linear}
    args: {max_steps: 1, per_device_train_batch_size: 2, num_generations: 2, max_completion_length: 4}
""")
    root = run(path, output_dir=str(tmp_path / "run"), dry_run=True)
    out = capsys.readouterr().out
    assert not (tmp_path / "run").exists() and not root.exists()
    assert "dry run" in out and "ppo" in out


def test_lock_hashes_dotted_module_references(tmp_path):
    from rlft.provenance import referenced_files

    files = referenced_files({"stages": [{"rewards": [{"fn": "rlft.errors:RlftError"}, {"fn": "nope.mod:f"}]}]},
                             tmp_path)
    assert [p.name for p in files] == ["errors.py"]
