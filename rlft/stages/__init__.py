"""The stage types: a plain dict from a recipe's `type:` to the module that runs it, and what each module provides.

Adding a stage type = one module here that provides everything `Stage` names, plus one line in `STAGES`
(tests/test_stages.py fails when a registered module lacks part of it). `rlft.run` runs the modules in order;
`rlft plan` and `rlft rewards check` read GENERATES, CONFIG_CLASS and group_size from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from rlft import recipe as recipes
from rlft.stages import common, dpo, grpo, kto, online_dpo, ppo, reward_model, rloo, sft


class Stage(Protocol):
    """What every stage module provides (a module, not a class: no hierarchy among stages)."""

    STAGE_KEYS: dict  # the stage's own recipe keys, beside recipe.COMMON_STAGE_KEYS: key -> (types, default, help)
    POLICY: bool  # does the next stage start from this stage's output (False: reward_model)
    GENERATES: bool  # does it sample completions during training (KV cache, reference model in `rlft plan`)
    CONFIG_CLASS: type  # its TRL config class: the stage's `args:` become CONFIG_CLASS(**args)

    def check(self, stage: dict, path: str, ctx) -> object:
        """Add the stage's problems to ctx (a recipe.ValidationContext); loads no model."""

    def run(self, stage: dict, ctx: common.StageContext) -> dict:
        """Train, save the output to ctx.stage_dir, return the final metrics."""

    def group_size(self, stage: dict) -> int:
        """Completions per prompt the stage scores together (1 when it samples none)."""


INTERFACE = (*Stage.__annotations__, "check", "run", "group_size")

STAGES: dict[str, Stage] = {
    "sft": sft,
    "ppo": ppo,
    "grpo": grpo,
    "rloo": rloo,
    "dpo": dpo,
    "online_dpo": online_dpo,
    "reward_model": reward_model,
    "kto": kto,
}


def missing(module) -> list[str]:
    """The parts of the stage interface a module lacks."""
    return [name for name in INTERFACE if not hasattr(module, name)]


def arg(stage: dict, key: str):
    """`args.<key>` of a checked stage as its trainer will see it: the recipe's, the stage's DEFAULTS or TRL's."""
    module = STAGES[stage["type"]]
    return common.arg(stage, key, module.CONFIG_CLASS, getattr(module, "DEFAULTS", None))


def load(recipe_path: str | Path, overrides: list[str] = (), hub_lookup: bool = True) -> dict:
    """Read, override and validate a recipe; raises RecipeError listing every problem.

    `hub_lookup=False` accepts a hub id that is not in the local HF cache (`rlft plan` plans models it lacks)."""
    recipe_path = Path(recipe_path)
    raw = recipes.read_yaml(recipe_path)
    raw = recipes.apply_overrides(raw, list(overrides), str(recipe_path))
    return recipes.validate(raw, str(recipe_path), STAGES, recipe_path.resolve().parent, hub_lookup)
