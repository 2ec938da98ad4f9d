"""A run folder's training logs as `rlft compare` and the eval read them: metrics.jsonl rows per stage (a torn last
line skipped, a resumed stage's repeated steps replaced), the samples kept in samples.jsonl, and the smoothed series
and per-stage numbers drawn from them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from rlft.runfolder import RunFolder

# A metric name -> the keys trainers log it under, first match wins (online DPO logs the summed reward as
# objective/scores, its KL as objective/kl).
ALIASES = {
    "reward": ("reward", "objective/scores"),
    "kl": ("kl", "objective/kl"),
    "entropy": ("entropy", "objective/entropy"),
    "length": ("completions/mean_length",),
}


@dataclass
class Run:
    path: Path
    label: str
    recipe: dict
    stages: list[str]  # in recipe order, then any only seen in the metrics
    types: dict  # stage name -> stage type
    complete: dict  # stage name -> finished (stage_complete.json written)
    rows: dict = field(default_factory=dict)  # stage name -> [row, ...] sorted by step, one row per step and kind
    skipped_lines: int = 0


def load_run(path: str | Path) -> Run:
    """Read a run folder; raises `RlftError` when `path` is not one."""
    folder = RunFolder.open(path)
    path, recipe = folder.root, folder.resolved_recipe()
    stage_list = [s for s in recipe.get("stages") or [] if isinstance(s, dict) and "name" in s]
    stages = [s["name"] for s in stage_list]
    run = Run(path, path.name, recipe, stages, {s["name"]: s.get("type", "?") for s in stage_list}, {})
    raw, run.skipped_lines = read_metrics(folder.metrics_path)
    for row in raw:
        stage = str(row.get("stage", "?"))
        if stage not in run.stages:
            run.stages.append(stage)
        run.rows.setdefault(stage, []).append(row)
    for stage, rows in run.rows.items():
        run.rows[stage] = _dedupe(rows)
    done = folder.finished_stages()
    run.complete = {stage: stage in done for stage in run.stages}
    return run


def read_metrics(path: Path) -> tuple[list[dict], int]:
    """Rows of a metrics.jsonl and the number of lines that did not parse (a run still writing its last one)."""
    if not path.is_file():
        return [], 0
    rows, bad = [], 0
    with path.open() as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                rows.append(row)
            else:
                bad += 1
    return rows, bad


def read_samples(root: Path) -> list[dict]:
    """The completions a run kept in samples.jsonl (unreadable lines skipped, like metrics.jsonl's)."""
    path = RunFolder(root, is_main=False).samples_path
    rows = []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def _dedupe(rows: list[dict]) -> list[dict]:
    # A training log, an eval log and the end-of-training summary can share a step; they have different keys.
    kind = lambda r: ("eval" if any(k.startswith("eval_") for k in r) else
                      "summary" if "train_runtime" in r else "train")
    latest = {(r["step"], kind(r)): r for r in rows}  # later rows (a resumed stage) replace earlier ones
    return sorted(latest.values(), key=lambda r: r["step"])


def metric_key(rows: list[dict], metric: str) -> str | None:
    """The key `metric` is logged under in these rows (see ALIASES), or None."""
    for key in ALIASES.get(metric, (metric,)):
        if any(_finite(r.get(key)) for r in rows):
            return key
    return None


def series(rows: list[dict], key: str, x: str = "step") -> tuple[list[float], list[float]]:
    """(xs, ys) of `key` over a stage's rows; x is the step or the samples seen (`samples`, else the step)."""
    xs, ys = [], []
    for r in rows:
        if _finite(r.get(key)):
            xs.append(float(r.get("samples", r["step"]) if x == "samples" else r["step"]))
            ys.append(float(r[key]))
    return xs, ys


def ema(values: list[float], smooth: float, steps: list[float] | None = None) -> list[float]:
    """TensorBoard's de-biased exponential moving average; `smooth` in [0, 1), 0 = none.

    With `steps`, `smooth` is per training step: a value logged 4 steps after the previous one decays the average by
    smooth**4, so a stage that logs its reward every 4th step (PPO reusing a batch) is smoothed like one that logs it
    every step.

    >>> [round(v, 3) for v in ema([1.0, 1.0, 0.0], 0.5)]
    [1.0, 1.0, 0.429]
    >>> round(ema([1.0, 0.0], 0.5)[1], 3), round(ema([1.0, 0.0], 0.5, steps=[1, 3])[1], 3)  # 2 steps: forgets more
    (0.333, 0.143)
    """
    out, last, weight = [], 0.0, 0.0
    for i, v in enumerate(values):
        decay = smooth ** (steps[i] - steps[i - 1]) if steps is not None and i > 0 else smooth
        last = decay * last + (1 - decay) * v
        weight = decay * weight + (1 - decay)
        out.append(last / weight if weight else v)
    return out


def smoothed(rows: list[dict], key: str, smooth: float) -> list[float]:
    """`key` over a stage's rows, smoothed per training step."""
    steps, values = series(rows, key)
    return ema(values, smooth, steps)


def reward_names(runs: list[Run]) -> list[str]:
    """Reward functions logged as rewards/<name>/mean by any run, in first-seen order."""
    names = []
    for run in runs:
        for rows in run.rows.values():
            for r in rows:
                for k in r:
                    parts = k.split("/")
                    if len(parts) == 3 and parts[0] == "rewards" and parts[2] == "mean" and parts[1] not in names:
                        names.append(parts[1])
    return names


def panels(runs: list[Run], metric: str) -> list[str]:
    """What to plot: the metric, and for `reward` one panel per reward function when there are several."""
    names = reward_names(runs) if metric == "reward" else []
    return [metric] + ([f"rewards/{n}/mean" for n in names] if len(names) > 1 else [])


def stage_stats(rows: list[dict], metric: str, smooth: float) -> dict:
    """Steps, start/final/best smoothed metric, improvement, final smoothed KL and completion length of one stage."""
    out = {"steps": max((r["step"] for r in rows), default=0)}
    key = metric_key(rows, metric)
    if key is not None:
        values = smoothed(rows, key, smooth)
        lower = "loss" in metric or metric == "kl"
        out.update(start=values[0], final=values[-1], best=min(values) if lower else max(values),
                   change=values[-1] - values[0])
    for name in ("kl", "length"):
        key = metric_key(rows, name)
        if key is not None:
            out[name] = smoothed(rows, key, smooth)[-1]
    return out


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
