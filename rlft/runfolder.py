"""The run folder: everything that explains a run, and how stages hand off and resume.

    runs/<name>/
      recipe.resolved.yaml     the recipe after overrides and defaults
      lock.json                package versions, git commit, sha256 of the recipe, data and reward files
      metrics.jsonl            one JSON object per trainer log: stage, step, samples seen, every metric
      samples.jsonl            a few sampled completions with each reward's score, every SAMPLES_EVERY steps
      tensorboard/<stage>/     TensorBoard event files
      stages/00_sft/           stage output in HF/PEFT layout (adapter or full weights, tokenizer)
        checkpoints/           trainer checkpoints (an interrupted stage resumes from the last one)
        stage_complete.json    written last: the stage finished; holds the hash of its recipe section
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import yaml
from transformers import TrainerCallback

from rlft.errors import RlftError

PACKAGES = ("rlft", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "evaluate", "gguf",
            "bitsandbytes", "deepspeed", "onnxruntime")
COMPLETE = "stage_complete.json"
STARTED = "stage_started.json"


class RunFolder:
    def __init__(self, root: str | Path, is_main: bool = True):
        self.root = Path(root)
        self.is_main = is_main

    def stage_dir(self, index: int, name: str) -> Path:
        return self.root / "stages" / f"{index:02d}_{name}"

    def prepare(self, fresh: bool) -> None:
        if not self.is_main:
            return
        if fresh and self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)

    def write_resolved(self, recipe: dict) -> None:
        if self.is_main:
            _write_atomic(self.root / "recipe.resolved.yaml", yaml.safe_dump(recipe, sort_keys=False))

    def write_lock(self, recipe_path: Path, recipe: dict, recipe_dir: Path, model_source: str) -> None:
        if not self.is_main:
            return
        lock = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": sys.argv,
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": {p: _version(p) for p in PACKAGES if _version(p)},
            "git": _git_state(),
            "recipe": {"path": str(recipe_path), "dir": str(recipe_dir.resolve()), "sha256": sha256(recipe_path)},
            "model": {"spec": recipe["model"], "resolved": model_source},
            "files": {str(p): sha256(p) for p in referenced_files(recipe, recipe_dir)},
        }
        _write_atomic(self.root / "lock.json", json.dumps(lock, indent=2))

    # --- stage bookkeeping -------------------------------------------------------------------------------------
    def stage_state(self, stage_dir: Path, section_hash: str) -> str:
        """'new', 'complete' or 'interrupted'; a stage done or begun under another recipe section is an error."""
        for marker, what in ((COMPLETE, "finished"), (STARTED, "was started")):
            path = stage_dir / marker
            if path.is_file():
                old = json.loads(path.read_text()).get("section_hash")
                if old != section_hash:
                    raise RlftError(
                        f"{stage_dir}: this stage {what} with a different recipe (its section, an earlier stage "
                        "or a data file changed since). Rerun with --fresh to start the run over, or give a new "
                        "--output-dir to keep the old run."
                    )
                return "complete" if marker == COMPLETE else "interrupted"
        return "new"

    def mark_started(self, stage_dir: Path, section_hash: str) -> None:
        if self.is_main:
            stage_dir.mkdir(parents=True, exist_ok=True)
            _write_atomic(stage_dir / STARTED, json.dumps({"section_hash": section_hash}))

    def mark_complete(self, stage_dir: Path, section_hash: str, summary: dict) -> None:
        if self.is_main:
            _write_atomic(stage_dir / COMPLETE, json.dumps({"section_hash": section_hash, **summary}, indent=2))

    def completed_summary(self, stage_dir: Path) -> dict:
        return json.loads((stage_dir / COMPLETE).read_text())

    def metrics_callback(self, stage: str) -> TrainerCallback:
        return MetricsCallback(self.root / "metrics.jsonl", stage)

    def samples_callback(self, stage: str) -> TrainerCallback:
        return SamplesCallback(self.root / "samples.jsonl", stage)

    def tensorboard_dir(self, stage: str) -> Path:
        return self.root / "tensorboard" / stage


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
SAMPLES_KEEP = 4  # ... this many of that batch, spread over it (GRPO's k completions of a prompt are adjacent)


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
        for i in (j * n // keep for j in range(keep)):  # spread over the batch: one per prompt group, not one group
            rows.append({"stage": self.stage, "step": state.global_step, "prompt": _text(b["prompts"][i]),
                         "completion": _text(b["completions"][i]),
                         "rewards": {name: values[i] for name, values in b["rewards"].items()}})
        with self.path.open("a") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        self.batch = None  # each batch once


def _text(item) -> str:
    """A prompt or completion as text: the last message's content for conversational data."""
    if isinstance(item, list) and item and isinstance(item[-1], dict):
        return str(item[-1].get("content", ""))
    return str(item)


def section_hash(previous: str, stage: dict, top: dict, recipe_dir: Path) -> str:
    """Hash of what determines a stage's output: its section, model/seed/dtype, its files, and the stages before."""
    files = {str(p): sha256(p) for p in referenced_files({"stages": [stage]}, recipe_dir)}
    keys = {k: top.get(k) for k in ("model", "seed", "dtype", "trust_remote_code")}
    payload = json.dumps([previous, stage, keys, files], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def referenced_files(recipe: dict, recipe_dir: Path) -> list[Path]:
    """Local files a recipe points at: data files and reward modules (`file.py:function`)."""
    found = []

    def visit(node):
        if isinstance(node, dict):
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)
        elif isinstance(node, str) and ("/" in node or "." in node) and "\n" not in node:
            candidate = node.split(":")[0] if ".py:" in node else node
            for base in (recipe_dir, Path.cwd()):
                path = base / candidate
                if path.is_file():
                    found.append(path.resolve())
                    break
            else:
                module = _module_file(node)
                if module is not None:
                    found.append(module)

    visit(recipe.get("stages", []))
    return sorted(set(found))


def _module_file(ref: str) -> Path | None:
    """The source file of a dotted `package.module:function` reference, without importing the module."""
    module, sep, attr = ref.partition(":")
    if not sep or not attr.isidentifier() or not all(p.isidentifier() for p in module.split(".")):
        return None
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin).resolve() if spec and spec.origin and spec.origin.endswith(".py") else None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_state() -> dict | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
