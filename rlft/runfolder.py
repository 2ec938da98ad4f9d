"""The run folder: everything that explains a run, and how stages hand off and resume.

    runs/<name>/
      .rlft_run                written when rlft creates the folder: --fresh empties only folders that have it
      recipe.resolved.yaml     the recipe after overrides and defaults
      lock.json                package versions, git commit, sha256 of the recipe, data and reward files
      metrics.jsonl            one JSON object per trainer log: stage, step, samples seen, every metric
      samples.jsonl            a few sampled completions with each reward's score, every SAMPLES_EVERY steps
      tensorboard/<stage>/     TensorBoard event files
      stages/00_sft/           stage output in HF/PEFT layout (adapter or full weights, tokenizer)
        checkpoints/           trainer checkpoints (an interrupted stage resumes from the last complete one)
        stage_started.json     the hash of the recipe section the checkpoints belong to
        stage_complete.json    written last: the stage finished; holds the hash of its recipe section
        profile.json           with `rlft run --profile`: seconds and peak memory per part of the training

Safety rules (STYLE.md 11): rlft writes into a folder only when it is new, empty or an rlft run folder, and
`--fresh` deletes only the entries listed in `ENTRIES`. A stage binds the run to its recipe section only once it has
a checkpoint or has finished; a failed start (bad model, reward import error, a crash before the first checkpoint)
leaves nothing that refuses the rerun after the fix.
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
from rlft.rewards.contract import redact, redact_argument

PACKAGES = ("rlft", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "evaluate", "gguf",
            "bitsandbytes", "deepspeed", "onnxruntime")
COMPLETE = "stage_complete.json"
STARTED = "stage_started.json"
MARKER = ".rlft_run"
# Everything rlft writes at the top of a run folder: all that --fresh deletes.
ENTRIES = ("stages", "tensorboard", "eval", "metrics.jsonl", "samples.jsonl", "lock.json", "recipe.resolved.yaml")
LOGS = ("metrics.jsonl", "samples.jsonl")  # appended to line by line while training: a kill can tear the last line
PROFILE = "profile.json"


class RunFolder:
    def __init__(self, root: str | Path, is_main: bool = True, label: str | None = None):
        self.root = Path(root)
        self.is_main = is_main
        self.label = label or f"run folder {root}"  # how errors name it: where the user chose it

    def stage_dir(self, index: int, name: str) -> Path:
        return self.root / "stages" / f"{index:02d}_{name}"

    def check(self) -> None:
        """Raise unless rlft may write here: a new folder (whose parent is writable), an empty one or an rlft run
        folder. Read-only, so every process can run it and all stop together."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise RlftError(f"{self.label}: is an existing file, not a folder; give a folder path, e.g. "
                            f"--output-dir runs/NAME")
        if root.is_dir():
            if not is_run_folder(root) and any(root.iterdir()):
                names = sorted(p.name for p in root.iterdir())
                listing = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
                raise RlftError(f"{self.label}: the folder is not empty ({listing}) and is not an rlft run "
                                f"folder (no {MARKER}, lock.json or recipe.resolved.yaml): rlft neither writes into "
                                "nor deletes it, with or without --fresh. Give a new or empty folder")
            if not os.access(root, os.W_OK | os.X_OK):
                raise RlftError(f"{self.label}: the folder is not writable; give a folder you can write to")
            return
        parent = next(p for p in root.absolute().parents if p.exists())  # the folder will be created under it
        if not parent.is_dir():
            raise RlftError(f"{self.label}: {parent} is a file, so the folder cannot be created there")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise RlftError(f"{self.label}: cannot create it, {parent} is not writable; give a folder "
                            "you can write to")

    def prepare(self, fresh: bool) -> None:
        """Create the run folder (or, with `fresh`, delete what rlft wrote in it) and repair logs torn by a kill.
        Call `check` first, on every process."""
        if not self.is_main:
            return
        try:
            if fresh and self.root.is_dir():
                for name in ENTRIES:
                    path = self.root / name
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                    elif path.exists() or path.is_symlink():
                        path.unlink()
                kept = sorted(p.name for p in self.root.iterdir() if p.name != MARKER)
                if kept:
                    print(f"--fresh: deleted what rlft wrote in {self.root}; kept {len(kept)} entr"
                          f"{'y' if len(kept) == 1 else 'ies'} it did not write: {', '.join(kept[:5])}")
            self.root.mkdir(parents=True, exist_ok=True)
            if not (self.root / MARKER).is_file():
                write_atomic(self.root / MARKER, "written by rlft: this folder is an rlft run folder\n")
        except OSError as e:
            raise RlftError(f"{self.label}: cannot write there ({e.strerror or e}); give a folder you "
                            "can write to") from None
        for name in LOGS:
            repair_log(self.root / name)

    def write_resolved(self, recipe: dict) -> None:
        if self.is_main:
            # header values that are not ${ENV_VAR} references never reach the run folder
            write_atomic(self.root / "recipe.resolved.yaml", yaml.safe_dump(redact(recipe), sort_keys=False))

    def write_lock(self, recipe_path: Path, recipe: dict, recipe_dir: Path, model_source: str) -> None:
        if not self.is_main:
            return
        lock = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": [redact_argument(a) for a in sys.argv],
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": {p: _version(p) for p in PACKAGES if _version(p)},
            "git": _git_state(),
            "recipe": {"path": str(recipe_path), "dir": str(recipe_dir.resolve()), "sha256": sha256(recipe_path)},
            "model": {"spec": recipe["model"], "resolved": model_source},
            "files": {str(p): sha256(p) for p in referenced_files(recipe, recipe_dir)},
        }
        write_atomic(self.root / "lock.json", json.dumps(lock, indent=2))

    # --- stage bookkeeping -------------------------------------------------------------------------------------
    def stage_state(self, stage_dir: Path, section_hash: str) -> tuple[str, Path | None]:
        """('complete' | 'interrupted' | 'new', checkpoint to resume from).

        A finished stage, or one with checkpoints, belongs to the recipe section it ran with: another section is an
        error (its weights are never deleted without --fresh). A stage with no checkpoint has nothing to keep; if its
        section changed (a failed start, then a fixed recipe) it simply starts over.
        """
        done = _read_json(stage_dir / COMPLETE)
        if done is not None:
            if done.get("section_hash") != section_hash:
                raise RlftError(self._changed(stage_dir, "finished"))
            return "complete", None
        checkpoint = last_checkpoint(stage_dir / "checkpoints", remove_partial=self.is_main)
        started = _read_json(stage_dir / STARTED) or {}
        if checkpoint is not None:
            if started.get("section_hash") != section_hash:
                raise RlftError(self._changed(stage_dir, f"was trained (up to {checkpoint.name})"))
            return "interrupted", checkpoint
        if started.get("section_hash") not in (None, section_hash) and self.is_main:
            shutil.rmtree(stage_dir)  # rlft's own stage folder, from a start that saved nothing
        return "new", None

    @staticmethod
    def _changed(stage_dir: Path, what: str) -> str:
        return (f"{stage_dir}: this stage {what} with a different recipe (its section, an earlier stage or a data "
                "file changed since). Rerun with --fresh to start the run over, or give a new --output-dir to keep "
                "the old run.")

    def mark_started(self, stage_dir: Path, section_hash: str) -> None:
        if self.is_main:
            stage_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(stage_dir / STARTED, json.dumps({"section_hash": section_hash}))

    def mark_complete(self, stage_dir: Path, section_hash: str, summary: dict) -> None:
        if self.is_main:
            write_atomic(stage_dir / COMPLETE, json.dumps({"section_hash": section_hash, **summary}, indent=2))

    def completed_summary(self, stage_dir: Path) -> dict:
        return json.loads((stage_dir / COMPLETE).read_text())

    def metrics_callback(self, stage: str) -> TrainerCallback:
        return MetricsCallback(self.root / "metrics.jsonl", stage)

    def samples_callback(self, stage: str) -> TrainerCallback:
        return SamplesCallback(self.root / "samples.jsonl", stage)

    def profile_path(self, stage_dir: Path) -> Path:
        return stage_dir / PROFILE

    def read_profile(self, stage_dir: Path) -> dict:
        return json.loads((stage_dir / PROFILE).read_text())

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


def is_run_folder(path: Path) -> bool:
    """A folder rlft created: its marker, or (run folders written before the marker) its lock and resolved recipe."""
    path = Path(path)
    return (path / MARKER).is_file() or ((path / "lock.json").is_file() and (path / "recipe.resolved.yaml").is_file())


def run_folder_of(path: Path) -> Path | None:
    """The run folder that `path` is in (or is), if any."""
    path = Path(path).resolve()
    return next((p for p in (path, *path.parents) if is_run_folder(p)), None)


# What a saved HF model folder (save_pretrained of a model and its tokenizer, and rlft's note) holds: the only files
# `rlft merge --force` replaces.
MODEL_FILES = ("config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
               "tokenizer*", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "vocab.*",
               "merges.txt", "*.model", "rlft_stage.json")


def check_export_target(source: Path, out: Path, force: bool) -> None:
    """Raise unless a model built from `source` may be written to `out` (`rlft merge --out`).

    Never the run folder `source` belongs to, anything inside it or a folder holding it. An existing folder only when
    empty, or with `force` when it holds nothing but model files (a previous merge); never a file.
    """
    out_abs, source_abs = Path(out).resolve(), Path(source).resolve()
    run = run_folder_of(source_abs) or source_abs
    where = ("the run folder" if out_abs == run else "inside the run folder" if run in out_abs.parents
             else "a folder that holds the run folder" if out_abs in run.parents else None)
    if where:
        raise RlftError(f"--out {out}: is {where} {run}; writing there would replace the run's files. Give a folder "
                        f"outside it, e.g. --out {run.parent / (run.name + '-merged')}")
    if not out_abs.exists():
        return
    if not out_abs.is_dir():
        raise RlftError(f"--out {out}: is an existing file; give a folder path (it is not replaced, even with --force)")
    entries = sorted(out_abs.iterdir())
    if not entries:
        return
    if not force:
        raise RlftError(f"--out {out}: the folder is not empty ({', '.join(p.name for p in entries[:5])}); give a new "
                        "folder, or --force to replace a model folder from an earlier merge")
    foreign = [p.name + ("/" if p.is_dir() else "") for p in entries
               if p.is_dir() or not any(p.match(pattern) for pattern in MODEL_FILES)]
    if foreign:
        raise RlftError(f"--out {out}: --force replaces only a model folder (config.json, *.safetensors, tokenizer "
                        f"files), and this one also holds {', '.join(foreign[:5])}; move those or give a new folder")


def last_checkpoint(folder: Path, remove_partial: bool = False) -> Path | None:
    """The newest complete trainer checkpoint in `folder`. The Trainer writes trainer_state.json last, so a checkpoint
    without a readable one was cut off by a kill; with `remove_partial` such folders (the Trainer's, in rlft's stage
    folder) are deleted, so the resumed run rewrites them from scratch."""
    found = []
    for path in Path(folder).glob("checkpoint-*"):
        if path.is_dir() and path.name.split("-", 1)[1].isdigit():
            found.append((int(path.name.split("-", 1)[1]), path))
    complete = None
    for _, path in sorted(found, reverse=True):
        if complete is None and _read_json(path / "trainer_state.json") is not None:
            complete = path
        elif complete is None and remove_partial:
            shutil.rmtree(path)
    return complete


def repair_log(path: Path) -> None:
    """Drop a last line that a kill cut off mid-write, so the file stays one JSON object per line."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    with path.open("r+b") as f:
        f.truncate(keep)
    print(f"{path}: dropped a partial last line left by an interrupted run")


def _read_json(path: Path) -> dict | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def write_atomic(path: Path, text: str) -> None:
    """Write a file under a temporary name and rename it: a reader never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)

