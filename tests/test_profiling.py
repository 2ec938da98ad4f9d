"""`rlft run --profile`: a real tiny GRPO run (LoRA, KL reference) writes a profile whose parts are all measured and
add up to the stage's training time; the hook points it relies on still exist in TRL."""

from __future__ import annotations

import json

import pytest

from conftest import prompt_rows, write_jsonl, write_recipe
from rlft import profiling
from rlft.cli import main as cli_main


def test_grpo_profile_parts_sum_to_stage_time(tmp_path, tiny_model_dir, capsys):
    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    recipe = write_recipe(tmp_path / "recipe.yaml", f"""name: t
model: {tiny_model_dir}
seed: 0
stages:
  - name: rl
    type: ppo
    data: {{train: prompts.jsonl}}
    rewards: [{{fn: reward_models.guards:repetition_penalty}}]
    lora: {{r: 4, lora_alpha: 8, target_modules: all-linear}}
    args: {{max_steps: 2, per_device_train_batch_size: 2, num_generations: 2, max_completion_length: 8,
            steps_per_generation: 2, num_iterations: 1, beta: 0.04, save_strategy: "no"}}
""")
    cli_main(["run", str(recipe), "--output-dir", str(tmp_path / "run"), "--profile"])
    prof = json.loads((tmp_path / "run" / "stages" / "00_rl" / "profile.json").read_text())
    parts = prof["parts"]
    for part in ("generation", "rewards", "reference", "policy_logprobs", "forward_backward", "optimizer"):
        assert parts[part]["seconds"] > 0, part
        assert parts[part]["peak_mb"] > 0, part
    assert parts["optimizer"]["calls"] == 2
    assert parts["generation"]["calls"] == 1  # one generation batch feeds both steps
    total = sum(p["seconds"] for p in parts.values())
    assert total == pytest.approx(prof["seconds"], rel=0.02)
    assert parts["other"]["seconds"] < 0.5 * prof["seconds"]
    assert prof["peak_mb"] >= max(p["peak_mb"] for p in parts.values()) > 0
    done = json.loads((tmp_path / "run" / "stages" / "00_rl" / "stage_complete.json").read_text())
    assert done["profile"] == prof
    out = capsys.readouterr().out
    assert "profile" in out and "generate" in out and "fwd+bwd" in out and "ref fwd" in out


def test_profiler_exclusive_time_nesting():
    """A part nested in another is taken out of its parent."""
    import time

    p = profiling.Profiler()
    p.on_train_begin(None, None, None)
    outer = p.timed("forward_backward", lambda: (time.sleep(0.05), inner())[1])
    inner = p.timed("generation", lambda: time.sleep(0.1))
    outer()
    p.on_train_end(None, None, None)
    r = p.result()
    assert r["parts"]["generation"]["seconds"] == pytest.approx(0.1, abs=0.05)
    assert r["parts"]["forward_backward"]["seconds"] == pytest.approx(0.05, abs=0.04)
    assert r["peak_mb"] > 0
