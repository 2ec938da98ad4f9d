"""GRPO through TRL's `GRPOTrainer`, with the stage's Python rewards and reward models.

How it differs from calling `GRPOTrainer` yourself:
  1. Rewards come from the recipe (`rewards:`: functions by dotted or file path, bound `kwargs`, trained reward models)
     and `rewards[].weight` becomes `GRPOConfig.reward_weights`; the functions are TRL's own contract, unchanged.
  2. Every reward value is checked as it is returned (count, number, NaN/inf): a broken reward stops the run with an
     error naming it, the sample and the value, instead of training on zeros.
  3. The policy, and with `beta > 0` its KL reference, is the previous stage's output (a LoRA SFT stage is merged
     first, see `rlft.run.policy_source`), not the base model.
  4. On CPU it trains in fp32 without gradient checkpointing (TRL's defaults are bf16 + checkpointing).
"""

from __future__ import annotations

from trl import GRPOConfig, GRPOTrainer

from rlft import data, models, rewards
from rlft.stages import common

ARGS_CLASS = GRPOConfig
FORMATS = ("prompt",)
STAGE_KEYS = {
    "data": (dict, None, "prompts: {train: prompts.jsonl}; other columns reach the rewards as keyword arguments"),
    "rewards": rewards.REWARDS_KEY,
    "lora": common.LORA_KEY,
    "quantization": common.QUANT_KEY,
}


def check(stage: dict, path: str, ctx):
    """Collect the stage's problems; returns the GRPOConfig it builds (None if `args:` has a problem)."""
    columns = None
    if stage.get("data") is None:
        ctx.add(f"{path}.data", "missing; e.g. data: {train: data/prompts.jsonl}")
    else:
        data.check(ctx, stage["data"], f"{path}.data", FORMATS)
        columns = rewards.data_columns(ctx, stage["data"], FORMATS)
    rewards.check(ctx, stage, path, columns)
    rewards.check_init_from(ctx, stage, path)
    common.check_lora(ctx, stage, path)
    return common.check_args(ctx, GRPOConfig, stage, path)


def run(stage: dict, ctx: common.StageContext) -> dict:
    tokenizer = models.load_tokenizer(ctx.model_source, ctx.trust_remote_code)
    train, evaluation, _ = data.load(stage["data"], ctx.recipe_dir, FORMATS, ctx.seed)
    reward_funcs = rewards.build(stage, ctx)
    args_stage = {**stage, "args": {**stage["args"], "reward_weights": rewards.weights(stage)}}
    args = common.trainer_args(GRPOConfig, args_stage, ctx)  # before the model: ZeRO-3 then loads it sharded
    model = models.load_causal_lm(ctx.model_source, ctx.dtype, stage["quantization"], ctx.trust_remote_code)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=common.lora_config(stage, []),
        callbacks=ctx.callbacks,
    )
    if ctx.dry_run:
        return {"train_rows": len(train), "rewards": ", ".join(r.__name__ for r in reward_funcs)}
    metrics = common.train(trainer, ctx)
    metrics.update(_last_reward_means(trainer))
    common.save_stage(trainer, tokenizer, ctx, {"rewards": rewards.entries(stage)})
    return metrics


def _last_reward_means(trainer) -> dict:
    """The last logged mean of each reward, for the run summary."""
    last = {}
    for log in trainer.state.log_history:
        last.update({k: v for k, v in log.items() if (k.startswith("rewards/") and k.endswith("/mean")) or k == "reward"})
    return last
