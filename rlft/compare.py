"""`rlft compare RUN_DIR [RUN_DIR ...]`: several runs' curves in one picture, a table per run and stage, and what
differs between their recipes. Everything is read from the run folders; nothing needs a tracking service.

    rlft compare runs/polite-ppo runs/polite-grpo [--metric reward] [--smooth 0.9] [--x step|samples] [--out curves.png]

How it reads runs, in a few points:
  1. `metrics.jsonl` is read line by line; a line that does not parse (the half-written last line of a run still
     training) is skipped, so a run in progress is plotted up to its last complete log.
  2. A resumed stage logs the steps after its last checkpoint again; for each stage and step the later row wins.
  3. Stages are curves of their own; when one run has several stages with the metric, each stage's x continues
     where the previous one ended. Runs are overlaid from x = 0, whatever stages they have.
  4. Hacking signals per run (`rlft.hacking`): from the run's `eval/summary.json` when `rlft eval` has run (the final
     model's top-opening share, distinct-2 against the reference, length drift, marker density, trained vs eval-only
     reward gap and the verdict), and from its logs (entropy first -> last, the sampled batch's top-opening share), so
     two runs are compared on what the reward cost, not just on the reward.
  5. Smoothing is TensorBoard's de-biased exponential moving average, but per training step rather than per logged
     point, so a stage that logs its reward every 4th step is smoothed like one that logs it every step. The table's
     start, final and best values are smoothed values, so one lucky batch does not decide them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from rlft import hacking
from rlft.errors import RlftError
from rlft.report import make_console
from rlft.run_metrics import load_run, metric_key, panels, read_samples, Run, series, smoothed, stage_stats
from rlft.runfolder import RunFolder

def recipe_diff(runs: list[Run]) -> list[tuple[str, list]]:
    """[(dotted path, [value per run])] for every recipe setting that differs between the runs.

    Stages are addressed by name, as in overrides (`stages.ppo.args.learning_rate`); a stage that only some runs
    have is one row, `stages.<name>`, with its type or "-".
    """
    flat = [_flatten({k: v for k, v in r.recipe.items() if k not in ("name", "output_dir")}) for r in runs]
    keys = []
    for f in flat:
        keys += [k for k in f if k not in keys]
    missing = object()
    out, partial = [], set()
    for key in keys:
        values = [f.get(key, missing) for f in flat]
        stage = key.split(".")[1] if key.startswith("stages.") else None
        types = [r.types.get(stage, "-") for r in runs]
        if stage is not None and "-" in types:  # a stage some runs lack: one row for it, then what differs
            if stage not in partial:  # among the runs that have it
                partial.add(stage)
                out.append((f"stages.{stage}", types))
            values = [v for v in values if v is not missing]
        if any(v != values[0] for v in values[1:]):
            out.append((key, ["-" if v is missing else v for v in (f.get(key, missing) for f in flat)]))
    return out


def _flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    if isinstance(node, list) and node and all(isinstance(v, dict) for v in node):
        out = {}
        for i, v in enumerate(node):
            name = v.get("name") if prefix == "stages" and isinstance(v.get("name"), str) else f"[{i}]"
            out.update(_flatten(v, f"{prefix}.{name}" if name[0] != "[" else f"{prefix}{name}"))
        return out
    return {prefix: node}


def plot(runs: list[Run], metric: str, smooth: float, x: str, out: Path) -> list[str]:
    """Write the PNG; returns the panels drawn. Raw values faint, smoothed bold, one colour per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = panels(runs, metric)
    cols = 1 if len(names) == 1 else 2
    nrows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(7.5 * cols, 4.2 * nrows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    drawn = 0
    tags = {id(run): _verdict_tag(run) for run in runs}
    for ax, name in zip(axes.flat, names):
        for i, run in enumerate(runs):
            drawn += _plot_run(ax, run, name, smooth, x, colors[i % len(colors)], tags[id(run)])
        ax.set_title(name if name == metric else name.split("/")[1], fontsize=11)
        ax.set_xlabel("samples seen" if x == "samples" else "step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    if not drawn:
        plt.close(fig)
        logged = sorted({k for run in runs for rows in run.rows.values() for r in rows for k in r} -
                        {"stage", "step", "time", "samples"})
        raise RlftError(f"no run has logged {metric!r} yet; metrics logged: {', '.join(logged) or 'none'}. "
                        "Pick one with --metric")
    fig.suptitle(f"{metric}  (faint: raw, bold: EMA smoothing {smooth} per step)", fontsize=12)
    _legend_below(fig, axes)
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        # a new name of our own beside --out (never an existing file), renamed over it once complete: a killed write
        # leaves no half image under the name
        handle, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
        os.close(handle)
        fig.savefig(tmp, dpi=110, format=out.suffix[1:].lower(), **_marked(out))
        os.replace(tmp, out)
        tmp = None
    except OSError as e:
        raise RlftError(f"--out {out}: cannot write there ({e.strerror or e}); give a path you can write to") from None
    finally:
        plt.close(fig)
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return names


# Written into every image `rlft compare` saves (PNG text chunk, SVG/PDF/PS creator): an existing --out file without it
# was not written by rlft and is never replaced.
MARK = "rlft compare"
_MARKABLE = {"png": "Software", "svg": "Creator", "svgz": "Creator", "pdf": "Creator", "ps": "Creator", "eps": "Creator"}


def _marked(out: Path) -> dict:
    kind = out.suffix[1:].lower()
    if kind in ("jpg", "jpeg"):
        return {"pil_kwargs": {"comment": MARK}}
    key = _MARKABLE.get(kind)
    return {"metadata": {key: MARK}} if key else {}


def check_out(out: Path) -> None:
    """Refuse an --out that is a folder or a file rlft did not write (only an earlier `rlft compare` image is replaced)."""
    if out.is_dir():
        raise RlftError(f"--out {out}: is a folder; give an image file name, e.g. --out {out / 'curves.png'}")
    if out.exists() and MARK.encode() not in out.read_bytes():
        raise RlftError(f"--out {out}: this file exists and rlft did not write it, so it is left alone; give another "
                        "--out (rlft replaces only an image an earlier rlft compare wrote)")


def _legend_below(fig, axes) -> None:
    """One legend for every panel, below them: a run's label carries its hacking signals, too long to sit on a curve."""
    entries = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    width, height = fig.get_size_inches()
    extra = 0.3 + 0.22 * len(entries) if entries else 0.0  # inches: a line of 9-point text per entry
    fig.set_size_inches(width, height + extra)
    if entries:
        fig.legend(list(entries.values()), list(entries), loc="lower center", fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, extra / (height + extra), 1, 1))


def _verdict_tag(run: Run) -> str:
    """" [hacking: opening_share, ...]" or " [no hacking signal]" for the legend; "" when nothing was measured."""
    signals = hacking_row(run).get("signals")
    if signals is None:
        return ""
    return f" [hacking: {', '.join(signals)}]" if signals else " [no hacking signal]"


def _plot_run(ax, run: Run, metric: str, smooth: float, x: str, color: str, tag: str = "") -> int:
    with_metric = [s for s in run.stages if metric_key(run.rows.get(s, []), metric)]
    offset, styles = 0.0, ("-", "--", ":", "-.")
    for j, stage in enumerate(with_metric):
        key = metric_key(run.rows[stage], metric)
        xs, ys = series(run.rows[stage], key, x)
        xs, line = [v + offset for v in xs], smoothed(run.rows[stage], key, smooth)
        label = run.label + (f" / {stage}" if len(with_metric) > 1 else "") + tag
        label += "" if run.complete.get(stage) else " (in progress)"
        ax.plot(xs, ys, color=color, alpha=0.25, linewidth=1)
        ax.plot(xs, line, color=color, linewidth=2.2, linestyle=styles[j % len(styles)], label=label)
        if not run.complete.get(stage):
            ax.plot(xs[-1:], line[-1:], marker="o", color=color)
        offset = xs[-1]
    return len(with_metric)


def print_report(runs: list[Run], metric: str, smooth: float, out: Path | None, names: list[str]) -> None:
    from rich import box
    from rich.table import Table


    console = make_console(soft_wrap=True)  # long paths stay on one line; tables still fit the terminal
    table = Table(title=f"{metric} per run and stage (smoothed: EMA {smooth} per step; KL and length: final)",
                  box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("run", "stage", "steps", "start", "final", "best", "change", "KL", "length"):
        text = column in ("run", "stage")
        table.add_column(column, justify="left" if text else "right", no_wrap=not text)
    for run in runs:
        for stage in run.stages:
            s = stage_stats(run.rows.get(stage, []), metric, smooth)
            kind = run.types.get(stage, "?")
            name = stage if kind == stage else f"{stage} ({kind})"
            state = "" if run.complete.get(stage) else " [yellow]*[/]"
            table.add_row(run.label, name + state, str(s["steps"]), *(_fmt(s.get(k)) for k in ("start", "final", "best")),
                          _fmt(s.get("change"), sign=True), _fmt(s.get("kl")), _fmt(s.get("length"), fixed=1))
        if run.skipped_lines:
            console.print(f"[dim]{run.path}: skipped {run.skipped_lines} unreadable line(s) of metrics.jsonl "
                          "(a log still being written)[/]")
    console.print(table)
    if not all(run.complete.get(stage) for run in runs for stage in run.stages):
        console.print("[yellow]*[/] in progress or interrupted (no stage_complete.json yet): shown up to its last log")
    console.print(_hacking_table(runs))
    diff = recipe_diff(runs) if len(runs) > 1 else []
    if len(runs) > 1:
        console.print(_diff_table(runs, diff) if diff else "recipes: identical (apart from name and output_dir)")
    if out is not None:
        console.print(f"curves: {out}  (panels: {', '.join(names)})")


def hacking_row(run: Run) -> dict:
    """The run's hacking signals: the eval summary's (final model vs reference) and the training logs'."""
    out = {}
    path = RunFolder(run.path, is_main=False).eval_summary_path
    if path.is_file():
        try:
            s = json.loads(path.read_text())
        except json.JSONDecodeError:
            s = {}
        final, ref = (s.get("models") or {}).get(s.get("final")), (s.get("models") or {}).get(s.get("reference"))
        g, rg = (final or {}).get("signals"), (ref or {}).get("signals")
        if g:
            out.update(opening=g["openings"]["share"], distinct_2=g["distinct_2"], markers=g["marker_density"])
            if rg:
                out.update(distinct_2_change=g["distinct_2"] - rg["distinct_2"],
                           length_drift=g["mean_length"] / rg["mean_length"] - 1 if rg["mean_length"] else None)
        h = s.get("hacking") or {}
        if h.get("gap"):
            out["gap"] = h["gap"]["gap"]
        if "verdict" in h:
            out["signals"] = sorted({f["signal"] for f in h["fired"]})
    samples = read_samples(run.path)
    fired = []
    for stage, rows in run.rows.items():
        t = hacking.training_signals(rows, [x for x in samples if x.get("stage") == stage])
        if "entropy" in t["series"] and any(k.startswith("rewards/") for r in rows for k in r):
            out["entropy"] = (t["series"]["entropy"]["first"], t["series"]["entropy"]["last"])
            shares = t["series"]["samples_opening_share"]
            out["samples_opening"] = shares[max(shares)] if shares else None
            fired += [f["signal"] for f in t["fired"]]
    if "signals" in out or "entropy" in out:
        out["signals"] = sorted(set(out.get("signals", [])) | set(fired))
    return out


def _hacking_table(runs: list[Run]):
    from rich import box
    from rich.table import Table

    table = Table(title="what the reward cost: hacking signals (final model vs reference, from eval/summary.json; "
                        "entropy and openings of the sampled batches, from training)", box=box.SIMPLE_HEAD,
                  pad_edge=False)
    for column in ("run", "opening", "distinct-2 (Δ)", "len drift", "markers", "gap", "entropy", "samples",
                   "verdict"):
        table.add_column(column, justify="left" if column in ("run", "verdict") else "right",
                         no_wrap=column != "verdict")
    fired = []
    for run in runs:
        r = hacking_row(run)
        if r.get("signals"):
            fired.append(f"{run.label}: {', '.join(r['signals'])}")
        pct = lambda v: "-" if v is None else f"{v:.0%}"
        d2 = "-" if "distinct_2" not in r else f"{r['distinct_2']:.3f}" + (
            f" ({r['distinct_2_change']:+.3f})" if "distinct_2_change" in r else "")
        ent = f"{r['entropy'][0]:.2f}→{r['entropy'][1]:.2f}" if "entropy" in r else "-"
        verdict = "-" if "signals" not in r else f"{len(r['signals'])} fired" if r["signals"] else "no signal"
        table.add_row(run.label, pct(r.get("opening")), d2,
                      "-" if r.get("length_drift") is None else f"{r['length_drift']:+.0%}",
                      "-" if "markers" not in r else f"{r['markers']:.1f}",
                      "-" if "gap" not in r else f"{r['gap'] * 100:+.0f} pts", ent, pct(r.get("samples_opening")),
                      verdict)
    if fired:
        table.caption = "signals fired -- " + "; ".join(fired)
    table.caption_justify = "left"
    return table


def _diff_table(runs: list[Run], diff: list):
    from rich import box
    from rich.table import Table

    table = Table(title="what differs between the recipes", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("setting")
    for run in runs:
        table.add_column(run.label)
    for key, values in diff:
        table.add_row(key, *(_short(v) for v in values))
    return table


def compare(paths: list[str], metric: str = "reward", smooth: float = 0.9, out: str | None = "curves.png",
            x: str = "step") -> list[Run]:
    """Load the runs, write the PNG (unless `out` is None) and print the table and the recipe diff."""
    if not paths:
        raise RlftError("give at least one run folder, e.g. rlft compare runs/polite-assistant")
    if not 0 <= smooth < 1:
        raise RlftError(f"--smooth {smooth}: must be in [0, 1); 0 = no smoothing, 0.9 = strong")
    runs = [load_run(p) for p in paths]
    labels = [r.label for r in runs]
    for r in runs:
        if labels.count(r.label) > 1:  # two runs in folders of the same name: tell them apart by their path
            r.label = str(r.path)
    png = image_path(out) if out else None
    if png is not None:
        check_out(png)  # before any run is plotted: a refused --out costs nothing
    names = plot(runs, metric, smooth, x, png) if png else []
    print_report(runs, metric, smooth, png, names)
    return runs


def image_path(out: str) -> Path:
    """Where `--out` writes: a folder (existing, or given with a trailing /) gets `curves.png` inside it; a name
    without an extension gets `.png`; any other extension must be one matplotlib writes (svg, pdf, ...)."""
    from matplotlib.backend_bases import FigureCanvasBase

    path = Path(out)
    if path.is_dir() or out.endswith(("/", os.sep)):
        return path / "curves.png"
    if not path.suffix:
        return path.with_suffix(".png")
    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix[1:].lower() not in formats:
        raise RlftError(f"--out {out}: cannot write a {path.suffix} image; use one of "
                        f"{', '.join('.' + f for f in sorted(formats))}, e.g. --out curves.png")
    return path


def _fmt(v, digits: int = 3, sign: bool = False, fixed: int | None = None) -> str:
    if v is None:
        return "-"
    if fixed is not None:
        return f"{v:.{fixed}f}"
    return f"{v:+.{digits}g}" if sign else f"{v:.{digits}g}"


def _short(v, width: int = 40) -> str:
    text = v if isinstance(v, str) else json.dumps(v, default=str)
    if len(text) <= width:
        return text
    return "..." + text[3 - width:] if "/" in text else text[: width - 3] + "..."  # a path's end says the most
