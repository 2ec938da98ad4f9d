"""Data: load a stage's `data:` block into the dataset shapes TRL trainers take.

Formats (TRL's own dataset types, plus instruction templates):
  messages           {"messages": [{"role", "content"}, ...]}  -> prompt/completion, loss on the last assistant turn
  prompt_completion  {"prompt", "completion"} (strings or message lists)
  instruction        {"instruction", "input"?, "output"} rendered through `template` -> prompt/completion strings
  text               {"text"} plain language modelling
  preference         {"prompt", "chosen", "rejected"}
  unpaired_preference {"prompt", "completion", "label": true/false} (is the completion desirable; for kto)
  prompt             {"prompt"} for the reward-driven stages
Columns with other names are mapped with `columns: {messages: conversation}`.
"""

from __future__ import annotations

import json
from pathlib import Path

from rlft.errors import RlftError

DATA_KEYS = {
    "train": (str, None, "local .jsonl/.json/.csv/.parquet file (relative to the recipe) or hub dataset name"),
    "eval": (str, None, "separate evaluation file or hub dataset"),
    "eval_split": (float, None, "hold out this fraction of train for evaluation, e.g. 0.1"),
    "format": (str, None, "messages | prompt_completion | instruction | text | preference | unpaired_preference | "
                          "prompt (default: detected)"),
    "columns": (dict, {}, "map rlft column names to yours, e.g. {messages: conversation}"),
    "template": (str, None, "instruction template with {instruction} and {input}; default: Alpaca style"),
    "split": (str, "train", "split to read from a hub dataset"),
}
COLUMNS = {
    "messages": ["messages"],
    "prompt_completion": ["prompt", "completion"],
    "instruction": ["instruction", "output"],
    "text": ["text"],
    "preference": ["prompt", "chosen", "rejected"],
    "unpaired_preference": ["prompt", "completion", "label"],
    "prompt": ["prompt"],
}
ALPACA = {
    "with_input": "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n",
    "without_input": "### Instruction:\n{instruction}\n\n### Response:\n",
}
LOADERS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def check(ctx, data: dict, path: str, formats: tuple[str, ...]) -> None:
    """Validate a `data:` block by loading it: files exist, are not empty, have the columns and row shapes."""
    block = ctx.checker.mapping(data, DATA_KEYS, path)
    if block.get("train") is None:
        ctx.add(f"{path}.train", "missing; give the training data file or hub dataset name")
        return
    fmt = block.get("format")
    if fmt is not None and fmt not in formats:
        ctx.add(f"{path}.format", f"{fmt!r} is not usable here; this stage takes {', '.join(formats)}")
        return
    split = block.get("eval_split")
    if split is not None and not 0 < split < 1:
        ctx.add(f"{path}.eval_split", f"{split} must be between 0 and 1 (exclusive), e.g. 0.1")
    if split is not None and block.get("eval"):
        ctx.add(f"{path}.eval_split", "give either eval (a file) or eval_split (a fraction), not both")
    template = block.get("template")
    if template is not None and "{instruction}" not in template:
        ctx.add(f"{path}.template", "must contain {instruction} (and usually {input})")
    for key in ("train", "eval"):
        if block.get(key):
            try:
                load_split(block, key, ctx.recipe_dir, formats)
            except RlftError as e:
                ctx.add(f"{path}.{key}", str(e))


def load(block: dict, recipe_dir: Path, formats: tuple[str, ...], seed: int):
    """Return (train, eval or None) as `datasets.Dataset`s in the stage's TRL format, and the format name."""
    train, fmt = load_split(block, "train", recipe_dir, formats)
    evaluation = None
    if block.get("eval"):
        evaluation, _ = load_split(block, "eval", recipe_dir, formats)
    elif block.get("eval_split"):
        parts = train.train_test_split(test_size=block["eval_split"], seed=seed)
        train, evaluation = parts["train"], parts["test"]
    return train, evaluation, fmt


def load_split(block: dict, key: str, recipe_dir: Path, formats: tuple[str, ...]):
    source = block[key]
    ds = _read(source, recipe_dir, block.get("split", "train"))
    mapping = {theirs: ours for ours, theirs in (block.get("columns") or {}).items() if theirs != ours}
    missing = [c for c in mapping if c not in ds.column_names]
    if missing:
        raise RlftError(f"{source}: columns {missing} named in data.columns are not in the file; it has {ds.column_names}")
    ds = ds.rename_columns(mapping)
    if len(ds) == 0:
        raise RlftError(f"{source}: the data set is empty (0 rows); add rows or point to the right file")
    fmt = block.get("format") or _detect(ds.column_names, formats, source)
    needed = [c for c in COLUMNS[fmt] if c not in ds.column_names]
    if needed:
        raise RlftError(f"{source}: format {fmt!r} needs column(s) {needed}, the file has {ds.column_names}; "
                        f"rename them or map yours with data.columns, e.g. {{{needed[0]}: your_column}}")
    if fmt != "prompt":  # reward functions get the prompt set's other columns as keyword arguments: keep them
        ds = ds.select_columns([c for c in ds.column_names if c in COLUMNS[fmt] or (fmt, c) == ("instruction", "input")])
    _check_rows(ds, fmt, source)
    if fmt == "messages":
        ds = ds.map(_split_last_turn, remove_columns=["messages"])
    elif fmt == "instruction":
        template = block.get("template")
        ds = ds.map(lambda row: _render(row, template), remove_columns=ds.column_names)
    return ds, fmt


def _read(source: str, recipe_dir: Path, split: str):
    import datasets

    datasets.disable_progress_bars()
    for base in (recipe_dir, Path.cwd()):
        path = (base / source).expanduser()
        if path.is_file():
            break
    else:
        path = None
    if path is None:
        if Path(source).suffix in LOADERS or "/" not in source or source.startswith("."):
            raise RlftError(f"{source}: file not found (relative paths start at the recipe's folder {recipe_dir}); "
                            "check the path")
        try:  # a hub dataset name
            return datasets.load_dataset(source, split=split)
        except Exception as e:
            raise RlftError(f"{source}: not a local file, and loading it as a hub dataset failed: "
                            f"{str(e).splitlines()[0]}")
    loader = LOADERS.get(path.suffix)
    if loader is None:
        raise RlftError(f"{source}: unsupported file type {path.suffix!r}; use .jsonl, .json, .csv or .parquet")
    if path.stat().st_size == 0:
        raise RlftError(f"{source}: the data set is empty (0 bytes); add rows or point to the right file")
    if loader != "parquet":  # text formats: pyarrow would read bytes that are not UTF-8 into garbled strings
        text = read_text(path, source)
        if not text.strip():
            raise RlftError(f"{source}: the data set is empty (only blank lines); add rows or point to the right file")
        if path.suffix == ".jsonl":
            _check_json_lines(text, source)
    try:
        return datasets.load_dataset(loader, data_files=str(path), split="train")
    except Exception as e:
        if path.suffix == ".json":
            _check_json(text, source)
        raise RlftError(f"{source}: cannot be read as {path.suffix[1:]}: {str(e).splitlines()[0]}")


def read_text(path: str | Path, name: str | None = None) -> str:
    """A user's file as UTF-8 text; bytes that are not UTF-8 are an `RlftError` naming the line and byte offset."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise RlftError(f"{name or path}: not UTF-8 text: byte {e.start} (line {line}) is "
                        f"{raw[e.start:e.start + 1]!r}; save the file as UTF-8 "
                        "(e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8)")


def _check_json_lines(text: str, source: str) -> None:
    """Every non-blank line of a .jsonl is one JSON object; otherwise say which line and why."""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue  # blank lines are skipped by the reader
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise RlftError(f"{source}: line {number} is not JSON ({e.msg} at column {e.colno}): {line[:80]!r}. "
                            "A .jsonl holds one JSON object per line")
        if not isinstance(row, dict):
            raise RlftError(f"{source}: line {number} is {type(row).__name__} {line[:80]!r}, not a JSON object; "
                            'each line must be an object such as {"prompt": "..."}')


def _check_json(text: str, source: str) -> None:
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise RlftError(f"{source}: not valid JSON at line {e.lineno}, column {e.colno}: {e.msg}. A .json file holds "
                        "a list of objects (or use .jsonl: one object per line)")


def _detect(columns: list[str], formats: tuple[str, ...], source: str) -> str:
    for fmt in formats:
        if all(c in columns for c in COLUMNS[fmt]):
            return fmt
    wanted = "; ".join(f"{f}: {COLUMNS[f]}" for f in formats)
    raise RlftError(f"{source}: cannot tell the format from columns {columns}. This stage takes {wanted}. "
                    "Set data.format, and map differently named columns with data.columns")


def _check_rows(ds, fmt: str, source: str) -> None:
    """Find the first malformed row and say which and why (row numbers count from 1, as lines in a .jsonl)."""
    for i, row in enumerate(ds):
        problem = _row_problem(row, fmt)
        if problem:
            raise RlftError(f"{source}: row {i + 1}: {problem}")


def _row_problem(row: dict, fmt: str) -> str | None:
    if fmt == "messages":
        msgs = row["messages"]
        if not isinstance(msgs, list) or not msgs:
            return "messages must be a non-empty list of {role, content}"
        for m in msgs:
            if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                return f"each message needs string 'role' and 'content', got {m!r}"
        if msgs[-1]["role"] != "assistant":
            return f"the last message has role {msgs[-1]['role']!r}; it must be the assistant's reply to learn from"
        if not msgs[-1]["content"].strip():
            return "the assistant's reply (the last message) is empty; there is nothing to learn from it"
        return None
    for col in COLUMNS[fmt]:
        value = row[col]
        if col == "label":
            if not isinstance(value, bool):
                return f"column 'label' must be true (a desirable completion) or false, got {value!r}"
            continue
        if isinstance(value, str):
            if not value.strip() and col != "input":
                return f"column {col!r} is empty"
        elif isinstance(value, list) and value and all(isinstance(m, dict) and "content" in m for m in value):
            continue
        else:
            return f"column {col!r} must be text or a list of {{role, content}} messages, got {value!r}"
    return None


def _split_last_turn(row: dict) -> dict:
    # TRL computes the loss on `completion` only for prompt/completion data: the last assistant turn is learned,
    # earlier turns are context.
    return {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]}


def render_instruction(instruction: str, input_text: str = "", template: str | None = None) -> str:
    """The prompt an instruction-format row becomes; used in training and again by `rlft chat`."""
    if template is None:
        template = ALPACA["with_input"] if input_text.strip() else ALPACA["without_input"]
    return template.format(instruction=instruction, input=input_text)


def format_prompt(tokenizer, template: dict, text: str) -> str:
    """Render a user message exactly as the stage was trained to see it."""
    kind = template.get("kind", "chat")
    if kind == "instruction":
        return render_instruction(text, "", template.get("template"))
    if kind == "text" or not tokenizer.chat_template:
        return text
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)


def _render(row: dict, template: str | None) -> dict:
    return {"prompt": render_instruction(row["instruction"], row.get("input") or "", template),
            "completion": row["output"]}
