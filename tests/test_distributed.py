"""Several processes: a real 2-process CPU run (gloo) of an SFT -> GRPO chain through `accelerate launch` with
configs/cpu_multi.yaml, and the distributed-combination checks of validation.

The run goes through a test-only entry script that wraps rlft/run.py and adds a per-rank marker callback; the
production code has no test hooks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import messages_rows, prompt_rows, write_jsonl, write_recipe
from rlft.errors import RecipeError
from rlft.stages import load

ROOT = Path(__file__).resolve().parent.parent

# Wraps rlft/run.py: every rank writes markers/rank<R>_<stage>.json with what its own trainer saw.
WORKER = '''
import json, os, runpy, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from rlft import run_logs, runfolder

class RankMarker(run_logs.MetricsCallback):
    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.seen = {{"world_size": args.world_size, "process_index": args.process_index,
                      "batches_per_epoch": len(train_dataloader) if train_dataloader is not None else None, "steps": 0}}

    def on_step_end(self, args, state, control, **kwargs):
        self.seen["steps"] += 1

    def on_train_end(self, args, state, control, **kwargs):
        out = Path(os.environ["RLFT_TEST_MARKERS"]) / f"rank{{args.process_index}}_{{self.stage}}.json"
        out.write_text(json.dumps(self.seen))

runfolder.RunFolder.metrics_callback = lambda self, stage: RankMarker(self.metrics_path, stage)
sys.argv = [{run_py!r}, *sys.argv[1:]]
runpy.run_path({run_py!r}, run_name="__main__")
'''

# A reward that records, per rank, which prompts it scored: each rank must score its own samples.
REWARD = '''
import json, os
from pathlib import Path

def rank_marker(prompts, completions, **kwargs):
    out = Path(os.environ["RLFT_TEST_MARKERS"]) / f"rewards_rank{os.environ.get('RANK', '0')}.jsonl"
    with out.open("a") as f:
        f.write(json.dumps({"prompts": [p[-1]["content"] for p in prompts], "n": len(completions)}) + "\\n")
    return [len(c[-1]["content"]) / 100 for c in completions]
'''


def two_stage_recipe(folder: Path, model_dir: Path) -> Path:
    write_jsonl(folder / "sft.jsonl", messages_rows())
    write_jsonl(folder / "prompts.jsonl", prompt_rows())
    (folder / "rank_reward.py").write_text(REWARD)
    return write_recipe(folder / "recipe.yaml", f"""
name: two-ranks
model: {model_dir}
seed: 0
stages:
  - name: sft
    type: sft
    data: {{train: sft.jsonl}}
    lora: {{r: 4, lora_alpha: 8, target_modules: all-linear}}
    args: {{max_steps: 2, per_device_train_batch_size: 2, learning_rate: 1.0e-2, max_length: 128}}
  - name: rl
    type: grpo
    data: {{train: prompts.jsonl}}
    rewards: [{{fn: rank_reward.py:rank_marker}}]
    lora: {{r: 4, lora_alpha: 8, target_modules: all-linear}}
    args: {{max_steps: 2, per_device_train_batch_size: 2, num_generations: 2, max_completion_length: 8,
           learning_rate: 1.0e-2, steps_per_generation: 1}}
""")  # a generation (and a reward call) per step, not rlft's CPU default of one per 4 steps


@pytest.mark.slow
def test_two_cpu_processes_sft_then_grpo(tmp_path, tiny_model_dir):
    recipe = two_stage_recipe(tmp_path, tiny_model_dir)
    markers = tmp_path / "markers"
    markers.mkdir()
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.format(root=str(ROOT), run_py=str(ROOT / "rlft" / "run.py")))
    env = {**os.environ, "RLFT_TEST_MARKERS": str(markers), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "configs" / "cpu_multi.yaml"),
         str(worker), str(recipe), "--output-dir", str(tmp_path / "run")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    print(f"2-process SFT -> GRPO run: {time.time() - started:.0f} s")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert "destroy_process_group() was not called" not in log

    # every rank trained every stage, on its share of the data: 6 rows / 2 ranks / batch 2 -> 2 batches (1 rank: 3)
    for stage in ("sft", "rl"):
        seen = [json.loads((markers / f"rank{r}_{stage}.json").read_text()) for r in (0, 1)]
        assert [s["process_index"] for s in seen] == [0, 1] and {s["world_size"] for s in seen} == {2}
        assert all(s["steps"] == 2 for s in seen), seen
    sft = [json.loads((markers / f"rank{r}_sft.json").read_text()) for r in (0, 1)]
    assert [s["batches_per_epoch"] for s in sft] == [2, 2]

    # rewards ran on each rank, on that rank's own samples: different prompts on the two ranks at every call
    calls = [[json.loads(line) for line in (markers / f"rewards_rank{r}.jsonl").read_text().splitlines()]
             for r in (0, 1)]
    assert len(calls[0]) == len(calls[1]) >= 2
    for mine, theirs in zip(*calls):
        assert mine["n"] == theirs["n"] == 2 and mine["prompts"] != theirs["prompts"]

    # one writer: every metrics row once, one TensorBoard file per stage, both stages complete
    root = tmp_path / "run"
    rows = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    for stage in ("sft", "rl"):
        assert [r["step"] for r in rows if r["stage"] == stage and "loss" in r] == [1, 2]
        assert len(list((root / "tensorboard" / stage).glob("events.out.tfevents.*"))) == 1
    lines = (root / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(set(lines))
    assert (root / "stages" / "00_sft" / "merged" / "config.json").is_file()
    for stage in ("00_sft", "01_rl"):
        assert (root / "stages" / stage / "stage_complete.json").is_file()
        assert (root / "stages" / stage / "adapter_model.safetensors").is_file()
    assert not list(root.rglob("*.tmp"))


# --- validation against the launch -----------------------------------------------------------------------------------
QLORA = """
name: q
model: {model}
stages:
  - name: sft
    type: sft
    data: {{train: sft.jsonl}}
    lora: {{r: 4, target_modules: all-linear}}
    quantization: {quant}
    args: {args}
"""
ZERO3 = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3", "WORLD_SIZE": "1"}
FSDP = {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "WORLD_SIZE": "1"}


def qlora_recipe(tmp_path, model_dir, quant="{load_in_4bit: true}", args="{max_steps: 1}") -> Path:
    write_jsonl(tmp_path / "sft.jsonl", messages_rows())
    return write_recipe(tmp_path / "r.yaml", QLORA.format(model=model_dir, quant=quant, args=args))


def test_qlora_with_fsdp_needs_float_quant_storage(tmp_path, tiny_model_dir, monkeypatch):
    pytest.importorskip("bitsandbytes")
    for key, value in FSDP.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(RecipeError) as e:
        load(qlora_recipe(tmp_path, tiny_model_dir))
    message = str(e.value)
    assert "stages[0].quantization.bnb_4bit_quant_storage: is uint8, but FSDP shards only" in message
    assert "set bnb_4bit_quant_storage: float32" in message  # the compute dtype on this CPU (dtype auto -> fp32)
    load(qlora_recipe(tmp_path, tiny_model_dir, quant="{load_in_4bit: true, bnb_4bit_quant_storage: float32}"))


def test_qlora_with_zero3_profile_needs_bf16_quant_storage(tmp_path, tiny_model_dir):
    """What `rlft plan --config configs/zero3.yaml` checks: the profile's launch, for GPUs (dtype auto -> bf16)."""
    from rlft.launch import launch_from_config
    from rlft.stages.common import distributed_problems

    recipe = load(qlora_recipe(tmp_path, tiny_model_dir))
    launch = launch_from_config(ROOT / "configs" / "zero3.yaml")
    problems = distributed_problems(recipe["stages"][0], recipe, launch)
    assert problems == [("quantization.bnb_4bit_quant_storage", problems[0][1])]
    assert "is uint8, but DeepSpeed ZeRO-3 shards" in problems[0][1]
    assert "bnb_4bit_quant_storage: bfloat16" in problems[0][1]
    recipe["stages"][0]["quantization"]["bnb_4bit_quant_storage"] = "bfloat16"
    assert distributed_problems(recipe["stages"][0], recipe, launch) == []
    # ZeRO-2 and DDP keep the weights whole: any quantization is fine there
    for name in ("zero2.yaml", "multi_gpu.yaml"):
        recipe["stages"][0]["quantization"] = {"load_in_8bit": True}
        assert distributed_problems(recipe["stages"][0], recipe, launch_from_config(ROOT / "configs" / name)) == []


def test_8bit_cannot_be_sharded_and_recipes_hold_no_distributed_keys(tmp_path, tiny_model_dir, monkeypatch):
    pytest.importorskip("bitsandbytes")
    for key, value in FSDP.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FSDP_ACTIVATION_CHECKPOINTING", "true")
    path = qlora_recipe(tmp_path, tiny_model_dir, quant="{load_in_8bit: true}",
                        args="{max_steps: 1, fsdp: full_shard, gradient_checkpointing: true}")
    with pytest.raises(RecipeError) as e:
        load(path)
    message = str(e.value)
    assert "stages[0].quantization.load_in_8bit: 8-bit weights cannot be sharded by FSDP" in message
    assert "stages[0].args.fsdp: distributed settings live in the accelerate config" in message
    assert "configs/zero3.yaml" in message
    assert "stages[0].args.gradient_checkpointing: the accelerate config turns on fsdp_activation_checkpointing" \
        in message


def test_deepspeed_profile_on_cpu_only_machine_is_refused(tmp_path, tiny_model_dir, monkeypatch):
    for key, value in {**ZERO3, "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}.items():
        monkeypatch.setenv(key, value)
    write_jsonl(tmp_path / "sft.jsonl", messages_rows())
    path = write_recipe(tmp_path / "r.yaml", f"name: d\nmodel: {tiny_model_dir}\nstages:\n"
                        "  - {name: a, type: sft, data: {train: sft.jsonl}}\n"
                        "  - {name: b, type: sft, data: {train: sft.jsonl}}\n")
    with pytest.raises(RecipeError) as e:
        load(path)
    message = str(e.value)
    assert message.count("launch: DeepSpeed ZeRO under the HF Trainer needs GPUs") == 1  # once, not per stage
    assert "configs/cpu_multi.yaml" in message


THREADS_SCRIPT = """
import sys, torch
sys.path.insert(0, {root!r})
from rlft.run import distributed_state
distributed_state()
print("THREADS", torch.get_num_threads())
"""


@pytest.mark.slow
def test_accelerate_launch_on_cpu_uses_every_core(tmp_path):
    """`accelerate launch` exports OMP_NUM_THREADS=1; rlft gives its single CPU process all the cores back."""
    import torch

    if torch.cuda.is_available() or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs a CPU-only machine with 2+ cores (with one core, 1 thread is right either way)")
    script = tmp_path / "threads.py"
    script.write_text(THREADS_SCRIPT.format(root=str(Path(__file__).resolve().parent.parent)))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "RLFT_NUM_THREADS")}
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", str(script)]
    out = subprocess.run(launch, capture_output=True, text=True, env=env, check=True).stdout
    assert f"THREADS {len(os.sched_getaffinity(0))}" in out
    out = subprocess.run(launch, capture_output=True, text=True, env={**env, "RLFT_NUM_THREADS": "1"},
                         check=True).stdout
    assert "THREADS 1" in out


def test_bad_thread_count_is_a_user_error(monkeypatch):
    from rlft.errors import RlftError
    from rlft.run import cpu_threads

    monkeypatch.setenv("RLFT_NUM_THREADS", "many")
    with pytest.raises(RlftError, match="RLFT_NUM_THREADS='many': expected a whole number"):
        cpu_threads()


@pytest.mark.slow
def test_a_failure_on_the_main_process_stops_every_rank(tmp_path, tiny_model_dir):
    """Rank-0-only work (here the LoRA merge of the starting model) fails: every rank exits with the error, none waits
    at a barrier for the main process."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    adapter = tmp_path / "adapter"  # a LoRA adapter whose base model is gone: the merge fails on rank 0
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    peft_model.peft_config["default"].base_model_name_or_path = str(tmp_path / "deleted_base")
    peft_model.save_pretrained(adapter)
    (adapter / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    write_jsonl(tmp_path / "sft.jsonl", messages_rows())
    recipe = write_recipe(tmp_path / "r.yaml", f"name: m\nmodel: {adapter}\nstages:\n"
                          "  - {name: sft, type: sft, data: {train: sft.jsonl}, args: {max_steps: 1}}\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(ROOT)}
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "configs" / "cpu_multi.yaml"),
         str(ROOT / "rlft" / "run.py"), str(recipe), "--output-dir", str(tmp_path / "run")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    print(f"failed 2-process run: {time.time() - started:.0f} s")
    assert proc.returncode != 0, log[-4000:]
    # the main process's own error, and the same words from the other rank, both as user errors (no traceback)
    assert "error: " in log and "cannot load the LoRA adapter over its base model" in log, log[-4000:]
    assert "error: merging the LoRA adapter failed on the main process: " in log, log[-4000:]
    assert "exitcode  : 2" in log and "[rank1]: Traceback" not in log, log[-4000:]
