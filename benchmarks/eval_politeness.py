"""Politeness on held-out prompts, before and after the reward-driven stage of a run.

    python benchmarks/eval_politeness.py runs/polite-assistant [--n 88] [--max-new-tokens 64]

Greedy replies from the run's SFT stage output and from its final policy stage output to the held-out prompts
(recipes/data/polite_eval_prompts.jsonl: 22 scenarios never seen in training, 4 tones each), scored with the
training reward `reward_models.politeness:politeness` (guards on) and with the bare politeness score (guards off).
Prints both means for both models, and 3 before/after samples at fixed, evenly spaced prompts (not picked by
result). Writes everything to RUN_DIR/eval_politeness.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def stage_folders(run_dir: Path) -> tuple[Path, Path]:
    """(SFT stage output, final policy stage output) from the run's resolved recipe."""
    import yaml

    stages = yaml.safe_load((run_dir / "recipe.resolved.yaml").read_text())["stages"]
    folders = [(s["type"], run_dir / "stages" / f"{i:02d}_{s['name']}") for i, s in enumerate(stages)]
    sft = next((f for t, f in folders if t == "sft"), None)
    final = [f for t, f in folders if t not in ("sft", "reward_model")]
    if sft is None or not final:
        raise SystemExit(f"{run_dir}: needs an sft stage and a later policy stage")
    for folder in (sft, final[-1]):
        if not (folder / "stage_complete.json").is_file():
            raise SystemExit(f"{folder}: stage not finished; run the recipe first")
    return sft, final[-1]


def replies(folder: Path, prompts: list, max_new_tokens: int, batch_size: int) -> list[str]:
    import torch

    from rlft.models import load_for_inference

    model, tokenizer = load_for_inference(folder, torch.float32)
    out = []
    for start in range(0, len(prompts), batch_size):
        texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                 for p in prompts[start:start + batch_size]]
        batch = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        with torch.inference_mode():
            ids = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id)
        out += tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return [text.strip() for text in out]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--prompts", type=Path, default=ROOT / "recipes" / "data" / "polite_eval_prompts.jsonl")
    parser.add_argument("--n", type=int, help="use the first n prompts (default: all)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    import torch

    from reward_models.politeness import politeness

    if "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(os.cpu_count() or 1)
    prompts = [json.loads(line)["prompt"] for line in args.prompts.read_text().splitlines() if line.strip()]
    prompts = prompts[:args.n] if args.n else prompts
    results = {"prompts": len(prompts), "max_new_tokens": args.max_new_tokens}
    for label, folder in zip(("sft", "final"), stage_folders(args.run_dir)):
        started = time.time()
        texts = replies(folder, prompts, args.max_new_tokens, args.batch_size)
        completions = [[{"role": "assistant", "content": t}] for t in texts]
        guarded = politeness(prompts, completions)
        bare = politeness(prompts, completions, guards=False)
        results[label] = {"stage": str(folder), "politeness": sum(guarded) / len(guarded),
                          "politeness_no_guards": sum(bare) / len(bare), "seconds": round(time.time() - started, 1),
                          "replies": texts, "scores": guarded}
    sft, final = results["sft"], results["final"]
    print(f"held-out prompts: {len(prompts)}, greedy, max_new_tokens {args.max_new_tokens}")
    print(f"{'':28}{'SFT':>10}{'final':>10}{'change':>10}")
    for key, name in (("politeness", "politeness (reward, guards)"), ("politeness_no_guards", "politeness (bare score)")):
        print(f"{name:28}{sft[key]:10.3f}{final[key]:10.3f}{final[key] - sft[key]:+10.3f}")
    for i in (0, len(prompts) // 2, len(prompts) - 1):  # fixed positions, not chosen by result
        print(f"\n[{i}] user: {prompts[i][-1]['content']}")
        print(f"  SFT   ({sft['scores'][i]:.2f}): {sft['replies'][i]}")
        print(f"  final ({final['scores'][i]:.2f}): {final['replies'][i]}")
    (args.run_dir / "eval_politeness.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
