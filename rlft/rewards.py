"""Rewards: TRL's reward contract, loaded from a recipe, checked when the recipe is validated and on every call.

A reward is exactly what TRL's `GRPOTrainer` takes: a callable `(prompts, completions, **columns) -> list[float |
None]`, one value per completion (None = "does not apply to this sample"). Completions are strings, or message lists
for conversational data. TRL also passes `completion_ids`, `trainer_state`, `log_extra`, `log_metric` and every other
column of the prompt data, so a function that does not name them all needs `**kwargs`.

A stage lists its rewards:

    rewards:
      - fn: reward_models.politeness:politeness   # dotted path: module:function
        weight: 1.0
      - fn: my_rewards.py:brevity                 # a .py file, relative to the recipe
        weight: 0.2
        kwargs: {target_words: 60}               # bound to the function; the log name stays "brevity"
      - model: rm                                 # an earlier reward_model stage, or a sequence-classifier folder

How rlft differs from handing the functions to TRL yourself:
  1. Every call is checked: a wrong number of values, a non-number, NaN/inf or an exception stops the run with an
     `RlftError` naming the reward, the sample and the value (TRL sums a NaN away as 0 with `nansum`).
     `nan_as_none: true` on a reward makes NaN mean None instead.
  2. A reward model is called through the same contract (`ModelReward`), so it is checked, named `rm_<stage>` in the
     logs and usable for ranking DPO pairs; TRL scores it the same way (chat template over prompt + completion, the
     logit of the last token).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import json
import math
import numbers
import re
import sys
import time
import traceback
from pathlib import Path

from rlft.errors import RlftError

REWARDS_KEY = (list, None, "reward functions / reward models with weights, e.g. [{fn: my_rewards.py:brevity}]")
REWARD_KEYS = {
    "fn": (str, None, "module.path:function or file.py:function (relative to the recipe)"),
    "model": (str, None, "an earlier reward_model stage's name, or a folder with a sequence classifier"),
    "weight": (float, 1.0, "weight in the summed reward (TRL's reward_weights)"),
    "kwargs": (dict, {}, "keyword arguments bound to the function"),
    "name": (str, None, "name in logs; default: the function's name, rm_<stage> for a reward model"),
    "nan_as_none": (bool, False, "treat a NaN return as None (skip the sample) instead of stopping the run"),
}
# What TRL's GRPOTrainer / RLOOTrainer pass to every reward function besides prompts, completions and data columns.
TRL_EXTRAS = ("completion_ids", "trainer_state", "log_extra", "log_metric")
_FILE_MODULES: dict[tuple, object] = {}


# --- loading ---------------------------------------------------------------------------------------------------------
def load_function(spec: str, base_dir: Path):
    """`module.path:function` or `file.py:function` -> the function. Raises RlftError saying what is wrong."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise RlftError(f"{spec!r} must be module.path:function or file.py:function, e.g. my_rewards.py:brevity")
    module = _load_file(target, base_dir) if target.endswith(".py") else _import(target, base_dir)
    fn = getattr(module, attr, None)
    if fn is None:
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise RlftError(f"{spec!r}: {target} has no {attr!r}; functions defined there: {found or 'none'}")
    if not callable(fn):
        raise RlftError(f"{spec!r}: {attr} is a {type(fn).__name__}, not a function")
    return fn


def _import(name: str, base_dir: Path):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is None or not name.startswith(e.name):
            raise RlftError(f"importing {name!r} failed: {_error_line(e)}") from e
    except Exception as e:
        raise RlftError(f"importing {name!r} failed: {_error_line(e)}") from e
    for folder in (str(base_dir), str(Path.cwd())):  # a module beside the recipe or in the working directory
        if folder not in sys.path:
            sys.path.append(folder)
    try:
        return importlib.import_module(name)
    except Exception as e:
        raise RlftError(f"cannot import {name!r} (searched the Python path, {base_dir} and {Path.cwd()}): "
                        f"{_error_line(e)}") from e


def _load_file(target: str, base_dir: Path):
    path = next((p for p in (base_dir / target, Path.cwd() / target) if p.is_file()), None)
    if path is None:
        raise RlftError(f"{target}: file not found (relative paths start at the recipe's folder {base_dir})")
    path = path.resolve()
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _FILE_MODULES:
        # A unique, stable module name: two recipes' my_rewards.py never collide, and pickling finds the module.
        stem = re.sub(r"\W", "_", path.stem)
        name = f"rlft_user_rewards_{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        if str(path.parent) not in sys.path:
            sys.path.append(str(path.parent))  # lets the file import its neighbours
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            del sys.modules[name]
            raise RlftError(f"{target}: running the file failed: {_error_line(e)}") from e
        _FILE_MODULES[key] = module
    return _FILE_MODULES[key]


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


# --- recipe checks ---------------------------------------------------------------------------------------------------
def check(ctx, stage: dict, path: str, columns: list[str] | None) -> None:
    """Validate a stage's `rewards:` (import, call signature against the columns it will receive, weights, models).

    `columns` are the data columns the rewards will receive (None when the data itself has a problem)."""
    entries = stage.get("rewards")
    if entries is None:
        ctx.add(f"{path}.rewards", "missing; e.g. rewards: [{fn: reward_models.politeness:politeness}]")
        return
    if not entries:
        ctx.add(f"{path}.rewards", "is empty; list at least one reward")
    receives = {"prompts", "completions", *TRL_EXTRAS, *(c for c in columns or () if c != "prompt")}
    names = []
    for i, raw in enumerate(entries):
        where = f"{path}.rewards[{i}]"
        if not isinstance(raw, dict):
            ctx.add(where, f"expected a mapping like {{fn: my_rewards.py:brevity, weight: 1.0}}, got {raw!r}")
            continue
        entry = ctx.checker.mapping(raw, REWARD_KEYS, where)
        if (entry.get("fn") is None) == (entry.get("model") is None):
            ctx.add(where, "give exactly one of fn: (a Python function) or model: (a reward model)")
            continue
        if isinstance(entry.get("weight"), (int, float)) and not math.isfinite(entry["weight"]):
            ctx.add(f"{where}.weight", f"{entry['weight']} is not a finite number")
        if entry.get("fn") is not None:
            name = _check_function(ctx, entry, where, receives if columns is not None else None)
        else:
            name = _check_model(ctx, stage, entry, where)
        if name is not None and name in names:
            ctx.add(f"{where}.name", f"two rewards are named {name!r}; their metrics would mix. Set name: on one")
        names.append(name)
    if isinstance(stage.get("args"), dict) and "reward_weights" in stage["args"]:
        ctx.add(f"{path}.args.reward_weights", "is set by rlft from rewards[].weight; remove it from args")


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
    folder = _local(spec, ctx.recipe_dir)
    if folder is None:
        rm_stages = [n for n, s in zip(names, stages) if s.get("type") == "reward_model"]
        ctx.add(f"{where}.model", f"{spec!r} is neither a reward_model stage of this recipe ({rm_stages or 'none'}) "
                "nor a folder; give a stage name or the path of a trained reward model")
    elif not (folder / "config.json").is_file():
        ctx.add(f"{where}.model", f"{spec}: no config.json; point at a folder saved by a reward_model stage")
    else:
        archs = json.loads((folder / "config.json").read_text()).get("architectures") or []
        if archs and not any(a.endswith("ForSequenceClassification") for a in archs):
            ctx.add(f"{where}.model", f"{spec} holds a {archs[0]}, not a sequence classifier (reward model)")
    return entry.get("name") or model_name(spec, folder)


def data_columns(ctx, block: dict, formats: tuple[str, ...]) -> list[str] | None:
    """Columns of a stage's training data as its rewards will see them; None when the data has a problem."""
    from rlft import data

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


def _local(spec: str, recipe_dir: Path) -> Path | None:
    for base in (Path(recipe_dir), Path.cwd()):
        if (base / spec).is_dir():
            return (base / spec).resolve()
    return None


def model_name(spec: str, folder: Path | None) -> str:
    """Log name of a reward model: the name its reward_model stage gave it, else rm_<folder>."""
    info = folder / "rlft_stage.json" if folder else None
    if info is not None and info.is_file():
        name = json.loads(info.read_text()).get("reward_name")
        if name:
            return name
    return "rm_" + re.sub(r"^\d+_", "", Path(spec).name)


# --- building and calling --------------------------------------------------------------------------------------------
def entries(stage: dict) -> list[dict]:
    """The stage's reward entries with defaults filled in."""
    return [{k: v for k, (_, v, _) in REWARD_KEYS.items()} | raw for raw in stage.get("rewards") or []]


def weights(stage: dict) -> list[float]:
    return [float(e["weight"]) for e in entries(stage)]


def build(stage: dict, ctx) -> list:
    """Callables for the trainer, in recipe order: `CheckedReward`s around functions and reward models.

    A callback in `ctx.callbacks` with a `record` method (rlft.runfolder.SamplesCallback) is handed every scored batch.
    """
    recorder = next((c for c in getattr(ctx, "callbacks", None) or () if hasattr(c, "record")), None)
    out = []
    for entry in entries(stage):
        if entry["fn"] is not None:
            fn = load_function(entry["fn"], ctx.recipe_dir)
            if entry["kwargs"]:
                fn = _bind(fn, entry["kwargs"])
            name = entry["name"] or getattr(fn, "__name__", type(fn).__name__)
        else:
            folder = resolve_model(entry["model"], ctx)
            name = entry["name"] or (f"rm_{entry['model']}" if entry["model"] in ctx.outputs else
                                     model_name(entry["model"], folder))
            fn = ModelReward(folder, ctx.dtype)
        out.append(CheckedReward(fn, name, entry["nan_as_none"], recorder))
    return out


def _bind(fn, kwargs: dict):
    def bound(prompts, completions, **columns):
        return fn(prompts=prompts, completions=completions, **columns, **kwargs)

    bound.__name__ = getattr(fn, "__name__", type(fn).__name__)
    bound.__wrapped__ = fn
    return bound


def resolve_model(spec: str, ctx) -> Path:
    if spec in ctx.outputs:
        return Path(ctx.outputs[spec])
    folder = _local(spec, ctx.recipe_dir)
    if folder is None:
        raise RlftError(f"reward model {spec!r}: no such stage output or folder")
    return folder


class CheckedReward:
    """A reward under TRL's contract whose every return value is checked; raises `RlftError` on a bad one.

    >>> r = CheckedReward(lambda prompts, completions, **kw: [len(c) / 10 for c in completions], "length")
    >>> r(prompts=["Hi", "Hi"], completions=["Hello!", "Hey"])
    [0.6, 0.3]
    >>> CheckedReward(lambda prompts, completions, **kw: [float("nan")] * 2, "bad")(["a", "b"], ["x", "y"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    rlft.errors.RlftError: reward 'bad' returned nan for sample 0 of 2 (completion: 'x'). Return None ...
    """

    def __init__(self, fn, name: str, nan_as_none: bool = False, recorder=None):
        self.fn = fn
        self.recorder = recorder  # keeps a few scored completions for samples.jsonl
        self.__name__ = name  # what TRL logs: rewards/<name>/mean
        self.nan_as_none = nan_as_none
        self.calls, self.seconds = 0, 0.0
        self.recent: list[float] | None = None  # values since the last log, kept once `log_callback` asks for them

    def __call__(self, prompts, completions, **kwargs):
        started = time.perf_counter()
        try:
            values = self.fn(prompts=prompts, completions=completions, **kwargs)
        except RlftError:
            raise
        except Exception as e:
            raise RlftError(f"reward {self.__name__!r} raised {_error_line(e)}{_where(e)} while scoring samples "
                            f"0-{len(completions) - 1} (sample 0: {_preview(completions[0])}). Fix the function; "
                            "try it with: rlft rewards check RECIPE") from e
        self.seconds += time.perf_counter() - started
        self.calls += 1
        out = self._checked(values, completions)
        if self.recent is not None:
            self.recent.extend(v for v in out if v is not None)
        if self.recorder is not None:
            self.recorder.record(self.__name__, prompts, completions, out)
        return out

    def _checked(self, values, completions) -> list[float | None]:
        n = len(completions)
        if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__"):
            raise RlftError(f"reward {self.__name__!r} returned {_show(values)} ({type(values).__name__}) instead of "
                            f"a list of {n} numbers (one per completion)")
        if len(values) != n:
            raise RlftError(f"reward {self.__name__!r} returned {len(values)} value{'s' * (len(values) != 1)} for {n} "
                            "completions; it must return exactly one value (a number or None) per completion, in order")
        out = []
        for i, value in enumerate(values):
            number = _number(value)
            if value is not None and number is None:
                raise RlftError(f"reward {self.__name__!r} returned {_show(value)} ({type(value).__name__}) for "
                                f"sample {i} of {n} (completion: {_preview(completions[i])}); a reward must be a "
                                "number, or None to skip the sample")
            if number is not None and math.isnan(number) and self.nan_as_none:
                number = None
            elif number is not None and not math.isfinite(number):
                fix = ("Return None for samples the reward does not apply to, or set nan_as_none: true on this reward"
                       if math.isnan(number) else "Rewards must be finite; clip the value")
                raise RlftError(f"reward {self.__name__!r} returned {number} for sample {i} of {n} (completion: "
                                f"{_preview(completions[i])}). {fix}")
            out.append(number)
        return out


def _number(value) -> float | None:
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # 0-d torch tensor / numpy array
        item = value.item()
        return float(item) if isinstance(item, numbers.Real) else None
    return None


class ModelReward:
    """A trained reward model (sequence classifier, one logit) as a TRL-contract reward, scored the way TRL does."""

    def __init__(self, folder: Path, dtype=None, batch_size: int = 16):
        import torch
        from accelerate import PartialState
        from transformers import AutoModelForSequenceClassification

        from rlft.models import load_tokenizer

        self.tokenizer = load_tokenizer(str(folder))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1,
                                                                        dtype=dtype or torch.float32)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(PartialState().device).eval()
        self.batch_size = batch_size

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        import torch
        from trl.data_utils import apply_chat_template, is_conversational

        if is_conversational({"prompt": prompts[0]}):
            texts = [apply_chat_template({"messages": p + c}, self.tokenizer)["text"] for p, c in zip(prompts, completions)]
        else:
            texts = [p + c for p, c in zip(prompts, completions)]
        scores = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                   padding_side="right", add_special_tokens=False).to(self.model.device)
            with torch.inference_mode():
                scores += self.model(**batch).logits[:, 0].float().tolist()
        return scores


def call_all(rewards: list, prompts: list, completions: list, columns: dict) -> list[list[float | None]]:
    """Call every reward as TRL's GRPOTrainer does (same keyword arguments); one list of values per reward."""
    from transformers import TrainerState

    extras = {"completion_ids": None, "trainer_state": TrainerState(), "log_extra": lambda *a, **k: None,
              "log_metric": lambda *a, **k: None}
    return [r(prompts=prompts, completions=completions, **columns, **extras) for r in rewards]


def weighted(per_reward: list[list[float | None]], weights: list[float]) -> list[float | None]:
    """Per-sample weighted sum, skipping None (TRL's nansum); None where every reward skipped the sample."""
    out = []
    for values in zip(*per_reward):
        present = [w * v for w, v in zip(weights, values) if v is not None]
        out.append(sum(present) if present else None)
    return out


def sample(model, tokenizer, prompts: list, k: int, max_new_tokens: int, temperature: float = 1.0,
           batch_size: int = 8) -> list[list]:
    """k completions per prompt from `model`, in TRL's format (a message list per completion for chat prompts)."""
    import torch
    from trl.data_utils import is_conversational

    chat = is_conversational({"prompt": prompts[0]})
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) if chat else p
             for p in prompts]
    groups = []
    model.eval()
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True, padding_side="left",
                          add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            out = model.generate(**batch, do_sample=True, temperature=temperature, top_p=1.0, top_k=0,
                                 max_new_tokens=max_new_tokens, num_return_sequences=k,
                                 pad_token_id=tokenizer.pad_token_id)
        decoded = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        decoded = [[{"role": "assistant", "content": t}] for t in decoded] if chat else decoded
        groups += [decoded[i:i + k] for i in range(0, len(decoded), k)]
    return groups


def recent_means(rewards: list) -> dict:
    """`rewards/<name>/mean` and `/std` over the values since the last call (for trainers that do not log them)."""
    logs = {}
    for r in rewards:
        if r.recent:  # None (not collecting) or empty: nothing to log
            mean = sum(r.recent) / len(r.recent)
            logs[f"rewards/{r.__name__}/mean"] = mean
            logs[f"rewards/{r.__name__}/std"] = (sum((v - mean) ** 2 for v in r.recent) / len(r.recent)) ** 0.5
            r.recent.clear()
    return logs


def log_callback(rewards: list):
    """A TrainerCallback that adds `recent_means` to every log, before metrics.jsonl is written."""
    from transformers import TrainerCallback

    for reward in rewards:
        reward.recent = []

    class RewardMeans(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs is not None and "loss" in logs:
                logs.update(recent_means(rewards))

    return RewardMeans()


# --- messages --------------------------------------------------------------------------------------------------------
def _preview(completion, width: int = 60) -> str:
    text = completion[-1].get("content", "") if isinstance(completion, list) and completion else completion
    text = str(text).replace("\n", " ")
    return repr(text[:width] + ("..." if len(text) > width else ""))


def _show(value, width: int = 40) -> str:
    text = repr(value)
    return text[:width] + ("..." if len(text) > width else "")


def _error_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    if len(frames) < 2:
        return ""
    last = frames[-1]
    return f" at {Path(last.filename).name}:{last.lineno}"

