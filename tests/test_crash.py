"""Crash safety: SIGKILL a real two-stage run (SFT with LoRA -> GRPO with LoRA, then eval) at four points, rerun the
same command after each, and check that the run finishes as if it had never been killed.

Kill points are chosen by watching what the run writes, never by sleeping:
  1. SFT training: metrics.jsonl has the SFT row of step 3 (checkpoint-2 saved, checkpoint-4 not yet);
  2. the LoRA merge before GRPO: the merge's temporary folder appears in stages/00_sft/;
  3. GRPO training: metrics.jsonl has the GRPO row of step 3; a torn last line is then appended, as a kill in the
     middle of a write would leave it;
  4. eval: the run prints that it is generating with the second model.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import messages_rows, prompt_rows, write_jsonl, write_recipe

SAVE_STEPS = 2
RECIPE = f"""name: crash
model: MODEL
seed: 0
stages:
  - name: sft
    type: sft
    data: {{train: data.jsonl}}
    lora: {{r: 4, lora_alpha: 8, target_modules: all-linear}}
    args: {{max_steps: 4, save_steps: {SAVE_STEPS}, per_device_train_batch_size: 2, learning_rate: 1.0e-2,
           max_length: 64}}
  - name: rl
    type: grpo
    data: {{train: prompts.jsonl}}
    lora: {{r: 4, lora_alpha: 8, target_modules: all-linear}}
    rewards: [{{fn: my_rewards.py:length}}]
    args: {{max_steps: 4, save_steps: {SAVE_STEPS}, per_device_train_batch_size: 2, num_generations: 2,
           max_completion_length: 8, learning_rate: 1.0e-2}}
eval:
  prompts: prompts.jsonl
  max_new_tokens: 4
  batch_size: 1
  limit: 3
"""
REWARDS_PY = ("def length(prompts, completions, **kwargs):\n"
              "    return [len(c[-1]['content']) / 100 for c in completions]\n")


class Run:
    """`rlft run` as a child process whose printed lines are collected as they come."""

    def __init__(self, args: list[str], cwd: Path):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "2"}
        self.proc = subprocess.Popen([sys.executable, "-m", "rlft.cli", "run", *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def kill_when(self, seen, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while not seen():
            if self.proc.poll() is not None:
                self.reader.join(5)
                pytest.fail(f"the run ended (exit {self.proc.returncode}) before the kill point:\n{self.output()}")
            if time.time() > deadline:
                self.proc.kill()
                pytest.fail(f"kill point not reached in {timeout}s:\n{self.output()}")
            time.sleep(0.002)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self.reader.join(5)

    def finish(self, timeout: float = 300) -> str:
        self.proc.wait(timeout)
        self.reader.join(5)
        assert self.proc.returncode == 0, self.output()
        return self.output()

    def output(self) -> str:
        return "".join(self.lines)[-6000:]


def logged_steps(root: Path, stage: str) -> list[int]:
    path = root / "metrics.jsonl"
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        if row.get("stage") == stage and "loss" in row:
            steps.append(row["step"])
    return steps


@pytest.mark.slow
def test_killed_run_resumes_at_every_point(tmp_path, tiny_model_dir):
    started = time.time()
    write_jsonl(tmp_path / "data.jsonl", messages_rows())
    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    (tmp_path / "my_rewards.py").write_text(REWARDS_PY)
    write_recipe(tmp_path / "recipe.yaml", RECIPE.replace("MODEL", str(tiny_model_dir)))
    root = tmp_path / "run"
    args = ["recipe.yaml", "--output-dir", str(root)]
    sft, rl = root / "stages" / "00_sft", root / "stages" / "01_rl"

    # 1. during SFT training
    Run(args, tmp_path).kill_when(lambda: 3 in logged_steps(root, "sft"))
    assert not (sft / "stage_complete.json").exists()
    assert (sft / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()

    # 2. during the LoRA merge of the finished SFT stage (the next stage's starting point)
    Run(args, tmp_path).kill_when(lambda: any(sft.glob(".merged.partial-*")))
    assert (sft / "stage_complete.json").is_file()
    sft_weights = (sft / "adapter_model.safetensors").stat().st_mtime_ns
    merged = sft / "merged"
    # no half merge under the real name: either none, or a whole one (the kill came after the rename)
    assert not merged.exists() or {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in
                                                                                           merged.iterdir()}
    cut_mid_merge = any(sft.glob(".merged.partial-*"))

    # 3. during GRPO training, and a torn last line as a kill mid-write would leave it
    Run(args, tmp_path).kill_when(lambda: 3 in logged_steps(root, "rl"))
    assert not (rl / "stage_complete.json").exists()
    with (root / "metrics.jsonl").open("a") as f:
        f.write('{"stage": "rl", "step": 4, "lo')

    # 4. during eval, between two models
    run = Run(args, tmp_path)
    run.kill_when(lambda: any("eval: sft: generating" in line for line in run.lines))
    assert (rl / "stage_complete.json").is_file() and not (root / "eval" / "summary.json").exists()

    out = Run(args, tmp_path).finish()
    assert "skipped" in out and (root / "eval" / "summary.json").is_file() and (root / "eval" / "report.md").is_file()

    # finished stages were never trained again
    assert (sft / "adapter_model.safetensors").stat().st_mtime_ns == sft_weights
    rows = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]  # no torn line left
    first_rl = next(i for i, r in enumerate(rows) if r["stage"] == "rl")
    assert all(r["stage"] != "sft" for r in rows[first_rl:])
    # each kill repeats at most one checkpoint interval of steps
    for stage, kills in (("sft", 1), ("rl", 1)):
        steps = logged_steps(root, stage)
        assert sorted(set(steps)) == [1, 2, 3, 4], steps
        assert len(steps) - len(set(steps)) <= kills * SAVE_STEPS, steps
    assert (merged / "model.safetensors").is_file() and not list(sft.glob(".merged.partial-*"))

    from rlft.compare import load_run

    assert load_run(root).skipped_lines == 0  # rlft compare reads every line
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"4 kill points (merge cut mid-write: {cut_mid_merge}), 5 processes, {time.time() - started:.0f}s wall, "
          f"{cpu.ru_utime + cpu.ru_stime:.0f}s CPU in the runs")
