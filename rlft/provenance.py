"""What explains a run's inputs: the hash of each stage's recipe section, the local files a recipe points at and their
sha256, package versions and the git state (written to lock.json by `RunFolder.write_lock`)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("rlft", "torch", "transformers", "trl", "peft", "datasets", "accelerate", "evaluate", "gguf",
            "bitsandbytes", "deepspeed", "onnxruntime")


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


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_state() -> dict | None:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.TimeoutExpired):
        return None
