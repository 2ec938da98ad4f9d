"""The neural politeness scorer (MiniLM embeddings + fitted head) on hand-written replies.

Slow: loads the embedded MiniLM model (a few seconds on CPU). Skipped where the optional packages are not
installed; the error that then explains how to get them is tested in test_bad_input.py.
"""

from __future__ import annotations

import pytest
import torch
from test_politeness import ANSWER, PAIRS, QUESTION, SPAM, chat

politeness_neural = pytest.importorskip("reward_models.politeness_neural", exc_type=ImportError)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pair_scores():
    polite = politeness_neural.score([p for p, _ in PAIRS])
    rude = politeness_neural.score([r for _, r in PAIRS])
    return polite, rude


def test_pairs_in_order(pair_scores):
    polite, rude = pair_scores
    assert all(p > r for p, r in zip(polite, rude))
    assert all(0.0 <= s <= 1.0 for s in polite + rude)


def test_marker_spam_below_a_natural_polite_answer():
    rewards = politeness_neural.politeness([QUESTION] * (1 + len(SPAM)), [ANSWER, *SPAM])
    assert all(spam < 0.5 * rewards[0] for spam in rewards[1:])


def test_repetition_padding_and_ignoring_do_not_pay():
    filler = " The weather report said it could be cloudy later, with some wind in the afternoon." * 8
    ignoring = "Hello! Thank you so much for reaching out, I hope your week is going wonderfully."
    base, looped, padded, ignored = politeness_neural.politeness(
        [QUESTION] * 4, [ANSWER, " ".join([ANSWER] * 3), ANSWER + filler, ignoring])
    assert looped < base and padded <= base and ignored < base


def test_semantic_relevance_sees_a_short_answer_without_shared_words():
    on_topic, off_topic = politeness_neural.semantic_relevance(
        ["What is the capital of France?"] * 2, ["Paris.", "Thanks, have a lovely weekend!"])
    assert on_topic > 0.5 > off_topic


def test_string_and_conversational_inputs_agree():
    as_strings = politeness_neural.politeness([QUESTION] * 2, [ANSWER, PAIRS[0][1]])
    as_chat = politeness_neural.politeness([chat(QUESTION, "user")] * 2, [chat(ANSWER), chat(PAIRS[0][1])])
    assert as_chat == pytest.approx(as_strings, abs=1e-5)


def test_explain_reports_the_embedding_and_the_strategies():
    report = politeness_neural.explain("Thanks! Could you send the file?")
    names = {row["strategy"] for row in report["contributions"]}
    assert {"embedding", "gratitude", "counterfactual_modal"} <= names
    assert report["score"] == pytest.approx(politeness_neural.score(["Thanks! Could you send the file?"])[0],
                                            abs=1e-4)


def test_a_score_does_not_depend_on_the_texts_batched_with_it():
    text = PAIRS[3][0]
    alone = politeness_neural.score([text])[0]
    batched = politeness_neural.score([p for pair in PAIRS for p in pair] + [text])[-1]
    assert batched == alone  # exact: each text is quantized and run on its own
    texts = [p for pair in PAIRS[:6] for p in pair]
    assert torch.equal(politeness_neural.embed(texts, workers=1), politeness_neural.embed(texts, workers=2))


def test_int8_encoder_agrees_with_the_float_model():
    """The exported, quantized graph computes what sentence-transformers would, at every length."""
    from transformers import AutoModel, AutoTokenizer

    texts = ["Hi", *[p for pair in PAIRS[:4] for p in pair], "word " * 400]  # 3 tokens ... cut at 256
    tokenizer = AutoTokenizer.from_pretrained(politeness_neural.model_dir())
    model = AutoModel.from_pretrained(politeness_neural.model_dir()).eval()
    reference = []
    with torch.no_grad():
        for text in texts:
            hidden = model(**tokenizer([text], truncation=True, max_length=256, return_tensors="pt")).last_hidden_state
            reference.append(torch.nn.functional.normalize(hidden.mean(1), dim=-1)[0])
    cosine = (politeness_neural.embed(texts) * torch.stack(reference)).sum(-1)
    # int8 activations with one scale per text cost a little: measured 0.980 ("Hi") to 0.997, mean 0.991.
    assert cosine.min() > 0.97 and cosine.mean() > 0.985, cosine


def test_quantized_encoder_is_built_once_and_never_left_half_written(tmp_path, monkeypatch):
    import onnxruntime.quantization

    monkeypatch.setenv("RLFT_CACHE", str(tmp_path))
    path = politeness_neural.quantized_encoder()
    assert path.parent == tmp_path / "models" and path.suffix == ".onnx"
    built = path.stat().st_mtime_ns
    assert politeness_neural.quantized_encoder() == path and path.stat().st_mtime_ns == built

    path.unlink()  # a build that fails part-way leaves no encoder file behind, and no temporaries

    def fail(*args, **kwargs):
        raise RuntimeError("quantization interrupted")

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", fail)
    with pytest.raises(RuntimeError, match="quantization interrupted"):
        politeness_neural.quantized_encoder()
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name + ".lock"]
