"""GRPO throughput: rlft's reward stage against plain TRL scripts doing the same work, in the same run.

    python benchmarks/grpo_vs_trl.py [--steps 4] [--repeats 2] [--tiny]

Three arms train the same model (the embedded SmolLM2-135M-Instruct, or with --tiny a 2-layer random Llama) with the
same LoRA on recipes/data/polite_prompts.jsonl, rewarded by reward_models.politeness:politeness, on the same work
(WORK below: batch, group size, completion length, learning rate, KL weight). Every completion is forced to full
length (`min_new_tokens`), so all arms generate and train on exactly the same number of tokens.

  rlft          `rlft run` on a recipe whose args are WORK: rlft's defaults for the hardware underneath (dtype or bf16
                autocast by the CPU, no checkpointing on CPU, on a CPU one generation batch for 4 steps), its
                generation speed-ups (rlft/speed.py) and its CPU LM head (rlft/compat.py: install_cpu_lm_head)
  plain TRL     a GRPOTrainer script with the same resolved GRPOConfig rlft builds (the same arguments, so the
                ratio is what rlft's own code adds)
  TRL defaults  a GRPOTrainer script with TRL's own defaults plus WORK (bf16 autocast, gradient checkpointing;
                use_cpu=True on a machine without GPU, without which those defaults refuse to start)

Throughput is completions per second of training (max_steps x batch / the trainer's own train_runtime: generation,
scoring and updates; model loading excluded). After one uncounted warm-up of each, the arms alternate `--repeats`
times in ABBA order (A B C, C B A, ...), each in its own process, so a drift on the machine hits all alike; ratios are
of the medians. The last lines are machine-readable:
  ratio grpo_vs_trl                       rlft / plain TRL (same arguments)
  ratio grpo_defaults_vs_trl_defaults     rlft / TRL defaults (target >= 1.5 on a CPU)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "recipes" / "data" / "polite_prompts.jsonl"
LORA = {"r": 16, "lora_alpha": 32, "target_modules": "all-linear"}
# The stage's args: the work, shared by every arm.
ARGS = {"learning_rate": 1.0e-4, "per_device_train_batch_size": 8, "num_generations": 4, "max_completion_length": 24,
        "generation_kwargs": {"min_new_tokens": 24}, "temperature": 1.0, "beta": 0.04, "save_strategy": "no"}
SEED = 42
ARMS = ("rlft", "plain TRL", "TRL defaults")


def model_dir(tiny: bool) -> str:
    from rlft.models import resolve

    base = resolve("smollm2-135m-instruct", ROOT)
    if not tiny:
        return base
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    out = Path(tempfile.gettempdir()) / "rlft-bench-tiny-llama"
    if not (out / "config.json").is_file():
        tok = AutoTokenizer.from_pretrained(base)
        config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        LlamaForCausalLM(config).save_pretrained(out)
        tok.save_pretrained(out)
    return str(out)


def plain_trl(steps: int, tiny: bool, trl_defaults: bool) -> float:
    """What a user would write with TRL alone; returns train_runtime."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from reward_models.politeness import politeness
    from rlft.models import cpu_autocast, pick_dtype
    from rlft.stages.common import default_args
    from rlft.stages.online import with_generation_batch

    source = model_dir(tiny)
    with tempfile.TemporaryDirectory() as out:
        if trl_defaults:  # TRL's defaults; the model by name, as in TRL's docs
            extra = {"use_cpu": True} if not torch.cuda.is_available() else {}
            args = GRPOConfig(output_dir=out, max_steps=steps, seed=SEED, report_to="none", **extra, **ARGS)
            model = source
        else:  # every value rlft resolves underneath on this machine
            dtype = pick_dtype("auto")
            work = with_generation_batch({"args": ARGS}, GRPOConfig)["args"]  # the generation batch rlft picks
            args = GRPOConfig(output_dir=out, max_steps=steps, reward_weights=[1.0],
                              **{**default_args(dtype, SEED, cpu_autocast("auto")), **work})
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[politeness],
            args=args,
            train_dataset=load_dataset("json", data_files=str(DATA), split="train"),
            processing_class=AutoTokenizer.from_pretrained(source),
            peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA),
        )
        return trainer.train().metrics["train_runtime"]


def rlft_run(steps: int, tiny: bool) -> float:
    import yaml

    with tempfile.TemporaryDirectory() as out:
        recipe = {"name": "bench", "model": model_dir(tiny), "seed": SEED, "stages": [{
            "name": "grpo", "type": "grpo", "data": {"train": str(DATA)},
            "rewards": [{"fn": "reward_models.politeness:politeness"}],
            "lora": LORA, "args": {**ARGS, "max_steps": steps}}]}
        path = Path(out) / "recipe.yaml"
        path.write_text(yaml.safe_dump(recipe))
        cmd = [sys.executable, "-m", "rlft.cli", "run", str(path), "--output-dir", str(Path(out) / "run")]
        subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
        done = json.loads((Path(out) / "run" / "stages" / "00_grpo" / "stage_complete.json").read_text())
    return done["metrics"]["train_runtime"]


def measure(kind: str, steps: int, tiny: bool) -> float:
    if kind == "rlft":
        seconds = rlft_run(steps, tiny)
    else:
        cmd = [sys.executable, __file__, "--_child", kind, "--steps", str(steps)] + (["--tiny"] if tiny else [])
        seconds = float(subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout.split()[-1])
    completions = steps * ARGS["per_device_train_batch_size"]
    rate = completions / seconds
    print(f"  {kind:12s} {completions:4d} completions in {seconds:7.1f} s = {rate:6.3f} completions/s", flush=True)
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--tiny", action="store_true", help="a 2-layer random Llama instead of the embedded 135M model")
    p.add_argument("--_child", choices=ARMS[1:], help=argparse.SUPPRESS)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    if args._child:
        print(plain_trl(args.steps, args.tiny, trl_defaults=args._child == "TRL defaults"))
        return
    rates = {kind: [] for kind in ARMS}
    print("warm-up (not counted): page cache, CPU clocks")
    for kind in ARMS:
        measure(kind, args.steps, args.tiny)
    for repeat in range(args.repeats):  # ABBA: a drift over the run hits every arm alike
        for kind in (ARMS if repeat % 2 == 0 else ARMS[::-1]):
            rates[kind].append(measure(kind, args.steps, args.tiny))
    rlft, same, defaults = (statistics.median(rates[kind]) for kind in ARMS)
    print(f"rlft / plain TRL (same GRPOConfig, model, data, reward): {rlft / same:.3f}")
    print(f"rlft defaults / TRL defaults (same work):               {rlft / defaults:.3f}   (target >= 1.5)")
    print(f"ratio grpo_vs_trl {rlft / same:.4f}")
    print(f"ratio grpo_defaults_vs_trl_defaults {rlft / defaults:.4f}")


if __name__ == "__main__":
    main()
