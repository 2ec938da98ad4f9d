"""Reward-stage generation, A/B in one process: TRL's plain HF `generate` against rlft's speed-ups and TRL's options.

    python benchmarks/generation_ab.py [--prompts 8] [--k 8] [--new-tokens 32] [--repeats 2] [--tiny]

The batch is what the polite_assistant PPO stage generates at each generation step: `--prompts` prompts from
recipes/data/polite_prompts.jsonl, each repeated `--k` times in a row, left-padded, through the chat template, on the
embedded SmolLM2-135M-Instruct with a LoRA adapter (r 16, all-linear; its B matrices set non-zero, as after training),
sampling at temperature 0.8 with every completion forced to `--new-tokens` (`min_new_tokens`), so every arm does the
same work. Arms (all on the same PeftModel):

  plain         PeftModel.generate, what TRL calls
  merged        rlft.speed: the adapter folded into the weights during generate
  prefix        rlft.speed: each prompt prefilled once, KV cache repeated k times
  rlft          merged + prefix (rlft's default on CPU)
  static        TRL's cache_implementation: static (a preallocated KV cache)
  rlft_bf16     rlft on a bf16 copy of the model (what dtype: auto picks on a CPU with AMX/AVX512-BF16)

Arms run in ABBA order (`--repeats` rounds), so a drift on the machine hits all alike; ratios are of the medians
against `plain`. Greedy outputs of `rlft` and `plain` are compared token for token first. Each run's memory is its
peak RSS above the RSS it started at (the heap handed back to the OS before each run), the largest over repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from rlft import speed  # noqa: E402
from rlft.profiling import Memory, _proc_status  # noqa: E402
from rlft.run import release_heap  # noqa: E402


def build(tiny: bool):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from grpo_vs_trl import model_dir

    source = model_dir(tiny)
    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, target_modules="all-linear"))
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.01)
    model.eval()
    return model, tokenizer


def batch(tokenizer, prompts: int, k: int):
    rows = [json.loads(line) for line in (ROOT / "recipes/data/polite_prompts.jsonl").read_text().splitlines()]
    texts = [tokenizer.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
             for r in rows[:prompts]]
    return tokenizer([t for t in texts for _ in range(k)], return_tensors="pt", padding=True,
                     add_special_tokens=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--tiny", action="store_true", help="a 2-layer random Llama instead of the embedded 135M model")
    args = p.parse_args()
    model, tokenizer = build(args.tiny)
    inputs = batch(tokenizer, args.prompts, args.k)
    plain = model.generate
    import copy

    model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
    speed.wrap_generate(model)
    speed.wrap_generate(model_bf16)
    arms = {
        "plain": lambda **kw: plain(**kw),
        "merged": lambda **kw: _merged(model, plain, **kw),
        "prefix": lambda **kw: speed.generate_shared_prefix(model, plain, **kw),
        "rlft": lambda **kw: model.generate(**kw),
        "static": lambda **kw: plain(cache_implementation="static", **kw),
        "rlft_bf16": lambda **kw: model_bf16.generate(**kw),
    }
    common = {"pad_token_id": tokenizer.pad_token_id, **inputs}
    greedy_plain = plain(**common, max_new_tokens=8, do_sample=False)
    greedy_rlft = model.generate(**common, max_new_tokens=8, do_sample=False)
    same = torch.equal(greedy_plain, greedy_rlft)
    print(f"greedy tokens identical (rlft vs plain, 8 tokens x {greedy_plain.size(0)} rows): {same}")
    sampling = {**common, "max_new_tokens": args.new_tokens, "min_new_tokens": args.new_tokens, "do_sample": True,
                "temperature": 0.8, "top_k": 0, "top_p": 1.0}
    tokens = inputs["input_ids"].size(0) * args.new_tokens
    times = {name: [] for name in arms}
    peaks = {name: 0.0 for name in arms}
    memory = Memory()
    for name, fn in arms.items():  # warm-up, not counted
        fn(**{**sampling, "max_new_tokens": 2, "min_new_tokens": 2})
    order = list(arms)
    for repeat in range(args.repeats):
        for name in (order if repeat % 2 == 0 else order[::-1]):
            torch.manual_seed(repeat)
            release_heap()
            memory.reset()
            start_mb = _proc_status().get("VmRSS", 0) / 1024
            started = time.perf_counter()
            arms[name](**sampling)
            times[name].append(time.perf_counter() - started)
            peaks[name] = max(peaks[name], memory.peak_mb() - start_mb)
            print(f"  {name:9s} {tokens} tokens in {times[name][-1]:6.2f} s = {tokens / times[name][-1]:7.1f} tokens/s,"
                  f" peak +{memory.peak_mb() - start_mb:.0f} MB", flush=True)
    base = statistics.median(times["plain"])
    for name in arms:
        print(f"ratio generation_{name}_vs_plain {base / statistics.median(times[name]):.3f}")
    print(f"ratio generation_peak_mb_rlft_vs_plain {peaks['rlft'] / max(peaks['plain'], 1e-9):.3f}")


def _merged(model, plain, **kw):
    with speed.merged_adapter(model):
        return plain(**kw)


if __name__ == "__main__":
    main()
