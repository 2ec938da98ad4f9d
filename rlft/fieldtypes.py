"""Check recipe values against the field types of the library class they are handed to.

`args:` goes to a TRL config (`SFTConfig`, `GRPOConfig`, ...), `lora:` to `peft.LoraConfig`, `quantization:` to
`transformers.BitsAndBytesConfig`. Those classes check few types themselves (`SFTConfig(learning_rate="abc")` is
accepted and fails later inside `torch.optim`), so every value is checked here against the type the class declares:
its dataclass field annotations, or for a class without annotations (BitsAndBytesConfig) the types its docstring
documents. Nothing is re-declared by hand except the ranges in `RANGES`, which the classes only state in prose.

1. A number written as text is converted and a note says so: PyYAML (YAML 1.1) reads `2e-4` and `1e-5`, without a
   dot, as the *string* '2e-4'. The converted value is what the run uses.
2. Anything else that does not fit is a problem with the YAML path, the value, the expected type and an example.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import inspect
import math
import re
import types
import typing

NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "1", "0"}

# name -> (test, constraint in words). Applied to any class that has a field of that name, after the type check.
RANGES = {
    "learning_rate": (lambda v: v > 0, "must be above 0"),
    "num_train_epochs": (lambda v: v > 0, "must be above 0"),
    "max_steps": (lambda v: v == -1 or v >= 1, "must be -1 (train for num_train_epochs) or at least 1"),
    "per_device_train_batch_size": (lambda v: v >= 1, "must be at least 1"),
    "per_device_eval_batch_size": (lambda v: v >= 1, "must be at least 1"),
    "gradient_accumulation_steps": (lambda v: v >= 1, "must be at least 1"),
    "eval_accumulation_steps": (lambda v: v >= 1, "must be at least 1"),
    "warmup_ratio": (lambda v: 0 <= v <= 1, "is a fraction of the steps: between 0 and 1"),
    "warmup_steps": (lambda v: v >= 0, "must be 0 or more (an integer, or a fraction of the steps below 1)"),
    "logging_steps": (lambda v: v > 0, "must be above 0 (an integer, or a fraction of the steps below 1)"),
    "save_steps": (lambda v: v > 0, "must be above 0 (an integer, or a fraction of the steps below 1)"),
    "eval_steps": (lambda v: v > 0, "must be above 0 (an integer, or a fraction of the steps below 1)"),
    "save_total_limit": (lambda v: v >= 1, "must be at least 1 (or leave it out to keep every checkpoint)"),
    "weight_decay": (lambda v: v >= 0, "must be 0 or more"),
    "max_grad_norm": (lambda v: v >= 0, "must be 0 or more (0 turns clipping off)"),
    "adam_beta1": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "adam_beta2": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "adam_epsilon": (lambda v: v > 0, "must be above 0"),
    "seed": (lambda v: 0 <= v < 2**32, "must be between 0 and 2**32 - 1"),
    "data_seed": (lambda v: 0 <= v < 2**32, "must be between 0 and 2**32 - 1"),
    "dataloader_num_workers": (lambda v: v >= 0, "must be 0 or more"),
    "max_length": (lambda v: v >= 1, "must be at least 1 token"),
    "max_prompt_length": (lambda v: v >= 1, "must be at least 1 token"),
    "max_completion_length": (lambda v: v >= 1, "must be at least 1 token"),
    "max_new_tokens": (lambda v: v >= 1, "must be at least 1 token"),
    "num_generations": (lambda v: v >= 2, "must be at least 2: the advantage compares completions of one prompt"),
    "num_generations_eval": (lambda v: v >= 1, "must be at least 1"),
    "generation_batch_size": (lambda v: v >= 1, "must be at least 1"),
    "steps_per_generation": (lambda v: v >= 1, "must be at least 1"),
    "num_iterations": (lambda v: v >= 1, "must be at least 1"),
    "temperature": (lambda v: v > 0, "must be above 0"),
    "top_p": (lambda v: 0 < v <= 1, "is a probability: in (0, 1]"),
    "top_k": (lambda v: v >= 0, "must be 0 (off) or more"),
    "min_p": (lambda v: 0 <= v <= 1, "is a probability: between 0 and 1"),
    "repetition_penalty": (lambda v: v > 0, "must be above 0 (1.0 = no penalty)"),
    "beta": (lambda v: v >= 0, "must be 0 or more (0 = no KL term)"),
    "epsilon": (lambda v: v >= 0, "must be 0 or more"),
    "epsilon_high": (lambda v: v >= 0, "must be 0 or more"),
    "label_smoothing": (lambda v: 0 <= v < 0.5, "is the probability that a label is flipped: in [0, 0.5)"),
    "top_entropy_quantile": (lambda v: 0 <= v <= 1, "is a quantile: between 0 and 1"),
    "neftune_noise_alpha": (lambda v: v >= 0, "must be 0 or more (typical 5 to 15)"),
    "dataset_num_proc": (lambda v: v >= 1, "must be at least 1"),
    "vllm_gpu_memory_utilization": (lambda v: 0 < v <= 1, "is a fraction of the GPU memory: in (0, 1]"),
    "ref_model_mixup_alpha": (lambda v: 0 <= v <= 1, "must be between 0 and 1"),
    # peft.LoraConfig
    "r": (lambda v: v >= 1, "is the LoRA rank: at least 1"),
    "lora_alpha": (lambda v: v > 0, "must be above 0 (often 2 x r)"),
    "lora_dropout": (lambda v: 0 <= v < 1, "is a probability: in [0, 1)"),
    # transformers.BitsAndBytesConfig
    "llm_int8_threshold": (lambda v: v > 0, "must be above 0"),
}


class _Mismatch(Exception):
    """The value does not fit the type; `args[0]` says what was expected."""


def check(checker, config_class, values: dict, path: str) -> None:
    """Check (and convert in place) every value in `values` whose key is a field of `config_class`.

    `checker` has `add(path, message)` and `note(path, message)`. Keys that are not fields are left to the caller.
    """
    fields = field_types(config_class)
    name = config_class.__name__
    for key in list(values):
        if key not in fields:
            continue
        tp, meta, default = fields[key]
        where = f"{path}.{key}" if path else key
        value = values[key]
        try:
            converted, changed = _coerce(value, tp)
        except _Mismatch as e:
            checker.add(where, _mismatch_message(key, value, e.args[0], name, tp, default))
            continue
        if changed:
            why = (f" (YAML reads a number without a '.' before the exponent as text; write {_yaml(converted)} to "
                   "skip this note)") if isinstance(value, str) else ""
            checker.note(where, f"read {value!r} as the number {converted!r}{why}")
            values[key] = value = converted
        choices = meta.get("choices")
        if choices is not None and isinstance(value, str) and value not in choices:
            checker.add(where, f"{value!r} is not one of {_listing(choices)}{_close(value, choices)}")
        rule = RANGES.get(key)
        if rule is not None and _is_number(value) and not rule[0](value):
            checker.add(where, f"{value!r} is out of range: {key} {rule[1]}{_example(key, tp, default)}")


@functools.lru_cache(maxsize=None)  # resolving SFTConfig's ~200 annotations once is enough
def field_types(config_class) -> dict[str, tuple[object, dict, object]]:
    """name -> (type, field metadata, default) for a config class: its dataclass fields with their annotations,
    plus `__init__` parameters; an unannotated parameter gets the type its docstring documents (Any if none)."""
    out = {}
    try:
        hints = typing.get_type_hints(config_class)
    except Exception:  # an annotation that does not resolve: treat those fields as Any
        hints = {}
    if dataclasses.is_dataclass(config_class):
        for f in dataclasses.fields(config_class):
            default = f.default if f.default is not dataclasses.MISSING else None
            out[f.name] = (hints.get(f.name, typing.Any), dict(f.metadata), default)
    documented = _documented_types(config_class.__doc__ or "")
    for p in inspect.signature(config_class.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) or p.name in out:
            continue
        default = None if p.default is p.empty else p.default
        tp = documented.get(p.name, typing.Any)
        if default is None and tp is not typing.Any:
            tp = typing.Optional[tp]
        out[p.name] = (tp, {}, default)
    return out


def _documented_types(doc: str) -> dict[str, object]:
    """`name (`bool`, *optional*, ...):` lines of a Google/HF-style docstring -> python types."""
    simple = {"bool": bool, "int": int, "float": float, "str": str, "dict": dict, "list": list,
              "list[str]": list[str], "List[str]": list[str], "list[int]": list[int]}
    out = {}
    for m in re.finditer(r"^\s+(\w+) \((.+?)\):\s*$", doc, re.M):
        declared = re.split(r"\*|\bdefaults\b", m.group(2))[0]  # `bool`, *optional*, defaults to ...
        words = [w.strip("` ") for w in re.split(r",|\bor\b", declared) if w.strip("` ")]
        kinds = [simple.get(w, typing.Any) for w in words]
        out[m.group(1)] = typing.Any if typing.Any in kinds or not kinds else typing.Union[tuple(kinds)]
    return out


def number_from_text(value, types: tuple) -> int | float | None:
    """`value` as a number when it is a number written as text and `types` takes numbers (for rlft's own keys)."""
    if not isinstance(value, str) or not NUMBER.fullmatch(value.strip()):
        return None
    number = float(value)
    if float in types:
        return number
    if int in types and number.is_integer():
        return int(number)
    return None


# --- fitting one value to one type --------------------------------------------------------------------------------
def _coerce(value, tp):
    """(value fitted to `tp`, whether it was converted); raises `_Mismatch` when it cannot fit."""
    members = _members(tp)
    for member in members:  # as written first: no conversion when the value already fits
        if _fits(value, member):
            return value, False
    for member in members:
        try:
            return _convert(value, member), True
        except _Mismatch:
            pass
    raise _Mismatch(" or ".join(_describe(m) for m in members if m is not type(None)) or "nothing")


def _members(tp) -> list:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = list(typing.get_args(tp))
    else:
        members = [tp]
    if any(_is_enum(m) for m in members):  # `IntervalStrategy | str`: the library turns the str into the enum
        members = [m for m in members if m is not str]
    return members


def _fits(value, tp) -> bool:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is typing.Any or tp is object:
        return True
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return _is_number(value) and not math.isnan(value)
    if tp is str:
        return isinstance(value, str)
    if _is_enum(tp):
        return isinstance(value, tp) or isinstance(value, (str, int, float)) and not isinstance(value, bool) \
            and value in {m.value for m in tp}
    if origin is typing.Literal:
        return any(value == a or (isinstance(a, str) and "[" in a and isinstance(value, str)
                                  and value.startswith(a.split("[")[0])) for a in args)
    if tp is dict or origin is dict:
        return isinstance(value, dict)
    if tp is list or origin is list:
        item = args[0] if args else typing.Any
        if isinstance(value, list):
            return all(_fits(v, m) for v in value for m in [_any_member(v, item)])
        return not isinstance(value, (dict, type(None))) and _fits(value, item)  # a scalar where one item will do
    if origin is tuple:
        if args and args[-1] is Ellipsis:
            return isinstance(value, (list, tuple)) and all(_fits(v, args[0]) for v in value)
        return isinstance(value, (list, tuple)) and len(value) == len(args) and all(map(_fits, value, args))
    return True  # another class (LoftQConfig, ParallelismConfig, ...): left to the library


def _any_member(value, tp):
    """The member of a union that `value` fits, for checking list items (`list[int | str]`)."""
    for m in _members(tp):
        if _fits(value, m):
            return m
    return tp


def _convert(value, tp):
    if isinstance(value, str) and NUMBER.fullmatch(value.strip()) and tp in (int, float):
        number = float(value)
        if tp is float:
            return number
        if number.is_integer():
            return int(number)
    if tp is int and isinstance(value, float) and value.is_integer():
        return int(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if (tp is list or origin is list) and isinstance(value, list) and args:
        return [v if _fits(v, args[0]) else _convert(v, args[0]) for v in value]
    raise _Mismatch(_describe(tp))


# --- words --------------------------------------------------------------------------------------------------------
def _describe(tp) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
             list: "a list", type(None): "null"}
    if tp in names:
        return names[tp]
    if _is_enum(tp):
        return f"one of {_listing([m.value for m in tp])}"
    if origin is typing.Literal:
        return f"one of {_listing(args)}"
    if origin is list:
        plural = {str: "strings", int: "integers", float: "numbers", bool: "true/false values"}
        return f"a list of {plural.get(args[0]) or '(' + _describe(args[0]) + ')'}" if args else "a list"
    if origin is dict:
        return "a mapping"
    if origin is tuple:
        return f"a list of {len(args)} values"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(m) for m in _members(tp) if m is not type(None))
    return getattr(tp, "__name__", str(tp))


def _mismatch_message(key: str, value, expected: str, cls: str, tp, default) -> str:
    members = _members(tp)
    head = f"{value!r} is {_kind(value)}; {cls}.{key} takes {expected}"
    if isinstance(value, float) and int in members and float not in members:
        head = f"{value!r} is not a whole number; {cls}.{key} takes an integer"
    if isinstance(value, str) and bool in members and value.strip().lower() in BOOL_WORDS:
        return f"{head}: write true or false without quotes, e.g. {key}: true"
    if isinstance(value, bool) and any(_is_enum(m) or typing.get_origin(m) is typing.Literal or m is str
                                       for m in members):
        return (f"{head} (YAML reads no/yes/on/off as true/false: quote the word, e.g. {key}: 'no')")
    if _is_number(value) and str in members:
        return f"{head}: put it in quotes, e.g. {key}: '{value}'"
    choices = _choices(members)
    if isinstance(value, str) and choices:
        return f"{value!r} is not one of {_listing(choices)}{_close(value, choices)}"
    return head + _example(key, tp, default)


def _example(key: str, tp, default) -> str:
    if default is not None and not isinstance(default, enum.Enum) and _fits(default, tp) and \
            (key not in RANGES or not _is_number(default) or RANGES[key][0](default)):
        return f", e.g. {key}: {_yaml(default)}"
    samples = {int: 8, float: 0.1, bool: True, str: "text"}
    for m in _members(tp):
        if m in samples and (key not in RANGES or m is bool or RANGES[key][0](samples[m])):
            return f", e.g. {key}: {_yaml(samples[m])}"
    return ""


def _yaml(value) -> str:
    """How to write a value in YAML so that it reads back as the same type (2.0e-05, not 2e-05)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text = repr(value)
        mantissa, e, exp = text.partition("e")
        if e and "." not in mantissa:
            text = f"{mantissa}.0e{exp}"
        return text
    if isinstance(value, (list, dict)):
        import json

        return json.dumps(value)
    return str(value) if not isinstance(value, str) or value.strip() and value.isidentifier() else repr(value)


def _choices(members) -> list:
    out = []
    for m in members:
        if _is_enum(m):
            out += [e.value for e in m]
        elif typing.get_origin(m) is typing.Literal:
            out += [a for a in typing.get_args(m) if isinstance(a, str)]
    return out


def _listing(choices) -> str:
    return ", ".join(repr(c) for c in choices)


def _close(value: str, choices) -> str:
    hint = difflib.get_close_matches(value, [str(c) for c in choices], n=1)
    return f"; did you mean {hint[0]!r}?" if hint else ""


def _is_enum(tp) -> bool:
    return isinstance(tp, type) and issubclass(tp, enum.Enum)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _kind(value) -> str:
    return {dict: "a mapping", list: "a list", str: "text", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "empty (null)"}.get(type(value), type(value).__name__)
