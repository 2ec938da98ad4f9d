"""PPO-style stage: the clipped PPO objective without a value network, run by TRL's GRPOTrainer.

TRL 1.16 has no `PPOTrainer` (it was removed upstream). This stage is the "Lite PPO" configuration of
`GRPOTrainer` that TRL's paper index documents (Liu et al. 2025, "Tricks or Traps? A Deep Dive into RL for LLM
Reasoning"): vanilla clipped PPO surrogate, rewards scaled by the batch standard deviation (`scale_rewards: batch`),
token-level loss aggregation (`loss_type: dapo`). Everything else is the `grpo` stage (rewards, weights, checks).

How it differs from critic-based PPO (InstructGPT-style, TRL's old PPOTrainer):
  1. No learned value baseline and no GAE: there is no value network at all. The advantage of a completion is its
     reward minus the mean reward of the k completions sampled for the same prompt (`num_generations`), divided by
     the batch's reward std: group-relative advantages from k samples per prompt, one advantage per sequence.
  2. The KL to the reference (the starting policy, i.e. the SFT model) is a loss term weighted by `beta`, not a
     per-token penalty folded into the reward.
  3. The clip `epsilon` only binds when a batch of samples is reused, because on the first pass the new/old policy
     ratio is exactly 1. rlft's defaults therefore optimise each batch twice (`num_iterations: 2`); a recipe that
     makes every sample single-use is rejected (use `type: grpo` for that).
  4. rlft keeps a KL anchor by default (`beta: 0.04`); the paper index's configuration uses `beta: 0.0`. A reward
     that is a heuristic or a learned model can be gamed, and the anchor limits how far the policy drifts.
"""

from __future__ import annotations

from trl import GRPOConfig

from rlft.stages import common, grpo

CONFIG_CLASS = GRPOConfig
POLICY = True
GENERATES = True
FORMATS = grpo.FORMATS
STAGE_KEYS = grpo.STAGE_KEYS
# Under the recipe's `args:`; the recipe's own values win.
DEFAULTS = {
    "scale_rewards": "batch",  # Lite PPO: group-mean baseline, batch-std scale
    "loss_type": "dapo",  # Lite PPO: token-level aggregation over the whole batch
    "num_iterations": 2,  # PPO epochs per batch: the second pass moves the ratio off 1, so the clip binds
    "epsilon": 0.2,  # PPO clip range
    "beta": 0.04,  # KL to the starting (SFT) policy; 0.0 = no reference model, less memory and compute
}


def check(stage: dict, path: str, ctx):
    merged = _with_defaults(stage)
    config = grpo.check(merged, path, ctx)
    # the check converted numbers written as text (learning_rate: 2e-4) in the merged copy; the run reads `stage`
    stage["args"] = {k: merged["args"][k] for k in stage.get("args") or {}}
    if config is not None and config.num_iterations == 1 and \
            config.steps_per_generation <= config.gradient_accumulation_steps:
        ctx.add(f"{path}.args", "num_iterations is 1 and steps_per_generation is not above "
                "gradient_accumulation_steps, so every sample is used once, the PPO ratio stays 1 and the clip never "
                "binds (that is plain GRPO). Set num_iterations: 2 (the default), or steps_per_generation above "
                "gradient_accumulation_steps, or use type: grpo")
    return config


def run(stage: dict, ctx: common.StageContext) -> dict:
    return grpo.run(_with_defaults(stage), ctx)


def _with_defaults(stage: dict) -> dict:
    return {**stage, "args": {**DEFAULTS, **(stage.get("args") or {})}}


def group_size(stage: dict) -> int:
    return grpo.group_size(_with_defaults(stage))
