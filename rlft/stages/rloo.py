"""RLOO (REINFORCE Leave-One-Out) through TRL's `RLOOTrainer`, with the stage's rewards and reward models.

How it differs from calling `RLOOTrainer` yourself:
  1. Rewards come from the recipe (functions by dotted or file path, bound `kwargs`, trained reward models) and
     `rewards[].weight` becomes `RLOOConfig.reward_weights`; the functions are TRL's own contract, unchanged.
  2. Every reward value is checked as it is returned: a broken reward stops the run with an error naming it, the
     sample and the value.
  3. The policy and its KL reference (TRL's RLOO default `beta: 0.05`) are the previous stage's output; a LoRA SFT
     stage is merged first, so the reference is the SFT model, not the base model.
  4. On CPU it trains in fp32 without gradient checkpointing.
"""

from __future__ import annotations

from trl import RLOOConfig, RLOOTrainer

from rlft.stages import common, online

CONFIG_CLASS = RLOOConfig
POLICY = True
GENERATES = True
FORMATS = online.FORMATS
STAGE_KEYS = online.GROUP_STAGE_KEYS


def check(stage: dict, path: str, ctx) -> None:
    online.check(stage, path, ctx, CONFIG_CLASS)


def run(stage: dict, ctx: common.StageContext) -> dict:
    return online.run(stage, ctx, CONFIG_CLASS, RLOOTrainer)


def group_size(stage: dict) -> int:
    """Completions sampled per prompt: `args.num_generations`, else TRL's default."""
    return common.arg(stage, "num_generations", CONFIG_CLASS)
