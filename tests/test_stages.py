"""The stage registry and interface (rlft/stages/__init__.py), and the one-way imports of rlft/ (scripts/import_graph.py).

Adding a stage type = one module + one line in STAGES: these tests fail when a registered module lacks part of the
interface, and show that `rlft plan` and `rlft rewards check` take what they need from the registry.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import types
from pathlib import Path

import pytest

from conftest import prompt_rows, write_jsonl, write_recipe
from rlft import cli, stages
from rlft.launch import Launch
from rlft.plan import shape_of, stage_memory

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("stage_type", sorted(stages.STAGES))
def test_every_registered_stage_provides_the_interface(stage_type):
    module = stages.STAGES[stage_type]
    assert stages.missing(module) == []
    assert isinstance(module.POLICY, bool) and isinstance(module.GENERATES, bool)
    assert isinstance(module.STAGE_KEYS, dict)
    assert dataclasses.is_dataclass(module.CONFIG_CLASS) and callable(module.check) and callable(module.run)
    group = module.group_size({"type": stage_type, "args": {}})
    assert isinstance(group, int) and group >= 1


def test_a_module_missing_parts_is_named():
    partial = types.ModuleType("half_a_stage")
    partial.STAGE_KEYS, partial.check = {}, lambda stage, path, ctx: None
    assert stages.missing(partial) == ["POLICY", "GENERATES", "CONFIG_CLASS", "run", "group_size"]


def test_defaults_come_from_the_trl_config_class():
    from trl import GRPOConfig, RLOOConfig

    fields = {c: {f.name: f.default for f in dataclasses.fields(c)} for c in (GRPOConfig, RLOOConfig)}
    assert stages.STAGES["rloo"].group_size({"args": {}}) == fields[RLOOConfig]["num_generations"]
    assert stages.STAGES["grpo"].group_size({"args": {}}) == fields[GRPOConfig]["num_generations"]
    assert stages.STAGES["grpo"].group_size({"args": {"num_generations": 4}}) == 4
    assert stages.arg({"type": "ppo", "args": {}}, "beta") == stages.STAGES["ppo"].DEFAULTS["beta"]  # rlft's first
    assert stages.arg({"type": "grpo", "args": {}}, "beta") == fields[GRPOConfig]["beta"]
    assert stages.arg({"type": "sft", "args": {}}, "no_such_field") is None


def test_plan_reads_generates_from_the_registry(monkeypatch, tiny_model_dir):
    from transformers import AutoConfig

    shape = shape_of(AutoConfig.from_pretrained(tiny_model_dir))
    stage = {"type": "new_rl", "args": {}}
    like_grpo = types.SimpleNamespace(**{k: getattr(stages.STAGES["grpo"], k) for k in stages.INTERFACE})
    monkeypatch.setitem(stages.STAGES, "new_rl", like_grpo)
    assert stage_memory(stage, shape, Launch(), "float32")["kv cache"] > 0
    monkeypatch.setitem(stages.STAGES, "new_rl", types.SimpleNamespace(**{**vars(like_grpo), "GENERATES": False,
                                                                          "CONFIG_CLASS": stages.STAGES["sft"].CONFIG_CLASS}))
    assert stage_memory(stage, shape, Launch(), "float32")["kv cache"] == 0


def test_rewards_check_samples_the_stage_group_size(tmp_path, tiny_model_dir, capsys):
    """RLOO's default group is TRL's (2), not the 8 of GRPO that `rewards check` used to assume for every stage."""
    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    (tmp_path / "my_rewards.py").write_text(
        "def length(prompts, completions, **kwargs):\n    return [len(str(c)) / 100 for c in completions]\n")
    recipe = write_recipe(tmp_path / "recipe.yaml", f"""name: t
model: {tiny_model_dir}
stages:
  - name: rl
    type: rloo
    data: {{train: prompts.jsonl}}
    rewards: [{{fn: my_rewards.py:length}}]
    args: {{max_steps: 1, per_device_train_batch_size: 2, max_completion_length: 4}}
""")
    cli.main(["rewards", "check", str(recipe), "--n", "2", "--output-dir", str(tmp_path / "run")])
    assert "2 prompts x 2 completions" in capsys.readouterr().out


def test_no_import_cycle_in_rlft():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "import_graph.py")], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no cycle, no upward import" in proc.stdout and "5 core   recipe" in proc.stdout


def test_import_graph_finds_a_cycle():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import import_graph
    finally:
        sys.path.pop(0)
    graph = {"cli": {"run"}, "run": {"recipe"}, "recipe": {"evaluation"}, "evaluation": {"recipe"}}
    assert import_graph.cycles(graph) == [["evaluation", "recipe"]]
    assert import_graph.upward(graph) == ["recipe (core) -> evaluation (tools)"]


# --- nothing left behind in the temp dir ------------------------------------------------------------------------------
def test_validate_and_dry_run_leave_nothing_in_the_temp_dir(tmp_path, tiny_model_dir, monkeypatch, capsys):
    """`rlft validate` builds every stage's TRL config with a scratch output_dir, a dry run writes a whole run folder:
    both go when the command ends."""
    import tempfile

    from conftest import messages_rows, preference_rows
    from rlft.run import run

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    monkeypatch.setattr(tempfile, "tempdir", None)  # gettempdir() reads TMPDIR again
    write_jsonl(tmp_path / "sft.jsonl", messages_rows())
    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    write_jsonl(tmp_path / "prefs.jsonl", preference_rows())
    (tmp_path / "my_rewards.py").write_text("def length(prompts, completions, **kw):\n    return [0.0 for _ in completions]\n")
    recipe = write_recipe(tmp_path / "recipe.yaml", f"""name: t
model: {tiny_model_dir}
stages:
  - {{name: sft, type: sft, data: {{train: sft.jsonl}}, args: {{max_steps: 1}}}}
  - {{name: rl, type: grpo, data: {{train: prompts.jsonl}}, rewards: [{{fn: my_rewards.py:length}}],
     args: {{max_steps: 1, per_device_train_batch_size: 2, num_generations: 2}}}}
  - {{name: dpo, type: dpo, data: {{train: prefs.jsonl}}, args: {{max_steps: 1}}}}
""")
    assert tempfile.gettempdir() == str(temp)
    cli.main(["validate", str(recipe)])
    assert list(temp.iterdir()) == []
    one_stage = write_recipe(tmp_path / "sft.yaml", f"""name: t
model: {tiny_model_dir}
stages:
  - {{name: sft, type: sft, data: {{train: sft.jsonl}}, lora: {{r: 4, target_modules: all-linear}}}}
""")
    root = run(one_stage, output_dir=str(tmp_path / "run"), dry_run=True)
    assert root.parent == temp and "dry run" in capsys.readouterr().out
    assert list(temp.iterdir()) == [] and not (tmp_path / "run").exists()
