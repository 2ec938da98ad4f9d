"""Text of TRL-format prompts and completions, distinct-n and reply openings: the one copy rlft, its logs, its eval
and the example rewards share. Pure Python (no torch), so a reward module can import it for free."""

from __future__ import annotations

import re
from collections import Counter

OPENING_WORDS = 5  # "i'm sorry for your loss": long enough to be a formula, short enough to catch one


def message_text(item) -> str | None:
    """The text of a prompt or completion in TRL's format: the string itself, or the last message's content (the text
    parts of a multimodal one); None for anything else.

    >>> message_text([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}])
    'Hello!'
    >>> message_text("plain text"), message_text(3)
    ('plain text', None)
    """
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        item = [item]
    if isinstance(item, (list, tuple)) and item and all(isinstance(m, dict) for m in item):
        content = item[-1].get("content", "")
        if isinstance(content, list):  # multimodal: [{"type": "text", "text": ...}, {"type": "image"}, ...]
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        if isinstance(content, str):
            return content
    return None


def as_text(item) -> str:
    """`message_text`, or `str(item)` for anything that is not TRL's format (for logs and reports, which never fail)."""
    text = message_text(item)
    return str(item) if text is None else text


def distinct_ngrams(token_lists: list[list[str]], n: int = 2) -> float | None:
    """Unique n-grams / all n-grams over all token lists (Li et al. 2016); None when there are none.

    >>> distinct_ngrams([["thank", "you", "so", "much"], ["thank", "you"]])
    0.75
    """
    grams = [tuple(tokens[i:i + n]) for tokens in token_lists for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (curly apostrophes read as straight ones)."""
    return _WORD.findall(text.lower().replace("\u2019", "'"))


def opening(text: str, n: int = OPENING_WORDS) -> str:
    """The first ``n`` words, normalised: what a formula repeats.

    >>> opening("I'm SORRY for your loss! Your parcel is late.")
    "i'm sorry for your loss"
    """
    return " ".join(words(text)[:n])


def openings(texts: list[str], n: int = OPENING_WORDS, top: int = 5) -> dict:
    """Share of the texts that open with the most common opening, and the ``top`` openings with their counts.

    Empty replies have no opening and are not counted as sharing one.

    >>> openings(["Sure, here it is.", "I'm sorry for your loss. A", "I'm sorry for your loss. B", "Ok"])["share"]
    0.5
    """
    heads = Counter(h for h in (opening(t, n) for t in texts) if h)
    ranked = heads.most_common(top)
    share = ranked[0][1] / len(texts) if ranked and texts else 0.0
    return {"share": share, "top": [[h, c] for h, c in ranked]}
