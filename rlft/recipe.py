"""Recipes: read the YAML, apply command-line overrides, check everything, report every mistake at once.

The rlft schema is deliberately small. What belongs to TRL, PEFT or bitsandbytes (`args:`, `lora:`,
`quantization:`) is not re-declared here: it is handed to `SFTConfig(**args)`, `LoraConfig(**lora)`, ... and
their own errors come back with the YAML path in front.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import importlib.util
import inspect
import os
import re
import sys
import tempfile
from pathlib import Path

import yaml

from rlft import eval_section, fieldtypes
from rlft.data import read_text
from rlft.errors import RecipeError, RlftError
from rlft.redaction import is_secret_key

REQUIRED = object()

# key: (allowed types, default, what it is)
TOP_KEYS = {
    "name": (str, REQUIRED, "run name; the run folder is runs/<name>"),
    "model": (str, "smollm2-135m-instruct", "embedded model name, hub id, local folder or .gguf file"),
    "seed": (int, 42, "seed for data shuffling, initialisation and sampling"),
    "dtype": (str, "auto", "auto | float32 | bfloat16 | float16 (auto: bf16 on a GPU that has it and on a CPU with AMX; fp32 weights under bf16 autocast on a CPU with AVX512-BF16; else fp32)"),
    "attn_implementation": (str, "auto", "attention kernel of the trained models, as transformers names it: auto | eager | sdpa | flash_attention_2 | flash_attention_3 | flex_attention (auto: eager for SFT on a CPU when max_length <= 512, where it beats torch's CPU flash kernel; else transformers' default, sdpa)"),
    "trust_remote_code": (bool, False, "run model code from the model's folder/hub repo; only if you trust it"),
    "output_dir": (str, None, "run folder; default runs/<name>"),
    "stages": (list, REQUIRED, "the stages, run in order"),
    "eval": (dict, None, "held-out evaluation of the base model and every stage's output; see rlft/evaluation.py"),
}
# Keys every stage may have; each stage module adds its own in STAGE_KEYS.
COMMON_STAGE_KEYS = {
    "name": (str, REQUIRED, "stage name, unique in the recipe; used in overrides and folder names"),
    "type": (str, REQUIRED, "stage type"),
    "init_from": (str, None, "start from this earlier stage's output instead of the previous one"),
    "args": (dict, {}, "passed to the TRL config class of the stage"),
}
DTYPES = ("auto", "float32", "bfloat16", "float16")
ATTN_IMPLEMENTATIONS = ("auto", "eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")
FLASH_PACKAGES = {"flash_attention_2": "flash_attn", "flash_attention_3": "flash_attn_interface"}
# Names people reach for from other tools, and the field they mean.
ALIASES = {"rank": "r", "alpha": "lora_alpha", "dropout": "lora_dropout", "lr": "learning_rate",
           "batch_size": "per_device_train_batch_size", "epochs": "num_train_epochs", "steps": "max_steps",
           "max_seq_length": "max_length", "4bit": "load_in_4bit", "8bit": "load_in_8bit"}
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def read_yaml(path: str | Path) -> dict:
    """Read a recipe file with `yaml.safe_load`; a missing file or bad YAML is an `RlftError`."""
    path = Path(path)
    if not path.is_file():
        raise RlftError(f"{path}: recipe file not found. Pass the path of a .yaml recipe, e.g. recipes/sft_only.yaml")
    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError as e:
        raise RlftError(f"{path}: {_yaml_problem(e)}")
    if not isinstance(data, dict):
        raise RlftError(f"{path}: a recipe must be a YAML mapping with keys like name, model, stages; got {_kind(data)}")
    return data


def _yaml_problem(e: yaml.YAMLError) -> str:
    """PyYAML's error, placed where the user must look: an unclosed quote is reported where it opens (PyYAML's
    context mark), not at the end of the file where the parser gave up (its problem mark)."""
    problem = getattr(e, "problem", None) or str(e)
    mark, context, context_mark = getattr(e, "problem_mark", None), getattr(e, "context", None), \
        getattr(e, "context_mark", None)
    at = (lambda m: f"line {m.line + 1}, column {m.column + 1}")
    if context_mark is not None and "quoted scalar" in (context or ""):
        return (f"malformed YAML at {at(context_mark)}: a quoted string starts here and is not closed (the parser "
                f"ran on to {at(mark)}: {problem}). Close the quote, or escape a quote inside the string")
    where = f" at {at(mark)}" if mark is not None else ""
    also = f" ({context} at {at(context_mark)})" if context and context_mark is not None else ""
    return f"malformed YAML{where}: {problem}{also}. Fix the syntax (indentation, quotes, colons)."


def apply_overrides(raw: dict, overrides: list[str], source: str) -> dict:
    """Apply dotted `key=value` overrides; stages are addressed by name (`stages.sft.args.max_steps=5`) or index."""
    out = copy.deepcopy(raw)
    problems = []
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            problems.append(f"override {item!r}: expected key=value, e.g. stages.sft.args.max_steps=5 or seed=1")
            continue
        try:
            parsed = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            parsed = value
        if isinstance(parsed, bool) and value.lower() not in ("true", "false"):
            parsed = value  # YAML 1.1 reads no/yes/on/off as booleans; on a command line they are words
        try:
            _set_path(out, key.split("."), parsed)
        except KeyError as e:
            problems.append(f"override {item!r}: {e.args[0]}")
    if problems:
        raise RecipeError(source, problems)
    return out


def _set_path(node, parts: list[str], value) -> None:
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = _find_stage(node, part)
        else:
            if not isinstance(node.get(part, {}), (dict, list)):
                raise KeyError(f"{'.'.join(parts[: i + 1])} is not a mapping")
            node = node.setdefault(part, {})
    if isinstance(node, list):
        raise KeyError("cannot replace a whole stage from the command line")
    node[parts[-1]] = value


def _find_stage(stages: list, key: str) -> dict:
    for stage in stages:
        if isinstance(stage, dict) and stage.get("name") == key:
            return stage
    if key.isdigit() and int(key) < len(stages):
        return stages[int(key)]
    names = [s.get("name") for s in stages if isinstance(s, dict)]
    raise KeyError(f"no stage named {key!r}; the stages are {names}")


class Checker:
    """Collects problems as `path: what is wrong` lines; raises them together at the end."""

    def __init__(self, source: str):
        self.source = source
        self.problems: list[str] = []
        self.notes: list[str] = []  # not problems: what rlft changed for the user (a number read from text)

    def add(self, path: str, message: str) -> None:
        problem = f"{path}: {message}"
        if problem not in self.problems:  # a section checked twice (ppo's defaults over grpo) reports once
            self.problems.append(problem)

    def note(self, path: str, message: str) -> None:
        text = f"{path}: {message}"
        if text not in self.notes:
            self.notes.append(text)

    def mapping(self, node: dict, spec: dict, path: str) -> dict:
        """Check known keys and types, fill defaults; returns the resolved mapping."""
        out = {}
        for key in node:
            if key not in spec:
                hint = difflib.get_close_matches(str(key), list(spec), n=1)
                fix = f"did you mean {hint[0]!r}?" if hint else f"allowed keys: {', '.join(spec)}"
                self.add(_join(path, key), f"unknown key; {fix}")
        for key, (types, default, what) in spec.items():
            if key not in node or node[key] is None:
                if default is REQUIRED:
                    self.add(_join(path, key), f"missing; add it ({what})")
                else:
                    out[key] = copy.deepcopy(default)
                continue
            value = node[key]
            number = fieldtypes.number_from_text(value, types if isinstance(types, tuple) else (types,))
            if number is not None:
                self.note(_join(path, key), f"read {value!r} as the number {number!r}")
                value = node[key] = number  # in place too: some callers go on reading the mapping they passed
            if not _is_type(value, types):
                self.add(_join(path, key), f"expected {_type_name(types)}, got {_kind(value)} {value!r} ({what})")
                continue
            out[key] = value
        return out

    def raise_if_any(self) -> None:
        if self.notes and os.environ.get("RANK", "0") == "0":  # once per launch, not once per process
            for text in self.notes:
                print(f"note: {self.source}: {text}", file=sys.stderr)
            self.notes = []
        if self.problems:
            raise RecipeError(self.source, self.problems)


def check_config(checker: Checker, config_class, kwargs: dict, path: str, defaults: dict | None = None, **fixed):
    """Build `config_class(**fixed, **defaults, **kwargs)` and turn its errors into recipe problems at `path`.

    Unknown field names get a "did you mean"; every value in `kwargs` is checked against the class's field type and
    converted in place where it is a number written as text (`rlft.fieldtypes`), so the run uses the checked value;
    the class's own ValueError/TypeError text is kept.
    """
    fields = _accepted_names(config_class)
    bad = [k for k in kwargs if k not in fields]
    for key in bad:
        hint = [ALIASES[key]] if ALIASES.get(key) in fields else difflib.get_close_matches(key, fields, n=1)
        fix = f"did you mean {hint[0]!r}?" if hint else f"see the {config_class.__name__} documentation"
        checker.add(_join(path, key), f"not a field of {config_class.__module__.split('.')[0]}.{config_class.__name__}; {fix}")
    clash = sorted(set(fixed) & set(kwargs))
    if clash:
        checker.add(_join(path, clash[0]), "is set by rlft from the run folder; remove it from the recipe")
    for key, value in _secrets(kwargs):
        checker.add(_join(path, key), "holds a credential, which would be saved in the run folder (the resolved "
                    "recipe, the trainer's checkpoints); set it in the environment instead (HF_TOKEN for the Hub) and "
                    "remove it from the recipe")
    before = len(checker.problems)
    fieldtypes.check(checker, config_class, kwargs, path)
    if bad or clash or len(checker.problems) > before:
        return None  # building it would only repeat the same problems in the library's words
    try:
        return config_class(**fixed, **{**(defaults or {}), **kwargs})
    except Exception as e:  # the library's own validation: show its words with our path
        hint = ""
        if re.search(r"\b(True|False) is not a valid", str(e)):
            hint = " (YAML reads no/yes/on/off as true/false: quote the word, e.g. save_strategy: 'no')"
        checker.add(path, f"{config_class.__name__} rejected these values: {_first_line(e)}{hint}")
        return None


def _secrets(node, prefix: str = ""):
    """(dotted key, value) of every credential in a config mapping, nested ones (mappings and lists) included: TRL and
    transformers take such values literally (a ${VAR} reference included), so none belongs in `args:`."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if is_secret_key(key, value):
            yield f"{prefix}{key}", value
        elif isinstance(value, (dict, list)):
            yield from _secrets(value, f"{prefix}{key}.")


def _accepted_names(config_class) -> set[str]:
    """Dataclass fields plus explicit __init__ parameters (BitsAndBytesConfig is a dataclass in name only)."""
    names = {f.name for f in dataclasses.fields(config_class)} if dataclasses.is_dataclass(config_class) else set()
    params = inspect.signature(config_class.__init__).parameters.values()
    return names | {p.name for p in params if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def validate(raw: dict, source: str, stage_modules: dict, recipe_dir: Path, hub_lookup: bool = True) -> dict:
    """Check the whole recipe and return it resolved (defaults filled in). Raises `RecipeError` listing all problems.

    `hub_lookup=False` accepts a hub id without finding it in the HF cache (`rlft plan` plans models it lacks).

    `stage_modules` maps stage type -> module; each module provides `STAGE_KEYS` and `check(stage, path, ctx)`.
    """
    c = Checker(source)
    recipe = c.mapping(raw, TOP_KEYS, "")
    if "name" in recipe and not NAME_RE.match(recipe["name"]):
        c.add("name", f"{recipe['name']!r} must be letters, digits, '-', '_' or '.' (it names the run folder)")
    test, constraint = fieldtypes.RANGES["seed"]
    if isinstance(recipe.get("seed"), int) and not test(recipe["seed"]):
        c.add("seed", f"{recipe['seed']} is out of range: seed {constraint}, e.g. seed: 42")
    if recipe.get("dtype") not in (None, *DTYPES):
        c.add("dtype", f"{recipe['dtype']!r} is not one of {', '.join(DTYPES)}")
    if isinstance(recipe.get("attn_implementation"), str) and recipe["attn_implementation"] not in ATTN_IMPLEMENTATIONS:
        c.add("attn_implementation", f"{recipe['attn_implementation']!r} is not one of {', '.join(ATTN_IMPLEMENTATIONS)}")
    elif recipe.get("attn_implementation") in FLASH_PACKAGES:
        package = FLASH_PACKAGES[recipe["attn_implementation"]]
        if importlib.util.find_spec(package) is None:
            c.add("attn_implementation", f"{recipe['attn_implementation']} needs the {package} package (and a GPU), "
                  "which is not installed: pip install it, or use sdpa or auto")
    if "model" in recipe:
        from rlft.models import check_model_spec  # imports torch: deferred, so `import rlft.recipe` stays light

        problem = check_model_spec(recipe["model"], recipe_dir, recipe.get("trust_remote_code") is True, hub_lookup)
        if problem:
            c.add("model", problem)

    stages = recipe.get("stages") or []
    if "stages" in recipe and not stages:
        c.add("stages", "is empty; add at least one stage, e.g. {name: sft, type: sft, data: {train: data.jsonl}}")
    resolved, seen = [], []
    for i, node in enumerate(stages):
        path = f"stages[{i}]"
        if not isinstance(node, dict):
            c.add(path, f"expected a mapping with name, type, ...; got {_kind(node)}")
            continue
        stype = node.get("type")
        module = stage_modules.get(stype)
        if module is None:
            if isinstance(stype, str) or stype is None:
                hint = difflib.get_close_matches(str(stype), list(stage_modules), n=1)
                fix = f"did you mean {hint[0]!r}?" if hint else f"one of: {', '.join(stage_modules)}"
                c.add(f"{path}.type", f"unknown stage type {stype!r}; {fix}")
            else:
                c.add(f"{path}.type", f"expected a string, got {_kind(stype)}")
            continue
        stage = c.mapping(node, {**COMMON_STAGE_KEYS, **module.STAGE_KEYS}, path)
        name = stage.get("name")
        if name is not None:
            if not NAME_RE.match(name):
                c.add(f"{path}.name", f"{name!r} must be letters, digits, '-', '_' or '.' (it names a folder)")
            if name in seen:
                c.add(f"{path}.name", f"{name!r} is used by an earlier stage; stage names must be unique")
            init_from = stage.get("init_from")
            if init_from is not None and init_from not in seen:
                c.add(f"{path}.init_from", f"{init_from!r} is not an earlier stage; earlier stages: {seen}")
            seen.append(name)
        with ValidationContext(c, recipe_dir, recipe) as ctx:
            module.check(stage, path, ctx)
        resolved.append(stage)
    recipe["stages"] = resolved
    if recipe.get("eval") is not None:
        with ValidationContext(c, recipe_dir, recipe) as ctx:
            recipe["eval"] = eval_section.check(recipe["eval"], "eval", ctx)
    c.raise_if_any()
    return recipe


@dataclasses.dataclass
class ValidationContext:
    """What a stage's `check` gets: the problem collector, where relative paths start, the top-level recipe, and a
    scratch folder for config classes that want an `output_dir`.

    Use it as a context manager: the scratch folder is made on first use and removed on exit, so validating leaves
    nothing behind in the temp dir.
    """

    checker: Checker
    recipe_dir: Path
    recipe: dict
    _scratch: tempfile.TemporaryDirectory | None = dataclasses.field(default=None, repr=False)

    def add(self, path: str, message: str) -> None:
        self.checker.add(path, message)

    def scratch_dir(self) -> str:
        """A temporary folder that lives as long as this context (`output_dir` of the TRL configs built to check)."""
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="rlft-validate-")
        return self._scratch.name

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> ValidationContext:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _is_type(value, types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def _type_name(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a mapping", list: "a list"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _kind(value) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "nothing"}.get(type(value), type(value).__name__)


def _first_line(e: Exception) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
