"""The trainer callbacks that write a run folder's logs: metrics.jsonl (every trainer log) and samples.jsonl (a few
scored completions). `RunFolder.metrics_callback` / `samples_callback` build them with the paths."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback

from rlft.text import as_text, openings


class MetricsCallback(TrainerCallback):
    """Appends every trainer log to metrics.jsonl (main process only) with the stage and global step."""

    def __init__(self, path: Path, stage: str):
        self.path = path
        self.stage = stage

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"stage": self.stage, "step": state.global_step, "samples": samples_seen(args, state.global_step),
               "time": round(time.time(), 3), **logs}
        with self.path.open("a") as f:
            f.write(json.dumps(row, default=float) + "\n")


def samples_seen(args, step: int) -> int:
    """Training samples consumed after `step` optimizer steps, over all processes: rows for SFT/DPO, completions for
    GRPO/PPO/RLOO, prompts for online DPO. A batch reused `num_iterations` times (PPO epochs) counts once."""
    batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    return step * batch // max(1, getattr(args, "num_iterations", 1))


SAMPLES_EVERY = 10  # samples.jsonl: completions of the batch scored at step 1, every 10th step and the last step
SAMPLES_KEEP = 4  # ... this many of that batch, spread over it (GRPO's k completions of a prompt are adjacent), each
#                   with the whole batch's size, top opening and its share (batch_completions, batch_top_opening, ...)


class SamplesCallback(TrainerCallback):
    """Keeps a few sampled completions with every reward's score in samples.jsonl (main process only).

    The stage's rewards (`rlft.rewards.CheckedReward`) hand each batch they score to `record`. TRL calls every reward
    on the same completions, so the scores of one batch are joined by its completions.
    """

    def __init__(self, path: Path, stage: str, every: int = SAMPLES_EVERY, keep: int = SAMPLES_KEEP):
        self.path, self.stage, self.every, self.keep = path, stage, every, keep
        self.batch = None

    def record(self, name: str, prompts: list, completions: list, values: list) -> None:
        if self.batch is None or self.batch["completions"] != completions:
            self.batch = {"prompts": prompts, "completions": completions, "rewards": {}}
        self.batch["rewards"][name] = values

    def on_train_begin(self, args, state, control, **kwargs):
        self.batch = None  # completions scored before training (DPO's pairs) are not training samples

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == 1 or state.global_step % self.every == 0:
            self._write(state)

    def on_train_end(self, args, state, control, **kwargs):
        self._write(state)

    def _write(self, state) -> None:
        if self.batch is None or not state.is_world_process_zero:
            return
        b, rows, n = self.batch, [], len(self.batch["completions"])
        keep = min(self.keep, n)
        # the whole batch's opening concentration (rlft.hacking's training signal): 4 kept samples cannot show it
        heads = openings([as_text(c) for c in b["completions"]], top=1)
        batch = {"batch_completions": n, "batch_opening_share": round(heads["share"], 4),
                 "batch_top_opening": heads["top"][0][0] if heads["top"] else ""}
        for i in (j * n // keep for j in range(keep)):  # spread over the batch: one per prompt group, not one group
            rows.append({"stage": self.stage, "step": state.global_step, "prompt": as_text(b["prompts"][i]),
                         "completion": as_text(b["completions"][i]),
                         "rewards": {name: values[i] for name, values in b["rewards"].items()}, **batch})
        with self.path.open("a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        self.batch = None  # each batch once
