"""How far `rlft plan` is from reality: its estimates against one measured peak and published figures.

    python benchmarks/plan_vs_measured.py            # one short real SFT run on this CPU (~1-3 min), then the table
    python benchmarks/plan_vs_measured.py --no-run   # published figures only (seconds)

1. Measured: a real SFT stage of recipes/sft_only.yaml (embedded SmolLM2-135M, LoRA r=16, fp32, batch 4, 3 steps)
   in a fresh process. Measured = peak RSS (getrusage) minus the RSS of the same process with every library
   imported, before the model is loaded. Estimated = `rlft plan --cpu` for the same stage with max_length set to the
   longest tokenized row of the data (TRL pads to the longest row of a batch, so that is the worst batch).
2. Published, model states (weights + gradients + optimizer) per GPU: the ZeRO paper's Figure 1 (Rajbhandari et al.
   2020: 7.5B parameters, 64 GPUs, mixed-precision Adam) and DeepSpeed's own ZeRO-3 estimator formula
   (estimate_zero3_model_states_mem_needs: 18 B/param / GPUs + 4 B x largest layer).
3. Published, whole QLoRA runs: the QLoRA paper (Dettmers et al. 2023) fine-tunes LLaMA-65B on one 48 GB GPU
   (batch 1, gradient checkpointing); a 7B QLoRA run fits in about 5-6 GB (the issue's reading of the paper's
   Figure 6). Both are compared at batch 1, 512 tokens, LoRA r=16 on all linear layers, NF4 with double quantization.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rlft.launch import Launch  # noqa: E402
from rlft.plan import GiB, Shape, _model_states, shape_of, stage_memory  # noqa: E402

GB = 1e9
CHILD = """
import json, os, resource, sys
sys.path.insert(0, {root!r})
import psutil, torch, transformers, trl, peft, datasets  # every library loaded before the baseline is taken
from rlft.run import run
torch.set_num_threads(2)
baseline = psutil.Process().memory_info().rss
run({recipe!r}, {overrides!r}, output_dir={out!r}, fresh=True)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print("RESULT " + json.dumps({{"baseline": baseline, "peak": peak}}))
"""


def longest_row_tokens(recipe: Path) -> int:
    """Tokens of the longest chat-templated row of the recipe's SFT data."""
    from rlft import models

    tokenizer = models.load_tokenizer(models.resolve("smollm2-135m-instruct", recipe.parent))
    rows = [json.loads(line) for line in (recipe.parent / "data" / "polite_sft.jsonl").read_text().splitlines()]
    return max(len(tokenizer.apply_chat_template(r["messages"], tokenize=True, return_dict=True)["input_ids"])
               for r in rows)


def measured_row() -> dict:
    from rlft.plan import plan

    recipe = ROOT / "recipes" / "sft_only.yaml"
    longest = longest_row_tokens(recipe)
    overrides = ["stages.sft.args.max_steps=3", "stages.sft.args.save_steps=1000",
                 f"stages.sft.args.max_length={longest}"]
    with tempfile.TemporaryDirectory() as tmp:
        code = CHILD.format(root=str(ROOT), recipe=str(recipe), overrides=overrides, out=str(Path(tmp) / "run"))
        env = {**os.environ, "OMP_NUM_THREADS": "2", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"the measured run failed:\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    estimate = plan(str(recipe), overrides, cpu=True)["rows"][0]
    return {"case": f"SmolLM2-135M LoRA SFT, CPU fp32, batch 4 x {longest} tok (measured RSS)",
            "estimate": estimate["total"], "reference": result["peak"] - result["baseline"], "unit": GiB,
            "lines": {k: round(v / GiB, 3) for k, v in estimate["lines"].items() if v}}


def zero_paper_rows() -> list[dict]:
    """ZeRO paper, Figure 1: psi = 7.5B, N_d = 64, K = 12 (model states only, no working set)."""
    shape = Shape(name="7.5B", params=int(7.5e9), largest_layer=0)
    rows = []
    for kind, published in (("zero1", 31.4), ("zero2", 16.6), ("zero3", 1.9)):
        states = _model_states(shape, Launch(kind=kind, processes=64), 2, {}, None)
        rows.append({"case": f"7.5B full fine-tuning, {kind} x 64 GPUs, model states (ZeRO paper Fig. 1)",
                     "estimate": states["weights"] + states["gradients"] + states["optimizer"],
                     "reference": published * GB, "unit": GB})
    return rows


def deepspeed_formula_row() -> dict:
    """DeepSpeed's ZeRO-3 estimator formula for a 70B model on 8 GPUs, no offload."""
    from transformers import AutoConfig

    shape = shape_of(AutoConfig.from_pretrained(str(ROOT / "tests" / "fixtures" / "plan" / "llama-3-70b")))
    states = _model_states(shape, Launch(kind="zero3", processes=8), 2, {}, None)
    reference = 18 * shape.params / 8 + 4 * shape.largest_layer
    return {"case": "Llama-3-70B full fine-tuning, zero3 x 8, model states (DeepSpeed's estimator formula)",
            "estimate": states["weights"] + states["gradients"] + states["optimizer"], "reference": reference,
            "unit": GiB}


def qlora_rows() -> list[dict]:
    from transformers import LlamaConfig

    stage = {"type": "sft", "lora": {"r": 16, "target_modules": "all-linear", "lora_dropout": 0.05},
             "quantization": {"load_in_4bit": True, "bnb_4bit_use_double_quant": True},
             "args": {"per_device_train_batch_size": 1, "max_length": 512, "gradient_checkpointing": True}}
    llama7 = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_hidden_layers=32,
                         vocab_size=32000)
    llama65 = LlamaConfig(hidden_size=8192, intermediate_size=22016, num_attention_heads=64, num_hidden_layers=80,
                          vocab_size=32000)
    rows = []
    for name, config, published, note in (("LLaMA-7B", llama7, 5.5, "about 5-6 GB"),
                                          ("LLaMA-65B", llama65, 48, "fits one 48 GB GPU: an upper bound")):
        total = sum(stage_memory(stage, shape_of(config), Launch(), "bfloat16").values())
        rows.append({"case": f"{name} QLoRA, 1 GPU, batch 1 x 512 tok (QLoRA paper: {note})", "estimate": total,
                     "reference": published * GB, "unit": GB, "bound": published == 48})
    return rows


def print_rows(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rlft plan: estimate vs measured / published", title_justify="left")
    for column in ("case", "estimate", "reference", "error"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for row in rows:
        unit = "GiB" if row["unit"] == GiB else "GB"
        error = row["estimate"] / row["reference"] - 1
        shown = f"{error:+.0%}" if not row.get("bound") else ("within" if error <= 0 else f"over by {error:.0%}")
        table.add_row(row["case"], f"{row['estimate'] / row['unit']:.2f} {unit}",
                      f"{row['reference'] / row['unit']:.2f} {unit}", shown)
    Console(width=140).print(table)
    for row in rows:
        if "lines" in row:
            print(f"estimate by line (GiB), {row['case']}: {row['lines']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-run", action="store_true", help="skip the measured CPU run")
    args = parser.parse_args()
    rows = [] if args.no_run else [measured_row()]
    rows += zero_paper_rows() + [deepspeed_formula_row()] + qlora_rows()
    print_rows(rows)


if __name__ == "__main__":
    main()
