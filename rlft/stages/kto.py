"""KTO through TRL's `KTOTrainer`: learn from completions marked desirable or not, no pairs needed.

How it differs from calling `KTOTrainer` yourself:
  1. The data is checked row by row before anything loads: unpaired rows `{prompt, completion, label}` with a
     true/false `label`, or preference pairs `{prompt, chosen, rejected}` (TRL splits each into a desirable and an
     undesirable row).
  2. The policy and its reference are the previous stage's output: a LoRA SFT stage is merged first, so the
     reference is the SFT model, not the base model.
  3. A batch of one is refused at validation (KTO estimates its KL term from the other rows of the batch), not
     when the trainer is built.
  4. On CPU it trains in fp32 without gradient checkpointing.
"""

from __future__ import annotations

from trl import KTOConfig, KTOTrainer

from rlft import data, models, rewards
from rlft.stages import common

CONFIG_CLASS = KTOConfig
POLICY = True
GENERATES = False
FORMATS = ("unpaired_preference", "preference")
STAGE_KEYS = {
    "data": (dict, None, "completions marked desirable or not (prompt, completion, label), or preference pairs"),
    "lora": common.LORA_KEY,
    "quantization": common.QUANT_KEY,
}


def check(stage: dict, path: str, ctx) -> None:
    if stage.get("data") is None:
        ctx.add(f"{path}.data", "missing; e.g. data: {train: data/kto.jsonl} with prompt, completion, label")
    else:
        data.check(ctx, stage["data"], f"{path}.data", FORMATS)
    rewards.check_init_from(ctx, stage, path)
    common.check_lora(ctx, stage, path)
    config = common.check_args(ctx, CONFIG_CLASS, stage, path)
    if config is not None and config.loss_type != "apo_zero_unpaired" and config.train_sampling_strategy != "sequential":
        ctx.add(f"{path}.args.train_sampling_strategy", f"{config.train_sampling_strategy!r}: KTO's KL term pairs each "
                "row with one precomputed in order, so TRL's KTOTrainer needs sequential (or loss_type: "
                "apo_zero_unpaired)")
    if config is not None and config.loss_type != "apo_zero_unpaired" and config.per_device_train_batch_size < 2:
        ctx.add(f"{path}.args.per_device_train_batch_size", f"{config.per_device_train_batch_size}: KTO estimates its "
                "KL term from the other completions of a batch, so it needs at least 2 per device")


def group_size(stage: dict) -> int:
    """One labelled completion per row: nothing is sampled."""
    return 1


def run(stage: dict, ctx: common.StageContext) -> dict:
    tokenizer = models.load_tokenizer(ctx.model_source, ctx.trust_remote_code)
    train, evaluation, _ = data.load(stage["data"], ctx.recipe_dir, FORMATS, ctx.seed)
    args = common.trainer_args(CONFIG_CLASS, stage, ctx)  # before the model: ZeRO-3 then loads it sharded
    model = models.load_causal_lm(ctx.model_source, ctx.dtype, stage["quantization"], ctx.trust_remote_code,
                                  common.attention(ctx))
    trainer = common.build_trainer(KTOTrainer, stage, ctx, model=model, args=args, tokenizer=tokenizer, train=train,
                                   evaluation=evaluation)
    if ctx.dry_run:
        return {"train_rows": len(train)}
    metrics = common.train(trainer, ctx)
    common.save_stage(trainer, tokenizer, ctx)
    return metrics
