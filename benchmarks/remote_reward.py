"""Benchmark a reward over HTTP against the same reward in-process: what `url:` costs.

    python benchmarks/remote_reward.py [--texts 1024] [--batch 64] [--rounds 3]

Starts `rlft serve-reward reward_models.politeness:politeness` on a free localhost port, then scores the same
texts (assistant replies from recipes/data/polite_sft.jsonl, repeated) both ways, through the wrappers a run uses
(`CheckedReward` around the function, around `RemoteReward` for the server), in calls of --batch completions:

- texts/s in-process and over HTTP (best of --rounds), and their ratio;
- overhead per call in ms: (HTTP time - in-process time) / calls, at --batch and at 1 completion per call
  (pure round-trip cost: JSON, HTTP on localhost, the server's thread hop).

Both are measured in this run on this machine. A shared machine makes both slower; the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from reward_models.politeness import politeness  # noqa: E402
from rlft.rewards import CheckedReward, RemoteReward  # noqa: E402


def texts(n: int) -> tuple[list, list]:
    rows = [json.loads(line) for line in (REPO_ROOT / "recipes/data/polite_sft.jsonl").read_text().splitlines()]
    pairs = [(r["messages"][0]["content"], r["messages"][-1]["content"]) for r in rows]
    pairs = (pairs * (n // len(pairs) + 1))[:n]
    return [p for p, _ in pairs], [c for _, c in pairs]


def best_seconds(reward, prompts: list, completions: list, batch: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for start in range(0, len(completions), batch):
            reward(prompts=prompts[start:start + batch], completions=completions[start:start + batch])
        best = min(best, time.perf_counter() - started)
    return best


def start_server() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "rlft.cli", "serve-reward", "reward_models.politeness:politeness",
                                "--port", "0"], cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    line = process.stdout.readline()
    if "http://" not in line:
        process.kill()
        sys.exit(f"the server did not start: {line}")
    return process, line.split(" on ")[1].split()[0]  # http://127.0.0.1:PORT/score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    prompts, completions = texts(args.texts)
    process, url = start_server()
    try:
        local = CheckedReward(politeness, "politeness")
        remote = CheckedReward(RemoteReward(url, max_batch=args.batch), "politeness", timeout=None)
        remote(prompts=prompts[:2], completions=completions[:2])  # warm both sides (first-call imports, caches)
        local(prompts=prompts[:2], completions=completions[:2])
        calls = -(-args.texts // args.batch)
        t_local = best_seconds(local, prompts, completions, args.batch, args.rounds)
        t_remote = best_seconds(remote, prompts, completions, args.batch, args.rounds)
        single = min(args.texts, 64)
        t_local_1 = best_seconds(local, prompts[:single], completions[:single], 1, args.rounds)
        t_remote_1 = best_seconds(remote, prompts[:single], completions[:single], 1, args.rounds)
    finally:
        process.terminate()
        process.wait(timeout=60)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {args.texts} texts, "
          f"{calls} calls of {args.batch}, best of {args.rounds}")
    print(f"inprocess_texts_per_s {args.texts / t_local:.0f}")
    print(f"remote_texts_per_s {args.texts / t_remote:.0f}")
    print(f"ratio remote_vs_inprocess {t_local / t_remote:.3f}")
    print(f"overhead_ms_per_call batch={args.batch} {(t_remote - t_local) / calls * 1000:.2f}")
    print(f"overhead_ms_per_call batch=1 {(t_remote_1 - t_local_1) / single * 1000:.2f}")


if __name__ == "__main__":
    main()
