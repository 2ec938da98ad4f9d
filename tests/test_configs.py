"""Every accelerate profile in configs/ loads with accelerate, says how to launch it, and maps to the launch rlft
plans and validates for."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlft.launch import launch_from_config, launch_from_env

ROOT = Path(__file__).resolve().parent.parent
# Every profile shipped in configs/; adding one means adding it here, so none goes unchecked.
PROFILES = {
    "single_gpu.yaml": ("NO", "single", 1),
    "multi_gpu.yaml": ("MULTI_GPU", "ddp", 8),
    "zero2.yaml": ("DEEPSPEED", "zero2", 8),
    "zero3.yaml": ("DEEPSPEED", "zero3", 8),
    "fsdp.yaml": ("FSDP", "fsdp", 8),
    "cpu_multi.yaml": ("MULTI_GPU", "ddp", 2),
}


def test_every_profile_loads_with_accelerate():
    from accelerate.commands.config.config_args import load_config_from_file

    found = sorted((ROOT / "configs").rglob("*"))
    names = {p.name for p in found if p.is_file()}
    assert names == set(PROFILES), f"configs/ holds {sorted(names)}; update PROFILES"
    checked = 0
    for path in found:
        config = load_config_from_file(str(path))
        distributed, kind, processes = PROFILES[path.name]
        assert str(config.distributed_type).split(".")[-1] == distributed, path.name
        assert config.num_processes == processes, path.name
        # precision is the recipe's dtype; a profile must not force one (bf16 would break fp32 GPUs and CPUs)
        assert config.mixed_precision == "no", path.name
        launch = launch_from_config(path)
        assert (launch.kind, launch.processes) == (kind, processes), path.name
        header = path.read_text().split("\ncompute_environment")[0]
        assert f"--config_file configs/{path.name}" in header, f"{path.name}: header must give the launch command"
        checked += 1
    assert checked == len(PROFILES) == 6


def test_cpu_multi_starts_real_processes():
    """MULTI_CPU (like --cpu --num_processes 2) makes `accelerate launch` start one process; MULTI_GPU starts torchrun,
    and rlft/run.py turns the ranks into gloo CPU processes on a machine without GPUs."""
    raw = yaml.safe_load((ROOT / "configs" / "cpu_multi.yaml").read_text())
    assert raw["distributed_type"] == "MULTI_GPU" and raw["num_processes"] == 2 and raw["use_cpu"] is False
    assert raw["main_process_port"] == 0  # a free port: CI and developers share machines


def test_sharded_profiles_keep_hf_layout_and_checkpointing_compatible():
    zero3 = yaml.safe_load((ROOT / "configs" / "zero3.yaml").read_text())["deepspeed_config"]
    assert zero3["zero3_save_16bit_model"] is True  # stage outputs are plain 16-bit HF folders
    fsdp = yaml.safe_load((ROOT / "configs" / "fsdp.yaml").read_text())["fsdp_config"]
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    assert fsdp["fsdp_activation_checkpointing"] is False  # rlft checkpoints through args; both at once is refused


@pytest.mark.parametrize("env, kind", [
    ({}, "single"),
    ({"WORLD_SIZE": "4"}, "ddp"),
    ({"WORLD_SIZE": "8", "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}, "zero3"),
    ({"WORLD_SIZE": "8", "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}, "zero2"),
    ({"WORLD_SIZE": "8", "ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2"}, "fsdp"),
])
def test_launch_from_the_environment_accelerate_sets(env, kind):
    launch = launch_from_env(env)
    assert launch.kind == kind and launch.processes == int(env.get("WORLD_SIZE", 1))


def test_zero_stage_from_a_deepspeed_json(tmp_path):
    (tmp_path / "ds.json").write_text('{"zero_optimization": {"stage": 3}}')
    env = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_CONFIG_FILE": str(tmp_path / "ds.json")}
    assert launch_from_env(env).kind == "zero3"
