"""SFT throughput: rlft against a plain TRL script doing the same work, measured in the same run.

    python benchmarks/sft_vs_trl.py [--steps 8] [--repeats 3]

Prints tokens/s for
  rlft         `rlft run recipes/sft_only.yaml` (rlft's CPU defaults: dtype or bf16 autocast by the CPU, no gradient
               checkpointing, batches grouped by length, eager attention for short rows, its CPU LM head)
  trl-same     a plain SFTTrainer script with the same model, data, LoRA and the same resolved arguments (the length-
               grouped sampler included); the model loaded as transformers does by default (sdpa attention)
  trl-defaults the same plain script with TRL's own defaults (bf16=True, gradient_checkpointing=True; plus
               use_cpu=True, without which those defaults refuse to start on a CPU-only machine)
and the ratios rlft / trl-same (overhead; target >= 0.98) and rlft / trl-defaults (what the defaults buy).
The rate is the steady state: training tokens (each trainer's own `num_tokens` log) over wall time from the end of
step WARMUP_STEPS to the last step, both read from the per-step logs (rlft's metrics.jsonl, a callback in the plain
script), so the first steps' one-off costs (page faults of a heap growing to its peak, kernel selection) weigh on
neither side; the whole-run rate (`train_runtime`) is printed beside it.
After one uncounted warm-up of each, rlft and trl-same alternate `--repeats` times in ABBA order, so a drift on the
machine hits both alike; the ratio is of the medians.
Each measurement runs in its own process.

Model FLOP utilisation: the machine's matmul ceiling is measured in the same run (best of several 2048^2 GEMMs in the
dtype rlft trains in, and in fp32 and bf16 for reference, before and after the arms: the better of the two), and rlft's tokens/s is turned into model FLOP/s with
~4N FLOPs per token for LoRA (forward 2N, backward through the frozen weights 2N) or ~6N for full fine-tuning,
N = the weights of every linear layer (LM head included), plus attention (2 x 2 x layers x hidden x mean sequence
length per forward token, x3 for forward and backward), plus with LoRA 6 per adapter weight (forward, input and
weight gradients: 4.9M weights at r=16 on all-linear, ~5% of the total, which the 4N rule of thumb leaves out).
The last lines are machine-readable:
  ratio sft_vs_trl    rlft / plain TRL (same arguments)
  ratio sft_mfu       rlft's model FLOP/s / the measured GEMM ceiling in its dtype
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
LAST_TOKENS = {}  # arm -> training tokens of its last measurement
WARMUP_STEPS = 2  # steps left out of the steady-state rate


def steady_rate(logs: list[tuple[float, float]]) -> tuple[float, float]:
    """(tokens, seconds) from the end of step WARMUP_STEPS to the last step; `logs` = (time, num_tokens) per step."""
    (t0, n0), (t1, n1) = logs[WARMUP_STEPS - 1], logs[-1]
    return n1 - n0, t1 - t0


def plain_trl(steps: int, trl_defaults: bool) -> dict:
    """What a user would write with TRL alone (same model folder, data, LoRA, args)."""
    import yaml
    from datasets import load_dataset
    from peft import LoraConfig
    import time

    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
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
    else:  # every value rlft resolves underneath on this machine (dtype, no checkpointing on CPU, TensorBoard ...)
        from rlft.models import cpu_autocast, pick_dtype
        from rlft.stages import sft
        from rlft.stages.common import default_args

        name = recipe.get("dtype", "auto")
        args = {**default_args(pick_dtype(name), recipe["seed"], cpu_autocast(name)),
                **sft.with_defaults({"args": args})["args"]}  # the SFT defaults: rlft's length-grouped sampler
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32" if trl_defaults else
                                                 pick_dtype(recipe.get("dtype", "auto")))
    steps = []  # (time, num_tokens) of each step's log: what rlft's metrics.jsonl records

    class StepTimes(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                steps.append((time.time(), logs["num_tokens"]))

    with tempfile.TemporaryDirectory() as out:
        trainer = SFTTrainer(model=model, args=SFTConfig(output_dir=out, **args), train_dataset=data,
                             processing_class=tokenizer, peft_config=LoraConfig(task_type="CAUSAL_LM", **stage["lora"]),
                             callbacks=[StepTimes()])
        metrics = trainer.train().metrics
    tokens, seconds = steady_rate(steps)
    return {"tokens": tokens, "seconds": seconds, "run_tokens": steps[-1][1], "run_seconds": metrics["train_runtime"]}


def rlft_run(steps: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "rlft.cli", "run", str(RECIPE), f"stages.sft.args.max_steps={steps}",
               "stages.sft.args.save_strategy=no", "stages.sft.data.eval_split=null", "--output-dir", out]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        done = json.loads((Path(out) / "stages" / "00_sft" / "stage_complete.json").read_text())
        rows = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    logs = [(row["time"], row["num_tokens"]) for row in rows if "num_tokens" in row and "train_runtime" not in row]
    tokens, seconds = steady_rate(logs)
    m = done["metrics"]
    return {"tokens": tokens, "seconds": seconds, "run_tokens": logs[-1][1], "run_seconds": m["train_runtime"]}


def gemm_ceiling(dtype, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of the best of `repeats` n x n matrix products in `dtype` (the machine's matmul ceiling)."""
    import time

    import torch

    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b  # warm-up: kernel selection, page faults
    best = min(_timed(lambda: a @ b, time) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn, time) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def flops_per_token(lora: bool, seq_len: float) -> tuple[float, dict]:
    """Training FLOPs per token of the recipe's model, and their parts: 4N (LoRA) or 6N (full) plus attention, plus
    6 per adapter weight with LoRA (its forward, the gradient of its input and of its own weights)."""
    import torch
    import yaml
    from transformers import AutoConfig, AutoModelForCausalLM

    from rlft.models import resolve

    recipe = yaml.safe_load(RECIPE.read_text())
    config = AutoConfig.from_pretrained(resolve(recipe["model"], RECIPE.parent))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
        n = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
        adapters = 0
        if lora:
            from peft import LoraConfig, get_peft_model

            lora_config = LoraConfig(task_type="CAUSAL_LM", **recipe["stages"][0]["lora"])
            adapters = sum(p.numel() for p in get_peft_model(model, lora_config).parameters() if p.requires_grad)
    attention = 2 * 2 * config.num_hidden_layers * config.hidden_size * seq_len  # QK^T and AV, per forward token
    # attention has no weights: its backward (grads of Q, K, V) is ~2x its forward whether or not the rest is LoRA
    parts = {"weights": (4 if lora else 6) * n, "attention": 3 * attention, "adapters": 6 * adapters}
    return sum(parts.values()), {**parts, "n": n, "adapter_weights": adapters}


def measure(kind: str, steps: int) -> float:
    if kind == "rlft":
        result = rlft_run(steps)
    else:
        cmd = [sys.executable, __file__, "--_child", kind, "--steps", str(steps)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        result = json.loads(out.strip().splitlines()[-1])
    rate = result["tokens"] / result["seconds"]
    LAST_TOKENS[kind] = result["run_tokens"]
    print(f"  {kind:13s} steps {WARMUP_STEPS + 1}-{steps}: {result['tokens']:6.0f} tokens in "
          f"{result['seconds']:5.1f} s = {rate:6.1f} tokens/s   (whole run {result['run_tokens']:5.0f} in "
          f"{result['run_seconds']:5.1f} s = {result['run_tokens'] / result['run_seconds']:6.1f})", flush=True)
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--_child", choices=["trl-same", "trl-defaults"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._child:
        print(json.dumps(plain_trl(args.steps, trl_defaults=args._child == "trl-defaults")))
        return
    import torch
    import yaml

    from rlft.models import cpu_autocast, pick_dtype

    recipe = yaml.safe_load(RECIPE.read_text())
    autocast = cpu_autocast(recipe.get("dtype", "auto"))
    dtype = torch.bfloat16 if autocast else pick_dtype(recipe.get("dtype", "auto"))  # what the matmuls run in
    ceilings = {d: gemm_ceiling(d) for d in (torch.float32, torch.bfloat16)}
    for d, flops in ceilings.items():
        print(f"GEMM 2048^2 {str(d).replace('torch.', ''):9s} {flops / 1e9:8.1f} GFLOP/s (before the arms)")
    print(f"rlft trains in {'fp32 weights under bf16 autocast' if autocast else str(dtype).replace('torch.', '')} "
          "here (dtype: auto)")
    print("warm-up (not counted): page cache, CPU clocks")
    for kind in ("rlft", "trl-same"):
        measure(kind, args.steps)
    rates = {"rlft": [], "trl-same": []}
    for repeat in range(args.repeats):  # ABBA: a drift over the run hits both sides alike
        for kind in (("rlft", "trl-same") if repeat % 2 == 0 else ("trl-same", "rlft")):
            rates[kind].append(measure(kind, args.steps))
    defaults = measure("trl-defaults", args.steps)  # same steps: the first step's warm-up weighs on both alike
    rlft, same = statistics.median(rates["rlft"]), statistics.median(rates["trl-same"])
    for d in ceilings:  # a neighbour's load during the first measurement would understate the ceiling
        again = gemm_ceiling(d)
        print(f"GEMM 2048^2 {str(d).replace('torch.', ''):9s} {again / 1e9:8.1f} GFLOP/s (after)")
        ceilings[d] = max(ceilings[d], again)
    stage = recipe["stages"][0]
    rows = args.steps * stage["args"]["per_device_train_batch_size"]
    seq_len = LAST_TOKENS["rlft"] / rows  # mean real tokens per row
    per_token, parts = flops_per_token(stage.get("lora") is not None, seq_len)
    mfu = rlft * per_token / ceilings[dtype]
    print(f"FLOPs per token: {per_token / 1e9:.3f} G = {'4' if parts['adapter_weights'] else '6'}N "
          f"{parts['weights'] / 1e9:.3f} G (N = {parts['n'] / 1e6:.1f}M linear weights) + attention "
          f"{parts['attention'] / 1e9:.3f} G (mean row {seq_len:.0f} tokens) + adapters "
          f"{parts['adapters'] / 1e9:.3f} G ({parts['adapter_weights'] / 1e6:.2f}M weights x 6)")
    print(f"rlft / plain TRL (same args):     {rlft / same:.3f}   (target >= 0.98)")
    print(f"rlft / plain TRL (TRL defaults):  {rlft / defaults:.2f}")
    print(f"rlft model FLOP/s: {rlft:.1f} tokens/s x {per_token / 1e9:.3f} GFLOP/token = "
          f"{rlft * per_token / 1e9:.1f} GFLOP/s of a {ceilings[dtype] / 1e9:.1f} GFLOP/s ceiling")
    print(f"ratio sft_vs_trl {rlft / same:.4f}")
    print(f"ratio sft_mfu {mfu:.4f}")


if __name__ == "__main__":
    main()
