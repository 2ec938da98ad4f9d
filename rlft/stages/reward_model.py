"""A reward model through TRL's `RewardTrainer`: a sequence classifier with one output, trained on preference pairs.

How it differs from calling `RewardTrainer` yourself:
  1. It starts from the previous policy stage's output (e.g. the SFT model: InstructGPT's choice), with a fresh
     one-logit score head; `init_from:` picks another stage.
  2. It is not a policy stage: the next policy stage starts from the policy before it, not from this classifier.
  3. Its output is a reward for later stages, `rewards: [{model: <this stage's name>}]`, logged as `rm_<stage>`.
  4. Full-weight training only (a LoRA reward model would need its score head saved and merged; at the sizes rlft
     targets the full model is cheap enough).
"""

from __future__ import annotations

from trl import RewardConfig, RewardTrainer

from rlft import data, models, rewards
from rlft.stages import common

CONFIG_CLASS = RewardConfig
FORMATS = ("preference",)
POLICY = False  # rlft.run: the next stage does not start from this output
GENERATES = False
STAGE_KEYS = {
    "data": (dict, None, "preference pairs: {train: prefs.jsonl} with prompt, chosen, rejected"),
}


def check(stage: dict, path: str, ctx) -> None:
    if stage.get("data") is None:
        ctx.add(f"{path}.data", "missing; e.g. data: {train: data/prefs.jsonl} (prompt, chosen, rejected)")
    else:
        data.check(ctx, stage["data"], f"{path}.data", FORMATS)
    rewards.check_init_from(ctx, stage, path)
    common.check_args(ctx, CONFIG_CLASS, stage, path)


def group_size(stage: dict) -> int:
    """One chosen/rejected pair per prompt: nothing is sampled."""
    return 1


def run(stage: dict, ctx: common.StageContext) -> dict:
    from transformers import AutoModelForSequenceClassification, set_seed

    tokenizer = models.load_tokenizer(ctx.model_source, ctx.trust_remote_code)
    train, evaluation, _ = data.load(stage["data"], ctx.recipe_dir, FORMATS, ctx.seed)
    args = common.trainer_args(CONFIG_CLASS, stage, ctx)  # before the model: ZeRO-3 then loads it sharded
    set_seed(ctx.seed)  # the score head is initialised at random
    model = AutoModelForSequenceClassification.from_pretrained(
        ctx.model_source, num_labels=1, dtype=ctx.dtype, trust_remote_code=ctx.trust_remote_code)
    model.config.pad_token_id = tokenizer.pad_token_id
    trainer = common.build_trainer(RewardTrainer, stage, ctx, model=model, args=args, tokenizer=tokenizer, train=train,
                                   evaluation=evaluation)
    if ctx.dry_run:
        return {"train_rows": len(train)}
    metrics = common.train(trainer, ctx)
    common.save_stage(trainer, tokenizer, ctx, {"reward_name": f"rm_{stage['name']}"})
    return metrics
