"""metrics.jsonl as every stage type really writes it (one tiny run through all seven), and `rlft compare` on real
and synthetic run folders: 1, 2 and 3 runs, different stages, a run still writing, a resumed stage, not a run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import messages_rows, preference_rows, prompt_rows, write_jsonl, write_recipe
from rlft.compare import compare, recipe_diff
from rlft.run_metrics import ema, load_run, series, stage_stats
from rlft.errors import RlftError
from rlft.run import run

REWARDS_PY = '''
def length(prompts, completions, **kwargs):
    return [len(c[-1]["content"]) / 100 for c in completions]

def brevity(prompts, completions, **kwargs):
    return [-len(c[-1]["content"].split()) / 20 for c in completions]
'''
# steps_per_generation 1: a generation, and its metrics, at every step (rlft's CPU default generates every 4 steps)
GEN = ("per_device_train_batch_size: 2, num_generations: 2, max_completion_length: 8, learning_rate: 1.0e-2, "
       "steps_per_generation: 1")
REWARDS = "rewards: [{fn: my_rewards.py:length}, {fn: my_rewards.py:brevity, weight: 0.5}]"
BATCH = "per_device_train_batch_size: 2, max_length: 128"
# Keys every training log of a stage type has (rows with "loss"); PPO reuses each batch, so its reward keys are only
# in the rows of steps that generated (see REWARD_STEP_KEYS).
COMMON = {"stage", "step", "samples", "time", "loss", "learning_rate", "grad_norm", "epoch"}
GENERATION = {"reward", "reward_std", "rewards/length/mean", "rewards/length/std", "rewards/brevity/mean",
              "rewards/brevity/std", "completions/mean_length", "completions/clipped_ratio", "frac_reward_zero_std"}
SCHEMA = {
    "sft": {"num_tokens", "mean_token_accuracy", "entropy"},
    "reward_model": {"accuracy", "margin", "mean_reward", "num_tokens"},
    "grpo": GENERATION | {"entropy", "num_tokens", "step_time", "clip_ratio/region_mean"},
    "ppo": {"entropy", "kl", "step_time", "clip_ratio/region_mean"},
    "rloo": GENERATION | {"kl", "entropy", "num_tokens", "step_time"},
    "online_dpo": {"objective/scores", "objective/kl", "objective/entropy", "rewards/length/mean",
                   "rewards/brevity/mean", "rewards/chosen", "rewards/margins", "logps/chosen", "beta"},
    "dpo": {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
            "num_tokens"},
}
REWARD_STEP_KEYS = {"ppo": GENERATION, "dpo": {"pairs/kept", "rewards/length/mean", "rewards/brevity/mean"}}


@pytest.fixture(scope="module")
def every_stage(tmp_path_factory, tiny_model_dir) -> Path:
    """One tiny run through every stage type, two steps each (~1 min on 2 busy cores)."""
    folder = tmp_path_factory.mktemp("every_stage")
    (folder / "my_rewards.py").write_text(REWARDS_PY)
    write_jsonl(folder / "prompts.jsonl", prompt_rows())
    write_jsonl(folder / "prefs.jsonl", preference_rows())
    write_jsonl(folder / "sft.jsonl", messages_rows())
    path = write_recipe(folder / "recipe.yaml", f"""
name: every-stage
model: {tiny_model_dir}
seed: 0
stages:
  - {{name: sft, type: sft, data: {{train: sft.jsonl}}, args: {{max_steps: 2, {BATCH}}}}}
  - {{name: rm, type: reward_model, data: {{train: prefs.jsonl}}, args: {{max_steps: 2, {BATCH}}}}}
  - {{name: grpo, type: grpo, data: {{train: prompts.jsonl}}, {REWARDS}, args: {{max_steps: 2, {GEN}}}}}
  - {{name: ppo, type: ppo, data: {{train: prompts.jsonl}}, {REWARDS}, args: {{max_steps: 2, {GEN}}}}}
  - {{name: rloo, type: rloo, data: {{train: prompts.jsonl}}, {REWARDS}, args: {{max_steps: 2, {GEN}}}}}
  - {{name: odpo, type: online_dpo, data: {{train: prompts.jsonl}}, {REWARDS},
      args: {{max_steps: 2, max_new_tokens: 8, {BATCH}}}}}
  - {{name: dpo, type: dpo, data: {{train: prompts.jsonl}}, {REWARDS}, pairs: {{k: 2, max_new_tokens: 8}},
      args: {{max_steps: 2, {BATCH}}}}}
""")
    return run(path, output_dir=str(folder / "run"))


def stage_rows(root: Path, stage: str) -> list[dict]:
    rows = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["stage"] == stage]


@pytest.mark.parametrize("stage,kind", [("sft", "sft"), ("rm", "reward_model"), ("grpo", "grpo"), ("ppo", "ppo"),
                                        ("rloo", "rloo"), ("odpo", "online_dpo"), ("dpo", "dpo")])
def test_metrics_schema_of_every_stage_type(every_stage, stage, kind):
    rows = stage_rows(every_stage, stage)
    train = [r for r in rows if "loss" in r]
    assert [r["step"] for r in train] == [1, 2]
    for row in train:
        missing = (COMMON | SCHEMA[kind]) - set(row)
        assert not missing, f"{kind} step {row['step']} lacks {sorted(missing)}"
    if kind in REWARD_STEP_KEYS:
        assert any(REWARD_STEP_KEYS[kind] <= set(r) for r in rows), kind
    summary = [r for r in rows if "train_runtime" in r]  # throughput, once per stage
    assert len(summary) == 1 and summary[0]["train_samples_per_second"] > 0
    # samples seen = steps x batch x processes, a batch used num_iterations times (PPO: 2) counted once
    assert train[-1]["samples"] == (2 if kind == "ppo" else 4)
    assert list((every_stage / "tensorboard" / stage).glob("events.out.tfevents.*"))  # TensorBoard too, by default


def test_samples_jsonl_per_reward_stage(every_stage):
    rows = [json.loads(line) for line in (every_stage / "samples.jsonl").read_text().splitlines()]
    assert {r["stage"] for r in rows} == {"grpo", "ppo", "rloo", "odpo"}  # not DPO: its pairs are made before training
    for r in rows:
        assert set(r["rewards"]) == {"length", "brevity"}
        assert r["rewards"]["length"] == pytest.approx(len(r["completion"]) / 100)
        assert r["prompt"] and isinstance(r["completion"], str)


def test_compare_on_the_real_run(every_stage, tmp_path, capsys):
    out = tmp_path / "curves.png"
    [loaded] = compare([str(every_stage)], out=str(out))
    assert out.stat().st_size > 10_000
    text = capsys.readouterr().out
    for stage in ("sft", "rm (reward_model)", "grpo", "ppo", "rloo", "odpo (online_dpo)", "dpo"):
        assert f" run   {stage} " in text, stage
    assert "panels: reward, rewards/length/mean, rewards/brevity/mean" in text
    assert "what differs" not in text  # one run: nothing to diff
    grpo = stage_stats(loaded.rows["grpo"], "reward", 0.9)
    rewards = [r["reward"] for r in stage_rows(every_stage, "grpo") if "reward" in r]
    assert grpo["final"] == pytest.approx(ema(rewards, 0.9)[-1]) and grpo["steps"] == 2
    odpo = stage_stats(loaded.rows["odpo"], "reward", 0.9)  # online DPO logs the reward as objective/scores
    assert odpo["start"] == pytest.approx(stage_rows(every_stage, "odpo")[0]["objective/scores"])


# --- synthetic run folders ---------------------------------------------------------------------------------------
def fake_run(root: Path, stages: dict, lr: float = 1e-4, done: bool = True, tail: str = "") -> Path:
    """A run folder: `stages` maps name -> (type, steps, reward at step s as a function of s)."""
    recipe = {"name": root.name, "model": "m", "seed": 1, "stages": []}
    lines = []
    for i, (name, (kind, steps, reward)) in enumerate(stages.items()):
        recipe["stages"].append({"name": name, "type": kind, "args": {"learning_rate": lr, "max_steps": steps}})
        for s in range(1, steps + 1):
            row = {"stage": name, "step": s, "samples": 8 * s, "loss": 1 / s}
            if reward is not None:
                row.update({"reward": reward(s), "kl": 0.01 * s, "completions/mean_length": 40.0 + s,
                            "rewards/polite/mean": reward(s) / 2, "rewards/short/mean": 1 - reward(s)})
            lines.append(json.dumps(row))
        if done or i < len(stages) - 1:
            (root / "stages" / f"{i:02d}_{name}").mkdir(parents=True)
            (root / "stages" / f"{i:02d}_{name}" / "stage_complete.json").write_text("{}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "recipe.resolved.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    (root / "metrics.jsonl").write_text("\n".join(lines) + "\n" + tail)
    return root


def test_one_two_and_three_runs(tmp_path, capsys):
    a = fake_run(tmp_path / "a", {"sft": ("sft", 5, None), "ppo": ("ppo", 20, lambda s: s / 20)})
    b = fake_run(tmp_path / "b", {"sft": ("sft", 5, None), "ppo": ("ppo", 10, lambda s: s / 10)}, lr=3e-4)
    c = fake_run(tmp_path / "c", {"sft": ("sft", 5, None), "ppo": ("ppo", 30, lambda s: 0.5)}, lr=1e-5)
    for runs in ([a], [a, b], [a, b, c]):
        out = tmp_path / f"{len(runs)}.png"
        compare([str(r) for r in runs], out=str(out))
        text = capsys.readouterr().out
        assert out.is_file() and all(re.search(rf"^ {r.name} +sft ", text, re.M) for r in runs)
        assert ("stages.ppo.args.learning_rate" in text) == (len(runs) > 1)
    diff = dict(recipe_diff([load_run(a), load_run(b), load_run(c)]))
    assert diff == {"stages.ppo.args.learning_rate": [1e-4, 3e-4, 1e-5], "stages.sft.args.learning_rate":
                    [1e-4, 3e-4, 1e-5], "stages.ppo.args.max_steps": [20, 10, 30]}
    stats = stage_stats(load_run(a).rows["ppo"], "reward", 0.0)
    assert (stats["start"], stats["final"], stats["best"], stats["change"]) == pytest.approx((0.05, 1.0, 1.0, 0.95))
    assert stats["kl"] == pytest.approx(0.2) and stats["length"] == pytest.approx(60.0)


def test_runs_with_different_stages(tmp_path, capsys):
    ppo = fake_run(tmp_path / "ppo", {"sft": ("sft", 4, None), "ppo": ("ppo", 6, lambda s: s)})
    grpo = fake_run(tmp_path / "grpo", {"grpo": ("grpo", 8, lambda s: 2 * s), "rloo": ("rloo", 3, lambda s: 1)})
    compare([str(ppo), str(grpo)], out=str(tmp_path / "c.png"), x="samples")
    text = capsys.readouterr().out
    assert " grpo   grpo " in text and " grpo   rloo " in text and " ppo    sft " in text
    diff = dict(recipe_diff([load_run(ppo), load_run(grpo)]))
    assert diff["stages.sft"] == ["sft", "-"] and diff["stages.grpo"] == ["-", "grpo"]
    assert "stages.sft.args.learning_rate" not in diff  # only one run has the stage: its settings are not a difference
    xs, _ = series(load_run(grpo).rows["grpo"], "reward", x="samples")
    assert xs[:2] == [8.0, 16.0]


def test_run_in_progress_is_plotted_to_its_last_complete_line(tmp_path, capsys):
    done = fake_run(tmp_path / "done", {"ppo": ("ppo", 10, lambda s: s)})
    live = fake_run(tmp_path / "live", {"sft": ("sft", 3, None), "ppo": ("ppo", 7, lambda s: s)}, done=False,
                    tail='{"stage": "ppo", "step": 8, "loss": 0.1, "rew')
    compare([str(done), str(live)], out=str(tmp_path / "c.png"))
    text = capsys.readouterr().out
    assert "skipped 1 unreadable line" in text and "ppo *" in text and "in progress" in text
    loaded = load_run(live)
    assert loaded.complete == {"sft": True, "ppo": False}
    assert series(loaded.rows["ppo"], "reward")[0][-1] == 7.0


def test_resumed_stage_later_rows_win(tmp_path):
    root = fake_run(tmp_path / "r", {"ppo": ("ppo", 3, lambda s: s)})
    with (root / "metrics.jsonl").open("a") as f:  # resumed from checkpoint-1: steps 2 and 3 logged again
        f.writelines(json.dumps({"stage": "ppo", "step": s, "reward": 10.0 * s}) + "\n" for s in (2, 3))
    assert series(load_run(root).rows["ppo"], "reward") == ([1.0, 2.0, 3.0], [1.0, 20.0, 30.0])


def test_not_a_run_folder(tmp_path, capsys):
    (tmp_path / "runs" / "x").mkdir(parents=True)
    (tmp_path / "runs" / "x" / "recipe.resolved.yaml").write_text("name: x\n")
    with pytest.raises(RlftError, match=r"not an rlft run folder .*run folders inside it: x"):
        load_run(tmp_path / "runs")
    with pytest.raises(RlftError, match="no such folder"):
        compare([str(tmp_path / "nope")])
    from rlft.cli import main

    with pytest.raises(SystemExit) as e:
        main(["compare", str(tmp_path), "--out", str(tmp_path / "c.png")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "not an rlft run folder" in err and "Traceback" not in err
    assert not (tmp_path / "c.png").exists()


def test_metric_nobody_logged_and_bad_smoothing(tmp_path):
    root = fake_run(tmp_path / "sft_only", {"sft": ("sft", 3, None)})
    with pytest.raises(RlftError, match="no run has logged 'reward' yet; metrics logged: loss"):
        compare([str(root)], out=str(tmp_path / "c.png"))
    compare([str(root)], metric="loss", out=str(tmp_path / "loss.png"))
    assert stage_stats(load_run(root).rows["sft"], "loss", 0.0)["best"] == pytest.approx(1 / 3)  # lower is better
    with pytest.raises(RlftError, match="--smooth 1.0"):
        compare([str(root)], smooth=1.0)


@pytest.mark.parametrize("name", ["c.png", "c.svg", "c.jpg"])
def test_out_replaces_only_its_own_image(tmp_path, name):
    """--out replaces an image an earlier `rlft compare` wrote, never a file of the user's; an unwritable --out is a
    clear error, not a traceback."""
    run_dir = fake_run(tmp_path / "r", {"ppo": ("ppo", 5, lambda s: s)})
    out = tmp_path / name
    compare([str(run_dir)], out=str(out))
    first = out.read_bytes()
    compare([str(run_dir)], out=str(out), smooth=0.5)  # its own image: replaced
    assert out.read_bytes() != first
    mine = tmp_path / f"mine{out.suffix}"
    mine.write_bytes(first.replace(b"rlft compare", b"my own plot!"))  # same format, someone else's
    with pytest.raises(RlftError, match="rlft did not write it"):
        compare([str(run_dir)], out=str(mine))
    assert b"my own plot!" in mine.read_bytes()
    (tmp_path / "file").write_text("x")
    with pytest.raises(RlftError, match="cannot write there"):
        compare([str(run_dir)], out=str(tmp_path / "file" / name))
    assert not list(tmp_path.glob(".*.partial"))
    decoy = tmp_path / f".{name}.partial"  # a user's file under the old temporary name is never touched
    decoy.write_text("mine")
    compare([str(run_dir)], out=str(out))
    assert decoy.read_text() == "mine" and len(list(tmp_path.glob(".*.partial"))) == 1
