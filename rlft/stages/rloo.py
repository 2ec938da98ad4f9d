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

from rlft import data, models, rewards
from rlft.stages import common

ARGS_CLASS = RLOOConfig
FORMATS = ("prompt",)
STAGE_KEYS = {
    "data": (dict, None, "prompts: {train: prompts.jsonl}; other columns reach the rewards as keyword arguments"),
    "rewards": rewards.REWARDS_KEY,
    "lora": common.LORA_KEY,
    "quantization": common.QUANT_KEY,
}


def check(stage: dict, path: str, ctx) -> None:
    columns = None
    if stage.get("data") is None:
        ctx.add(f"{path}.data", "missing; e.g. data: {train: data/prompts.jsonl}")
    else:
        data.check(ctx, stage["data"], f"{path}.data", FORMATS)
        columns = rewards.data_columns(ctx, stage["data"], FORMATS)
    rewards.check(ctx, stage, path, columns)
    rewards.check_init_from(ctx, stage, path)
    common.check_lora(ctx, stage, path)
    common.check_args(ctx, RLOOConfig, stage, path)


def run(stage: dict, ctx: common.StageContext) -> dict:
    tokenizer = models.load_tokenizer(ctx.model_source, ctx.trust_remote_code)
    train, evaluation, _ = data.load(stage["data"], ctx.recipe_dir, FORMATS, ctx.seed)
    reward_funcs = rewards.build(stage, ctx)
    args_stage = {**stage, "args": {**stage["args"], "reward_weights": rewards.weights(stage)}}
    args = common.trainer_args(RLOOConfig, args_stage, ctx)  # before the model: ZeRO-3 then loads it sharded
    model = models.load_causal_lm(ctx.model_source, ctx.dtype, stage["quantization"], ctx.trust_remote_code)
    trainer = RLOOTrainer(
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
    common.save_stage(trainer, tokenizer, ctx, {"rewards": rewards.entries(stage)})
    return metrics
