"""How rlft was launched, as accelerate describes it: read from the environment `accelerate launch` sets
(`launch_from_env`, for validating distributed combinations in `rlft.stages.common`) or from an accelerate config file
(`launch_from_config`, for `rlft plan`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from rlft.errors import RlftError
from rlft.hardware import cpu_has_bf16


@dataclass
class Launch:
    """The distributed setup a stage runs under, as accelerate describes it."""

    kind: str = "single"  # single | ddp | zero1 | zero2 | zero3 | fsdp
    processes: int = 1
    on_gpu: bool = True
    offload_optimizer: bool = False
    offload_params: bool = False
    fsdp_activation_checkpointing: bool = False
    source: str = "default"  # where this was read: environment, a config file, default

    @property
    def shards_weights(self) -> bool:
        return self.kind in ("zero3", "fsdp")

    @property
    def is_deepspeed(self) -> bool:
        return self.kind.startswith("zero")


def _flag(value) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes")


def launch_from_env(env=None) -> Launch:
    """Read the variables `accelerate launch` sets (accelerate/utils/launch.py) and torchrun's WORLD_SIZE."""
    env = os.environ if env is None else env
    processes = int(env.get("WORLD_SIZE", "1") or 1)
    import torch

    on_gpu = torch.cuda.is_available() and not _flag(env.get("ACCELERATE_USE_CPU", "false"))
    launch = Launch(kind="ddp" if processes > 1 else "single", processes=processes, on_gpu=on_gpu,
                    source="environment")
    if _flag(env.get("ACCELERATE_USE_DEEPSPEED", "false")):
        stage = env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") or _zero_stage_from_file(
            env.get("ACCELERATE_DEEPSPEED_CONFIG_FILE"))
        return replace(launch, kind=f"zero{stage or 2}",
                       offload_optimizer=env.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "none") != "none",
                       offload_params=env.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE", "none") != "none")
    if _flag(env.get("ACCELERATE_USE_FSDP", "false")):
        return replace(launch, kind="fsdp", offload_params=_flag(env.get("FSDP_OFFLOAD_PARAMS", "false")),
                       offload_optimizer=_flag(env.get("FSDP_OFFLOAD_PARAMS", "false")),
                       fsdp_activation_checkpointing=_flag(env.get("FSDP_ACTIVATION_CHECKPOINTING", "false")))
    return launch


def _zero_stage_from_file(path: str | None) -> int | None:
    if not path or not Path(path).is_file():
        return None
    return json.loads(Path(path).read_text()).get("zero_optimization", {}).get("stage")


def launch_from_config(path: str | Path, gpus: int | None = None) -> Launch:
    """An accelerate config file (configs/*.yaml) -> Launch; `gpus` overrides its num_processes."""
    from accelerate.commands.config.config_args import load_config_from_file

    path = Path(path)
    if not path.is_file():
        raise RlftError(f"{path}: accelerate config not found; the profiles are in configs/ "
                        f"({', '.join(p.name for p in sorted(Path('configs').glob('*.yaml'))) or 'none here'})")
    config = load_config_from_file(str(path))
    distributed = str(config.distributed_type).split(".")[-1]
    kind = {"NO": "single", "MULTI_GPU": "ddp", "MULTI_CPU": "ddp", "DEEPSPEED": "zero", "FSDP": "fsdp"}.get(
        distributed, "single")
    launch = Launch(kind=kind, processes=gpus or config.num_processes or 1,
                    on_gpu=not config.use_cpu and distributed != "MULTI_CPU", source=str(path))
    if kind == "zero":
        ds = config.deepspeed_config or {}
        stage = ds.get("zero_stage") or _zero_stage_from_file(ds.get("deepspeed_config_file"))
        launch = replace(launch, kind=f"zero{stage or 2}",
                         offload_optimizer=ds.get("offload_optimizer_device", "none") not in ("none", None),
                         offload_params=ds.get("offload_param_device", "none") not in ("none", None))
    elif kind == "fsdp":
        fsdp = config.fsdp_config or {}
        launch = replace(launch, offload_params=_flag(fsdp.get("fsdp_offload_params", False)),
                         offload_optimizer=_flag(fsdp.get("fsdp_offload_params", False)),
                         fsdp_activation_checkpointing=_flag(fsdp.get("fsdp_activation_checkpointing", False)))
    if launch.processes > 1 and launch.kind == "single":
        launch = replace(launch, kind="ddp")
    return launch


def resolve_dtype(name: str, launch: Launch) -> str:
    """The recipe's dtype under this launch: `auto` is bf16 on a GPU and on a CPU with native bf16, else fp32."""
    if name != "auto":
        return name
    return "bfloat16" if launch.on_gpu or cpu_has_bf16() else "float32"


def on_main_process(state, what: str, func, *args):
    """Run `func(*args)` on the main process only and return its result on every process.

    Work done by one process (a LoRA merge, sampling DPO pairs, the eval) is followed by the others waiting for it. If
    it fails, the main process's error must reach them too, or they wait at the next barrier for a process that has
    gone (forever with NCCL). The outcome is broadcast, and every process raises: the main one its own error, the
    others an error that names `what` and repeats the message (an RlftError stays one, so every rank exits 2).
    """
    result, error = None, None
    if state.is_main_process:
        try:
            result = func(*args)
        except Exception as e:  # noqa: BLE001  re-raised below, after the others have heard of it
            error = e
    if state.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        outcome = [(result, None if error is None else (isinstance(error, RlftError), _first_line(error)))]
        broadcast_object_list(outcome, from_process=0)
        result, failed = outcome[0]
        if failed is not None and error is None:
            user, message = failed
            raise (RlftError if user else RuntimeError)(f"{what} failed on the main process: {message}")
    if error is not None:
        raise error
    return result


def _first_line(error: Exception) -> str:
    return (str(error).strip() or type(error).__name__).splitlines()[0]


GiB = 1024 ** 3
# the largest memory one process can plan for: far above any GPU, above the RAM of large CPU servers
MAX_DEVICE_MEMORY = 64 * 1024 ** 4


def parse_size(text: str) -> float:
    """`--gpu-mem`: '80GB', '80GiB', '24G', '80' (GiB) -> bytes. GB is read as GiB, as GPU spec sheets round them
    alike."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(gib|gb|g|mib|mb|m|tib|tb|t)?\s*", str(text).lower())
    if not match:
        raise RlftError(f"--gpu-mem {text!r}: give a size like 80GB, 24GB or 40GiB")
    unit = (match.group(2) or "g")[0]
    size = float(match.group(1)) * {"m": 1024 ** 2, "g": GiB, "t": 1024 ** 4}[unit]
    if size < 64 * 1024 ** 2:
        raise RlftError(f"--gpu-mem {text!r}: too small to hold any model; give the memory of one device, e.g. 24GB")
    if size > MAX_DEVICE_MEMORY:
        raise RlftError(f"--gpu-mem {text!r}: more than {MAX_DEVICE_MEMORY // 1024 ** 4} TiB per device is no real "
                        "device; give the memory of one GPU (e.g. 80GB), or of the machine with --cpu")
    return size
