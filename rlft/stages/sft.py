"""Supervised fine-tuning through TRL's `SFTTrainer`, full-weight, LoRA or QLoRA.

How it differs from calling `SFTTrainer` yourself:
  1. `messages` data is split into prompt + last assistant turn, so the loss is on the reply only (TRL's
     completion-only loss); instruction data is rendered through its template into prompt/completion.
  2. On CPU it trains in fp32 without gradient checkpointing (TRL defaults to bf16 + checkpointing, ~12x slower
     on CPUs without native bf16).
  3. `special_tokens` are added to the tokenizer, the embeddings grown, and with LoRA only the new rows are
     trained (PEFT's `trainable_token_indices`) and saved with the adapter.
  4. The template used for prompts is saved with the output, so `rlft chat` formats prompts the same way.
  5. Batches group rows of similar length (`train_sampling_strategy: group_by_length`, transformers'
     LengthGroupedSampler) unless the recipe packs or picks a sampler: less padding to compute. And on a CPU, with
     `max_length` <= 512, the model runs eager attention (models.attention). benchmarks/sft_vs_trl.py measures both.
"""

from __future__ import annotations

from trl import SFTConfig, SFTTrainer

from rlft import compat, data, models
from rlft.stages import common

CONFIG_CLASS = SFTConfig
POLICY = True  # the next stage starts from this output
GENERATES = False
FORMATS = ("messages", "prompt_completion", "instruction", "text")
STAGE_KEYS = {
    "data": (dict, None, "training data; see the data keys in the README"),
    "lora": common.LORA_KEY,
    "quantization": common.QUANT_KEY,
    "special_tokens": (list, [], "tokens to add to the vocabulary, e.g. ['<|polite|>']"),
}


def with_defaults(stage: dict) -> dict:
    """The stage with rlft's SFT defaults under its `args:` (the recipe's own values win): batches of rows of similar
    length, so less padding. A packed stage has no padding to save."""
    args = stage.get("args") or {}
    if args.get("packing") or "train_sampling_strategy" in args:
        return stage
    return {**stage, "args": {"train_sampling_strategy": "group_by_length", **args}}


def check(stage: dict, path: str, ctx) -> None:
    if stage.get("data") is None:
        ctx.add(f"{path}.data", "missing; e.g. data: {train: data/train.jsonl, eval_split: 0.1}")
    else:
        data.check(ctx, stage["data"], f"{path}.data", FORMATS)
    for i, token in enumerate(stage.get("special_tokens") or []):
        if not isinstance(token, str) or not token.strip():
            ctx.add(f"{path}.special_tokens[{i}]", f"expected a non-empty string, got {token!r}")
    common.check_lora(ctx, stage, path)
    merged = with_defaults(stage)
    common.check_args(ctx, CONFIG_CLASS, merged, path)
    # the check converted numbers written as text in the merged copy; the run reads `stage`
    stage["args"] = {k: merged["args"][k] for k in stage.get("args") or {}}


def group_size(stage: dict) -> int:
    """One target per prompt: nothing is sampled."""
    return 1


def run(stage: dict, ctx: common.StageContext) -> dict:
    tokenizer = models.load_tokenizer(ctx.model_source, ctx.trust_remote_code)
    train, evaluation, fmt = data.load(stage["data"], ctx.recipe_dir, FORMATS, ctx.seed)
    if fmt == "instruction":
        ctx.template = {"kind": "instruction", "template": stage["data"].get("template")}
    elif fmt == "text":
        ctx.template = {"kind": "text"}
    # The config first: under ZeRO-3 building it arms DeepSpeed's sharded loading, so no rank holds the whole model.
    args = common.trainer_args(CONFIG_CLASS, with_defaults(stage), ctx)
    model = models.load_causal_lm(ctx.model_source, ctx.dtype, stage["quantization"], ctx.trust_remote_code,
                                  common.attention(ctx, args.max_length))
    new_ids = models.add_special_tokens(tokenizer, model, stage["special_tokens"])
    trainer = common.build_trainer(SFTTrainer, stage, ctx, model=model, args=args, tokenizer=tokenizer, train=train,
                                   evaluation=evaluation, new_token_ids=new_ids)
    compat.fix_tied_token_head(trainer.model)
    if ctx.dry_run:
        return {"train_rows": len(train), "eval_rows": len(evaluation) if evaluation is not None else 0}
    metrics = common.train(trainer, ctx)
    tokens = _logged_tokens(trainer)
    if tokens and metrics.get("train_runtime"):
        metrics["train_tokens_per_second"] = tokens / metrics["train_runtime"]
    common.save_stage(trainer, tokenizer, ctx, {"special_tokens": stage["special_tokens"]})
    return metrics


def _logged_tokens(trainer) -> float | None:
    counts = [log["num_tokens"] for log in trainer.state.log_history if "num_tokens" in log]
    return counts[-1] if counts else None
