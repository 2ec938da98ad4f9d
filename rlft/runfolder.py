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

import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import yaml

from rlft.errors import RlftError
from rlft.provenance import PACKAGES, git_state, referenced_files, sha256, version
from rlft.redaction import redact, redact_argument

# The layout: only this module spells these names; everything else asks a RunFolder (or `stage_info`).
RESOLVED = "recipe.resolved.yaml"
LOCK = "lock.json"
METRICS = "metrics.jsonl"
SAMPLES = "samples.jsonl"
STAGES = "stages"
EVAL = "eval"
EVAL_COMPLETE = "eval_complete.json"  # in eval/, written last: the evaluation of these stage outputs finished
EVAL_SUMMARY = "summary.json"  # in eval/: the numbers of eval/report.md, read back by rlft compare
COMPLETE = "stage_complete.json"
STARTED = "stage_started.json"
CHECKPOINTS = "checkpoints"  # in a stage folder: the trainer's output_dir
STAGE_INFO = "rlft_stage.json"  # rlft's note beside a stage's weights (template, base model, rewards, ...)
TRAINER_CONFIG = "trainer_config.json"  # in a stage folder: the TRL config the stage ran with, every default resolved
MARKER = ".rlft_run"
# Everything rlft writes at the top of a run folder: all that --fresh deletes.
ENTRIES = (STAGES, "tensorboard", EVAL, METRICS, SAMPLES, LOCK, RESOLVED)
LOGS = (METRICS, SAMPLES)  # appended to line by line while training: a kill can tear the last line
PROFILE = "profile.json"


class RunFolder:
    def __init__(self, root: str | Path, is_main: bool = True, label: str | None = None):
        self.root = Path(root)
        self.is_main = is_main
        self.label = label or f"run folder {root}"  # how errors name it: where the user chose it

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """An existing run folder, to read (compare, eval): writes nothing; a clear error when `path` is not one."""
        path = Path(path)
        if not path.is_dir():
            raise RlftError(f"{path}: no such folder; give run folders written by `rlft run`, e.g. "
                            "runs/polite-assistant")
        if not (path / RESOLVED).is_file() and not (path / METRICS).is_file():
            hint = sorted(p.parent.name for p in path.glob(f"*/{RESOLVED}"))[:5]
            extra = f"; run folders inside it: {', '.join(hint)}" if hint else ""
            raise RlftError(f"{path}: not an rlft run folder (it has neither {RESOLVED} nor {METRICS}){extra}")
        return cls(path, is_main=False)

    # --- where things are --------------------------------------------------------------------------------------
    def stage_dir(self, index: int, name: str) -> Path:
        return self.root / STAGES / f"{index:02d}_{name}"

    def stage_dirs(self, stages: list[dict]) -> dict[str, Path]:
        """Stage name -> its folder, for a recipe's stages (finished or not)."""
        return {s["name"]: self.stage_dir(i, s["name"]) for i, s in enumerate(stages)}

    def finished_stages(self) -> dict[str, Path]:
        """Stage name -> folder of every finished stage, in run order."""
        done = sorted(p.parent for p in self.root.glob(f"{STAGES}/[0-9][0-9]_*/{COMPLETE}"))
        return {d.name.split("_", 1)[1]: d for d in done}

    @staticmethod
    def is_complete(stage_dir: Path) -> bool:
        return (Path(stage_dir) / COMPLETE).is_file()

    @property
    def metrics_path(self) -> Path:
        return self.root / METRICS

    @property
    def samples_path(self) -> Path:
        return self.root / SAMPLES

    @property
    def resolved_path(self) -> Path:
        return self.root / RESOLVED

    @property
    def eval_dir(self) -> Path:
        return self.root / EVAL

    @property
    def eval_complete_path(self) -> Path:
        return self.root / EVAL / EVAL_COMPLETE

    @property
    def eval_summary_path(self) -> Path:
        return self.root / EVAL / EVAL_SUMMARY

    def resolved_recipe(self) -> dict:
        """The recipe the run used (recipe.resolved.yaml); {} when it has none."""
        return (yaml.safe_load(self.resolved_path.read_text()) or {}) if self.resolved_path.is_file() else {}

    def lock(self) -> dict:
        """lock.json (versions, hashes, where the recipe and model were); {} when it has none."""
        return _read_json(self.root / LOCK) or {}

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
                                f"folder (no {MARKER}, {LOCK} or {RESOLVED}): rlft neither writes into "
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
            write_atomic(self.resolved_path, yaml.safe_dump(redact(recipe), sort_keys=False))

    def write_lock(self, recipe_path: Path, recipe: dict, recipe_dir: Path, model_source: str) -> None:
        if not self.is_main:
            return
        lock = {
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": [redact_argument(a) for a in sys.argv],
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "packages": {p: version(p) for p in PACKAGES if version(p)},
            "git": git_state(),
            "recipe": {"path": str(recipe_path), "dir": str(recipe_dir.resolve()), "sha256": sha256(recipe_path)},
            "model": {"spec": recipe["model"], "resolved": model_source},
            "files": {str(p): sha256(p) for p in referenced_files(recipe, recipe_dir)},
        }
        write_atomic(self.root / LOCK, json.dumps(lock, indent=2))

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
        checkpoint = last_checkpoint(checkpoints_dir(stage_dir), remove_partial=self.is_main)
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

    def metrics_callback(self, stage: str):
        from rlft.run_logs import MetricsCallback  # imports transformers: deferred, so `rlft compare` starts fast

        return MetricsCallback(self.metrics_path, stage)

    def samples_callback(self, stage: str):
        from rlft.run_logs import SamplesCallback  # as above

        return SamplesCallback(self.samples_path, stage)

    def profile_path(self, stage_dir: Path) -> Path:
        return stage_dir / PROFILE

    def read_profile(self, stage_dir: Path) -> dict:
        return json.loads((stage_dir / PROFILE).read_text())

    def tensorboard_dir(self, stage: str) -> Path:
        return self.root / "tensorboard" / stage


def checkpoints_dir(stage_dir: Path) -> Path:
    """Where a stage's trainer writes its checkpoints (its `output_dir`)."""
    return Path(stage_dir) / CHECKPOINTS


def stage_info(stage_dir: Path) -> dict:
    """rlft's note beside a stage's weights (rlft_stage.json: its prompt template, base model, rewards); {} if none."""
    return _read_json(Path(stage_dir) / STAGE_INFO) or {}


def is_run_folder(path: Path) -> bool:
    """A folder rlft created: its marker, or (run folders written before the marker) its lock and resolved recipe."""
    path = Path(path)
    return (path / MARKER).is_file() or ((path / LOCK).is_file() and (path / RESOLVED).is_file())


def run_folder_of(path: Path) -> Path | None:
    """The run folder that `path` is in (or is), if any."""
    path = Path(path).resolve()
    return next((p for p in (path, *path.parents) if is_run_folder(p)), None)


# What a saved HF model folder (save_pretrained of a model and its tokenizer, and rlft's note) holds: the only files
# `rlft merge --force` replaces.
MODEL_FILES = ("config.json", "generation_config.json", "*.safetensors", "model.safetensors.index.json",
               "tokenizer*", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "vocab.*",
               "merges.txt", "*.model", STAGE_INFO)


def check_export_target(source: Path, out: Path, force: bool) -> None:
    """Raise unless a model built from `source` may be written to `out` (`rlft merge --out`).

    Never the run folder `source` belongs to, anything inside it or a folder holding it, nor anything inside another
    run folder (its next stage may load a merged model from there). An existing folder only when empty, or with
    `force` when an earlier `rlft merge` wrote it (its rlft_stage.json says `merged_from`) and it holds nothing but
    model files; never a file, never a model folder rlft did not merge (a base model, the GGUF cache).
    """
    out_abs, source_abs = Path(out).resolve(), Path(source).resolve()
    run = run_folder_of(source_abs) or source_abs
    other = run_folder_of(out_abs)
    where = ("the run folder" if out_abs == run else "inside the run folder" if run in out_abs.parents
             else "a folder that holds the run folder" if out_abs in run.parents
             else f"inside another run folder, {other}, whose stages may load from it; so it" if other else None)
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
    if "merged_from" not in (_read_json(out_abs / STAGE_INFO) or {}):
        raise RlftError(f"--out {out}: --force replaces only a model folder an earlier `rlft merge` wrote, and this "
                        "one is not (no merged_from in its rlft_stage.json): it may be a base model something else "
                        "loads. Give a new folder")


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

