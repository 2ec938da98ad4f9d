"""`rlft rewards check RECIPE`: run every reward on a few samples before training, and show what it would teach.

For each reward-driven stage: N data rows, k completions per prompt sampled from the stage's starting policy (or read
from a file), every reward called exactly as the trainer will call it, and per reward: mean, std, min, max, the share
of None/NaN, the share of prompt groups whose k completions all score the same (GRPO/RLOO get no signal from those),
and the time per call. Constant and degenerate rewards are flagged.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from rlft import data, models, stage_models
from rlft.errors import RlftError
from rlft.report import make_console
from rlft.generation import sample
from rlft.rewards import build, call_all, entries, remote, state, weighted
from rlft.runfolder import RunFolder
from rlft.stages import STAGES, load


def preflight(recipe_path: str, overrides: list[str] = (), n: int = 16, k: int | None = None,
              stage_name: str | None = None, completions_file: str | None = None, output_dir: str | None = None,
              timeout: float | None = None) -> None:
    """Run every reward of the recipe's reward-driven stages on n data rows and print their statistics.

    Completions are sampled (k per prompt) from the stage's starting policy: the previous policy stage's output if
    it has run, else the recipe's model; or read from `completions_file` (.jsonl rows with prompt and completion).
    `timeout` (seconds) replaces each reward's own time limit. Reward servers are asked for /health first.
    """
    recipe = load(recipe_path, overrides)
    recipe_dir = Path(recipe_path).resolve().parent
    stages = [s for s in recipe["stages"] if s.get("rewards") and stage_name in (None, s["name"])]
    if not stages:
        raise RlftError(f"{recipe_path}: no stage {'named ' + repr(stage_name) + ' ' if stage_name else ''}"
                        "has rewards: to check")
    if timeout is not None and not timeout > 0:
        raise RlftError(f"--timeout {timeout:g}: give the seconds one reward call may take, a number > 0, e.g. 60")
    if timeout is not None:
        stages = [{**s, "rewards": [{**r, "timeout": timeout} for r in s["rewards"]]} for s in stages]
    for stage in stages:  # before any model loads: a server that is down is the first thing to know
        for entry in (e for e in entries(stage) if e["url"]):
            remote.health(entry["url"], entry["headers"])
    failed = []
    for stage in stages:
        source, outputs, note = _starting_policy(recipe, stage, recipe_dir, output_dir)
        if completions_file:
            prompts, completions, columns, group = _read_completions(completions_file, n)
            note = f"completions from {completions_file}"
        else:
            rows = data.load(stage["data"], recipe_dir, ("prompt",), recipe["seed"])[0]
            rows = rows.select(range(min(n, len(rows))))
            group = k or STAGES[stage["type"]].group_size(stage)
            prompts, completions, columns = _sample_for(stage, rows, source, group, recipe)
        ctx = SimpleNamespace(recipe_dir=recipe_dir, outputs=outputs, dtype=models.pick_dtype(recipe["dtype"]))
        failed += _report(stage, ctx, prompts, completions, columns, group, note)
    if failed:
        raise RlftError(f"{len(failed)} reward(s) failed: {', '.join(failed)}; see the table above")


def _starting_policy(recipe: dict, stage: dict, recipe_dir: Path, output_dir: str | None):
    """(model folder, finished stage outputs, note) for the stage, following rlft.run's chaining."""
    from accelerate import PartialState

    folder = RunFolder(output_dir or recipe["output_dir"] or f"runs/{recipe['name']}")
    outputs, last = {}, None
    for index, other in enumerate(recipe["stages"]):
        if other is stage:
            break
        done = folder.stage_dir(index, other["name"])
        outputs[other["name"]] = str(done) if folder.is_complete(done) else None
        if STAGES[other["type"]].POLICY:
            last = other["name"]
    wanted = stage["init_from"] or last
    finished = {name: path for name, path in outputs.items() if path}
    if wanted is None:
        return models.resolve(recipe["model"], recipe_dir), finished, "sampled from the recipe's model"
    if wanted not in finished:
        return (models.resolve(recipe["model"], recipe_dir), finished,
                f"stage {wanted!r} has not run yet: sampled from the recipe's model instead")
    return stage_models.policy_source(finished[wanted], PartialState()), finished, f"sampled from stage {wanted!r}"


def _sample_for(stage: dict, rows, source: str, k: int, recipe: dict):
    import torch
    from accelerate import PartialState

    args, pairs = stage.get("args") or {}, stage.get("pairs") or {}
    length = args.get("max_completion_length") or args.get("max_new_tokens") or pairs.get("max_new_tokens") or 64
    model = models.load_causal_lm(source, models.pick_dtype(recipe["dtype"]), None, recipe["trust_remote_code"])
    model.to(PartialState().device)
    tokenizer = models.load_tokenizer(source, recipe["trust_remote_code"])
    torch.manual_seed(recipe["seed"])
    groups = sample(model, tokenizer, rows["prompt"], k, length, args.get("temperature", pairs.get("temperature", 1.0)))
    columns = {c: [v for v in rows[c] for _ in range(k)] for c in rows.column_names if c != "prompt"}
    return [p for p in rows["prompt"] for _ in range(k)], [c for g in groups for c in g], columns


def _read_completions(path: str, n: int):
    """Rows of {prompt, completion, ...} grouped by prompt; the first n prompts."""
    rows = []
    for number, line in enumerate(data.read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise RlftError(f"{path}: line {number} is not JSON ({e.msg} at column {e.colno}); each line must be one "
                            'object, e.g. {"prompt": "Hi", "completion": "Hello!"}')
        if not isinstance(row, dict) or "prompt" not in row or "completion" not in row:
            raise RlftError(f"{path}: line {number} must be a JSON object with 'prompt' and 'completion', "
                            f"got {line[:80]!r}")
        rows.append(row)
    if not rows:
        raise RlftError(f"{path}: no rows; write one JSON object per line, "
                        'e.g. {"prompt": "Hi", "completion": "Hello!"}')
    by_prompt: dict[str, list] = {}
    for r in rows:
        by_prompt.setdefault(json.dumps(r["prompt"], sort_keys=True), []).append(r)
    groups = list(by_prompt.values())[:n]
    k = min(len(g) for g in groups)
    flat = [r for g in groups for r in g[:k]]
    columns = {c: [r.get(c) for r in flat] for c in flat[0] if c not in ("prompt", "completion")}
    return [r["prompt"] for r in flat], [r["completion"] for r in flat], columns, k


def _report(stage: dict, ctx, prompts, completions, columns, k: int, note: str) -> list[str]:
    from rich.table import Table

    table = Table(title=f"stage {stage['name']} ({stage['type']}): {len(prompts) // k} prompts x {k} completions, "
                        f"{note}")
    for col in ("reward", "weight", "mean", "std", "min", "max", "None/NaN", "tied groups", "s/call", "flags"):
        table.add_column(col, justify="left" if col in ("reward", "flags") else "right")
    failed, per_reward, weights_used = [], [], []
    built = list(_built(stage, ctx))
    ready = [fn for _, fn in built if not isinstance(fn, str)]
    # all at once, as the trainer calls them: the async ones (LLM judges, reward servers) concurrently
    results = iter(call_all(ready, prompts, completions, columns, return_exceptions=True))
    for entry, fn in built:
        if isinstance(fn, str):  # could not be built (e.g. a reward model stage that has not run)
            table.add_row(entry["name"] or entry["fn"] or entry["model"] or entry["url"], str(entry["weight"]),
                          *["-"] * 7, fn)
            continue
        values = next(results)
        if isinstance(values, RlftError):
            failed.append(fn.__name__)
            table.add_row(fn.__name__, str(entry["weight"]), *["-"] * 7, f"[red]error: {values}[/]")
            continue
        per_reward.append(values)
        weights_used.append(entry["weight"])
        seconds = state(fn).seconds / max(state(fn).calls, 1)
        table.add_row(fn.__name__, str(entry["weight"]), *_stats(values, k), f"{seconds:.3f}", _flags(values, k))
    if per_reward:
        total = weighted(per_reward, weights_used)
        table.add_row("[bold]total (weighted)[/]", "", *_stats(total, k), "", _flags(total, k))
    console = make_console(160)
    console.print(table)
    return failed


def _built(stage: dict, ctx):
    for entry in entries(stage):
        try:
            yield entry, build({**stage, "rewards": [entry]}, ctx, stop_on_all_none=False)[0]
        except RlftError as e:
            yield entry, f"not run: {e}"


def _stats(values: list, k: int) -> list[str]:
    present = [v for v in values if v is not None]
    if not present:
        return ["-"] * 4 + ["100%", "-"]
    mean = sum(present) / len(present)
    std = (sum((v - mean) ** 2 for v in present) / len(present)) ** 0.5
    return [f"{mean:.3g}", f"{std:.3g}", f"{min(present):.3g}", f"{max(present):.3g}",
            f"{1 - len(present) / len(values):.0%}", f"{_zero_variance_share(values, k):.0%}"]


def _zero_variance_share(values: list, k: int) -> float:
    """Share of prompt groups whose completions all got the same value: GRPO learns nothing from those."""
    groups = [[v for v in values[i:i + k] if v is not None] for i in range(0, len(values), k)]
    return sum(len(set(g)) <= 1 for g in groups) / len(groups)


def _flags(values: list, k: int) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "[red]always None[/]"
    flags = []
    if max(present) == min(present):
        flags.append("[red]constant[/]")
    elif k > 1 and _zero_variance_share(values, k) >= 0.5:
        flags.append("[yellow]degenerate: most groups tie (no advantage signal)[/]")
    if len(present) < len(values):
        flags.append(f"[yellow]None/NaN for {1 - len(present) / len(values):.0%}[/]")
    return ", ".join(flags) or "ok"
