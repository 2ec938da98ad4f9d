"""SFT throughput: rlft against a plain TRL script doing the same work, measured in the same run.

    python benchmarks/sft_vs_trl.py [--steps 8] [--repeats 4]

Prints tokens/s (training only, from each trainer's own `num_tokens` / `train_runtime`) for
  rlft         `rlft run recipes/sft_only.yaml` (rlft's CPU defaults: fp32, no gradient checkpointing)
  trl-same     a plain SFTTrainer script with the same model, data, LoRA and the same resolved arguments
  trl-defaults the same plain script with TRL's own defaults (bf16=True, gradient_checkpointing=True; plus
               use_cpu=True, without which those defaults refuse to start on a CPU-only machine)
and the ratios rlft / trl-same (overhead; target >= 0.98) and rlft / trl-defaults (what the defaults buy).
After one uncounted warm-up of each, rlft and trl-same alternate `--repeats` times in ABBA order, so a drift on the
machine hits both alike; the ratio is of the medians.
Each measurement runs in its own process.
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
RECIPE = ROOT / "recipes" / "sft_only.yaml"


def plain_trl(steps: int, trl_defaults: bool) -> dict:
    """What a user would write with TRL alone (same model folder, data, LoRA, args)."""
    import yaml
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from rlft.models import resolve  # only to find the same cached model folder rlft trains

    recipe = yaml.safe_load(RECIPE.read_text())
    stage = recipe["stages"][0]
    model_dir = resolve(recipe["model"], RECIPE.parent)
    data = load_dataset("json", data_files=str(RECIPE.parent / stage["data"]["train"]), split="train")
    data = data.map(lambda r: {"prompt": r["messages"][:-1], "completion": r["messages"][-1:]},
                    remove_columns=["messages"])
    args = {**stage["args"], "max_steps": steps, "save_strategy": "no", "seed": recipe["seed"], "logging_steps": 1}
    if trl_defaults:
        # TRL's defaults (bf16=True, gradient_checkpointing=True) refuse to start on a machine without a GPU
        # ("Your setup doesn't support bf16/gpu"); use_cpu=True is the least a user must add to run them.
        args.update(use_cpu=True, report_to="none")
    else:  # every value rlft resolves underneath on a CPU (fp32, no checkpointing, TensorBoard logging ...)
        import torch

        from rlft.stages.common import default_args

        args = {**default_args(torch.float32, recipe["seed"]), **args}
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    with tempfile.TemporaryDirectory() as out:
        trainer = SFTTrainer(model=model, args=SFTConfig(output_dir=out, **args), train_dataset=data,
                             processing_class=tokenizer, peft_config=LoraConfig(task_type="CAUSAL_LM", **stage["lora"]))
        metrics = trainer.train().metrics
    tokens = [log["num_tokens"] for log in trainer.state.log_history if "num_tokens" in log][-1]
    return {"tokens": tokens, "seconds": metrics["train_runtime"]}


def rlft_run(steps: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "rlft.cli", "run", str(RECIPE), f"stages.sft.args.max_steps={steps}",
               "stages.sft.args.save_strategy=no", "stages.sft.data.eval_split=null", "--output-dir", out]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        done = json.loads((Path(out) / "stages" / "00_sft" / "stage_complete.json").read_text())
    m = done["metrics"]
    return {"tokens": m["train_tokens_per_second"] * m["train_runtime"], "seconds": m["train_runtime"]}


def measure(kind: str, steps: int) -> float:
    if kind == "rlft":
        result = rlft_run(steps)
    else:
        cmd = [sys.executable, __file__, "--_child", kind, "--steps", str(steps)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
    rate = result["tokens"] / result["seconds"]
    print(f"  {kind:13s} {result['tokens']:8.0f} tokens in {result['seconds']:6.1f} s = {rate:7.1f} tokens/s", flush=True)
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--_child", choices=["trl-same", "trl-defaults"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        print(json.dumps(plain_trl(args.steps, trl_defaults=args._child == "trl-defaults")))
        return
    print("warm-up (not counted): page cache, CPU clocks")
    for kind in ("rlft", "trl-same"):
        measure(kind, args.steps)
    rates = {"rlft": [], "trl-same": []}
    for repeat in range(args.repeats):  # ABBA: a drift over the run hits both sides alike
        for kind in (("rlft", "trl-same") if repeat % 2 == 0 else ("trl-same", "rlft")):
            rates[kind].append(measure(kind, args.steps))
    defaults = measure("trl-defaults", args.steps)  # same steps: the first step's warm-up weighs on both alike
    rlft, same = statistics.median(rates["rlft"]), statistics.median(rates["trl-same"])
    print(f"rlft / plain TRL (same args):     {rlft / same:.3f}   (target >= 0.98)")
    print(f"rlft / plain TRL (TRL defaults):  {rlft / defaults:.2f}   (target >= 5)")


if __name__ == "__main__":
    main()
