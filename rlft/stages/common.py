"""What every stage module shares: the context a stage runs in, trainer defaults, LoRA, saving.

Each helper here has at least three real callers among the stage modules (see STYLE.md).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rlft import compat, models, profiling, speed
from rlft.errors import RlftError
from rlft.launch import launch_from_env, resolve_dtype
from rlft.recipe import DTYPES, Checker, check_config
from rlft.redaction import redact
from rlft.runfolder import STAGE_INFO, TRAINER_CONFIG, checkpoints_dir, write_atomic

LORA_KEY = (dict, None, "-> peft.LoraConfig, e.g. {r: 16, lora_alpha: 32, target_modules: all-linear}")
QUANT_KEY = (dict, None, "-> transformers.BitsAndBytesConfig, e.g. {load_in_4bit: true} (QLoRA; needs bitsandbytes)")


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
    resume: Path | None = None  # the last complete checkpoint of an interrupted run of this stage
    run_dir: Path | None = None  # the run folder (stage_dir is inside it)
    dry_run: bool = False
    template: dict = field(default_factory=lambda: {"kind": "chat"})  # how prompts were rendered upstream
    outputs: dict = field(default_factory=dict)  # stage name -> output folder, for the stages run before this one
    profile_path: Path | None = None  # `rlft run --profile`: where train() writes the stage's time/memory profile

    @property
    def trust_remote_code(self) -> bool:
        return self.recipe["trust_remote_code"]

    @property
    def seed(self) -> int:
        return self.recipe["seed"]


def attention(ctx: StageContext, max_length: int | None = None) -> str | None:
    """The attention kernel for the stage's model: the recipe's `attn_implementation`; under `auto`, eager on a CPU
    for stages that pass their sequence bound (`max_length`), else transformers' default (models.attention)."""
    return models.attention(ctx.recipe.get("attn_implementation"), max_length)


def arg(stage: dict, key: str, config_class, defaults: dict | None = None):
    """`args.<key>` as the trainer will see it: the recipe's value, else the stage's own `defaults`, else the default
    of that field in its TRL config class (None when the class has no such field)."""
    value = (stage.get("args") or {}).get(key)
    if value is not None:
        return value
    if defaults and key in defaults:
        return defaults[key]
    found = {f.name: f for f in dataclasses.fields(config_class)}.get(key)
    if found is None:
        return None
    if found.default is not dataclasses.MISSING:
        return found.default
    return None if found.default_factory is dataclasses.MISSING else found.default_factory()


def default_args(dtype: torch.dtype, seed: int, autocast: bool = False) -> dict:
    """rlft's defaults under the stage's `args:`; the recipe's own values win. `autocast`: see models.cpu_autocast."""
    return {
        **models.precision_args(dtype, autocast),
        "seed": seed,
        "logging_steps": 1,
        "report_to": ["tensorboard"],
        "save_total_limit": 2,
    }


def check_args(ctx, config_class, stage: dict, path: str):
    """Validate `args:` by building the TRL config (rlft defaults underneath), errors at `path.args`."""
    check_distributed(ctx, stage, path)
    dtype = ctx.recipe.get("dtype") if ctx.recipe.get("dtype") in DTYPES else "auto"  # a bad dtype is reported apart
    seed = ctx.recipe.get("seed") if isinstance(ctx.recipe.get("seed"), int) else 42
    args = stage.get("args")
    if args is None:
        args = stage["args"] = {}
    return check_config(ctx.checker, config_class, args, f"{path}.args",
                        defaults=_without_aliased(default_args(models.pick_dtype(dtype), seed, models.cpu_autocast(dtype)), args),
                        output_dir=ctx.scratch_dir())


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


# Settings that belong to the launch (an accelerate config in configs/), never to a recipe.
DISTRIBUTED_ARGS = ("deepspeed", "fsdp", "fsdp_config", "ddp_backend")


def check_distributed(ctx, stage: dict, path: str) -> None:
    """Add the problems of this stage under the launch accelerate set up (read from its environment variables)."""
    launch = launch_from_env()
    for sub, message in distributed_problems(stage, ctx.recipe, launch):
        ctx.add(f"{path}.{sub}", message)
    for message in launch_problems(launch):
        if f"launch: {message}" not in ctx.checker.problems:
            ctx.add("launch", message)


def raise_distributed_problems(recipe: dict, launch, source: str) -> None:
    """Check every stage of a resolved recipe against a launch (`rlft plan --config`); raises RecipeError."""
    checker = Checker(source)
    for message in launch_problems(launch):
        checker.add("launch", message)
    for i, stage in enumerate(recipe["stages"]):
        for sub, message in distributed_problems(stage, recipe, launch):
            checker.add(f"stages[{i}].{sub}", message)
    checker.raise_if_any()


def distributed_problems(stage: dict, recipe: dict, launch) -> list[tuple[str, str]]:
    """(sub-path, message) for each setting of this stage that the launch's libraries refuse."""
    found, args, quant = [], stage.get("args") or {}, stage.get("quantization") or {}
    for key in DISTRIBUTED_ARGS:
        if key in args:
            found.append((f"args.{key}", "distributed settings live in the accelerate config, not in the recipe: "
                          "remove it and pick a profile at launch, e.g. accelerate launch --config_file "
                          "configs/zero3.yaml rlft/run.py RECIPE"))
    what = "DeepSpeed ZeRO-3" if launch.is_deepspeed else "FSDP"
    if launch.shards_weights and quant.get("load_in_8bit"):
        found.append(("quantization.load_in_8bit", f"8-bit weights cannot be sharded by {what} (bitsandbytes keeps "
                      "them as int8 tensors). Use load_in_4bit: true with bnb_4bit_quant_storage: bfloat16, or launch "
                      "with configs/zero2.yaml or configs/multi_gpu.yaml"))
    elif launch.shards_weights and quant.get("load_in_4bit"):
        compute = _dtype_name(quant.get("bnb_4bit_compute_dtype") or resolve_dtype(recipe.get("dtype", "auto"), launch))
        storage = _dtype_name(quant.get("bnb_4bit_quant_storage", "uint8"))
        if storage != compute:
            found.append(("quantization.bnb_4bit_quant_storage", f"is {storage}, but {what} shards only floating-point "
                          f"weights of the compute dtype; set bnb_4bit_quant_storage: {compute} (QLoRA with "
                          f"{what}, as in the bitsandbytes FSDP-QLoRA and PEFT DeepSpeed guides)"))
    checkpointing = args.get("gradient_checkpointing", args.get("activation_checkpointing", launch.on_gpu))
    if launch.kind == "fsdp" and launch.fsdp_activation_checkpointing and checkpointing:
        found.append(("args.gradient_checkpointing", "the accelerate config turns on fsdp_activation_checkpointing "
                      "and the stage uses gradient checkpointing (rlft's default on GPUs); transformers refuses both. "
                      "Set fsdp_activation_checkpointing: false in the config (configs/fsdp.yaml does), or "
                      "gradient_checkpointing: false here"))
    if launch.kind in ("zero1", "zero2", "zero3", "fsdp") and args.get("save_only_model") \
            and args.get("load_best_model_at_end"):
        found.append(("args.save_only_model", "with DeepSpeed or FSDP transformers cannot combine save_only_model with "
                      "load_best_model_at_end (reloading the best checkpoint needs its optimizer state); drop one"))
    found += speed.vllm_problems(stage, launch)
    return found


def launch_problems(launch) -> list[str]:
    """Problems of the launch this process runs under, whatever the recipe (not of a profile planned for elsewhere)."""
    found = []
    if launch.source != "environment":
        return found
    if launch.is_deepspeed and importlib.util.find_spec("deepspeed") is None:
        found.append("the accelerate config uses DeepSpeed, which is not installed: pip install 'rlft[deepspeed]'")
    if launch.is_deepspeed and launch.source == "environment" and not launch.on_gpu:
        found.append("DeepSpeed ZeRO under the HF Trainer needs GPUs; on a machine without GPUs launch with "
                     "accelerate launch --config_file configs/cpu_multi.yaml")
    return found


def _dtype_name(value) -> str:
    return str(value).replace("torch.", "")


def trainer_args(config_class, stage: dict, ctx: StageContext):
    """The stage's TRL config: rlft defaults, then the recipe's `args:`, then where to write."""
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(ctx.tensorboard_dir)  # read by transformers' TensorBoardCallback
    defaults = default_args(ctx.dtype, ctx.seed, models.cpu_autocast(ctx.recipe["dtype"]))
    args = {**_without_aliased(defaults, stage["args"]), **stage["args"]}
    return config_class(output_dir=str(checkpoints_dir(ctx.stage_dir)), **args)


# transformers 5 renamed these; a recipe may still use the old name, which must then win over rlft's default
ALIASES = {"activation_checkpointing": "gradient_checkpointing",
           "activation_checkpointing_kwargs": "gradient_checkpointing_kwargs"}


def _without_aliased(defaults: dict, args: dict) -> dict:
    """rlft's defaults minus those the recipe sets under their deprecated name."""
    return {k: v for k, v in defaults.items() if ALIASES.get(k) not in args}


def build_trainer(trainer_class, stage: dict, ctx: StageContext, *, model, args, tokenizer, train, evaluation,
                  new_token_ids: list[int] = (), callbacks: list = (), **extra):
    """The stage's TRL trainer with what every stage passes: model, args, data, tokenizer, the stage's LoRA (when it
    takes `lora:`), the run folder's callbacks after the stage's own `callbacks`, and any `extra` keyword.

    TRL's trainers check combinations of settings when they are built and raise ValueError (e.g. SFT's `padding_free`
    with `max_length` but without packing): a mistake in the recipe, reported as one, naming the stage, instead of a
    traceback. Nothing has been written yet, so the rerun starts clean."""
    if "lora" in stage:
        extra["peft_config"] = lora_config(stage, list(new_token_ids))
    compat.install_cpu_lm_head()  # on a CPU: TRL's fused LM head scores only the labelled positions, in one GEMM
    try:
        return trainer_class(model=model, args=args, train_dataset=train, eval_dataset=evaluation,
                             processing_class=tokenizer, callbacks=[*callbacks, *ctx.callbacks], **extra)
    except ValueError as e:
        raise RlftError(f"stages[{ctx.index}] ({stage['name']}): TRL's {trainer_class.__name__} refused the stage's "
                        f"settings: {e}\nChange the stage's args: (or lora:, data:) as it says and run again.") from e


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


def save_stage(trainer, tokenizer, ctx: StageContext, extra: dict | None = None) -> None:
    """Final weights (adapter or full) + tokenizer + chat template in HF/PEFT layout, and rlft's stage info."""
    trainer.save_model(str(ctx.stage_dir))
    model = trainer.accelerator.unwrap_model(trainer.model)
    if getattr(getattr(model, "peft_config", {}).get("default"), "trainable_token_indices", None):
        # PEFT saves the whole (resized) embedding matrices by default; the trained rows of the new tokens are in
        # the adapter already, so keep the adapter small. Under ZeRO-3/FSDP each rank holds a shard of the weights:
        # gather them on every rank (a collective, as Trainer.save_model does), then the main process writes.
        sharded = trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled
        state_dict = trainer.accelerator.get_state_dict(trainer.model_wrapped) if sharded else None
        if trainer.accelerator.is_main_process:
            model.save_pretrained(str(ctx.stage_dir), state_dict=state_dict, save_embedding_layers=False)
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(str(ctx.stage_dir))
        info = {"base_model": ctx.model_source, "template": ctx.template, **(extra or {})}
        base = Path(ctx.model_source)
        if ctx.run_dir is not None and base.is_absolute() and base.is_relative_to(ctx.run_dir.absolute()):
            # the merged previous stage: found through this path wherever the run folder is moved (stage_models.adapter_base)
            info["base_model_relative"] = os.path.relpath(base, ctx.stage_dir.absolute())
        write_atomic(ctx.stage_dir / STAGE_INFO, json.dumps(info, indent=2))
        write_atomic(ctx.stage_dir / TRAINER_CONFIG, json.dumps(resolved_config(trainer, model), indent=2, default=str))


def resolved_config(trainer, model) -> dict:
    """What the stage ran with, for the run folder: the TRL config with rlft's defaults and the recipe's `args:`
    resolved (TRL's `training_args.bin` beside the checkpoints is a pickle), and the attention kernel of the model.
    Secrets are redacted (TrainingArguments.to_dict already masks `*_token` fields; rlft.redaction the rest)."""
    return {"config_class": type(trainer.args).__name__, "trainer_class": type(trainer).__name__,
            "attn_implementation": getattr(getattr(model, "config", None), "_attn_implementation", None),
            "args": redact(trainer.args.to_dict())}


def train(trainer, ctx: StageContext) -> dict:
    """Train (resuming from the last checkpoint when asked) and evaluate; returns the final metrics."""
    profiler = profiling.attach(trainer) if ctx.profile_path is not None else None
    result = trainer.train(resume_from_checkpoint=str(ctx.resume) if ctx.resume else None)
    if profiler is not None and trainer.accelerator.is_main_process:
        profiling.write(profiler, ctx.profile_path)
    metrics = {**result.metrics, "train_steps": trainer.state.global_step}
    if trainer.eval_dataset is not None:
        metrics.update(trainer.evaluate())
    return metrics
