"""`rlft plan`: how much memory each stage needs per device, before anything is launched.

    rlft plan recipes/polite_assistant.yaml --config configs/zero3.yaml --gpus 8 --gpu-mem 80GB

How the estimate is made, and what it leaves out:
  1. Parameters are counted exactly: the model is built from its config.json on PyTorch's meta device (no weights,
     no download). LoRA parameters are counted on the same modules PEFT would wrap.
  2. Bytes per parameter follow what the libraries allocate: plain/DDP full fine-tuning keeps weights, gradients
     and AdamW's two moments in the model dtype; DeepSpeed keeps fp32 master weights + moments (12 B) beside the
     16-bit weights and gradients (ZeRO paper, K = 12); FSDP2 upcasts trainable weights to fp32 (accelerate). LoRA
     adapters are fp32 (PEFT's autocast_adapter_dtype). NF4 is 0.5 B/param + one fp32 absmax per 64 weights.
  3. ZeRO-2 shards gradients and optimizer states over the processes, ZeRO-3 and FSDP also the weights, plus the
     layers gathered at a time. Offloaded states are not on the device.
  4. Activations: with gradient checkpointing one hidden state per layer and token plus one layer recomputed;
     without, every layer's saved tensors (SDPA attention: no seq x seq matrix). Logits: batch x tokens x vocab in
     the model dtype plus the fp32 log-softmax and its gradient.
  5. RL stages add the generation KV cache (per-device generation batch x (prompt + completion) tokens), a
     reference model when beta > 0 and there is no adapter to switch off, and reward models. Under ZeRO-3, TRL
     gathers all weights for generation (ds3_gather_for_generation, default on): the whole 16-bit model per GPU.
  6. Not counted: allocator fragmentation beyond a flat 5 %, CUDA context beyond a flat 0.75 GiB, temporary buffers
     of fused kernels, prompt lengths (256 tokens are assumed for RL prompts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from rlft import models
from rlft.errors import RlftError
from rlft.launch import GiB, Launch, launch_from_config, parse_size, resolve_dtype
from rlft.stages import STAGES, arg, common, load, online

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
NF4_BYTES = 0.5 + 4 / 64  # 4-bit weight + fp32 absmax per 64-weight block (bitsandbytes default, no double quant)
NF4_DOUBLE_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)  # double quantization: 8-bit absmax, fp32 per 256 of them
PROMPT_TOKENS = 256  # assumed prompt length of generating stages (TRL 1.16 does not truncate prompts)
CUDA_CONTEXT = 0.75 * GiB


# --- the model's shape -----------------------------------------------------------------------------------------------
@dataclass
class Shape:
    """What the estimate needs to know about a model, counted on the meta device."""

    name: str
    params: int
    linear: dict = field(default_factory=dict)  # module name -> (in_features, out_features), lm_head excluded
    layers: int = 0
    hidden: int = 0
    kv_hidden: int = 0
    intermediate: int = 0
    vocab: int = 0
    largest_layer: int = 0  # parameters of the biggest decoder layer (or embedding), gathered at once under sharding


def model_config(spec: str, recipe_dir: Path, override: str | None = None, trust_remote_code: bool = False):
    """The transformers config of a recipe's model, read from disk only: never downloads."""
    from transformers import AutoConfig

    if override:
        path = Path(override)
        if not path.exists():
            raise RlftError(f"--model-config {override}: no such file or folder")
        return AutoConfig.from_pretrained(str(path.parent if path.is_file() else path),
                                          trust_remote_code=trust_remote_code)
    source = models.resolve(spec, recipe_dir)
    try:
        return AutoConfig.from_pretrained(source, local_files_only=True, trust_remote_code=trust_remote_code)
    except OSError:
        raise RlftError(f"model {spec!r}: its config.json is not on this machine (not a local folder and not in the "
                        "Hugging Face cache), and rlft plan never downloads. Download only that file from the "
                        "model's hub page and pass it: rlft plan RECIPE --model-config path/to/config.json")


def shape_of(config, name: str = "") -> Shape:
    """Count parameters and linear layers by building the model on the meta device (exact, any architecture)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    head = model.get_output_embeddings()
    linear = {n: (m.in_features, m.out_features) for n, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and m is not head}
    blocks = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    layer_sizes = [sum(p.numel() for p in layer.parameters()) for layer in (blocks[0] if blocks else [])]
    embed = model.get_input_embeddings().weight.numel()
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return Shape(
        name=name or config.name_or_path or config.model_type,
        params=sum(p.numel() for p in model.parameters()),
        linear=linear, layers=text.num_hidden_layers, hidden=text.hidden_size,
        kv_hidden=getattr(text, "num_key_value_heads", heads) * head_dim,
        intermediate=getattr(text, "intermediate_size", 4 * text.hidden_size), vocab=text.vocab_size,
        largest_layer=max(layer_sizes + [embed]),
    )


def lora_params(shape: Shape, lora: dict) -> int:
    """Trainable LoRA parameters: r x (in + out) for every linear layer PEFT's `target_modules` selects."""
    r = lora.get("r", 8)
    targets = lora.get("target_modules")
    if targets is None:  # PEFT's default for Llama-like models
        targets = ["q_proj", "v_proj"]
    if targets == "all-linear":
        chosen = shape.linear.values()
    elif isinstance(targets, str):
        chosen = [v for n, v in shape.linear.items() if re.fullmatch(targets, n)]
    else:
        chosen = [v for n, v in shape.linear.items() if n.split(".")[-1] in set(targets)]
    return sum(r * (i + o) for i, o in chosen)


# --- the estimate ----------------------------------------------------------------------------------------------------
LINES = ("weights", "lora", "gradients", "optimizer", "activations", "logits", "ref+reward", "kv cache", "overhead")


def _arg(stage: dict, key: str, default):
    value = stage.get("args", {}).get(key)
    return default if value is None else value


def stage_memory(stage: dict, shape: Shape, launch: Launch, dtype: str, reward_shapes=()) -> dict:
    """Peak bytes per device of one stage, by line (see LINES); `reward_shapes`: models scoring RL samples."""
    w = DTYPE_BYTES[dtype]
    n = max(1, launch.processes)
    quant = stage.get("quantization") or {}
    lora = stage.get("lora")
    states = _model_states(shape, launch, w, quant, lora)
    generates = STAGES[stage["type"]].GENERATES
    if generates and launch.kind == "zero3" and _arg(stage, "ds3_gather_for_generation", True):
        # TRL gathers every weight onto each GPU to generate, on top of the shards it keeps
        states["weights"] += _model_states(shape, Launch(on_gpu=launch.on_gpu), w, quant, lora)["weights"]
    checkpointing = _arg(stage, "gradient_checkpointing", _arg(stage, "activation_checkpointing", launch.on_gpu)) \
        or launch.fsdp_activation_checkpointing
    b = arg(stage, "per_device_train_batch_size")
    extra = {"ref+reward": 0.0, "kv cache": 0.0}
    stype = stage["type"]
    if generates:
        stage = online.with_generation_batch(stage, STAGES[stype].CONFIG_CLASS, launch.on_gpu)
        completion = arg(stage, "max_completion_length") or arg(stage, "max_new_tokens")  # online DPO: max_new_tokens
        seq, scored = PROMPT_TOKENS + completion, completion
        generations = b * (arg(stage, "steps_per_generation") or arg(stage, "gradient_accumulation_steps"))
        extra["kv cache"] = generations * seq * shape.layers * 2 * shape.kv_hidden * w
        beta = arg(stage, "beta")
        beta = beta[0] if isinstance(beta, list) else beta  # online DPO: one beta per epoch
        if beta > 0 and lora is None:
            extra["ref+reward"] += shape.params * w / (n if launch.shards_weights else 1)
    else:
        seq = arg(stage, "max_length")
        scored = seq
        if stype in ("dpo", "reward_model"):
            b *= 2  # chosen and rejected in one forward pass
        if stype == "dpo" and lora is None and not _arg(stage, "precompute_ref_log_probs", False):
            extra["ref+reward"] += shape.params * w / (n if launch.shards_weights else 1)
    for reward in reward_shapes:
        extra["ref+reward"] += reward.params * w / (n if launch.shards_weights else 1)
    acts = _activations(shape, b, seq, w, checkpointing, lora)
    logits = 0.0 if stype == "reward_model" else b * scored * shape.vocab * (w + 8)
    lines = {**states, "activations": acts, "logits": logits, **extra}
    body = sum(lines.values())
    lines["overhead"] = (CUDA_CONTEXT + 0.05 * body) if launch.on_gpu else 0.05 * body
    return lines


def _model_states(shape: Shape, launch: Launch, w: int, quant: dict, lora: dict | None) -> dict:
    """Weights, LoRA adapters, gradients and optimizer states on one device."""
    n = max(1, launch.processes)
    p = shape.params
    if lora is not None:
        trainable = lora_params(shape, lora)
        linear = sum(i * o for i, o in shape.linear.values())
        if quant.get("load_in_4bit"):
            nf4 = NF4_DOUBLE_BYTES if quant.get("bnb_4bit_use_double_quant") else NF4_BYTES
            frozen = linear * nf4 + (p - linear) * w
        elif quant.get("load_in_8bit"):
            frozen = linear * 1 + (p - linear) * w
        else:
            frozen = p * w
        shard = n if launch.shards_weights else 1
        opt_shard = n if launch.kind != "single" and launch.kind != "ddp" else 1
        gathered = 2 * shape.largest_layer * w if launch.shards_weights else 0
        return {"weights": frozen / shard + gathered, "lora": 4 * trainable, "gradients": 4 * trainable,
                "optimizer": 0 if launch.offload_optimizer else 8 * trainable / opt_shard}
    if launch.is_deepspeed:  # 16-bit weights and gradients, fp32 master weights and moments (12 B)
        grad_shard = n if launch.kind in ("zero2", "zero3") else 1
        weights = p * w / n + 4 * shape.largest_layer * w / 2 if launch.kind == "zero3" else p * w
        return {"weights": 0 if launch.offload_params else weights, "lora": 0, "gradients": p * w / grad_shard,
                "optimizer": 0 if launch.offload_optimizer else 12 * p / n}
    if launch.kind == "fsdp":  # accelerate upcasts trainable weights to fp32; the gathered layers are 16-bit
        return {"weights": (0 if launch.offload_params else 4 * p / n) + 2 * shape.largest_layer * w, "lora": 0,
                "gradients": 4 * p / n, "optimizer": 0 if launch.offload_optimizer else 8 * p / n}
    buckets = p * w if launch.kind == "ddp" and n > 1 else 0  # DDP's gradient buckets
    return {"weights": p * w, "lora": 0, "gradients": p * w + buckets, "optimizer": 2 * p * w}


def _activations(shape: Shape, b: int, seq: int, w: int, checkpointing: bool, lora: dict | None) -> float:
    """Saved activations of the decoder layers for one micro-batch (attention through SDPA)."""
    h, i, kv = shape.hidden, shape.intermediate, shape.kv_hidden
    per_token_layer = w * (6 * h + 2 * kv + 4 * i)
    if lora is not None and lora.get("lora_dropout", 0) > 0:
        per_token_layer += w * (6 * h + i)  # dropout keeps its own copy of each adapted layer's input
    tokens = b * seq
    if checkpointing:
        return tokens * (shape.layers * h * w + per_token_layer)
    return tokens * shape.layers * per_token_layer


# --- the command -----------------------------------------------------------------------------------------------------
def plan(recipe_path: str, overrides=(), gpus: int | None = None, gpu_mem: str = "80GB", config: str | None = None,
         model_config_path: str | None = None, cpu: bool = False) -> dict:
    """Validate the recipe for the given launch and estimate every stage; returns the rows and the header facts."""
    launch = launch_from_config(config, gpus) if config else Launch(processes=gpus or 1,
                                                                   kind="ddp" if (gpus or 1) > 1 else "single")
    if cpu:
        launch = replace(launch, on_gpu=False)
    recipe = load(recipe_path, overrides, hub_lookup=False)  # a hub model need not be here: see model_config
    common.raise_distributed_problems(recipe, launch, str(recipe_path))
    recipe_dir = Path(recipe_path).resolve().parent
    config_obj = model_config(recipe["model"], recipe_dir, model_config_path, recipe["trust_remote_code"])
    shape = shape_of(config_obj, name=recipe["model"])
    dtype = resolve_dtype(recipe["dtype"], launch)
    limit = parse_size(gpu_mem)
    rows = []
    for stage in recipe["stages"]:
        rewards = [shape for entry in stage.get("rewards") or [] if entry.get("model")]
        lines = stage_memory(stage, shape, launch, dtype, rewards)
        total = sum(lines.values())
        fits = "no" if total > limit else "tight" if total > 0.9 * limit else "yes"
        rows.append({"stage": stage["name"], "type": stage["type"], "method": _method(stage), "lines": lines,
                     "total": total, "fits": fits})
    return {"recipe": str(recipe_path), "model": shape, "launch": launch, "dtype": dtype, "limit": limit, "rows": rows}


def _method(stage: dict) -> str:
    quant = stage.get("quantization") or {}
    if stage.get("lora") is None:
        return "full"
    bits = "4-bit " if quant.get("load_in_4bit") else "8-bit " if quant.get("load_in_8bit") else ""
    return f"{'Q' if bits else ''}LoRA r={stage['lora'].get('r', 8)}" + (f" ({bits.strip()})" if bits else "")


def print_plan(result: dict) -> None:
    """The plan as a rich table: one row per stage, GiB per line, the peak per device and whether it fits."""
    from rich.console import Console
    from rich.table import Table

    shape, launch = result["model"], result["launch"]
    where = "GPU" if launch.on_gpu else "CPU process"
    title = (f"{result['recipe']}: {shape.name} ({shape.params / 1e9:.2f}B params, {result['dtype']}) - "
             f"{launch.kind} x {launch.processes} {where}{'s' if launch.processes > 1 else ''}"
             f" ({launch.source}), {result['limit'] / GiB:.0f} GiB each")
    table = Table(title=title, title_justify="left")
    for column in ("stage", "type", "method", *LINES, "peak/device", "fits"):
        table.add_column(column, justify="left" if column in ("stage", "type", "method") else "right")
    for row in result["rows"]:
        cells = [f"{row['lines'][k] / GiB:.2f}" if row["lines"][k] else "-" for k in LINES]
        fits = {"yes": "[green]yes[/]", "tight": "[yellow]tight[/]", "no": "[red]no[/]"}[row["fits"]]
        table.add_row(row["stage"], row["type"], row["method"], *cells, f"[bold]{row['total'] / GiB:.2f}[/]", fits)
    console = Console(width=max(160, Console().width))
    console.print(table)
    console.print("GiB per device; tight = over 90% of it. Error against measured and published peaks: "
                  f"benchmarks/plan_vs_measured.py. RL prompts assumed <= {PROMPT_TOKENS} tokens.")
