"""The one exception type rlft shows to users.

Anything raised as `RlftError` is a user mistake or an environment problem with a known fix: the CLI prints
its message (no traceback) and exits non-zero. Everything else is a bug and keeps its traceback.
"""


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
