"""Importing user reward code: `module.path:function` or `file.py:function`, relative to the recipe's folder.

1. A file is loaded with `importlib.util.spec_from_file_location` under a name unique to its path
   (`rlft_user_<stem>_<hash>`), so two recipes' `my_rewards.py` in one process are two modules.
2. Nothing stays behind in `sys.path` or `sys.modules`: the file's folder is on the path only while it runs, and
   the modules it imported from that folder (its neighbours) are taken out of `sys.modules` again -- the loaded
   module keeps them in its globals. A neighbour imported later, inside a function, must be importable on its own.
3. Code that exits at import (`sys.exit()`, `SystemExit`, `KeyboardInterrupt`) is an error naming the module, not a
   silent exit 0.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from contextlib import contextmanager
from pathlib import Path

from rlft.errors import RlftError

_LOADED: dict[tuple, object] = {}  # (kind, resolved path or name, folder, mtime) -> module


def load_function(spec: str, base_dir: Path):
    """`module.path:function` or `file.py:function` -> the function. Raises RlftError saying what is wrong."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr:
        raise RlftError(f"{spec!r} must be module.path:function or file.py:function, e.g. my_rewards.py:brevity")
    module = load_module(target, base_dir)
    fn = getattr(module, attr, None)
    if fn is None:
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise RlftError(f"{spec!r}: {target} has no {attr!r}; functions defined there: {found or 'none'}")
    if not callable(fn):
        raise RlftError(f"{spec!r}: {attr} is a {type(fn).__name__}, not a function")
    return fn


def load_module(target: str, base_dir: Path):
    """The module named by `target`: a .py file (recipe folder first, then the working directory) or a dotted name."""
    return _load_file(target, Path(base_dir)) if target.endswith(".py") else _import(target, Path(base_dir))


def _import(name: str, base_dir: Path):
    try:
        return _guarded(name, lambda: importlib.import_module(name))
    except ModuleNotFoundError as e:
        if e.name is None or not (name == e.name or name.startswith(e.name + ".")):  # not a library it imports
            raise RlftError(f"importing {name!r} failed: {error_line(e)}") from e
    except RlftError:
        raise
    except Exception as e:
        raise RlftError(f"importing {name!r} failed: {error_line(e)}") from e
    for folder in (base_dir, Path.cwd()):  # a package beside the recipe or in the working directory
        root = folder / name.split(".")[0]
        if not (root.with_suffix(".py").is_file() or (root / "__init__.py").is_file()):
            continue
        key = ("module", name, str(folder.resolve()), _mtime(root))
        if key not in _LOADED:
            with _isolated(folder.resolve()):
                _LOADED[key] = _guarded(name, lambda: _exec_import(name))
        return _LOADED[key]
    raise RlftError(f"cannot import {name!r}: not on the Python path, and no {name.split('.')[0]}.py or package "
                    f"{name.split('.')[0]}/ in {base_dir} or {Path.cwd()}")


def _exec_import(name: str):
    try:
        return importlib.import_module(name)
    except Exception as e:
        raise RlftError(f"importing {name!r} failed: {error_line(e)}") from e


def _load_file(target: str, base_dir: Path):
    path = next((p for p in (base_dir / target, Path.cwd() / target) if p.is_file()), None)
    if path is None:
        raise RlftError(f"{target}: file not found (relative paths start at the recipe's folder {base_dir})")
    path = path.resolve()
    key = ("file", str(path), "", path.stat().st_mtime_ns)
    if key not in _LOADED:
        stem = re.sub(r"\W", "_", path.stem)
        name = f"rlft_user_{stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        with _isolated(path.parent):
            sys.modules[name] = module  # while it runs: dataclasses and typing look their module up by name
            _guarded(target, lambda: _exec_file(spec, module, target))
        _LOADED[key] = module
    return _LOADED[key]


def _exec_file(spec, module, target: str) -> None:
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise RlftError(f"{target}: running the file failed: {error_line(e)}") from e


def _guarded(what: str, load):
    """Run `load()`; user code that exits or is interrupted while importing becomes an error naming it."""
    try:
        return load()
    except (SystemExit, KeyboardInterrupt) as e:
        how = f"called sys.exit({e.code!r})" if isinstance(e, SystemExit) else "raised KeyboardInterrupt"
        raise RlftError(f"{what}: the module {how} while being imported; a reward module must only define "
                        "functions. Move script code under `if __name__ == \"__main__\":`") from None


@contextmanager
def _isolated(folder: Path):
    """`folder` on the import path while the block runs; afterwards no trace of it in sys.path or sys.modules.

    Only modules imported *from* `folder` (its own files and packages) are forgotten; a library the user code imported
    for the first time stays, even when it is installed under `folder` (a project's .venv): numpy and others refuse
    to be imported twice in one process."""
    before = set(sys.modules)
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for name in set(sys.modules) - before:
            top = name.split(".")[0]
            if name.startswith("rlft_user_") or (folder / f"{top}.py").is_file() or (folder / top).is_dir():
                del sys.modules[name]


def _mtime(root: Path) -> int:
    path = root.with_suffix(".py") if root.with_suffix(".py").is_file() else root / "__init__.py"
    return path.stat().st_mtime_ns


def error_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
