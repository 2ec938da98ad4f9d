"""Command-line pieces shared by `rlft` (rlft/cli.py) and `accelerate launch rlft/run.py`: both take a run's
arguments the same way. Light on purpose: `rlft --help` and `rlft compare` import no torch.
"""

from __future__ import annotations

import argparse


def add_run_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The command line of a run: `rlft run ...` and `accelerate launch rlft/run.py ...` take the same."""
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", help="dotted key=value, e.g. stages.sft.args.max_steps=5 seed=1")
    p.add_argument("--output-dir", help="run folder (default runs/<name>)")
    p.add_argument("--dry-run", action="store_true", help="load data, models and trainers; run no step")
    p.add_argument("--fresh", action="store_true", help="delete the run folder first instead of resuming")
    p.add_argument("--profile", action="store_true", help="time and peak memory per part of each stage "
                   "(generation, rewards, reference, forward/backward, optimizer): stages/NN_name/profile.json")
    return p


def parse_args(p: argparse.ArgumentParser, argv: list[str] | None = None):
    """The parsed command line; `key=value` overrides may come before or after the options."""
    args, extra = p.parse_known_args(argv)
    # argparse stops filling `overrides` at the first option: `rlft run R --fresh seed=1` leaves seed=1 over
    if extra and hasattr(args, "overrides") and not any(e.startswith("-") or "=" not in e for e in extra):
        args.overrides += extra
    elif extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    return args
