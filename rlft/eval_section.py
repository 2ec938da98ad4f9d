"""The recipe's `eval:` section (see rlft/evaluation.py): its keys, its check, and reading its prompts.

Checked with the rest of the recipe by `rlft.recipe.validate`, so `rlft validate` reports its mistakes; evaluating
lives in rlft/evaluation.py, which reads run folders.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rlft import data, rewards
from rlft.errors import RlftError

EVAL_KEYS = {
    "prompts": (str, None, "held-out prompts: .jsonl/.csv/.parquet with a prompt column, relative to the recipe"),
    "max_new_tokens": (int, 96, "length limit of each answer"),
    "eval_rewards": (list, [], "rewards scored in evaluation only, written like a stage's rewards:"),
    "limit": (int, None, "evaluate only the first N prompts (default: all)"),
    "batch_size": (int, 32, "prompts per generate call (generation is overhead-bound on CPU: big batches pay)"),
    "samples": (int, 4, "prompts shown side by side in report.md"),
}
FORMATS = ("prompt",)


def check(block: dict, path: str, ctx) -> dict:
    """Validate the `eval:` section (prompts file, numbers, eval_rewards); returns it with defaults filled in."""
    out = ctx.checker.mapping(block, EVAL_KEYS, path)
    columns = None
    if out.get("prompts") is None:
        ctx.add(f"{path}.prompts", "missing; e.g. prompts: data/eval_prompts.jsonl ({\"prompt\": ...} rows)")
    else:
        try:
            columns = load_prompts(out, ctx.recipe_dir).column_names
        except RlftError as e:
            ctx.add(f"{path}.prompts", str(e))
    for key in ("max_new_tokens", "limit", "batch_size"):
        if isinstance(out.get(key), int) and out[key] < 1:
            ctx.add(f"{path}.{key}", f"{out[key]} must be at least 1")
    if isinstance(out.get("samples"), int) and out["samples"] < 0:
        ctx.add(f"{path}.samples", f"{out['samples']} must be 0 or more")
    if out.get("eval_rewards"):
        # rewards.check reports at <path>.rewards; check in a scratch collector and put the problems at eval_rewards
        scratch = type(ctx.checker)(ctx.checker.source)
        rewards.check(dataclasses.replace(ctx, checker=scratch), {"rewards": out["eval_rewards"]}, path, columns)
        for problem in scratch.problems:
            ctx.checker.problems.append(problem.replace(f"{path}.rewards", f"{path}.eval_rewards", 1))
        trained = {entry_name(e) for s in ctx.recipe.get("stages") or [] if isinstance(s, dict)
                   for e in s.get("rewards") or [] if isinstance(e, dict)}
        for i, entry in enumerate(out["eval_rewards"]):
            if isinstance(entry, dict) and entry_name(entry) in trained:
                ctx.add(f"{path}.eval_rewards[{i}]", f"{entry_name(entry)!r} is a stage's reward already, so it is "
                        "scored anyway; remove it here, or give it another name: to score it with other kwargs")
    return out


def entry_name(entry: dict) -> str | None:
    if entry.get("name"):
        return entry["name"]
    if isinstance(entry.get("fn"), str):
        return entry["fn"].rpartition(":")[2]
    return f"rm_{entry['model']}" if isinstance(entry.get("model"), str) else None


def load_prompts(block: dict, recipe_dir: Path):
    """The prompts as a `datasets.Dataset` with a `prompt` column (other columns reach the rewards)."""
    defaults = {k: v for k, (_, v, _) in data.DATA_KEYS.items()}
    ds, _ = data.load_split({**defaults, "train": block["prompts"], "format": "prompt"}, "train", recipe_dir, FORMATS)
    return ds.select(range(min(block["limit"], len(ds)))) if block.get("limit") else ds
