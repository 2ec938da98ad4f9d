"""GRPO through TRL's `GRPOTrainer`, with the stage's Python rewards and reward models.

How it differs from calling `GRPOTrainer` yourself:
  1. Rewards come from the recipe (`rewards:`: functions by dotted or file path, bound `kwargs`, trained reward models)
     and `rewards[].weight` becomes `GRPOConfig.reward_weights`; the functions are TRL's own contract, unchanged.
  2. Every reward value is checked as it is returned (count, number, NaN/inf): a broken reward stops the run with an
     error naming it, the sample and the value, instead of training on zeros.
  3. The policy, and with `beta > 0` its KL reference, is the previous stage's output (a LoRA SFT stage is merged
     first, see `rlft.stage_models.policy_source`), not the base model.
  4. On CPU it trains without gradient checkpointing, in the dtype the CPU is fast in (bf16 autocast with
     AVX512-BF16, else fp32; TRL's defaults are bf16 + checkpointing), and one generation batch feeds 4 optimizer
     steps unless the recipe sizes it (`online.with_generation_batch`).
"""

from __future__ import annotations

from trl import GRPOConfig, GRPOTrainer

from rlft.stages import common, online

CONFIG_CLASS = GRPOConfig
POLICY = True
GENERATES = True
FORMATS = online.FORMATS
STAGE_KEYS = online.GROUP_STAGE_KEYS


def check(stage: dict, path: str, ctx):
    """Collect the stage's problems; returns the GRPOConfig it builds (None if `args:` has a problem)."""
    return online.check(stage, path, ctx, CONFIG_CLASS)


def run(stage: dict, ctx: common.StageContext) -> dict:
    return online.run(stage, ctx, CONFIG_CLASS, GRPOTrainer)


def group_size(stage: dict) -> int:
    """Completions sampled per prompt: `args.num_generations`, else TRL's default."""
    return common.arg(stage, "num_generations", CONFIG_CLASS)
