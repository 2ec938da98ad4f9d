"""What the online reward stages (grpo, ppo, rloo, online_dpo) share: prompts in, the recipe's rewards, one TRL trainer.

Each of those stages is this module with its TRL config and trainer class: the data holds prompts (other columns reach
the rewards as keyword arguments), `rewards:` become checked reward functions, `rewards[].weight` becomes the
config's `reward_weights`, and the trainer starts from the previous stage's output (see `rlft.stage_models.policy_source`).
"""

from __future__ import annotations

import dataclasses

from rlft import data, greedy_probe, models, rewards, speed
from rlft.launch import launch_from_env
from rlft.stages import common

# Optimizer steps fed by one generation batch on a CPU when the recipe does not say (see with_generation_batch).
CPU_STEPS_PER_GENERATION = 4

FORMATS = ("prompt",)
STAGE_KEYS = {
    "data": (dict, None, "prompts: {train: prompts.jsonl}; other columns reach the rewards as keyword arguments"),
    "rewards": rewards.REWARDS_KEY,
    "lora": common.LORA_KEY,
    "quantization": common.QUANT_KEY,
}
# The stages that sample a group of k completions per prompt (grpo, ppo, rloo) may also ask for:
GROUP_STAGE_KEYS = {
    **STAGE_KEYS,
    "greedy_probe": (bool, False, "the first of each prompt's k completions is its greedy decode: the rewards (and "
                     "their batch-level guards) score it beside the samples, and it is trained on only when it scores "
                     "below them (rlft.greedy_probe)"),
}


def check(stage: dict, path: str, ctx, config_class):
    """Collect the stage's problems; returns the config it builds (None if `args:` has a problem)."""
    columns = check_data(stage, path, ctx, FORMATS, "data: {train: data/prompts.jsonl}")
    rewards.check(ctx, stage, path, columns)
    rewards.check_init_from(ctx, stage, path)
    common.check_lora(ctx, stage, path)
    merged = with_generation_batch(stage, config_class)
    generator = [k for k in ("use_vllm", "use_transformers_continuous_batching") if (stage.get("args") or {}).get(k)]
    if stage.get("greedy_probe") and generator:
        ctx.add(f"{path}.greedy_probe", f"works with transformers' generate only, and args.{generator[0]} is on; "
                f"remove one of the two")
    config = common.check_args(ctx, config_class, merged, path)
    # the check converted numbers written as text in the merged copy; the run reads `stage`
    stage["args"] = {k: merged["args"][k] for k in stage.get("args") or {}}
    return config


def with_generation_batch(stage: dict, config_class, on_gpu: bool | None = None) -> dict:
    """The stage with rlft's generation batch for the hardware under its `args:` (the recipe's own values win).

    On a CPU, transformers' `generate` is bound by reading the weights once per new token whatever the batch, so a
    batch 4x larger costs far less than 4x (benchmarks/generation_ab.py): unless the recipe sets
    `steps_per_generation` or `generation_batch_size`, one generation batch feeds CPU_STEPS_PER_GENERATION optimizer
    steps (TRL's default: one). The later steps train on samples of a slightly older policy, which the PPO ratio
    and its clip account for; rlft keeps their old log-probs from the sampling pass (rlft.speed). With the vLLM or
    continuous-batching generators, or on a GPU (`on_gpu`; default: this launch's), TRL's default stays.
    """
    args = stage.get("args") or {}
    fields = {f.name for f in dataclasses.fields(config_class)}
    if "steps_per_generation" not in fields or (launch_from_env().on_gpu if on_gpu is None else on_gpu) or \
            any(args.get(k) for k in ("steps_per_generation", "generation_batch_size", "use_vllm",
                                      "use_transformers_continuous_batching")):
        return stage
    accumulation = args.get("gradient_accumulation_steps", 1)
    if type(accumulation) is not int or accumulation < 1:  # text or a bad value: TRL's default, and the check says why
        return stage
    return {**stage, "args": {"steps_per_generation": CPU_STEPS_PER_GENERATION * accumulation, **args}}


def check_data(stage: dict, path: str, ctx, formats: tuple[str, ...], example: str) -> list[str] | None:
    """Check the stage's `data:`; returns the columns its rows hand to the rewards (None when unknown)."""
    if stage.get("data") is None:
        ctx.add(f"{path}.data", f"missing; e.g. {example}")
        return None
    data.check(ctx, stage["data"], f"{path}.data", formats)
    return rewards.data_columns(ctx, stage["data"], formats)


def run(stage: dict, ctx: common.StageContext, config_class, trainer_class, log_reward_means: bool = False,
        awaits_rewards: bool = True) -> dict:
    """Train `trainer_class` on the stage's prompts and rewards.

    `log_reward_means` adds each reward's mean and std to every log, for trainers that log only the summed score;
    `awaits_rewards=False` (online DPO) hands async rewards over as synchronous calls.
    """
    tokenizer = models.load_tokenizer(ctx.model_source, ctx.trust_remote_code)
    train, evaluation, _ = data.load(stage["data"], ctx.recipe_dir, FORMATS, ctx.seed)
    stage = with_generation_batch(stage, config_class)
    reward_funcs = rewards.build(stage, ctx, concurrent=awaits_rewards)
    args_stage = {**stage, "args": {**stage["args"], "reward_weights": rewards.weights(stage)}}
    args = common.trainer_args(config_class, args_stage, ctx)  # before the model: ZeRO-3 then loads it sharded
    model = models.load_causal_lm(ctx.model_source, ctx.dtype, stage["quantization"], ctx.trust_remote_code,
                                  common.attention(ctx))
    trainer = common.build_trainer(
        trainer_class, stage, ctx, model=model, args=args, tokenizer=tokenizer, train=train, evaluation=evaluation,
        reward_funcs=reward_funcs, callbacks=[rewards.log_callback(reward_funcs)] if log_reward_means else [])
    speed.speed_up_generation(trainer)  # merged adapter + shared prompt prefill during generate (rlft.speed)
    if stage.get("greedy_probe"):
        greedy_probe.install(trainer)  # after the speed-ups: its `generate` wraps theirs
    if ctx.dry_run:
        return {"train_rows": len(train), "rewards": ", ".join(r.__name__ for r in reward_funcs)}
    metrics = common.train(trainer, ctx)
    metrics.update(last_reward_means(trainer))
    common.save_stage(trainer, tokenizer, ctx, {"rewards": rewards.described(stage)})
    return metrics


def last_reward_means(trainer) -> dict:
    """The last logged mean of each reward, for the run summary."""
    last = {}
    for log in trainer.state.log_history:
        last.update({k: v for k, v in log.items() if (k.startswith("rewards/") and k.endswith("/mean")) or k == "reward"})
    return last
