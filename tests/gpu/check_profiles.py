"""GPU check of the sharded accelerate profiles, too heavy or impossible on CPU (DeepSpeed needs GPUs).

    bash tests/gpu/check_profiles.sh                           # install, then this; ~4-6 min on one H100
    python tests/gpu/check_profiles.py --only zero3:qlora      # one case
    python tests/gpu/check_profiles.py --only single_gpu:lora  # the harness itself, on any machine

Each case is a real `accelerate launch --config_file configs/<profile>.yaml --num_processes 1 rlft/run.py` of a short
SFT stage on a tiny random Llama (tokenizer trained here: nothing is downloaded), with LoRA or QLoRA (NF4; ZeRO-3 and
FSDP with bnb_4bit_quant_storage: bfloat16; single_gpu also 8-bit). `zero3:lora+grpo` chains SFT -> GRPO, so the LoRA merge and generation
under ZeRO-3 are covered. For each case: did it finish, are the saved LoRA weights trained (ZeRO-3 saving empty
partitions is a classic failure), the measured peak (torch.cuda.max_memory_allocated) beside `rlft plan`'s estimate.
Exit status 1 if any case failed. pytest does not collect this folder (pyproject: --ignore=tests/gpu).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CASES = ["single_gpu:qlora", "single_gpu:qlora8", "zero2:lora", "zero2:qlora", "zero3:lora", "zero3:qlora", "fsdp:lora",
         "fsdp:qlora", "zero3:lora+grpo"]
TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
            "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
WORKER = """
import json, runpy, sys, torch
sys.argv = [{run_py!r}, *sys.argv[1:]]
try:
    runpy.run_path({run_py!r}, run_name="__main__")
finally:
    if torch.cuda.is_available():
        print("RLFT_PEAK " + json.dumps(torch.cuda.max_memory_allocated()), flush=True)
"""
CASE_TIMEOUT = 150  # seconds; a tiny model's few steps take 20-40 s, so more is a hang (a kernel build, a stuck rank)
REWARD = "def length(prompts, completions, **kwargs):\n    return [len(c[-1]['content']) / 50 for c in completions]\n"


def make_model(folder: Path) -> Path:
    """A BPE tokenizer trained on the shipped SFT data, with a ChatML template, and a 2-layer random Llama."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    rows = [json.loads(line) for line in (ROOT / "recipes" / "data" / "polite_sft.jsonl").read_text().splitlines()]
    texts = [m["content"] for r in rows for m in r["messages"]]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=1024, special_tokens=specials,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|endoftext|>")
    tok.chat_template = TEMPLATE
    config = LlamaConfig(vocab_size=len(tok), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    out = folder / "tiny-llama"
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def recipe(folder: Path, model: Path, profile: str, method: str, steps: int) -> Path:
    quant = ""
    if method == "qlora8":
        quant = "\n    quantization: {load_in_8bit: true}"
    elif method.startswith("qlora"):
        storage = ", bnb_4bit_quant_storage: bfloat16" if profile in ("zero3", "fsdp") else ""
        quant = f"\n    quantization: {{load_in_4bit: true{storage}}}"
    lora = "lora: {r: 8, lora_alpha: 16, target_modules: all-linear}"
    text = f"""name: gpu-{profile}-{method.replace('+', '-')}
model: {model}
stages:
  - name: sft
    type: sft
    data: {{train: {ROOT / 'recipes' / 'data' / 'polite_sft.jsonl'}}}
    {lora}{quant}
    args: {{max_steps: {steps}, per_device_train_batch_size: 4, max_length: 256, learning_rate: 1.0e-2, save_steps: 1000}}
"""
    if method.endswith("+grpo"):
        (folder / "rewards.py").write_text(REWARD)
        text += f"""  - name: rl
    type: grpo
    data: {{train: {ROOT / 'recipes' / 'data' / 'polite_prompts.jsonl'}}}
    rewards: [{{fn: rewards.py:length}}]
    {lora}
    args: {{max_steps: 2, per_device_train_batch_size: 4, num_generations: 4, max_completion_length: 16,
           learning_rate: 1.0e-2, beta: 0.04, save_steps: 1000}}
"""
    path = folder / "recipe.yaml"
    path.write_text(text)
    return path


def trained(stage_dir: Path) -> bool:
    from safetensors.torch import load_file

    weights = load_file(stage_dir / "adapter_model.safetensors")
    b = [w for k, w in weights.items() if "lora_B" in k]
    return bool(b) and all(w.numel() > 0 for w in b) and sum(float(w.float().abs().sum()) for w in b) > 0


def run_case(case: str, model: Path, steps: int, work: Path) -> dict:
    from rlft.plan import GiB, plan

    profile, method = case.split(":")
    folder = work / case.replace(":", "_").replace("+", "_")
    folder.mkdir(parents=True)
    path = recipe(folder, model, profile, method, steps)
    worker = folder / "worker.py"
    worker.write_text(WORKER.format(run_py=str(ROOT / "rlft" / "run.py")))
    row = {"case": case, "ok": False, "seconds": 0.0, "peak": None, "estimate": None, "note": ""}
    try:
        est = plan(str(path), gpus=1, config=str(ROOT / "configs" / f"{profile}.yaml"))["rows"]
        row["estimate"] = max(r["total"] - r["lines"]["overhead"] for r in est) / GiB
    except Exception as e:  # the plan failing is itself a finding; the run still goes ahead
        row["note"] = f"plan: {str(e).splitlines()[0][:80]}"
    started = time.time()
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "configs" / f"{profile}.yaml"),
           "--num_processes", "1", str(worker), str(path), "--output-dir", str(folder / "run")]
    try:
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=CASE_TIMEOUT)
        log = proc.stdout + proc.stderr
        rc = proc.returncode
    except subprocess.TimeoutExpired as e:
        log, rc = f"timeout after {CASE_TIMEOUT} s\n{e.stdout or ''}{e.stderr or ''}", -1
    row["seconds"] = time.time() - started
    (folder / "log.txt").write_text(log)
    peaks = [int(line.split()[1]) for line in log.splitlines() if line.startswith("RLFT_PEAK ")]
    row["peak"] = peaks[-1] / GiB if peaks else None
    stages = sorted((folder / "run" / "stages").glob("*/stage_complete.json"))
    expected = 2 if method.endswith("+grpo") else 1
    if rc != 0:
        row["note"] = ""
        log_lines = log.splitlines()
        rlft_errors = [i for i, line in enumerate(log_lines) if line.startswith("error:")]
        errors = [line for line in log_lines if "Error" in line and "CalledProcessError" not in line]
        if rlft_errors:  # rlft's own message: the line after names the problem
            note = " ".join(log_lines[rlft_errors[0]:rlft_errors[0] + 2])
        else:
            note = errors[-1] if errors else (log_lines[-1] if log_lines else "no output")
        row["note"] = note.strip()[:110]
    elif len(stages) != expected:
        row["note"] = f"{len(stages)} of {expected} stages complete"
    elif not all(trained(s.parent) for s in stages):
        row["note"] = "saved LoRA weights empty or untrained"
    else:
        row["ok"] = True
    return row


def print_table(rows: list[dict], out: Path | None) -> None:
    lines = [f"{'case':<18} {'result':<6} {'seconds':>7} {'peak GiB':>9} {'plan GiB':>9}  note",
             "-" * 100]
    for r in rows:
        peak = f"{r['peak']:.3f}" if r["peak"] is not None else "-"
        est = f"{r['estimate']:.3f}" if r["estimate"] is not None else "-"
        lines.append(f"{r['case']:<18} {'ok' if r['ok'] else 'FAIL':<6} {r['seconds']:>7.0f} {peak:>9} {est:>9}  "
                     f"{r['note']}")
    lines.append("peak = torch.cuda.max_memory_allocated; plan = rlft plan's peak without its CUDA-context/5% "
                 "overhead line (the tiny model makes both mostly fixed costs)")
    text = "\n".join(lines)
    print(text)
    if out is not None:
        (out / "gpu_profiles.txt").write_text(text + "\n")
        (out / "gpu_profiles.json").write_text(json.dumps(rows, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated cases, e.g. zero3:qlora,fsdp:lora (default: all)")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    cases = args.only.split(",") if args.only else CASES
    out = Path(os.environ["OUT"]) if os.environ.get("OUT") else None
    with tempfile.TemporaryDirectory(prefix="rlft-gpu-") as tmp:
        work = Path(tmp)
        model = make_model(work)
        rows = []
        for case in cases:
            rows.append(run_case(case, model, args.steps, work))
            if out is not None:  # row by row: what finished comes back even if the machine's time runs out
                with open(out / "gpu_profiles.jsonl", "a") as f:
                    f.write(json.dumps(rows[-1]) + "\n")
            print(f"{case}: {'ok' if rows[-1]['ok'] else 'FAIL ' + rows[-1]['note']} ({rows[-1]['seconds']:.0f} s)",
                  flush=True)
            if not rows[-1]["ok"]:
                folder = work / case.replace(":", "_").replace("+", "_")
                print("\n".join((folder / "log.txt").read_text().splitlines()[-25:]), flush=True)
            failed_logs = sum(not r["ok"] for r in rows)
            if out is not None and not rows[-1]["ok"] and failed_logs <= 5:  # $OUT brings back 8 files at most
                folder = work / case.replace(":", "_").replace("+", "_")
                (out / f"log_{folder.name}.txt").write_text((folder / "log.txt").read_text()[-200_000:])
        print_table(rows, out)
    sys.exit(0 if all(r["ok"] for r in rows) else 1)


if __name__ == "__main__":
    main()
