"""Guards against reward hacking, and the plumbing shared by the politeness rewards.

A policy trained on a politeness score finds the cheap ways up: repeat "please", pad the reply,
stop answering and just thank the user. Each guard measures one of those in [0, 1] (1 = no sign of
it); ``politeness`` multiplies its score by them, so any one failing pulls the reward towards 0.
They are also TRL rewards of their own, for recipes that prefer to weight them separately:

- ``repetition_penalty``: 0 while 90 % of word n-grams are distinct, -1 at 50 %, in [-1, 0].
- ``length_penalty``: 0 up to ``target_words``, then falls as target/length - 1, in (-1, 0].
- ``relevance``: share of the user's content words the reply takes up, in [0, 1].

A fourth guard, marker stuffing (a reply made only of "thank you, sorry, please"), needs the
strategy matcher, so ``politeness`` measures it and ``stuffing_factor`` turns it into a guard.

TRL calls a reward as ``f(prompts=..., completions=..., completion_ids=..., trainer_state=..., **columns)``
where every dataset column arrives as a list with one value per completion. The rewards here accept
and ignore those lists; any other unknown keyword (a scalar, so a mistyped option bound in a recipe)
is an error.
"""

from __future__ import annotations

import re

from rlft.rewards.contract import TRL_REWARD_KWARGS

TARGET_WORDS = 120  # length_penalty: replies up to this many words are not penalised
NGRAM = 2  # repetition: word n-grams counted; bigrams catch "please please please" and looped sentences
DISTINCT_OK = 0.9  # repetition: share of distinct n-grams from which the guard stops biting (natural text ~0.95+)
DISTINCT_ZERO = 0.5  # ... and at which it reaches 0
RELEVANCE_FLOOR = 0.1  # relevance guard: 1 for an on-topic reply, this for one that shares nothing with the prompt
RELEVANT_WORDS = 2  # relevance: sharing this many of the prompt's content words counts as fully on topic
MAX_MARKER_SHARE = 0.5  # stuffing: politeness markers may make up this share of a reply's words before it bites

# Keywords TRL passes to every reward besides the dataset columns: rlft's one list of them.
TRL_KEYWORDS = set(TRL_REWARD_KWARGS)

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Function words, not evidence that a reply is on topic.
STOP_WORDS = frozenset("""
a an the and or but if then so of to in on at by for with from about as into over under than that this these those
is are was were be been being am do does did done have has had having can could will would shall should may might must
i me my mine we us our you your yours he him his she her it its they them their what which who whom whose when where
why how not no yes all any some each every there here just also very really too more most much many such only own
same other again once up down out off now please thanks thank hi hello hey sorry ok okay sure well let get got
""".split())


def text_of(item) -> str:
    """The text of a prompt or completion: a string, or the last message of a conversation.

    >>> text_of([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}])
    'Hello!'
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
    raise TypeError("expected a string or a list of {'role': ..., 'content': ...} messages, "
                    f"got {type(item).__name__}: {item!r:.80}")


def user_text(prompt) -> str:
    """What the user last said: the prompt string, or the last user message of a conversation."""
    if isinstance(prompt, (list, tuple)):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return text_of(users[-1:] or prompt) if prompt else ""
    return text_of(prompt)


def check_options(options: dict, n: int, known: set, reward: str) -> None:
    """Raise on keywords that are neither ``known`` nor something TRL passes (a column: a list of n)."""
    unknown = sorted(k for k, v in options.items()
                     if k not in known and k not in TRL_KEYWORDS and not (isinstance(v, (list, tuple)) and len(v) == n))
    if unknown:
        raise TypeError(f"{reward}() got unknown option(s) {unknown}; valid options: {sorted(known)}")


def _number(name: str, value, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be a number {bound}, got {value!r}")
    return float(value)


def words(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return _WORD.findall(text.lower())


def distinct_ratio(tokens: list[str], n: int = NGRAM) -> float:
    """Share of distinct word n-grams; 1.0 when there are fewer than two n-grams.

    >>> distinct_ratio("please please please please".split())
    0.3333333333333333
    """
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if len(grams) > 1 else 1.0


def repetition_factor(text: str, ngram: int = NGRAM) -> float:
    """1 for text without repeats, falling linearly to 0 as distinct n-grams fall from 90 % to 50 %."""
    ratio = distinct_ratio(words(text), int(_number("ngram", ngram, 1)))
    return min(1.0, max(0.0, (ratio - DISTINCT_ZERO) / (DISTINCT_OK - DISTINCT_ZERO)))


def length_factor(text: str, target_words: int | None = TARGET_WORDS) -> float:
    """1 up to ``target_words`` words, then target/length: twice too long earns half. None turns it off."""
    if target_words is None:
        return 1.0
    target = _number("target_words", target_words, 1)
    count = len(words(text))
    return 1.0 if count <= target else target / count


def content_words(text: str) -> set[str]:
    """Words that carry the topic, cut to 6 letters so "capital" meets "capitals" (a crude stem)."""
    return {w[:6] for w in words(text) if len(w) > 2 and w not in STOP_WORDS}


def overlap(prompt_text: str, reply: str) -> float:
    """How on-topic ``reply`` is: the content words it shares with the prompt, out of ``RELEVANT_WORDS``.

    1.0 when the prompt has no content words (nothing to be relevant to).

    >>> overlap("What is the capital of France?", "The capital of France is Paris.")
    1.0
    >>> overlap("What is the capital of France?", "Thank you so much, you are wonderful!")
    0.0
    """
    wanted = content_words(prompt_text)
    if not wanted:
        return 1.0
    return min(1.0, len(wanted & content_words(reply)) / min(RELEVANT_WORDS, len(wanted)))


def relevance_factor(relevance: float, floor: float = RELEVANCE_FLOOR) -> float:
    """Map a relevance in [0, 1] to a guard in [floor, 1]."""
    floor = _number("relevance_floor", floor, 0.0, 1.0)
    return floor + (1.0 - floor) * relevance


def pair_texts(prompts, completions) -> tuple[list[str], list[str]]:
    """(user messages, replies) as strings from TRL's prompts and completions (prompts may be None)."""
    if isinstance(completions, str) or isinstance(prompts, str):
        raise TypeError("prompts and completions are lists, one item per completion")
    if prompts is not None and len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts for {len(completions)} completions; they pair one to one")
    replies = [text_of(c) for c in completions]
    asks = [user_text(p) for p in prompts] if prompts is not None else [""] * len(replies)
    return asks, replies


def repetition_penalty(prompts, completions, ngram: int = NGRAM, **columns) -> list[float]:
    """TRL reward: minus the shortfall of distinct word n-grams, in [-1, 0] (0 = no repetition).

    >>> repetition_penalty(None, ["Sure, here it is.", "please please please please please"])
    [0.0, -1.0]
    """
    _, replies = pair_texts(prompts, completions)
    check_options(columns, len(replies), {"ngram"}, "repetition_penalty")
    return [repetition_factor(r, ngram) - 1.0 for r in replies]


def length_penalty(prompts, completions, target_words: int | None = TARGET_WORDS, **columns) -> list[float]:
    """TRL reward: 0 up to ``target_words`` words, then target/length - 1, in (-1, 0].

    >>> length_penalty(None, ["short answer", "word " * 40], target_words=20)
    [0.0, -0.5]
    """
    _, replies = pair_texts(prompts, completions)
    check_options(columns, len(replies), {"target_words"}, "length_penalty")
    return [length_factor(r, target_words) - 1.0 for r in replies]


def relevance(prompts, completions, **columns) -> list[float]:
    """TRL reward: how much of the user's message the reply takes up (word overlap), in [0, 1].

    >>> relevance(["How do I boil an egg?"] * 2, ["Boil the egg for eight minutes.", "Thanks, have a great day!"])
    [1.0, 0.0]
    """
    asks, replies = pair_texts(prompts, completions)
    check_options(columns, len(replies), set(), "relevance")
    return [overlap(a, r) for a, r in zip(asks, replies)]


def stuffing_factor(marker_share: float, max_marker_share: float = MAX_MARKER_SHARE) -> float:
    """1 while politeness markers are at most ``max_marker_share`` of the words, then falling to 0
    for a reply made of nothing else."""
    limit = _number("max_marker_share", max_marker_share, 0.0, 0.99)
    return min(1.0, (1.0 - marker_share) / (1.0 - limit))


GUARD_OPTIONS = {"guards", "target_words", "ngram", "relevance_floor", "max_marker_share"}


def apply_guards(scores: list[float], replies: list[str], relevances: list[float], marker_shares: list[float], *,
                 target_words: int | None, ngram: int, relevance_floor: float, max_marker_share: float,
                 log_metric=None, reward: str = "politeness") -> list[float]:
    """``scores`` times every guard (the options are those of ``politeness``).

    Logs the mean of each guard through TRL's ``log_metric`` when it is given, so a run shows which
    guard is biting (a rising policy score with a falling guard is reward hacking caught in the act).
    """
    factors = {
        "repetition": [repetition_factor(r, ngram) for r in replies],
        "length": [length_factor(r, target_words) for r in replies],
        "relevance": [relevance_factor(v, relevance_floor) for v in relevances],
        "stuffing": [stuffing_factor(s, max_marker_share) for s in marker_shares],
    }
    if callable(log_metric) and replies:
        for name, values in factors.items():
            log_metric(f"{reward}/guard_{name}", sum(values) / len(values))
    rewards = list(scores)
    for values in factors.values():
        rewards = [r * f for r, f in zip(rewards, values)]
    return rewards
