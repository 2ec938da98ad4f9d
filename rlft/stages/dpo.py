"""DPO through TRL's `DPOTrainer`: on a preference data set, or on pairs sampled from the policy and ranked by rewards.

How it differs from calling `DPOTrainer` yourself:
  1. With `rewards:` instead of a preference set, the pairs are made on-policy before training (as in RLHF-style
     "best-of-k vs worst-of-k" DPO): the main process samples k completions per prompt from the stage's starting
     policy (before the trainer's model is loaded) and scores them with the weighted rewards; the best becomes
     `chosen`, the worst `rejected`, and prompts whose margin is below `pairs.min_margin` (or zero) are skipped. The
     pairs, with their scores, are saved as `pairs.jsonl` in the stage folder and reused when an interrupted stage
     resumes. The pairs are made once: this is offline DPO on on-policy samples, not online DPO (see `online_dpo`).
  2. The policy and its reference are the previous stage's output: a LoRA SFT stage is merged first, so with or
     without a LoRA adapter here the reference is the SFT model, not the base model.
  3. On CPU it trains in fp32 without gradient checkpointing.
"""

from __future__ import annotations

import json
import os

import torch
from trl import DPOConfig, DPOTrainer

from rlft import compat, data, generation, models, rewards
from rlft.errors import RlftError
from rlft.launch import on_main_process
from rlft.stages import common, online

CONFIG_CLASS = DPOConfig
POLICY = True
GENERATES = False  # `pairs:` samples before training, not during it
STAGE_KEYS = {
    "data": (dict, None, "preference pairs (prompt, chosen, rejected), or prompts when the stage has rewards"),
    "rewards": (list, None, "rank sampled completions with these instead of reading a preference set"),
    "pairs": (dict, None, "how on-policy pairs are made (with rewards): k, min_margin, max_new_tokens, ..."),
    "lora": common.LORA_KEY,
    "quantization": common.QUANT_KEY,
}
PAIRS_KEYS = {
    "k": (int, 4, "completions sampled per prompt; more = wider margins, more generation time"),
    "min_margin": (float, 0.0, "skip a prompt when its best minus worst weighted reward is below this"),
    "max_new_tokens": (int, 128, "length limit of a sampled completion"),
    "temperature": (float, 1.0, "sampling temperature; higher = more diverse candidates"),
    "batch_size": (int, 8, "prompts per generate call"),
    "max_prompts": (int, None, "use at most this many prompts (a seeded shuffle of the data); default: all"),
}


def check(stage: dict, path: str, ctx) -> None:
    formats = ("prompt",) if stage.get("rewards") is not None else ("preference",)
    if stage.get("rewards") is None and _prompts_only(stage, ctx):
        ctx.add(f"{path}.data.train", "holds prompts only (no chosen/rejected columns). A dpo stage trains on "
                "preference pairs (prompt, chosen, rejected); to have it sample its own pairs from these prompts and "
                "rank them, add rewards:, e.g. rewards: [{fn: reward_models.politeness:politeness}]")
        columns = None
    else:
        columns = online.check_data(stage, path, ctx, formats, "data: {train: data/prefs.jsonl}, or prompts plus "
                                    "rewards:")
    if stage.get("rewards") is not None:
        rewards.check(ctx, stage, path, columns)
        pairs = ctx.checker.mapping(stage.get("pairs") or {}, PAIRS_KEYS, f"{path}.pairs")
        if isinstance(pairs.get("k"), int) and pairs["k"] < 2:
            ctx.add(f"{path}.pairs.k", f"{pairs['k']}: a pair needs at least 2 samples per prompt")
        for key in ("max_new_tokens", "batch_size", "max_prompts"):
            if isinstance(pairs.get(key), int) and pairs[key] < 1:
                ctx.add(f"{path}.pairs.{key}", f"{pairs[key]} must be at least 1")
    elif stage.get("pairs") is not None:
        ctx.add(f"{path}.pairs", "only used to make pairs from rewards; add rewards: or remove pairs:")
    rewards.check_init_from(ctx, stage, path)
    common.check_lora(ctx, stage, path)
    common.check_args(ctx, CONFIG_CLASS, stage, path)


def group_size(stage: dict) -> int:
    """Completions sampled per prompt to build a pair from (`pairs.k`)."""
    return (stage.get("pairs") or {}).get("k", PAIRS_KEYS["k"][1])


def _prompts_only(stage: dict, ctx) -> bool:
    """True when the stage's training data reads as prompts, not preference pairs."""
    block = stage.get("data")
    if not isinstance(block, dict) or not isinstance(block.get("train"), str) or block.get("format"):
        return False
    try:
        return data.load_split({"split": "train", **block}, "train", ctx.recipe_dir, ("preference", "prompt"))[1] == \
            "prompt"
    except Exception:  # any other data problem is reported by data.check
        return False


def run(stage: dict, ctx: common.StageContext) -> dict:
    tokenizer = models.load_tokenizer(ctx.model_source, ctx.trust_remote_code)
    stats = {}
    if stage["rewards"] is not None:
        prompts, _, _ = data.load(stage["data"], ctx.recipe_dir, ("prompt",), ctx.seed)
        limit = (stage["pairs"] or {}).get("max_prompts")
        if limit and limit < len(prompts):
            prompts = prompts.shuffle(seed=ctx.seed).select(range(limit))
        train, stats = make_pairs(stage, ctx, tokenizer, prompts)
        evaluation = None
    else:
        train, evaluation, _ = data.load(stage["data"], ctx.recipe_dir, ("preference",), ctx.seed)
    args = common.trainer_args(CONFIG_CLASS, stage, ctx)  # before the model: ZeRO-3 then loads it sharded
    model = models.load_causal_lm(ctx.model_source, ctx.dtype, stage["quantization"], ctx.trust_remote_code,
                                  common.attention(ctx))
    trainer = common.build_trainer(DPOTrainer, stage, ctx, model=model, args=args, tokenizer=tokenizer, train=train,
                                   evaluation=evaluation)
    if ctx.dry_run:
        return {"train_rows": len(train), **stats}
    if stats:
        trainer.log(dict(stats))  # into metrics.jsonl and TensorBoard at step 0
    metrics = {**stats, **common.train(trainer, ctx)}
    common.save_stage(trainer, tokenizer, ctx, {"rewards": rewards.described(stage)} if stage["rewards"] else None)
    return metrics


def make_pairs(stage: dict, ctx, tokenizer, prompts):
    """(preference Dataset, stats): best vs worst of k sampled completions per prompt, saved as pairs.jsonl."""
    from accelerate import PartialState
    from datasets import Dataset

    path = ctx.stage_dir / "pairs.jsonl"
    # the main process samples and writes (unless an interrupted run left the file); the others read its file
    stats = on_main_process(PartialState(), "making DPO pairs", _write_pairs, path, stage, ctx, tokenizer, prompts)
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    if not rows:
        raise RlftError(f"{path}: no prompt had a positive reward margin of at least pairs.min_margin among its "
                        "samples; lower pairs.min_margin, raise pairs.k or pairs.temperature, or look at the rewards "
                        "with: rlft rewards check RECIPE")
    stats.setdefault("pairs/kept", len(rows))
    stats.setdefault("pairs/margin_mean", sum(r["margin"] for r in rows) / len(rows))
    return Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows]), stats


def _write_pairs(path, stage: dict, ctx, tokenizer, prompts) -> dict:
    if path.is_file():
        return {}
    # A whole copy of the policy on this process alone, before the trainer's (sharded under ZeRO-3) model exists; an
    # earlier stage's ZeRO-3 setting would make this load partition it with collectives the others never enter.
    compat.forget_deepspeed_config()
    model = models.load_causal_lm(ctx.model_source, ctx.dtype, stage["quantization"], ctx.trust_remote_code,
                                  common.attention(ctx))
    rows, stats = _rank(stage, ctx, model, tokenizer, prompts)
    del model
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text("".join(json.dumps(r) + "\n" for r in rows))
    os.replace(path.with_suffix(".tmp"), path)
    return stats


def _rank(stage: dict, ctx, model, tokenizer, prompts) -> tuple[list[dict], dict]:
    opts = {k: v for k, (_, v, _) in PAIRS_KEYS.items()} | (stage["pairs"] or {})
    k = opts["k"]
    funcs = rewards.build(stage, ctx)
    if not getattr(model, "is_quantized", False):  # bitsandbytes places quantized weights itself
        from accelerate import PartialState

        model.to(PartialState().device)
    torch.manual_seed(ctx.seed)
    groups = generation.sample(model, tokenizer, prompts["prompt"], k, opts["max_new_tokens"], opts["temperature"],
                            opts["batch_size"])
    repeat = lambda values: [v for v in values for _ in range(k)]  # noqa: E731  one entry per sampled completion
    columns = {c: repeat(prompts[c]) for c in prompts.column_names if c != "prompt"}
    flat = [c for group in groups for c in group]
    per_reward = rewards.call_all(funcs, repeat(prompts["prompt"]), flat, columns)
    total = rewards.weighted(per_reward, rewards.weights(stage))
    rows = []
    for i, prompt in enumerate(prompts["prompt"]):
        scored = [(total[i * k + j], flat[i * k + j]) for j in range(k) if total[i * k + j] is not None]
        if len(scored) < 2:
            continue
        (best, chosen), (worst, rejected) = max(scored, key=_score), min(scored, key=_score)
        if best - worst > 0 and best - worst >= opts["min_margin"]:
            rows.append({"prompt": prompt, "chosen": chosen, "rejected": rejected, "chosen_score": best,
                         "rejected_score": worst, "margin": best - worst})
    stats = {"pairs/kept": len(rows), "pairs/skipped": len(groups) - len(rows)}
    for func, values in zip(funcs, per_reward):
        present = [v for v in values if v is not None]
        if present:
            stats[f"rewards/{func.__name__}/mean"] = sum(present) / len(present)
    return rows, stats


def _score(item) -> float:
    return item[0]
