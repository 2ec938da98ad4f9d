"""The one exception type rlft shows to users.

Anything raised as `RlftError` is a user mistake or an environment problem with a known fix: the CLI prints
its message (no traceback) and exits 2 (`user_errors`). Everything else is a bug and keeps its traceback.
"""

import sys
from contextlib import contextmanager

EXIT_USER_ERROR = 2


class RlftError(Exception):
    """A problem the user can fix; the message says where, what and how."""


class RecipeError(RlftError):
    """Every mistake found in one recipe, reported together."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        n = len(problems)
        lines = [f"{source}: {n} problem{'s' if n != 1 else ''} in the recipe"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


@contextmanager
def user_errors():
    """Print an `RlftError` as one line and exit 2, without a traceback; Ctrl-C exits 130 with a hint."""
    try:
        yield
    except RlftError as e:
        from rich.console import Console
        from rich.markup import escape  # messages hold brackets: pip install 'rlft[deepspeed]', stages[0].args

        console = Console(stderr=True, highlight=False, soft_wrap=True)
        console.print(f"[bold red]error:[/] {escape(str(e))}", markup=True)
        sys.exit(EXIT_USER_ERROR)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        sys.exit(130)
