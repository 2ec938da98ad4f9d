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

from rlft import data, models, rewards
from rlft.stages import common

FORMATS = ("prompt",)
STAGE_KEYS = {
    "data": (dict, None, "prompts: {train: prompts.jsonl}; other columns reach the rewards as keyword arguments"),
    "rewards": rewards.REWARDS_KEY,
    "lora": common.LORA_KEY,
    "quantization": common.QUANT_KEY,
}


def _trl():
    from trl.experimental.online_dpo import OnlineDPOConfig, OnlineDPOTrainer

    return OnlineDPOConfig, OnlineDPOTrainer


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
    common.check_args(ctx, _trl()[0], stage, path)


def run(stage: dict, ctx: common.StageContext) -> dict:
    config_class, trainer_class = _trl()
    tokenizer = models.load_tokenizer(ctx.model_source, ctx.trust_remote_code)
    train, evaluation, _ = data.load(stage["data"], ctx.recipe_dir, FORMATS, ctx.seed)
    reward_funcs = rewards.build(stage, ctx)
    model = models.load_causal_lm(ctx.model_source, ctx.dtype, stage["quantization"], ctx.trust_remote_code)
    args_stage = {**stage, "args": {**stage["args"], "reward_weights": rewards.weights(stage)}}
    trainer = trainer_class(
        model=model,
        reward_funcs=reward_funcs,
        args=common.trainer_args(config_class, args_stage, ctx),
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=common.lora_config(stage, []),
        callbacks=[rewards.log_callback(reward_funcs), *ctx.callbacks],  # per-reward means before metrics.jsonl
    )
    if ctx.dry_run:
        return {"train_rows": len(train), "rewards": ", ".join(r.__name__ for r in reward_funcs)}
    metrics = common.train(trainer, ctx)
    common.save_stage(trainer, tokenizer, ctx, {"rewards": rewards.entries(stage)})
    return metrics
