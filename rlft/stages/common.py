"""What every stage module shares: the context a stage runs in, trainer defaults, LoRA, saving.

Each helper here has at least three real callers among the stage modules (see STYLE.md).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rlft import models
from rlft.recipe import DTYPES, check_config

LORA_KEY = (dict, None, "-> peft.LoraConfig, e.g. {r: 16, lora_alpha: 32, target_modules: all-linear}")
QUANT_KEY = (dict, None, "-> transformers.BitsAndBytesConfig, e.g. {load_in_4bit: true} (QLoRA; needs bitsandbytes)")
STAGE_INFO = "rlft_stage.json"


@dataclass
class StageContext:
    """Everything a stage's `run` needs besides its own recipe section."""

    index: int
    stage_dir: Path
    model_source: str  # folder or hub id of the policy this stage starts from
    recipe: dict  # the whole resolved recipe (model, seed, dtype, trust_remote_code, ...)
    recipe_dir: Path
    dtype: torch.dtype
    tensorboard_dir: Path
    callbacks: list = field(default_factory=list)
    resume: bool = False
    dry_run: bool = False
    template: dict = field(default_factory=lambda: {"kind": "chat"})  # how prompts were rendered upstream
    outputs: dict = field(default_factory=dict)  # stage name -> output folder, for the stages run before this one

    @property
    def trust_remote_code(self) -> bool:
        return self.recipe["trust_remote_code"]

    @property
    def seed(self) -> int:
        return self.recipe["seed"]


def default_args(dtype: torch.dtype, seed: int) -> dict:
    """rlft's defaults under the stage's `args:`; the recipe's own values win."""
    return {
        **models.precision_args(dtype),
        "seed": seed,
        "logging_steps": 1,
        "report_to": ["tensorboard"],
        "save_total_limit": 2,
    }


def check_args(ctx, config_class, stage: dict, path: str):
    """Validate `args:` by building the TRL config (rlft defaults underneath), errors at `path.args`."""
    dtype = ctx.recipe.get("dtype") if ctx.recipe.get("dtype") in DTYPES else "auto"  # a bad dtype is reported apart
    args = {**default_args(models.pick_dtype(dtype), ctx.recipe.get("seed", 42)),
            **stage.get("args", {})}
    return check_config(ctx.checker, config_class, args, f"{path}.args", output_dir=ctx.scratch_dir())


def check_lora(ctx, stage: dict, path: str) -> None:
    from peft import LoraConfig

    if stage.get("lora") is not None:
        check_config(ctx.checker, LoraConfig, stage["lora"], f"{path}.lora", task_type="CAUSAL_LM")
    if stage.get("quantization") is not None:
        if stage.get("lora") is None:
            ctx.add(f"{path}.quantization", "a quantized model can only be trained through an adapter: add a lora: "
                    "block (QLoRA), or remove quantization")
        from transformers import BitsAndBytesConfig

        check_config(ctx.checker, BitsAndBytesConfig, stage["quantization"], f"{path}.quantization")
        try:
            models.require_bitsandbytes()
        except Exception as e:
            ctx.add(f"{path}.quantization", str(e))


def trainer_args(config_class, stage: dict, ctx: StageContext):
    """The stage's TRL config: rlft defaults, then the recipe's `args:`, then where to write."""
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(ctx.tensorboard_dir)  # read by transformers' TensorBoardCallback
    args = {**default_args(ctx.dtype, ctx.seed), **stage["args"]}
    return config_class(output_dir=str(ctx.stage_dir / "checkpoints"), **args)


def lora_config(stage: dict, new_token_ids: list[int]):
    """`lora:` -> LoraConfig; rows of newly added tokens are trained and saved with the adapter (PEFT's
    `trainable_token_indices`: only those rows, not the whole embedding matrix)."""
    if stage.get("lora") is None:
        return None
    from peft import LoraConfig

    lora = dict(stage["lora"])
    if new_token_ids and not ({"trainable_token_indices", "modules_to_save"} & set(lora)):
        lora["trainable_token_indices"] = list(new_token_ids)
    return LoraConfig(task_type="CAUSAL_LM", **lora)


def fix_tied_token_head(model) -> None:
    """TRL's fused LM head reads `lm_head.weight` and `lm_head.bias`. With tied embeddings PEFT wraps the head in a
    TrainableTokensWrapper whose `.weight` includes the new rows but which has no `.bias`; the head has none."""
    head = model.get_output_embeddings()
    if type(head).__name__ == "TrainableTokensWrapper" and not hasattr(head, "bias"):
        head.bias = None


def save_stage(trainer, tokenizer, ctx: StageContext, extra: dict | None = None) -> None:
    """Final weights (adapter or full) + tokenizer + chat template in HF/PEFT layout, and rlft's stage info."""
    trainer.save_model(str(ctx.stage_dir))
    model = trainer.accelerator.unwrap_model(trainer.model)
    if trainer.accelerator.is_main_process and getattr(getattr(model, "peft_config", {}).get("default"),
                                                       "trainable_token_indices", None):
        # PEFT saves the whole (resized) embedding matrices by default; the trained rows of the new tokens are in
        # the adapter already, so keep the adapter small.
        model.save_pretrained(str(ctx.stage_dir), save_embedding_layers=False)
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(ctx.stage_dir))
        info = {"base_model": ctx.model_source, "template": ctx.template, **(extra or {})}
        (ctx.stage_dir / STAGE_INFO).write_text(json.dumps(info, indent=2))


def train(trainer, ctx: StageContext) -> dict:
    """Train (resuming from the last checkpoint when asked) and evaluate; returns the final metrics."""
    result = trainer.train(resume_from_checkpoint=True if ctx.resume else None)
    metrics = {**result.metrics, "train_steps": trainer.state.global_step}
    if trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())
    return metrics
