"""Before/after evaluation on the tiny random model: a real SFT -> GRPO run with an `eval:` section, its report,
results and summary, `rlft eval` on the finished run, samples.jsonl, and the eval section's recipe checks."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from conftest import messages_rows, prompt_rows, write_jsonl, write_recipe
from rlft.errors import RecipeError, RlftError
from rlft.evaluation import distinct_n, evaluate_folder
from rlft.run import run
from rlft.stages import load

REWARDS_PY = '''
def length(prompts, completions, **kwargs):
    return [len(c[-1]["content"]) / 100 for c in completions]

def polite(prompts, completions, **kwargs):
    return [float(any(w in c[-1]["content"].lower() for w in ("please", "thank", "sorry"))) for c in completions]

def words(prompts, completions, **kwargs):
    return [float(len(c[-1]["content"].split())) for c in completions]
'''
EVAL = """
eval:
  prompts: eval_prompts.jsonl
  max_new_tokens: 8
  eval_rewards: [{fn: my_rewards.py:words}]
  samples: 2
"""


def write_recipe_files(folder: Path, model_dir: Path, eval_block: str = EVAL) -> Path:
    (folder / "my_rewards.py").write_text(REWARDS_PY)
    write_jsonl(folder / "sft.jsonl", messages_rows())
    write_jsonl(folder / "prompts.jsonl", prompt_rows())
    write_jsonl(folder / "eval_prompts.jsonl", prompt_rows()[:4])
    return write_recipe(folder / "recipe.yaml", f"""
name: eval-test
model: {model_dir}
seed: 0
stages:
  - name: sft
    type: sft
    data: {{train: sft.jsonl}}
    lora: {{r: 4, lora_alpha: 8, target_modules: all-linear}}
    args: {{max_steps: 2, per_device_train_batch_size: 2, learning_rate: 5.0e-2, max_length: 128}}
  - name: rl
    type: grpo
    data: {{train: prompts.jsonl}}
    rewards:
      - fn: my_rewards.py:polite
      - fn: my_rewards.py:length
        weight: 0.5
    args: {{max_steps: 2, per_device_train_batch_size: 2, num_generations: 2, max_completion_length: 8,
            learning_rate: 1.0e-2, steps_per_generation: 1}}
{eval_block}""")  # steps_per_generation 1: samples at both steps


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("eval")
    path = write_recipe_files(folder, tiny_model_dir)
    return run(path, output_dir=str(folder / "run")), folder


def test_eval_report_results_and_summary(evaluated):
    root, _ = evaluated
    results = [json.loads(line) for line in (root / "eval" / "results.jsonl").read_text().splitlines()]
    assert [r["model"] for r in results] == ["base"] * 4 + ["sft"] * 4 + ["rl"] * 4
    assert all(set(r["rewards"]) == {"polite", "length", "words"} for r in results)
    assert all(1 <= r["tokens"] <= 8 for r in results)
    summary = json.loads((root / "eval" / "summary.json").read_text())
    assert (summary["final"], summary["reference"], summary["n_prompts"]) == ("rl", "sft", 4)
    for model in ("base", "sft", "rl"):
        rows = [r for r in results if r["model"] == model]
        stats = summary["models"][model]
        length = [r["rewards"]["length"] for r in rows]
        assert stats["rewards"]["length"]["mean"] == pytest.approx(statistics.fmean(length))
        assert stats["rewards"]["length"]["sd"] == pytest.approx(statistics.stdev(length))
        assert stats["mean_tokens"] == pytest.approx(statistics.fmean(r["tokens"] for r in rows))
        assert stats["distinct_2"] == pytest.approx(distinct_n([r["completion"] for r in rows]))
    # win rate of the final model over SFT, prompt by prompt, ties half
    final = [r["rewards"]["length"] for r in results if r["model"] == "rl"]
    sft = [r["rewards"]["length"] for r in results if r["model"] == "sft"]
    wins = sum(a > b for a, b in zip(final, sft)) + 0.5 * sum(a == b for a, b in zip(final, sft))
    assert summary["win_rate"]["length"]["rate"] == pytest.approx(wins / 4)

    report = (root / "eval" / "report.md").read_text()
    for text in ("## Rewards: mean ± sd", "| base |", "| sft |", "| rl (final) |", "distinct-2",
                 "## Win rate of the final model (rl) over sft", "| polite |", "## Samples (2 prompts",
                 "**Prompt 1:** What is the capital of France?", "**Prompt 4:**"):
        assert text in report, text
    mean = summary["models"]["rl"]["rewards"]["length"]
    assert f"{mean['mean']:.3f} ± {mean['sd']:.3f}" in report
    assert json.loads((root / "eval" / "eval_complete.json").read_text())["hash"]


def test_eval_answers_are_greedy_and_use_the_stage_template(evaluated, capsys):
    """The SFT row of results.jsonl is what `rlft chat` (greedy, the stage's template) answers."""
    from rlft.cli import main

    root, _ = evaluated
    first = json.loads((root / "eval" / "results.jsonl").read_text().splitlines()[4])
    assert first["model"] == "sft"
    capsys.readouterr()
    main(["chat", str(root / "stages" / "00_sft"), "--prompt", first["prompt"], "--max-new-tokens", "8"])
    assert capsys.readouterr().out.strip() == first["completion"]


def test_samples_jsonl_has_completions_with_every_reward(evaluated):
    root, _ = evaluated
    rows = [json.loads(line) for line in (root / "samples.jsonl").read_text().splitlines()]
    assert rows and {r["stage"] for r in rows} == {"rl"}
    assert {r["step"] for r in rows} == {1, 2}  # step 1 and the last step
    for r in rows:
        assert set(r["rewards"]) == {"polite", "length"} and isinstance(r["completion"], str)
        assert r["rewards"]["length"] == pytest.approx(len(r["completion"]) / 100)
        # the whole scored batch's opening concentration, which the kept completions alone cannot show
        assert r["batch_completions"] >= len([x for x in rows if x["step"] == r["step"]])
        assert 0 < r["batch_opening_share"] <= 1 and isinstance(r["batch_top_opening"], str)


def test_rerun_skips_eval_and_rlft_eval_reruns_it(evaluated, capsys):
    root, folder = evaluated
    before = (root / "eval" / "results.jsonl").stat().st_mtime_ns
    run(folder / "recipe.yaml", output_dir=str(root))
    assert "eval: up to date" in capsys.readouterr().out
    assert (root / "eval" / "results.jsonl").stat().st_mtime_ns == before
    evaluate_folder(root, limit=2)
    summary = json.loads((root / "eval" / "summary.json").read_text())
    assert summary["n_prompts"] == 2 and list(summary["models"]) == ["base", "sft", "rl"]
    assert not (root / "eval" / "eval_complete.json").exists()  # the next `rlft run` evaluates again


def test_rlft_eval_errors(tmp_path, evaluated):
    with pytest.raises(RlftError, match="not an rlft run folder"):
        evaluate_folder(tmp_path)
    root, _ = evaluated
    with pytest.raises(RecipeError, match="eval.prompts: .*missing.jsonl"):
        evaluate_folder(root, prompts=str(tmp_path / "missing.jsonl"))


def test_eval_section_problems_are_reported_with_paths(tmp_path, tiny_model_dir):
    path = write_recipe_files(tmp_path, tiny_model_dir, """
eval:
  prompts: sft.jsonl
  max_new_tokens: 0
  eval_rewards: [{fn: my_rewards.py:nope}, {fn: my_rewards.py:length}]
  promts: x
""")
    with pytest.raises(RecipeError) as e:
        load(path)
    text = str(e.value)
    for expected in ("eval.promts: unknown key; did you mean 'prompts'?", "eval.prompts: ", "eval.max_new_tokens: 0",
                     "eval.eval_rewards[0].fn: ", "'nope'", "eval.eval_rewards[1]: 'length' is a stage's reward"):
        assert expected in text, expected
