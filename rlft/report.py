"""Terminal output: the end-of-run summary."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


def make_console(width: int = 120, **options) -> Console:
    """A rich console; piped or captured (a log file, CI), it is `width` wide instead of squeezing tables into 80."""
    terminal = Console(**options)
    return terminal if terminal.is_terminal else Console(width=width, **options)


def print_summary(root: Path, summaries: list[dict], dry_run: bool = False) -> None:
    console = make_console()
    table = Table(title="rlft dry run: everything built, no step run" if dry_run else f"rlft run {root}")
    for column in ("stage", "type", "time", "steps", "tokens/s", "train loss", "eval loss"):
        table.add_column(column)
    for s in summaries:
        m = s.get("metrics", {})
        table.add_row(
            s["stage"],
            s.get("type", ""),
            "skipped (done)" if s.get("skipped") else f"{s.get('seconds', 0):.0f} s",
            _fmt(m.get("train_steps")),
            _fmt(m.get("train_tokens_per_second")),
            _fmt(m.get("train_loss")),
            _fmt(m.get("eval_loss")),
        )
    console.print(table)
    profiled = [s for s in summaries if s.get("profile")]
    if profiled:
        console.print(profile_table(profiled))
    for s in summaries:
        console.print(f"  {s['stage']}: {s.get('output', '')}", soft_wrap=True)
    if not dry_run:
        console.print(f"run folder: {root}  (recipe.resolved.yaml, lock.json, metrics.jsonl, tensorboard/, stages/)")


def profile_table(summaries: list[dict]) -> Table:
    """Seconds (share of the stage's training time) per part, and peak memory, of each profiled stage."""
    from rlft.profiling import LABELS, PARTS  # deferred: profiling imports torch and transformers

    parts = [p for p in (*PARTS, "other") if any(p in s["profile"]["parts"] for s in summaries)]
    memory = summaries[0]["profile"]["memory"]
    table = Table(title=f"profile (exclusive seconds, share of training; peak {memory} MB)")
    for column in ("stage", "train", *(LABELS[p] for p in parts), "peak MB"):
        table.add_column(column)
    for s in summaries:
        prof = s["profile"]
        cells = []
        for part in parts:
            seconds = prof["parts"].get(part, {}).get("seconds")
            cells.append("-" if seconds is None else f"{seconds:.1f} ({seconds / max(prof['seconds'], 1e-9):.0%})")
        table.add_row(s["stage"], f"{prof['seconds']:.1f} s", *cells, f"{prof['peak_mb']:.0f}")
    return table


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
