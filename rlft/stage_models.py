"""A stage's output as a model: a LoRA adapter over its base (found wherever the run folder was moved), merged into
full weights once for the next stage (`policy_source`) or for `rlft merge`, and loaded for chat and eval."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from rlft import compat
from rlft.errors import RlftError
from rlft.launch import on_main_process
from rlft.models import load_causal_lm, load_tokenizer, pick_dtype
from rlft.runfolder import STAGE_INFO, STAGES


def adapter_base(folder: Path) -> str:
    """The base model under the LoRA adapter in `folder`, wherever the run folder now lives.

    PEFT reads `base_model_name_or_path` from adapter_config.json as given (an absolute path, written at save time).
    When the base is a folder of the same run (the merged previous stage), rlft_stage.json also holds its path
    relative to the adapter, and that wins: a run folder copied or moved elsewhere loads its own weights, never the
    original run's. A stale adapter_config.json is then rewritten with the new location, so plain
    `AutoPeftModelForCausalLM.from_pretrained` on the moved folder loads the right base too.
    """
    folder = Path(folder)
    config_path = folder / "adapter_config.json"
    config = json.loads(config_path.read_text())
    info_path = folder / STAGE_INFO
    relative = json.loads(info_path.read_text()).get("base_model_relative") if info_path.is_file() else None
    recorded = Path(config["base_model_name_or_path"])
    if not relative and not recorded.is_absolute() and recorded.parts[-3:-2] == (STAGES,) \
            and recorded.name == "merged":
        relative = f"../{recorded.parts[-2]}/merged"  # written before base_model_relative: relative to the old cwd
    if not relative:
        if recorded.is_absolute() and not recorded.exists():
            raise RlftError(f"{folder}: its base model {recorded} (base_model_name_or_path in adapter_config.json) "
                            "does not exist; restore it, or point base_model_name_or_path at a copy of it")
        return config["base_model_name_or_path"]
    base = Path(os.path.normpath(folder.absolute() / relative))
    if not (base / "config.json").is_file():
        raise RlftError(f"{folder}: its base model, {relative} relative to it (the merged previous stage), is missing "
                        f"at {base}; copy or move the whole run folder, not one stage")
    if config.get("base_model_name_or_path") != str(base) and os.access(folder, os.W_OK):
        tmp = config_path.with_name(config_path.name + ".tmp")  # written whole, then renamed over the old one
        tmp.write_text(json.dumps({**config, "base_model_name_or_path": str(base)}, indent=2) + "\n")
        os.replace(tmp, config_path)
        print(f"{config_path}: base_model_name_or_path now {base}, this run folder's own (it was moved or copied)",
              file=sys.stderr)
    return str(base)


def load_adapter_model(folder: Path, dtype: torch.dtype, trust_remote_code: bool = False):
    """A stage's LoRA adapter over its base (see `adapter_base`), as `AutoPeftModelForCausalLM` would build it."""
    from peft import PeftModel

    base = load_causal_lm(adapter_base(folder), dtype, trust_remote_code=trust_remote_code)
    tokenizer = load_tokenizer(str(folder), trust_remote_code)
    if len(tokenizer) > base.get_input_embeddings().weight.shape[0]:  # special tokens added by the stage
        base.resize_token_embeddings(len(tokenizer))
    return PeftModel.from_pretrained(base, str(folder))


def merge_adapter(stage_dir: Path, out_dir: Path, replace: bool = False) -> Path:
    """Merge a stage's LoRA adapter into its (full-precision) base weights and save a plain HF model folder.

    The folder is written under a temporary name beside `out_dir` and renamed when complete, so a killed merge never
    leaves a folder that looks finished. An existing `out_dir` is replaced only with `replace` (the caller decides
    what may be replaced); it is moved aside first and deleted once the new folder is in place.
    """
    stage_dir, out_dir = Path(stage_dir), Path(out_dir)
    if not (stage_dir / "adapter_config.json").is_file():
        raise RlftError(f"{stage_dir}: no adapter_config.json here, so there is no LoRA adapter to merge")
    if out_dir.exists() and not replace:
        raise RlftError(f"{out_dir}: already exists; give a new folder")
    try:
        model = load_adapter_model(stage_dir, torch.float32)
    except (OSError, ValueError, RlftError) as e:  # load_causal_lm reports a missing base as an RlftError
        raise RlftError(f"{stage_dir}: cannot load the LoRA adapter over its base model: {str(e).splitlines()[0]}")
    merged = model.merge_and_unload()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        load_tokenizer(str(stage_dir)).save_pretrained(str(tmp))
        info = stage_dir / STAGE_INFO
        # the template, for chat (the adapter's base no longer applies to full weights), and what was merged: only
        # such a folder may `rlft merge --force` replace
        note = json.loads(info.read_text()) if info.is_file() else {}
        note = {**{k: v for k, v in note.items() if k != "base_model_relative"}, "merged_from": str(stage_dir.resolve())}
        (tmp / STAGE_INFO).write_text(json.dumps(note, indent=2))
        _swap_in(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _swap_in(new: Path, target: Path) -> None:
    """Rename the finished folder `new` to `target`, replacing what is there only after `new` is complete."""
    if not target.exists():
        new.rename(target)
        return
    old = new.with_name(new.name.replace(".partial-", ".old-"))
    target.rename(old)
    new.rename(target)
    shutil.rmtree(old) if old.is_dir() else old.unlink()


def load_for_inference(folder: Path, dtype: torch.dtype | None = None):
    """(model, tokenizer) from a stage output: a LoRA adapter over its base, or full weights."""
    folder = Path(folder)
    dtype = dtype or pick_dtype()
    if (folder / "adapter_config.json").is_file():
        # merged for inference: the same outputs as base + adapter, without the adapter's per-layer overhead
        model = load_adapter_model(folder, dtype).merge_and_unload()
    elif (folder / "config.json").is_file():
        model = load_causal_lm(str(folder), dtype)
    else:
        raise RlftError(f"{folder}: no model here (neither adapter_config.json nor config.json)")
    model.eval()
    return model, load_tokenizer(str(folder))


def policy_source(source: str, state) -> str:
    """A stage output with a LoRA adapter is merged into full weights once (stage/merged), so the next stage's
    policy and its KL reference both start from the fine-tuned model, not the base model under the adapter."""
    path = Path(source)
    if not (path / "adapter_config.json").is_file():
        return source
    merged = path / "merged"  # renamed into place when complete (merge_adapter): a kill leaves no half one
    return str(on_main_process(state, "merging the LoRA adapter", _merge_once, path, merged))


def _merge_once(path: Path, merged: Path) -> Path:
    if not (merged / "config.json").is_file():
        # Under ZeRO-3 a stage leaves transformers' global DeepSpeed config set; loading the base model for the merge
        # would then partition it with collectives that only this process enters, and hang.
        compat.forget_deepspeed_config()
        for partial in path.glob(".merged.partial-*"):  # left by a merge that was killed
            shutil.rmtree(partial, ignore_errors=True)
        merge_adapter(path, merged, replace=True)
    return merged
