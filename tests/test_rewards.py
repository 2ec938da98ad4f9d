"""Reward functions: TRL's contract, loading (file path, dotted path, kwargs), recipe checks, per-call checks, and
`rlft rewards check`. Every failure mode gives its own message and exit status 2."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import prompt_rows, write_jsonl, write_recipe
from rlft import cli, rewards
from rlft.errors import RlftError

ROOT = Path(__file__).resolve().parent.parent

REWARDS_PY = '''
def length(prompts, completions, **kwargs):
    return [len(c[-1]["content"] if isinstance(c, list) else c) / 100 for c in completions]

def brevity(prompts, completions, target_words=20, **kwargs):
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [-abs(len(t.split()) - target_words) / target_words for t in texts]

def constant(prompts, completions, **kwargs):
    return [1.0] * len(completions)

def short(prompts, completions, **kwargs):
    return [1.0] * (len(completions) - 1)

def nan(prompts, completions, **kwargs):
    return [0.5] * (len(completions) - 1) + [float("nan")]

def word(prompts, completions, **kwargs):
    return [0.1, "high"] + [0.1] * (len(completions) - 2)

def boom(prompts, completions, **kwargs):
    return [1 / 0 for c in completions]

def no_kwargs(prompts, completions):
    return [0.0] * len(completions)

def needs_solution(prompts, completions, solution, **kwargs):
    return [0.0] * len(completions)

NOT_A_FUNCTION = 3
'''
STAGE = """
  - name: rl
    type: grpo
    data: {{train: prompts.jsonl}}
    rewards:
{rewards}
    args: {{max_steps: 1, per_device_train_batch_size: 2, num_generations: 2, max_completion_length: 8,
            steps_per_generation: 1}}
"""


@pytest.fixture
def reward_dir(tmp_path) -> Path:
    (tmp_path / "my_rewards.py").write_text(REWARDS_PY)
    (tmp_path / "scorers").mkdir()  # a package beside the recipe, imported by dotted path
    (tmp_path / "scorers" / "__init__.py").write_text("")
    (tmp_path / "scorers" / "tone.py").write_text(
        "def exclaims(prompts, completions, **kw):\n    return [float(str(c).count('!')) for c in completions]\n")
    (tmp_path / "broken.py").write_text("def oops(:\n")
    (tmp_path / "exits.py").write_text("import sys\nprint('usage: ...')\nsys.exit(3)\n")  # a script, not a module
    (tmp_path / "interrupts.py").write_text("raise KeyboardInterrupt\n")
    (tmp_path / "raises_exit.py").write_text("raise SystemExit\n")
    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    return tmp_path


def grpo_recipe(folder: Path, model, reward_lines: str) -> Path:
    return write_recipe(folder / "recipe.yaml", f"name: t\nmodel: {model}\nseed: 0\nstages:"
                        + STAGE.format(rewards=reward_lines))


def exits_with(argv: list[str], capsys) -> str:
    """Run the CLI in-process; assert it stops with status 2, no traceback, and return what it printed."""
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err
    return " ".join((printed.out + printed.err).split())  # rich wraps long lines


# --- the contract on plain strings ----------------------------------------------------------------------------------
def test_doctests_of_the_contract_and_the_worked_example():
    assert sum(doctest.testmod(m).failed for m in (rewards, rewards.runtime, rewards.remote)) == 0
    example = rewards.load_module("my_rewards.py", ROOT / "recipes")  # recipes/my_rewards.py
    assert doctest.testmod(example).failed == 0


@pytest.mark.parametrize("returned, message", [
    ([0.1], "reward 'r' returned 1 value for 2 completions"),
    ([0.1, float("nan")], "reward 'r' returned nan for sample 1 of 2 (completion: 'b')"),
    ([float("inf"), 0.1], "reward 'r' returned inf for sample 0 of 2"),
    ([0.1, "high"], "reward 'r' returned 'high' (str) for sample 1 of 2 (completion: 'b'); a reward must be a number"),
    ([0.1, [1.0]], "returned [1.0] (list) for sample 1 of 2"),
    (0.5, "reward 'r' returned 0.5 (float) instead of a list of 2 numbers"),
])
def test_bad_return_values_name_reward_sample_and_value(returned, message):
    reward = rewards.CheckedReward(lambda prompts, completions, **kw: returned, "r")
    with pytest.raises(RlftError) as e:
        reward(prompts=["p", "p"], completions=["a", "b"])
    assert message in str(e.value)


def test_exception_names_reward_file_and_line(reward_dir):
    reward = rewards.CheckedReward(rewards.load_function("my_rewards.py:boom", reward_dir), "boom")
    with pytest.raises(RlftError, match=r"reward 'boom' raised ZeroDivisionError: division by zero at my_rewards.py:"
                                        r"\d+ while scoring samples 0-1"):
        reward(prompts=["p", "p"], completions=["a", "b"])


def test_numbers_none_numpy_and_tensors_pass_nan_as_none_opt_in():
    values = [1, None, np.float32(0.5), torch.tensor(2.0), True]
    reward = rewards.CheckedReward(lambda prompts, completions, **kw: values, "r")
    assert reward(prompts=["p"] * 5, completions=["c"] * 5) == [1.0, None, 0.5, 2.0, 1.0]
    lenient = rewards.CheckedReward(lambda prompts, completions, **kw: [float("nan"), 1.0], "r", nan_as_none=True)
    assert lenient(prompts=["p", "p"], completions=["a", "b"]) == [None, 1.0]


# --- loading ----------------------------------------------------------------------------------------------------------
def test_file_path_dotted_path_and_kwargs(reward_dir):
    class Ctx:
        recipe_dir, outputs, dtype = reward_dir, {}, None

    stage = {"rewards": [{"fn": "my_rewards.py:length"}, {"fn": "scorers.tone:exclaims", "weight": 0.5},
                         {"fn": "my_rewards.py:brevity", "kwargs": {"target_words": 2}, "weight": 2}]}
    built = rewards.build(stage, Ctx())
    assert [r.__name__ for r in built] == ["length", "exclaims", "brevity"]  # kwargs keep the readable name
    assert rewards.weights(stage) == [1.0, 0.5, 2.0]
    completions = ["Hi there!", "one two three four"]
    values = rewards.call_all(built, ["p", "p"], completions, {})
    assert values == [[0.09, 0.18], [1.0, 0.0], [0.0, -1.0]]
    assert rewards.weighted(values, rewards.weights(stage)) == pytest.approx([0.59, -1.82])


def test_trl_reward_works_unchanged_in_grpo_signature_check():
    from trl.rewards import think_format_reward  # a reward written for TRL's GRPOTrainer

    receives = {"prompts", "completions", *rewards.ALWAYS_PASSED}
    assert rewards.signature_problem(think_format_reward, receives, {}) is None


# --- recipe validation: one message per mistake, exit status 2 -------------------------------------------------------
@pytest.mark.parametrize("reward_lines, message", [
    ("      - fn: nowhere.module:f", "stages[0].rewards[0].fn: cannot import 'nowhere.module'"),
    ("      - fn: broken.py:oops", "stages[0].rewards[0].fn: broken.py: running the file failed: SyntaxError"),
    ("      - fn: missing.py:f", "stages[0].rewards[0].fn: missing.py: file not found"),
    ("      - fn: my_rewards.py:lenght", "my_rewards.py has no 'lenght'; functions defined there: ['boom', 'brevity'"),
    ("      - fn: my_rewards.py:NOT_A_FUNCTION", "NOT_A_FUNCTION is a int, not a function"),
    ("      - fn: my_rewards.py", "must be module.path:function or file.py:function"),
    ("      - fn: my_rewards.py:no_kwargs",
     "does not accept ['completion_ids', 'log_extra', 'log_metric', 'trainer_state'], which TRL passes to every "
     "reward; add **kwargs"),
    ("      - fn: my_rewards.py:needs_solution", "requires ['solution'], which it will not receive"),
    ("      - {fn: my_rewards.py:brevity, kwargs: {target_word: 5}}",
     "kwargs key 'target_word' is not a parameter of the function; did you mean 'target_words'?"),
    ("      - {fn: my_rewards.py:no_kwargs, kwargs: {style: 1}}", "kwargs key 'style' is not a parameter"),
    ("      - {fn: my_rewards.py:brevity, kwargs: {api_key: sk-abc123}}",
     "rewards[0].kwargs.api_key: holds a literal credential"),
    ("      - {fn: my_rewards.py:brevity, kwargs: {hf_token: hf_abc123}}",
     "rewards[0].kwargs.hf_token: holds a literal credential"),
    ("      - {fn: my_rewards.py:brevity, kwargs: {openai_api_key: sk-abc123}}",
     "rewards[0].kwargs.openai_api_key: holds a literal credential"),
    ("      - {fn: my_rewards.py:length, weight: heavy}", "stages[0].rewards[0].weight: expected a number, got a string"),
    ("      - {fn: my_rewards.py:length}\n      - {fn: my_rewards.py:length}", "two rewards are named 'length'"),
    ("      - {fn: my_rewards.py:length, wieght: 2}", "stages[0].rewards[0].wieght: unknown key; did you mean 'weight'?"),
    ("      - {model: rm_folder}", "'rm_folder' is neither a reward_model stage of this recipe (none) nor a folder"),
    ("      - {url: 'htp:/x/score'}", "stages[0].rewards[0].url: 'htp:/x/score' is not an http(s) URL with a host"),
    ("      - {url: 'http://h:99999/score'}", "'http://h:99999/score' is not a valid URL"),
    ("      - {url: 'http://h:8000/score', headers: {Authorization: Bearer abc123}}",
     "rewards[0].headers.Authorization: holds a literal secret"),
    ("      - {url: 'http://h:8000/score', headers: {X-Api-Key: abc123}}",
     "rewards[0].headers.X-Api-Key: holds a literal secret"),
    ("      - {url: 'https://user:hunter2@h:8000/score'}", "rewards[0].url: holds credentials"),
    ("      - {url: 'https://sk-abc123@h:8000/score'}", "rewards[0].url: holds credentials"),
    ("      - {url: 'http://h:8000/score', headers: {Authorization: 'Bearer ${RLFT_TEST_UNSET}'}}",
     "environment variable RLFT_TEST_UNSET is not set"),
    ("      - {url: 'http://h:8000/score', max_batch: 0}", "rewards[0].max_batch: 0 must be at least 1"),
    ("      - {fn: my_rewards.py:length, max_batch: 4}", "rewards[0].max_batch: applies to url: rewards only"),
    ("      - {fn: my_rewards.py:length, timeout: 0}", "rewards[0].timeout: 0 must be a number of seconds > 0"),
    ("      - {fn: exits.py:f}", "exits.py: the module called sys.exit(3) while being imported"),
    ("      - {fn: interrupts.py:f}", "interrupts.py: the module raised KeyboardInterrupt while being imported"),
    ("      - {fn: raises_exit.py:f}", "raises_exit.py: the module called sys.exit(None) while being imported"),
    ("      - {fn: my_rewards.py:length, model: x}", "give exactly one of fn: (a Python function), model: (a reward model) or url: (a reward server); got fn and model"),
])
def test_recipe_problems(reward_dir, tiny_model_dir, capsys, reward_lines, message):
    err = exits_with(["validate", str(grpo_recipe(reward_dir, tiny_model_dir, reward_lines))], capsys)
    assert message in err


def test_valid_recipe_and_missing_rewards(reward_dir, tiny_model_dir, capsys):
    ok = grpo_recipe(reward_dir, tiny_model_dir, "      - {fn: scorers.tone:exclaims}\n      - {fn: my_rewards.py:length}")
    cli.main(["validate", str(ok)])
    assert "OK - 1 stage(s): rl (grpo)" in capsys.readouterr().out
    text = ok.read_text().replace("    rewards:\n      - {fn: scorers.tone:exclaims}\n      - {fn: my_rewards.py:length}\n",
                                  "")
    assert "stages[0].rewards: missing" in exits_with(["validate", str(write_recipe(ok, text))], capsys)


# --- failures during training stop the run: real GRPO steps on the tiny model ----------------------------------------
@pytest.mark.parametrize("fn, message", [
    ("short", "reward 'short' returned 1 value for 2 completions"),
    ("nan", "reward 'nan' returned nan for sample 1 of 2"),
    ("word", "reward 'word' returned 'high' (str) for sample 1 of 2"),
    ("boom", "reward 'boom' raised ZeroDivisionError: division by zero at my_rewards.py:"),
])
def test_bad_reward_stops_training(reward_dir, tiny_model_dir, capsys, fn, message):
    recipe = grpo_recipe(reward_dir, tiny_model_dir, f"      - fn: my_rewards.py:{fn}")
    err = exits_with(["run", str(recipe), "--output-dir", str(reward_dir / "run")], capsys)
    assert message in err
    assert not (reward_dir / "run" / "stages" / "00_rl" / "stage_complete.json").exists()


# --- rlft rewards check -----------------------------------------------------------------------------------------------
def test_rewards_check_samples_and_flags(reward_dir, tiny_model_dir, capsys):
    recipe = grpo_recipe(reward_dir, tiny_model_dir, "      - {fn: my_rewards.py:length}\n"
                                                     "      - {fn: my_rewards.py:constant, weight: 0.5}")
    cli.main(["rewards", "check", str(recipe), "--n", "2", "--k", "2", "--output-dir", str(reward_dir / "run")])
    out = capsys.readouterr().out
    assert "stage rl (grpo): 2 prompts x 2 completions, sampled from the recipe's model" in out
    for column in ("mean", "std", "min", "max", "None/NaN", "tied groups", "s/call"):
        assert column in out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 5}
    assert "ok" in rows["length"] and "constant" in rows["constant"]
    assert "100%" in rows["constant"]  # every group tied
    assert "total (weighted)" in rows


def test_rewards_check_from_file_and_failures(reward_dir, tiny_model_dir, capsys):
    rows = [{"prompt": p, "completion": c} for p in ("a", "b") for c in ("Hi!", "Hello there, friend")]
    completions = str(write_jsonl(reward_dir / "completions.jsonl", rows))
    recipe = grpo_recipe(reward_dir, tiny_model_dir, "      - {fn: my_rewards.py:length}")
    cli.main(["rewards", "check", str(recipe), "--completions", completions])
    out = capsys.readouterr().out
    assert "2 prompts x 2 completions, completions from" in out
    line = next(line for line in out.splitlines() if line.startswith("│ length"))
    assert [c.strip() for c in line.split("│")[3:7]] == ["0.11", "0.08", "0.03", "0.19"]  # mean, std, min, max
    recipe = grpo_recipe(reward_dir, tiny_model_dir, "      - {fn: my_rewards.py:length}\n"
                                                     "      - {fn: my_rewards.py:nan}")
    text = exits_with(["rewards", "check", str(recipe), "--completions", completions], capsys)
    assert "1 reward(s) failed: nan" in text and "error: reward 'nan' returned nan for sample 3 of 4" in text


# --- one list of what TRL passes, loading without side effects --------------------------------------------------------
def test_trl_reward_kwargs_are_what_trl_passes():
    """contract.TRL_REWARD_KWARGS is read off TRL's own `_calculate_rewards`; this fails when TRL changes them."""
    import re

    import trl

    found = {}
    for trainer in ("grpo_trainer", "rloo_trainer"):
        source = (Path(trl.__file__).parent / "trainer" / f"{trainer}.py").read_text()
        body = source[source.index("def _calculate_rewards"):]
        body = body[:body.index("\n    def ", 10)]
        passed = set(re.findall(r'\breward_kwargs\["(\w+)"\] =', body))
        found[trainer] = passed | ({"completion_ids"} if "completion_ids=completion_ids_list" in body else set())
    assert found["grpo_trainer"] == set(rewards.TRL_REWARD_KWARGS)
    assert found["rloo_trainer"] == set(rewards.ALWAYS_PASSED)
    from reward_models import guards

    assert guards.TRL_KEYWORDS == set(rewards.TRL_REWARD_KWARGS)  # the shipped rewards read the same list


def test_two_recipes_files_of_one_name_do_not_collide(tmp_path):
    import sys

    for name, value in (("one", 1.0), ("two", 2.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "helpers.py").write_text(f"VALUE = {value}\n")  # a neighbour of the same name, too
        (tmp_path / name / "my_rewards.py").write_text(
            "from helpers import VALUE\n\ndef score(prompts, completions, **kw):\n    return [VALUE] * len(completions)\n")
    path_before, modules_before = list(sys.path), set(sys.modules)
    one = rewards.load_function("my_rewards.py:score", tmp_path / "one")
    two = rewards.load_function("my_rewards.py:score", tmp_path / "two")
    assert one(["p"], ["c"]) == [1.0] and two(["p"], ["c"]) == [2.0]
    assert one.__module__ != two.__module__
    assert sys.path == path_before and set(sys.modules) == modules_before  # nothing left behind


# --- async rewards, time limits, all-None batches ---------------------------------------------------------------------
ASYNC_PY = """
import asyncio, threading

async def slow_a(prompts, completions, **kwargs):
    await asyncio.sleep(1)
    return [1.0] * len(completions)

async def slow_b(prompts, completions, **kwargs):
    await asyncio.sleep(1)
    return [2.0] * len(completions)

def plain(prompts, completions, **kwargs):
    return [0.5] * len(completions)

async def short(prompts, completions, **kwargs):
    return [0.5] * (len(completions) - 1)

def hangs(prompts, completions, **kwargs):
    threading.Event().wait()

async def hangs_async(prompts, completions, **kwargs):
    await asyncio.sleep(3600)

def nothing(prompts, completions, **kwargs):
    return [None] * len(completions)

def some(prompts, completions, **kwargs):
    return [None] + [1.0] * (len(completions) - 1)
"""


class Ctx:
    def __init__(self, folder):
        self.recipe_dir, self.outputs, self.callbacks, self.dtype = folder, {}, [], None


def test_async_rewards_stay_async_and_run_concurrently(tmp_path):
    import asyncio
    import inspect
    import time

    from trl.trainer.utils import is_async_callable

    (tmp_path / "judges.py").write_text(ASYNC_PY)
    stage = {"rewards": [{"fn": "judges.py:slow_a"}, {"fn": "judges.py:plain"}, {"fn": "judges.py:slow_b"}]}
    built = rewards.build(stage, Ctx(tmp_path))
    assert [inspect.iscoroutinefunction(r) for r in built] == [True, False, True]
    assert [is_async_callable(r) for r in built] == [True, False, True]  # what GRPOTrainer / RLOOTrainer check
    assert [r.__name__ for r in built] == ["slow_a", "plain", "slow_b"]
    kwargs = {"prompts": ["p", "q"], "completions": ["a", "b"], "completion_ids": None}

    async def as_trl_does():  # TRL: asyncio.gather of the async rewards on its event loop
        return await asyncio.gather(built[0](**kwargs), built[2](**kwargs))

    started = time.perf_counter()
    assert asyncio.run(as_trl_does()) == [[1.0, 1.0], [2.0, 2.0]]
    assert time.perf_counter() - started < 1.8  # two 1 s rewards together: concurrent, not 2 s
    started = time.perf_counter()
    assert rewards.call_all(built, ["p", "q"], ["a", "b"], {}) == [[1.0, 1.0], [0.5, 0.5], [2.0, 2.0]]
    assert time.perf_counter() - started < 1.8  # rlft's own callers (rewards check, eval, DPO ranking) gather too
    synchronous = rewards.build(stage, Ctx(tmp_path), concurrent=False)  # online DPO calls rewards synchronously
    assert not any(inspect.iscoroutinefunction(r) for r in synchronous)
    assert synchronous[0](**kwargs) == [1.0, 1.0]
    short = rewards.build({"rewards": [{"fn": "judges.py:short"}]}, Ctx(tmp_path))[0]
    with pytest.raises(RlftError, match="reward 'short' returned 1 value for 2 completions; it must return exactly"):
        asyncio.run(short(**kwargs))  # checked exactly like a sync reward


@pytest.mark.parametrize("fn", ["hangs", "hangs_async"])
def test_a_reward_that_never_returns_stops_at_its_time_limit(tmp_path, tiny_model_dir, capsys, fn):
    import time

    (tmp_path / "judges.py").write_text(ASYNC_PY)
    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    recipe = grpo_recipe(tmp_path, tiny_model_dir, f"      - {{fn: judges.py:{fn}}}")
    completions = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "p", "completion": c} for c in ("a", "b")])
    started = time.perf_counter()
    text = exits_with(["rewards", "check", str(recipe), "--completions", str(completions), "--timeout", "1"], capsys)
    assert f"reward '{fn}' did not return within its time limit of 1 s" in text
    assert time.perf_counter() - started < 30
    assert "--timeout 0: give the seconds" in exits_with(["rewards", "check", str(recipe), "--timeout", "0"], capsys)


def test_all_none_batch_stops_but_some_none_is_fine(tmp_path):
    (tmp_path / "judges.py").write_text(ASYNC_PY)
    both = rewards.build({"rewards": [{"fn": "judges.py:nothing"}, {"fn": "judges.py:some"}]}, Ctx(tmp_path))
    assert rewards.call_all(both, ["p", "q"], ["a", "b"], {}) == [[None, None], [None, 1.0]]
    none = rewards.build({"rewards": [{"fn": "judges.py:nothing"}, {"fn": "judges.py:nothing", "name": "again"}]},
                         Ctx(tmp_path))
    with pytest.raises(RlftError, match=r"all 2 rewards returned None for every one of the 2 completions of a batch"):
        rewards.call_all(none, ["p", "q"], ["a", "b"], {})


def test_a_stuck_reward_stops_a_real_run(tmp_path, tiny_model_dir, capsys):
    """The run stops at the limit (the stuck call's daemon thread is left behind; it cannot be killed)."""
    (tmp_path / "judges.py").write_text(ASYNC_PY)
    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    recipe = grpo_recipe(tmp_path, tiny_model_dir, "      - {fn: judges.py:hangs, timeout: 1}")
    text = exits_with(["run", str(recipe), "--output-dir", str(tmp_path / "run")], capsys)
    assert "reward 'hangs' did not return within its time limit of 1 s" in text


def test_all_none_rewards_stop_a_real_run(tmp_path, tiny_model_dir, capsys):
    import re

    (tmp_path / "judges.py").write_text(ASYNC_PY)
    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    recipe = grpo_recipe(tmp_path, tiny_model_dir, "      - {fn: judges.py:nothing}")
    text = exits_with(["run", str(recipe), "--output-dir", str(tmp_path / "run")], capsys)
    assert re.search(r"error: the stage's only reward returned None for every one of the \d+ completions of a batch "
                     r"\(last: 'nothing', sample 0: .*\); the trainer would train on nothing with loss 0", text), text
    assert not (tmp_path / "run" / "stages" / "00_rl" / "stage_complete.json").exists()


def test_header_secrets_never_reach_the_run_folder(tmp_path, monkeypatch):
    """Defence behind validation (which refuses literal secrets in auth headers): whatever the run folder writes keeps
    ${VAR} references and redacts every other header value, and every secret-named value (a reward's api_key, a
    hub_token), in the recipe, the lock's command line and the stage."""
    import sys

    from rlft.runfolder import RunFolder

    recipe = {"name": "r", "model": "m", "stages": [{"name": "rl", "rewards": [
        {"url": "http://h:8000/score", "headers": {"Authorization": "Bearer ${RM_TOKEN}", "X-Api": "s3cr3t-value"}},
        {"fn": "judge.py:score", "kwargs": {"api_key": "s3cr3t-value", "model": "m"}}]}]}
    (tmp_path / "recipe.yaml").write_text("name: r\n")
    monkeypatch.setattr(sys, "argv", ["rlft", "run", "recipe.yaml", "stages.rl.rewards.0.headers.X-Api=s3cr3t-value",
                                      "stages.rl.args.hub_token=s3cr3t-value"])
    folder = RunFolder(tmp_path / "run")
    folder.prepare(fresh=False)
    folder.write_resolved(recipe)
    folder.write_lock(tmp_path / "recipe.yaml", recipe, tmp_path, "m")
    written = "".join(p.read_text() for p in (tmp_path / "run").iterdir())
    assert "s3cr3t-value" not in written and "Bearer ${RM_TOKEN}" in written and "<redacted>" in written
    assert "s3cr3t-value" not in str(rewards.described(recipe["stages"][0]))  # rlft_stage.json's rewards


def test_a_library_under_the_project_folder_stays_imported(tmp_path, monkeypatch):
    """A reward file beside a project's own .venv imports a library for the first time: after loading, the user's
    module is forgotten but the library is not (numpy and others refuse a second import in one process)."""
    import sys

    from rlft.rewards.loading import load_function

    site = tmp_path / ".venv" / "site"
    (site / "fakelib").mkdir(parents=True)
    (site / "fakelib" / "__init__.py").write_text("VALUE = 3\n")
    (tmp_path / "proj_rewards.py").write_text("import fakelib\n\ndef r(prompts, completions, **kw):\n"
                                              "    return [fakelib.VALUE] * len(completions)\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, "fakelib", raising=False)
    fn = load_function("proj_rewards.py:r", tmp_path)
    assert fn(["p"], ["c"]) == [3]
    assert "fakelib" in sys.modules and sys.modules["fakelib"] is fn.__globals__["fakelib"]
    assert not any(name.startswith("proj_rewards") for name in sys.modules)
