"""The polite_assistant PPO stage, profiled before and after rlft's CPU speed-ups, in one run.

    python benchmarks/ppo_profile.py [--sft runs/polite-assistant/stages/00_sft/merged] [--max-steps 20]

Runs the flagship's PPO stage alone (recipes/polite_assistant.yaml, its settings unchanged), starting from the merged
SFT model of a finished flagship run (the README's main command leaves it at the default --sft), three times, one
arm after another, each in its own process with `rlft run --profile`:

  before      RLFT_CPU_BF16=0 RLFT_GENERATION_SPEEDUPS=0 RLFT_CPU_LM_HEAD=0: fp32, TRL's generate, TRL's
              old-log-prob forward and TRL's tiled LM head
  TRL head    RLFT_CPU_LM_HEAD=0: rlft's defaults (bf16 autocast where the CPU has it, merged-adapter and
              shared-prefill generation, old log-probs kept while sampling) but TRL's tiled LM head
  after       rlft's defaults (with the CPU LM head, rlft/compat.py: install_cpu_lm_head)

It prints each arm's profile (exclusive seconds per part, peak RSS), the mean politeness reward of each generation
batch (the curves must agree within noise), and machine-readable lines:
  ratio ppo_stage_after_vs_before       before train seconds / after train seconds
  ratio ppo_cpu_lm_head                 TRL-head train seconds / after train seconds
The default takes ~13 minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "polite_assistant.yaml"
ARMS = {
    "before": {"RLFT_CPU_BF16": "0", "RLFT_GENERATION_SPEEDUPS": "0", "RLFT_CPU_LM_HEAD": "0"},
    "TRL head": {"RLFT_CPU_LM_HEAD": "0"},
    "after": {},
}
PARTS = ("generation", "reference", "policy_logprobs", "forward_backward")


def ppo_only(sft: Path, max_steps: int | None, folder: Path) -> Path:
    """The flagship recipe with its PPO stage alone, starting from `sft`; data paths made absolute."""
    recipe = yaml.safe_load(RECIPE.read_text())
    stage = next(s for s in recipe["stages"] if s["type"] == "ppo")
    stage["data"] = {k: str((RECIPE.parent / v).resolve()) for k, v in stage["data"].items()}
    if max_steps:
        stage["args"]["max_steps"] = max_steps
    recipe.update(name="ppo-profile", model=str(sft.resolve()), stages=[stage])
    recipe.pop("eval", None)
    path = folder / "ppo_only.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run_arm(recipe: Path, out: Path, env: dict) -> dict:
    cmd = [sys.executable, "-m", "rlft.cli", "run", str(recipe), "--output-dir", str(out), "--profile"]
    done = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    profile = json.loads(next(out.glob("stages/*/profile.json")).read_text())
    rewards = [r["rewards/politeness/mean"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
               if "rewards/politeness/mean" in r]
    return {"profile": profile, "rewards": rewards}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sft", type=Path, default=ROOT / "runs" / "polite-assistant" / "stages" / "00_sft" / "merged")
    parser.add_argument("--max-steps", type=int, default=None, help="PPO steps (default: the recipe's)")
    args = parser.parse_args()
    if not (args.sft / "config.json").is_file():
        sys.exit(f"{args.sft}: no merged SFT model here; run the README's main command first "
                 "(accelerate launch rlft/run.py recipes/polite_assistant.yaml) or give --sft")
    results = {}
    with tempfile.TemporaryDirectory(prefix="rlft-ppo-profile-") as tmp:
        recipe = ppo_only(args.sft, args.max_steps, Path(tmp))
        for arm, env in ARMS.items():
            results[arm] = run_arm(recipe, Path(tmp) / arm.replace(" ", "_"), env)
            p = results[arm]["profile"]
            parts = "  ".join(f"{name} {p['parts'].get(name, {}).get('seconds', 0.0):.1f}" for name in PARTS)
            print(f"{arm:9s} train {p['seconds']:.1f} s  {parts}  peak {p['peak_mb']:.0f} MB  "
                  f"reward per batch {[round(r, 3) for r in results[arm]['rewards']]}", flush=True)
    seconds = {arm: r["profile"]["seconds"] for arm, r in results.items()}
    print(f"ratio ppo_stage_after_vs_before {seconds['before'] / seconds['after']:.3f}")
    print(f"ratio ppo_cpu_lm_head {seconds['TRL head'] / seconds['after']:.3f}")


if __name__ == "__main__":
    main()
