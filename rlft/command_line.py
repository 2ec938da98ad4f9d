"""Command-line pieces shared by `rlft` (rlft/cli.py) and `accelerate launch rlft/run.py`: both take a run's
arguments the same way. Light on purpose: `rlft --help` and `rlft compare` import no torch.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from rlft.errors import RlftError
from rlft.launch import parse_size


def add_run_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The command line of a run: `rlft run ...` and `accelerate launch rlft/run.py ...` take the same."""
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", help="dotted key=value, e.g. stages.sft.args.max_steps=5 seed=1")
    p.add_argument("--output-dir", help="run folder (default runs/<name>)")  # checked by RunFolder, as the recipe's
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


# --- flag types: argparse reports a bad value as "argument --flag: what is wrong", with exit code 2 -------------
def number(flag: str, kind=int, minimum: float | None = None, below: float | None = None, example: str = ""):
    """An argparse `type=` for an int or float flag with bounds; the message names the flag and an example."""
    tail = f", e.g. {flag} {example}" if example else ""

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}{tail}")
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number{tail}")
        if minimum is not None and below is not None and not minimum <= value < below:
            raise argparse.ArgumentTypeError(f"{text} must be in [{minimum}, {below}){tail}")
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"{text} must be at least {minimum}{tail}")
        return value

    return convert


def existing_file(what: str):
    """An argparse `type=` for a file that must exist."""
    def convert(text: str) -> str:
        path = Path(text)
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder; give the {what} file")
        if not path.is_file():
            raise argparse.ArgumentTypeError(f"{text}: no such file; give the path of the {what}")
        return text

    return convert


def folder(text: str) -> str:
    """An argparse `type=` for a folder rlft writes into: it may be missing, but must not be a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file, not a folder; give a folder path (it is created if "
                                         "missing), e.g. runs/my-run")
    return text


def size(text: str) -> str:
    """An argparse `type=` for `--gpu-mem`: checked here, parsed again by `rlft.plan`."""
    try:
        parse_size(text)
    except RlftError as e:
        raise argparse.ArgumentTypeError(str(e).replace("--gpu-mem ", "", 1))
    return text
