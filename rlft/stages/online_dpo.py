"""Online DPO through TRL's experimental `OnlineDPOTrainer`, judged by the stage's rewards.

At every step the policy samples two completions per prompt, the weighted rewards pick the better one, and a DPO
loss is taken on that fresh pair. TRL 1.16 accepts Python reward functions here (`reward_funcs`, with
`OnlineDPOConfig.reward_weights`), the same contract as GRPO.

How it differs from calling `OnlineDPOTrainer` yourself:
  1. Rewards come from the recipe and every value is checked as it is returned (TRL's online DPO would sum a NaN
     away with `nansum`); `rewards[].weight` becomes `reward_weights`.
  2. TRL's online DPO logs only the summed score; rlft adds `rewards/<name>/mean` and `/std` per reward to every log.
  3. The reference is a frozen copy of the starting policy (with LoRA: the adapter disabled), i.e. the previous
     stage's output with a LoRA SFT stage merged first.
  4. `trl.experimental` is imported only when such a stage is checked or run, so its notice does not follow every
     rlft command.
"""

from __future__ import annotations

from rlft.stages import common, online

FORMATS = online.FORMATS
STAGE_KEYS = online.STAGE_KEYS
POLICY = True
GENERATES = True


def _trl():
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    return OnlineDPOConfig, OnlineDPOTrainer


def __getattr__(name: str):
    # CONFIG_CLASS is read on use, so trl.experimental is imported only then (point 4)
    if name == "CONFIG_CLASS":
        return _trl()[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check(stage: dict, path: str, ctx) -> None:
    online.check(stage, path, ctx, _trl()[0])


def run(stage: dict, ctx: common.StageContext) -> dict:
    # TRL's online DPO logs only the summed score, and calls every reward synchronously
    return online.run(stage, ctx, *_trl(), log_reward_means=True, awaits_rewards=False)


def group_size(stage: dict) -> int:
    """TRL's OnlineDPOTrainer samples two completions per prompt and ranks them; not configurable."""
    return 2
