"""Never hurt the user: rlft deletes and overwrites only what it wrote, a failed start never blocks the rerun, and a
run folder loads its own weights from any working directory and after a copy or move.

Every refusal asserts the message, exit code 2, no traceback, that the user's file survived and that the rerun after
the fix proceeds.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import CHAT, messages_rows, prompt_rows, write_jsonl, write_recipe
from rlft.cli import main
from rlft.errors import EXIT_USER_ERROR
from rlft.runfolder import MARKER, last_checkpoint, repair_log

SFT = """
  - name: sft
    type: sft
    data: {train: data.jsonl}
    lora: {r: 4, lora_alpha: 8, target_modules: all-linear}
    args: {max_steps: 1, per_device_train_batch_size: 2, learning_rate: 1.0e-2, save_steps: 1, max_length: 64}
"""
GRPO = """
  - name: rl
    type: grpo
    data: {train: prompts.jsonl}
    lora: {r: 4, lora_alpha: 8, target_modules: all-linear}
    rewards: [{fn: my_rewards.py:length}]
    args: {max_steps: 1, per_device_train_batch_size: 2, num_generations: 2, max_completion_length: 8,
           learning_rate: 1.0e-2}
"""
REWARDS_PY = ("def length(prompts, completions, **kwargs):\n"
              "    return [len(c[-1]['content']) / 100 for c in completions]\n")


def write_inputs(folder: Path, model, stages: str = SFT) -> Path:
    write_jsonl(folder / "data.jsonl", messages_rows())
    write_jsonl(folder / "prompts.jsonl", prompt_rows())
    (folder / "my_rewards.py").write_text(REWARDS_PY)
    return write_recipe(folder / "recipe.yaml", f"name: safe\nmodel: {model}\nseed: 0\nstages:{stages}")


def cli(args, capsys) -> tuple[int, str]:
    """Exit code and everything printed, of the rlft command in this process."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err + captured.out


def refused(args, capsys, *fragments) -> str:
    code, out = cli(args, capsys)
    assert code == EXIT_USER_ERROR, out
    assert "Traceback" not in out
    for fragment in fragments:
        assert fragment in " ".join(out.split()), out  # rich wraps long lines
    return out


# --- 1. data loss ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fresh", [["--fresh"], []])
def test_run_refuses_a_folder_that_is_not_a_run_folder(fresh, tmp_path, tiny_model_dir, capsys):
    path = write_inputs(tmp_path, tiny_model_dir)
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "thesis.tex").write_text("\\documentclass{article}")
    refused(["run", str(path), "--output-dir", str(mine), *fresh], capsys,
            "is not an rlft run folder", "neither writes into nor deletes it", "Give a new or empty folder")
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]  # nothing deleted, nothing written
    # the fix: a new folder; it runs
    code, out = cli(["run", str(path), "--output-dir", str(mine / "run"), *fresh], capsys)
    assert code == 0, out
    assert (mine / "run" / "stages" / "00_sft" / "stage_complete.json").is_file()
    assert (mine / "run" / MARKER).is_file() and (mine / "thesis.tex").is_file()


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, tiny_model_dir):
    """A finished one-stage LoRA run, shared by the merge tests (which never change it)."""
    from rlft.run import run

    tmp = tmp_path_factory.mktemp("lora_run")
    return run(write_inputs(tmp, tiny_model_dir), output_dir=str(tmp / "run"))


def run_is_intact(root: Path) -> None:
    for name in (MARKER, "lock.json", "metrics.jsonl", "recipe.resolved.yaml", "stages/00_sft/adapter_config.json",
                 "stages/00_sft/stage_complete.json"):
        assert (root / name).is_file(), name


@pytest.mark.parametrize("where, fragment", [
    ("run", "is the run folder"),
    ("run/stages/00_sft", "is inside the run folder"),
    ("run/merged", "is inside the run folder"),
    (".", "a folder that holds the run folder"),
])
def test_merge_never_writes_over_the_run(where, fragment, lora_run, capsys):
    for force in ([], ["--force"]):
        refused(["merge", str(lora_run), "--out", str(lora_run.parent / where), *force], capsys, fragment,
                "Give a folder outside it")
        run_is_intact(lora_run)
    assert not (lora_run / "merged").exists()


def test_merge_refuses_user_files_even_with_force(lora_run, tmp_path, capsys):
    out = tmp_path / "export"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    (out / "config.json").write_text("{}")
    refused(["merge", str(lora_run), "--out", str(out)], capsys, "not empty", "--force")
    refused(["merge", str(lora_run), "--out", str(out), "--force"], capsys,
            "--force replaces only a model folder", "also holds thesis.tex")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "thesis.tex"]
    (tmp_path / "file").write_text("mine")
    refused(["merge", str(lora_run), "--out", str(tmp_path / "file"), "--force"], capsys, "is an existing file")
    assert (tmp_path / "file").read_text() == "mine"


def test_merge_replaces_an_earlier_merge_only_with_force(lora_run, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "export"
    code, text = cli(["merge", str(lora_run), "--out", str(out)], capsys)
    assert code == 0, text
    first = (out / "model.safetensors").stat().st_mtime_ns
    refused(["merge", str(lora_run), "--out", str(out)], capsys, "not empty", "--force")
    code, text = cli(["merge", str(lora_run), "--out", str(out), "--force"], capsys)
    assert code == 0, text
    assert "it replaced the model folder there" in text
    assert (out / "model.safetensors").stat().st_mtime_ns != first
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no temporary or old folder left beside it
    AutoModelForCausalLM.from_pretrained(out)


def test_killed_merge_leaves_no_folder_that_looks_finished(lora_run, tmp_path, monkeypatch):
    """The merged folder appears only by a rename after everything is written."""
    from rlft import models, stage_models

    def die(*args, **kwargs):
        # at the moment of the "kill" the weights are written, under a temporary name only: a real SIGKILL would
        # leave that, never a folder under the real name (the clean-up after the exception is a bonus)
        assert not (tmp_path / "merged").exists()
        assert [p.name for p in tmp_path.glob(".merged.partial-*/model.safetensors")]
        raise KeyboardInterrupt  # stands for a kill in the middle of writing the tokenizer

    monkeypatch.setattr(type(models.load_tokenizer(str(lora_run / "stages" / "00_sft"))), "save_pretrained", die)
    with pytest.raises(KeyboardInterrupt):
        stage_models.merge_adapter(lora_run / "stages" / "00_sft", tmp_path / "merged")
    assert list(tmp_path.iterdir()) == []


# --- 2. a failed start never blocks the rerun ------------------------------------------------------------------------
def test_failed_start_then_fixed_recipe_reruns(tmp_path, tiny_model_dir, capsys):
    """A model typo fails after the run folder was written; after the fix the same command runs, without --fresh."""
    path = write_inputs(tmp_path, "nobody/tiny-model-typo")
    out = tmp_path / "run"
    code, text = cli(["run", str(path), "--output-dir", str(out)], capsys)
    assert code == EXIT_USER_ERROR and "Traceback" not in text and "nobody/tiny-model-typo" in text
    write_inputs(tmp_path, tiny_model_dir)
    code, text = cli(["run", str(path), "--output-dir", str(out)], capsys)
    assert code == 0, text
    assert (out / "stages" / "00_sft" / "stage_complete.json").is_file()
    assert json.loads((out / "lock.json").read_text())["model"]["spec"] == str(tiny_model_dir)  # rewritten


def test_reward_crash_in_the_first_step_then_fixed_reward_reruns(tmp_path, tiny_model_dir, capsys):
    """The RL stage starts (its folder and stage_started.json written) and its reward raises in the first step; after
    the reward file is fixed (so the stage's recipe hash changed) the same command runs it from scratch, without
    --fresh, and the finished SFT stage is not trained again."""
    path = write_inputs(tmp_path, tiny_model_dir, SFT + GRPO)
    (tmp_path / "my_rewards.py").write_text("def length(prompts, completions, **kwargs):\n    return 1 / 0\n")
    out = tmp_path / "run"
    refused(["run", str(path), "--output-dir", str(out)], capsys, "reward 'length' raised ZeroDivisionError")
    assert (out / "stages" / "01_rl" / "stage_started.json").is_file()  # the failed start was recorded
    sft = out / "stages" / "00_sft" / "adapter_model.safetensors"
    trained = sft.stat().st_mtime_ns
    (tmp_path / "my_rewards.py").write_text(REWARDS_PY)
    code, text = cli(["run", str(path), "--output-dir", str(out)], capsys)
    assert code == 0, text
    assert (out / "stages" / "01_rl" / "stage_complete.json").is_file()
    assert sft.stat().st_mtime_ns == trained


def test_stage_with_checkpoints_under_another_recipe_is_refused_and_kept(lora_run, tmp_path, tiny_model_dir, capsys):
    root = tmp_path / "run"
    shutil.copytree(lora_run, root)
    stage = root / "stages" / "00_sft"
    (stage / "stage_complete.json").unlink()  # killed after its checkpoint
    path = write_inputs(tmp_path, tiny_model_dir)
    refused(["run", str(path), "--output-dir", str(root), "stages.sft.args.learning_rate=0.5"], capsys,
            "was trained (up to checkpoint-1) with a different recipe", "--fresh")
    assert (stage / "checkpoints" / "checkpoint-1" / "trainer_state.json").is_file()


def test_partial_checkpoint_and_torn_log_line_are_repaired(tmp_path, capsys):
    for step, complete in ((2, True), (4, True), (6, False)):
        folder = tmp_path / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert last_checkpoint(tmp_path / "checkpoints") == tmp_path / "checkpoints" / "checkpoint-4"
    assert (tmp_path / "checkpoints" / "checkpoint-6").is_dir()  # only the main process removes
    assert last_checkpoint(tmp_path / "checkpoints", remove_partial=True).name == "checkpoint-4"
    assert not (tmp_path / "checkpoints" / "checkpoint-6").exists()
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"st')
    repair_log(log)
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n'
    assert "dropped a partial last line" in capsys.readouterr().out


# --- 3. --output-dir that cannot be used -----------------------------------------------------------------------------
def test_output_dir_that_is_a_file_or_under_one(tmp_path, tiny_model_dir, capsys):
    path = write_inputs(tmp_path, tiny_model_dir)
    (tmp_path / "notes.txt").write_text("mine")
    refused(["run", str(path), "--output-dir", str(tmp_path / "notes.txt")], capsys, "is an existing file")
    refused(["run", str(path), "--output-dir", str(tmp_path / "notes.txt" / "run")], capsys,
            "notes.txt is a file, so the folder cannot be created there")
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: the permission check cannot fail")
def test_output_dir_not_writable(tmp_path, tiny_model_dir, capsys):
    path = write_inputs(tmp_path, tiny_model_dir)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        refused(["run", str(path), "--output-dir", str(locked / "run")], capsys, "is not writable")
        refused(["run", str(path), "--output-dir", str(locked)], capsys, "not writable")
    finally:
        locked.chmod(0o700)


def test_output_dir_on_a_read_only_file_system(tmp_path, tiny_model_dir, capsys):
    """/proc refuses new folders even to root: the same check, on any machine."""
    path = write_inputs(tmp_path, tiny_model_dir)
    refused(["run", str(path), "--output-dir", "/proc/rlft-run"], capsys, "--output-dir /proc/rlft-run")


# --- 5. portable run folders -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_stage(tmp_path_factory, tiny_model_dir):
    """SFT (LoRA) -> GRPO (LoRA) trained from a working directory with a relative --output-dir: the GRPO adapter's base
    is the run's own merged SFT stage."""
    from rlft.run import run

    tmp = tmp_path_factory.mktemp("portable")
    path = write_inputs(tmp, tiny_model_dir, SFT + GRPO)
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        run(path, output_dir="runs/x")
    finally:
        os.chdir(cwd)
    return tmp / "runs" / "x"


def adapter_base_embedding(stage: Path):
    from peft import AutoPeftModelForCausalLM

    model = AutoPeftModelForCausalLM.from_pretrained(stage)
    return model.get_base_model().get_input_embeddings().weight.detach().clone()


def test_stage_outputs_load_from_any_working_directory(two_stage, tmp_path, monkeypatch, capsys):
    config = json.loads((two_stage / "stages" / "01_rl" / "adapter_config.json").read_text())
    assert Path(config["base_model_name_or_path"]) == two_stage / "stages" / "00_sft" / "merged"
    info = json.loads((two_stage / "stages" / "01_rl" / "rlft_stage.json").read_text())
    assert info["base_model_relative"] == "../00_sft/merged"
    monkeypatch.chdir(tmp_path)
    merged = load_file(two_stage / "stages" / "00_sft" / "merged" / "model.safetensors")
    assert torch.equal(adapter_base_embedding(two_stage / "stages" / "01_rl"), merged["model.embed_tokens.weight"])
    code, text = cli(["chat", str(two_stage), "--prompt", CHAT[0][0], "--max-new-tokens", "4"], capsys)
    assert code == 0, text


def test_copied_run_folder_loads_its_own_weights(two_stage, tmp_path, monkeypatch, capsys):
    """A copy whose SFT weights differ from the original's: chat, merge and (after any rlft command) plain PEFT use
    the copy's, not the original's, although the original is still in place."""
    from rlft.stage_models import load_for_inference

    copy = tmp_path / "elsewhere" / "x"
    shutil.copytree(two_stage, copy)
    base_file = copy / "stages" / "00_sft" / "merged" / "model.safetensors"
    weights = load_file(base_file)
    weights["model.embed_tokens.weight"] = weights["model.embed_tokens.weight"] + 1.0  # the copy's own base
    save_file(weights, base_file, metadata={"format": "pt"})
    monkeypatch.chdir(tmp_path)

    model, _ = load_for_inference(copy / "stages" / "01_rl")  # what chat and eval load
    assert torch.equal(model.get_input_embeddings().weight, weights["model.embed_tokens.weight"])
    code, text = cli(["merge", str(copy), "--out", str(tmp_path / "export")], capsys)
    assert code == 0, text
    exported = load_file(tmp_path / "export" / "model.safetensors")
    assert torch.equal(exported["model.embed_tokens.weight"], weights["model.embed_tokens.weight"])
    # rlft repaired the copy's adapter_config.json, so plain PEFT loads the copy's base as well
    assert torch.equal(adapter_base_embedding(copy / "stages" / "01_rl"), weights["model.embed_tokens.weight"])
    original = json.loads((two_stage / "stages" / "01_rl" / "adapter_config.json").read_text())
    assert original["base_model_name_or_path"] == str(two_stage / "stages" / "00_sft" / "merged")  # untouched


def test_run_folder_from_before_base_model_relative_loads_from_elsewhere(two_stage, tmp_path, monkeypatch):
    """Run folders written by earlier rlft versions recorded the base relative to the directory the run started in."""
    from rlft.stage_models import load_for_inference

    copy = tmp_path / "old"
    shutil.copytree(two_stage, copy)
    stage = copy / "stages" / "01_rl"
    config = json.loads((stage / "adapter_config.json").read_text())
    (stage / "adapter_config.json").write_text(json.dumps({**config,
                                                           "base_model_name_or_path": "runs/x/stages/00_sft/merged"}))
    info = json.loads((stage / "rlft_stage.json").read_text())
    del info["base_model_relative"]
    (stage / "rlft_stage.json").write_text(json.dumps(info))
    monkeypatch.chdir(tmp_path)
    model, _ = load_for_inference(stage)
    merged = load_file(copy / "stages" / "00_sft" / "merged" / "model.safetensors")
    assert torch.equal(model.get_input_embeddings().weight, merged["model.embed_tokens.weight"])
    assert json.loads((stage / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        str(copy / "stages" / "00_sft" / "merged")


def test_moved_run_folder_chats_merges_and_evaluates(two_stage, tmp_path, monkeypatch, capsys):
    """The original is gone after the move: every load below can only have read the moved folder."""
    moved = tmp_path / "moved"
    shutil.copytree(two_stage, moved)
    hidden = two_stage.with_name("x-hidden")
    two_stage.rename(hidden)
    try:
        monkeypatch.chdir(tmp_path)
        write_jsonl(tmp_path / "eval.jsonl", prompt_rows()[:2])
        code, text = cli(["chat", str(moved), "--prompt", CHAT[0][0], "--max-new-tokens", "4"], capsys)
        assert code == 0, text
        code, text = cli(["merge", str(moved), "--out", str(tmp_path / "export")], capsys)
        assert code == 0, text
        code, text = cli(["eval", str(moved), "--prompts", str(tmp_path / "eval.jsonl"), "--max-new-tokens", "4"],
                         capsys)
        assert code == 0, text
        summary = json.loads((moved / "eval" / "summary.json").read_text())
        assert summary["sources"]["rl"] == str(moved / "stages" / "01_rl")
        merged = load_file(moved / "stages" / "00_sft" / "merged" / "model.safetensors")
        assert torch.equal(adapter_base_embedding(moved / "stages" / "01_rl"), merged["model.embed_tokens.weight"])
    finally:
        hidden.rename(two_stage)


# --- 4. the README's launch command ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_accelerate_launch_of_a_bad_recipe(tmp_path):
    """What the README says a user sees under `accelerate launch`: rlft's message; then, from accelerate's own
    single-process launcher, a CalledProcessError traceback for any non-zero exit, which `-q` drops. If this test
    fails because accelerate changed, update the README paragraph "Errors under accelerate launch"."""
    import subprocess
    import sys

    bad = write_recipe(tmp_path / "bad.yaml", "name: t\nmodel: smollm2-135m-instruct\nsed: 3\nstages:" + SFT)
    root = Path(__file__).resolve().parent.parent
    accelerate = [sys.executable, "-c", "import sys; from accelerate.commands.accelerate_cli import main; "
                  "sys.argv[0] = 'accelerate'; sys.exit(main())", "launch", "--num_processes", "1"]
    for quiet in ([], ["-q"]):
        proc = subprocess.run([*accelerate, *quiet, "rlft/run.py", str(bad)], cwd=root, capture_output=True,
                              text=True, timeout=600)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 1, out
        assert "sed: unknown key; did you mean 'seed'?" in out and "stages[0].data.train" in out
        rlft_part = out[:out.index("stages[0].data.train")]
        assert "Traceback" not in rlft_part  # rlft itself prints no traceback
        assert ("CalledProcessError" in out and "returned non-zero exit status 2" in out) == (not quiet), out
        assert ("Traceback" in out) == (not quiet), out


def test_merge_force_never_replaces_a_base_model_or_another_runs_folder(lora_run, tiny_model_dir, tmp_path, capsys):
    """A saved base model holds only model files, like an earlier merge, but rlft did not merge it (the default model's
    GGUF cache is such a folder): --force refuses it. Nor may it write inside another run, whose stages load from
    there."""
    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    before = {p.name: p.read_bytes() for p in base.iterdir()}
    refused(["merge", str(lora_run), "--out", str(base), "--force"], capsys, "--force replaces only a model folder")
    assert {p.name: p.read_bytes() for p in base.iterdir()} == before
    other = tmp_path / "other-run"
    shutil.copytree(lora_run, other, symlinks=True)
    for target in (other / "stages" / "00_sft" / "merged", other / "exports"):
        refused(["merge", str(lora_run), "--out", str(target), "--force"], capsys, "inside another run folder")
        assert not target.exists()
