"""Recipe checks of a stage's `rewards:` (at `rlft validate`, before any model loads): every reward imports, can
be called the way TRL will call it with the columns the data holds, has a finite weight and a unique name; reward
models exist; reward servers have a well-formed URL (no network here)."""

from __future__ import annotations

import difflib
import inspect
import json
import math
import re
from pathlib import Path

from rlft import data
from rlft.errors import RlftError
from rlft.redaction import is_secret
from rlft.rewards import remote
from rlft.rewards.contract import ALWAYS_PASSED, URL_ONLY, REWARD_KEYS
from rlft.rewards.loading import load_function
from rlft.runfolder import stage_info


def signature_problem(fn, receives: set[str], kwargs: dict) -> str | None:
    """Why `fn(**kwargs bound)` cannot be called as TRL calls it with the names in `receives`, or None."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None  # builtins and some C callables have no signature; they are checked on the first call
    if any(p.kind == p.VAR_POSITIONAL for p in params) and not any(p.kind == p.VAR_KEYWORD for p in params):
        return "takes *args only; TRL passes everything by keyword: def f(prompts, completions, **kwargs)"
    named = {p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    open_kw = any(p.kind == p.VAR_KEYWORD for p in params)
    clash = sorted(set(kwargs) & receives)
    if clash:
        return f"kwargs {clash} clash with arguments TRL passes itself; rename them"
    # A bound key that is not a parameter goes to **kwargs (e.g. options the function checks itself); one that is
    # a near miss of a parameter is a typo that would vanish into **kwargs, so it is an error either way.
    options = sorted(named - receives)
    for key in sorted(set(kwargs) - named):
        hint = difflib.get_close_matches(key, options, n=1)
        if hint or not open_kw:
            fix = f"did you mean {hint[0]!r}?" if hint else f"its parameters are {options}"
            return f"kwargs key {key!r} is not a parameter of the function; {fix}"
    positional_only = [p.name for p in params if p.kind == p.POSITIONAL_ONLY and p.default is p.empty]
    if positional_only:
        return f"parameters {positional_only} are positional-only; TRL passes prompts= and completions= by keyword"
    needed = [p.name for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
              and p.name not in kwargs and p.name not in receives]
    if needed:
        return (f"requires {needed}, which it will not receive; it receives {sorted(receives)}. Give them defaults, "
                "bind them with kwargs:, or add the data column")
    if not open_kw and receives - named:
        return (f"does not accept {sorted(receives - named)}, which TRL passes to every reward; add **kwargs: "
                "def f(prompts, completions, **kwargs)")
    return None


def check(ctx, stage: dict, path: str, columns: list[str] | None) -> None:
    """Validate a stage's `rewards:` (import, call signature against the columns it will receive, weights, models).

    `columns` are the data columns the rewards will receive (None when the data itself has a problem)."""
    entries = stage.get("rewards")
    if entries is None:
        ctx.add(f"{path}.rewards", "missing; e.g. rewards: [{fn: reward_models.politeness:politeness}]")
        return
    if not entries:
        ctx.add(f"{path}.rewards", "is empty; list at least one reward")
    receives = {"prompts", "completions", *ALWAYS_PASSED, *(c for c in columns or () if c != "prompt")}
    names = []
    for i, raw in enumerate(entries):
        where = f"{path}.rewards[{i}]"
        if not isinstance(raw, dict):
            ctx.add(where, f"expected a mapping like {{fn: my_rewards.py:brevity, weight: 1.0}}, got {raw!r}")
            continue
        entry = ctx.checker.mapping(raw, REWARD_KEYS, where)
        kinds = [k for k in ("fn", "model", "url") if entry.get(k) is not None]
        if len(kinds) != 1:
            ctx.add(where, "give exactly one of fn: (a Python function), model: (a reward model) or url: (a reward "
                    f"server){'; got ' + ' and '.join(kinds) if kinds else ''}")
            continue
        _check_common(ctx, entry, raw, where)
        if isinstance(entry.get("weight"), (int, float)) and not math.isfinite(entry["weight"]):
            ctx.add(f"{where}.weight", f"{entry['weight']} is not a finite number")
        if entry.get("fn") is not None:
            name = _check_function(ctx, entry, where, receives if columns is not None else None)
        elif entry.get("url") is not None:
            name = remote.check_entry(ctx, entry, where)
        else:
            name = _check_model(ctx, stage, entry, where)
        if name is not None and name in names:
            ctx.add(f"{where}.name", f"two rewards are named {name!r}; their metrics would mix. Set name: on one")
        names.append(name)
    if isinstance(stage.get("args"), dict) and "reward_weights" in stage["args"]:
        ctx.add(f"{path}.args.reward_weights", "is set by rlft from rewards[].weight; remove it from args")


def _check_common(ctx, entry: dict, raw: dict, where: str) -> None:
    """Numbers in range, and url-only keys only on url: rewards."""
    if entry.get("timeout") is not None and isinstance(entry["timeout"], (int, float)) and not entry["timeout"] > 0:
        ctx.add(f"{where}.timeout", f"{entry['timeout']} must be a number of seconds > 0")
    if entry.get("url") is None:
        for key in (k for k in URL_ONLY if k in raw):
            ctx.add(f"{where}.{key}", "applies to url: rewards only; remove it")
    kwargs = entry.get("kwargs") if isinstance(entry.get("kwargs"), dict) else {}
    for key in (k for k, v in kwargs.items() if is_secret(k, v)):
        ctx.add(f"{where}.kwargs.{key}", "holds a literal credential, which would be saved in the run folder; have the "
                "reward read it from an environment variable (os.environ) and remove it from the recipe")


def _check_function(ctx, entry: dict, where: str, receives: set[str] | None) -> str | None:
    try:
        fn = load_function(entry["fn"], ctx.recipe_dir)
    except RlftError as e:
        ctx.add(f"{where}.fn", str(e))
        return entry.get("name")
    if receives is not None:
        problem = signature_problem(fn, receives, entry.get("kwargs") or {})
        if problem:
            ctx.add(f"{where}.fn", f"{entry['fn']} {problem}")
    return entry.get("name") or getattr(fn, "__name__", type(fn).__name__)


def _check_model(ctx, stage: dict, entry: dict, where: str) -> str:
    spec = entry["model"]
    stages = [s for s in ctx.recipe.get("stages") or [] if isinstance(s, dict)]
    names = [s.get("name") for s in stages]
    if spec in names:
        position = names.index(spec)
        if stages[position].get("type") != "reward_model":
            ctx.add(f"{where}.model", f"stage {spec!r} is a {stages[position].get('type')} stage, not a reward_model")
        elif stage.get("name") in names and position > names.index(stage["name"]):
            ctx.add(f"{where}.model", f"stage {spec!r} runs after this one; move the reward_model stage earlier")
        return entry.get("name") or f"rm_{spec}"
    folder = local(spec, ctx.recipe_dir)
    if folder is None:
        rm_stages = [n for n, s in zip(names, stages) if s.get("type") == "reward_model"]
        ctx.add(f"{where}.model", f"{spec!r} is neither a reward_model stage of this recipe ({rm_stages or 'none'}) "
                "nor a folder; give a stage name or the path of a trained reward model")
    elif not (folder / "config.json").is_file():
        ctx.add(f"{where}.model", f"{spec}: no config.json; point at a folder saved by a reward_model stage")
    else:
        from rlft.models import remote_code_problem  # deferred: rlft.models imports torch, rlft.rewards does not

        problem = remote_code_problem(folder / "config.json", spec, False, fix="rlft loads reward models without "
                                      "trust_remote_code; train one with a reward_model stage or pick")
        archs = [] if problem else json.loads((folder / "config.json").read_text()).get("architectures") or []
        if problem:
            ctx.add(f"{where}.model", problem)
        elif archs and not any(a.endswith("ForSequenceClassification") for a in archs):
            ctx.add(f"{where}.model", f"{spec} holds a {archs[0]}, not a sequence classifier (reward model)")
    return entry.get("name") or model_name(spec, folder)


def data_columns(ctx, block: dict, formats: tuple[str, ...]) -> list[str] | None:
    """Columns of a stage's training data as its rewards will see them; None when the data has a problem."""
    try:
        defaults = {k: v for k, (_, v, _) in data.DATA_KEYS.items()}
        return data.load_split({**defaults, **block}, "train", ctx.recipe_dir, formats)[0].column_names
    except Exception:  # data.check has reported it already
        return None


def check_init_from(ctx, stage: dict, path: str) -> None:
    """A policy stage cannot start from a reward model."""
    init = stage.get("init_from")
    for other in ctx.recipe.get("stages") or []:
        if isinstance(other, dict) and other.get("name") == init and other.get("type") == "reward_model":
            ctx.add(f"{path}.init_from", f"{init!r} is a reward model, not a policy; start from a policy stage")


def local(spec: str, recipe_dir: Path) -> Path | None:
    for base in (Path(recipe_dir), Path.cwd()):
        if (base / spec).is_dir():
            return (base / spec).resolve()
    return None


def model_name(spec: str, folder: Path | None) -> str:
    """Log name of a reward model: the name its reward_model stage gave it, else rm_<folder>."""
    name = stage_info(folder).get("reward_name") if folder else None
    if name:
        return name
    return "rm_" + re.sub(r"^\d+_", "", Path(spec).name)
