"""Guards against reward hacking, and the plumbing shared by the politeness rewards.

A policy trained on a politeness score finds the cheap ways up: repeat "please", pad the reply,
stop answering and just thank the user. Each guard measures one of those in [0, 1] (1 = no sign of
it); ``politeness`` multiplies its score by them, so any one failing pulls the reward towards 0.
They are also TRL rewards of their own, for recipes that prefer to weight them separately:

- ``repetition_penalty``: 0 while 90 % of word n-grams are distinct, -1 at 50 %, in [-1, 0].
- ``length_penalty``: 0 up to ``target_words``, then falls as target/length - 1, in (-1, 0].
- ``relevance``: share of the user's content words the reply takes up, in [0, 1].
- ``diversity_penalty``: batch level. A reply whose opening (first words), first word, or stock phrases also
  open or fill the replies to many *other* prompts of the same call is a formula, not an answer to its
  message, in [-0.8, 0]. TRL scores a whole generation batch in one call, k samples of each prompt side
  by side; replies are compared across prompts only, never within one prompt's group. With rlft's greedy probe
  (a `greedy_probe` column) each reply is also compared with the other prompts' greedy replies.
- ``context_penalty``: politeness said to the wrong situation. A condolence ("sorry for your loss") to
  someone who lost no one, an apology in answer to a neutral question; -1, -0.5 or 0.

A further guard, marker stuffing (a reply made only of "thank you, sorry, please"), needs the
strategy matcher, so ``politeness`` measures it and ``stuffing_factor`` turns it into a guard.

TRL calls a reward as ``f(prompts=..., completions=..., completion_ids=..., trainer_state=..., **columns)``
where every dataset column arrives as a list with one value per completion. The rewards here accept
and ignore those lists; any other unknown keyword (a scalar, so a mistyped option bound in a recipe)
is an error.
"""

from __future__ import annotations

import os
import re

from rlft.rewards.contract import TRL_REWARD_KWARGS
from rlft.text import distinct_ngrams, message_text

TARGET_WORDS = 120  # length_penalty: replies up to this many words are not penalised
NGRAM = 2  # repetition: word n-grams counted; bigrams catch "please please please" and looped sentences
DISTINCT_OK = 0.9  # repetition: share of distinct n-grams from which the guard stops biting (natural text ~0.95+)
DISTINCT_ZERO = 0.5  # ... and at which it reaches 0
RELEVANCE_FLOOR = 0.1  # relevance guard: 1 for an on-topic reply, this for one that shares nothing with the prompt
RELEVANT_WORDS = 2  # relevance: sharing this many of the prompt's content words counts as fully on topic
MAX_MARKER_SHARE = 0.5  # stuffing: politeness markers may make up this share of a reply's words before it bites
OPENING_WORDS = 3  # diversity: a reply's opening is the first 3 words of its first sentence, FILLERS dropped ("happy
#                   to help"): with 4 a formula hid behind its fourth word ("glad to know it's" / "... know the"), with 5
#                   behind its fifth ("i'm happy to help if" / "... help here's")
OPENING_SHARE_OK = 0.05  # ... shared with up to 5 % of the other prompts' replies is normal ("sure, here is ...");
#                          sampled replies (temperature ~0.8) vary more than greedy ones, so a formula that takes 18 %
#                          of a policy's greedy replies showed in under 10 % of its samples: the guard bites early
OPENING_SHARE_ZERO = 0.2  # ... with 20 % of them it is a formula, and the guard reaches DIVERSITY_FLOOR (at 0.3 an
#                           opening in 11 % of a policy's samples kept 81 % of its reward and still paid)
FIRST_WORD_SHARE_OK = 0.15  # diversity: the first word alone (FILLERS dropped), shared with up to 15 % of the other
#                             prompts' replies, is normal ("the", "it's", "sorry" to the complaints among them) ...
FIRST_WORD_SHARE_ZERO = 0.4  # ... with 40 % it is a formula that varies after its first word. Greedy decoding takes
#                              the likeliest word at each step, so a policy whose samples opened "Sorry ..." in 22-55 %
#                              of a batch (no 3-word opening past 9 %; the SFT model: 9 %) answered a fifth of the
#                              held-out prompts with one apology ("I'm sorry for the inconvenience")
PHRASE_N = 4  # diversity: stock phrases are word 4-grams ...
PHRASE_PROMPTS = 0.3  # ... found in the replies to more than 30 % of the other prompts
STOCK_OK = 0.25  # a reply may be this much stock phrase (a closing "let me know if you ...") before it bites
STOCK_ZERO = 0.75  # ... and is nothing but formula here
DIVERSITY_FLOOR = 0.2  # a formula keeps a fifth of its reward: the policy learns to vary, not to go silent
MIN_PROMPTS = 3  # fewer distinct prompts in a call than this: no judgement (nothing to compare across)
GAFFES = {"condolence", "gladness"}  # misplaced strategies that cost the most
CONDOLENCE_FACTOR = 0.2  # a condolence to someone who lost nobody is a gaffe, as costly as rudeness; so is gladness
#                          at a message that brought no good news ("I'm glad to hear that" to "my card won't work")
STOCK_APOLOGY_FACTOR = 0.5  # an apology to no reported trouble does not pay and costs half the reward; one that names
#                            none of the trouble ("I'm sorry for the inconvenience") does not pay, and costs as much
#                            where its opening opens the replies to other prompts too (past OPENING_SHARE_OK of them,
#                            or of their greedy replies): the stock apology PPO runs
#                            reached for (19-27 % of the held-out replies on an unlucky seed). Said once, a warm but
#                            unspecific "Sorry you've had to deal with that" is not punished

# Context fit (Brown & Levinson 1987; Danescu-Niculescu-Mizil et al. 2013): an apology redresses an offence or a
# trouble the hearer suffers, so it is polite where the user reports one and a non sequitur elsewhere; sympathy
# for a loss (a condolence) presupposes a loss. The team's SFT replies (recipes/data) follow this: they apologise
# to the 43 messages that report a mishap (by this rule) and to none of the neutral questions, and condole with nobody.
_CONDOLENCE = re.compile(r"\b(sorry (for|about|to hear (about|of)) (your|the|such a) loss|condolence|sympath(y|ies) "
                         r"(for|on) your loss|rest in peace|my heart goes out|passed away|(he|she|they) passed)",
                         re.IGNORECASE)
_APOLOGY = re.compile(r"\b(sorry|apolog\w*|forgive me|pardon|my bad|my mistake|my fault)\b", re.IGNORECASE)
# An offer of help: "I'd be happy to help", "glad to explain", "pleased to assist".
OFFER = re.compile(r"\b(happy|glad|pleased) to\b", re.IGNORECASE)
_KIN = (r"(mum|mom|mother|dad|father|wife|husband|partner|son|daughter|child|baby|brother|sister|friend|grandma|"
        r"grandmother|grandpa|grandfather|granny|aunt|uncle|cousin|dog|cat|pet|horse)")
# A loss of someone: a laptop that "died" or herbs "dying" are troubles, not bereavements.
_LOSS = re.compile(r"\b(passed away|passed on|funeral|bereave\w*|grie(f|ving|ve)|mourn\w*|miscarriage|put to sleep|"
                   r"death of|death in the family|lost (my|our|a) " + _KIN + r"|" + _KIN + r" (has |had |just )?"
                   r"(died|passed))\b", re.IGNORECASE)
# What a user says when something went wrong: a fault, a loss of money or time, a mishap, a feeling about it.
_TROUBLE = re.compile(r"\b(problems?|issues?|trouble|broke|broken|won'?t|can'?t|cannot|couldn'?t|doesn'?t|"
                      r"didn'?t|isn'?t|not working|stopped|errors?|bugs?|crash\w*|fail\w*|wrong|mistakes?|accident\w*|"
                      r"late|delay\w*|overdue|(was|were) due|"
                      r"missing|lost|stolen|damaged|smashed|crushed|ruin\w*|refund|charg\w*|fees?|scam\w*|cheat\w*|"
                      r"robb\w*|double|cancel\w*|locked|stuck|rejected|turned down|denied|dropped|hurts?|pain|sick|"
                      r"unwell|fever|injur\w*|pulled|dying|died|dead|annoy\w*|frustrat\w*|angry|upset|disappoint\w*|"
                      r"fed up|tired of|exhaust\w*|stress\w*|worried|scared|panick?\w*|embarrass\w*|mortified|"
                      r"humiliat\w*|unfair|ridiculous|terrible|awful|horrible|worst|useless|ugh|confus\w*|"
                      r"disaster|mess|messed|still|again|keeps? \w+ing|nobody|no one|never|blank\w*|wasted?|"
                      r"dies|drains?|shredd\w*|destroy\w*|invalid|missed|wearing me down|no clue|don'?t understand|"
                      r"crying|sobbing|higher|expensive)\b",
                      re.IGNORECASE)

# Gladness about what the user said presupposes good news (Brown & Levinson's "notice, attend to H": the reaction must
# fit what H reported). Said to a complaint it reads as mockery; to a plain question it answers nothing that was said.
# A policy trained on the bare strategy score found "I'm glad to hear that" as an opener for every message.
# "I'm glad you're happy with the service" / "... enjoying the converter" / "... on board" is gladness about the user's
# state: a flagship PPO run opened 35 of the 88 held-out replies so, to questions and complaints alike.
_GLADNESS = re.compile(r"\b((glad|happy|pleased|great|good|nice|wonderful|delighted) to (hear|know|see) (that|it|this|"
                       r"you)|that's (great|wonderful|fantastic|awesome|excellent|good) (news|to hear)|"
                       r"(glad|happy|pleased|delighted|thrilled) (that )?you('re| are|'ve| have| like| love| enjoy)\w*)\b",
                       re.IGNORECASE)
# Any gladness in the reply's first sentence that is not an offer ("happy to help", "glad to explain") or about the
# question itself ("glad you asked") reacts to what the user said: "I'm glad to know it's ...", "So glad you're here."
# Checked on the first sentence only, where a reaction goes (an email template later in a reply may say "happy").
_GLAD_OPENING = re.compile(r"\b(glad|pleased|delighted|thrilled|happy)\b(?!\s+(to\s+(help|assist|explain|answer|show|"
                           r"share|clarify|walk|go|look|take|do|be|work|chat|talk)|(that\s+)?you\s+asked)\b)",
                           re.IGNORECASE)
_GOOD_NEWS = re.compile(r"\b(work(s|ed) (now|again|perfectly|great|fine)|it worked|fixed|solved|sorted|got (the|my|a|an) "
                        r"(job|offer|place|promotion|refund)|passed (my|the|an?)|accepted|promot\w*|engaged|married|"
                        r"graduat\w*|finally|great news|good news|excited|thrilled|can't wait|happy|glad|proud|"
                        r"thanks?|thank you|won(?!['\u2019]t)|recovered|better now)\b", re.IGNORECASE)
# Good news said in the negative is a complaint: "I'm not happy about it", "nobody has fixed it".
_NEGATION = re.compile(r"\b(not|never|no|nobody|no one|nothing|hardly)\b|n['\u2019]t\b", re.IGNORECASE)

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
    text = message_text(item)
    if text is not None:
        return text
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
    ratio = distinct_ngrams([tokens], n)
    return 1.0 if ratio is None else ratio  # one n-gram is distinct anyway: 1.0, as with none


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
    """Words that carry the topic: longer than two letters, not STOP_WORDS."""
    return {w for w in words(text) if len(w) > 2 and w not in STOP_WORDS}


STEM_LETTERS = 5  # relevance: two words are one when they share their first 5 letters and neither goes on for more
STEM_TAIL = 3  # ... than 3 letters past them ("clear" ~ "clearer", "emails" ~ "emailed", "cancel" ~ "cancelled",
#                not "care" ~ "career"), or when they share their first 6 ("capital" ~ "capitals", "present" ~
#                "presentation"): a crude stemmer, lenient on purpose (a missed match costs an on-topic reply 90 %)


def same_word(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are forms of one word as far as the relevance guard can tell.

    >>> same_word("clearer", "clear"), same_word("emailed", "emails"), same_word("career", "care")
    (True, True, False)
    """
    common = len(os.path.commonprefix([a, b]))
    return common == len(a) == len(b) or common >= 6 or (
        common >= STEM_LETTERS and len(a) - common <= STEM_TAIL and len(b) - common <= STEM_TAIL)


def overlap(prompt_text: str, reply: str) -> float:
    """How on-topic ``reply`` is: the content words it shares with the prompt, out of ``RELEVANT_WORDS``.

    1.0 when the prompt has no content words (nothing to be relevant to).

    >>> overlap("What is the capital of France?", "The capital of France is Paris.")
    1.0
    >>> overlap("What is the capital of France?", "Thank you so much, you are wonderful!")
    0.0
    >>> overlap("My out-of-office message confused a client. I need a clearer one.",
    ...         "Here's an outline: your message should be clear and concise.")
    1.0
    """
    wanted = content_words(prompt_text)
    if not wanted:
        return 1.0
    said = content_words(reply)
    shared = sum(1 for w in wanted if w in said or any(same_word(w, s) for s in said))
    return min(1.0, shared / min(RELEVANT_WORDS, len(wanted)))


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


# --- batch level: the same opening or stock phrase in front of every prompt ---------------------------------------
# What a formula varies without changing: "I'm so sorry about that." / "I'm sorry about that." / "Sorry about that."
# open alike, and so do "Sure, I'm happy to help." / "I'd be happy to help!". A PPO policy sampled all three apologies
# across a batch (no 4-word opening common enough to bite) while its greedy reply opened a quarter of the held-out
# prompts with the first.
FILLERS = frozenset("i i'm im am i'd i'll we we're be would so very really truly terribly deeply extremely just quite "
                    "oh ah well hey hi hello sure yes yeah okay ok certainly absolutely definitely".split())
# ... and the ritual words it swaps for each other: "I'd be happy to help" / "Glad to help!" / "Pleased to help."
SAME_RITUAL = {
    **dict.fromkeys("glad pleased delighted thrilled".split(), "happy"),
    **dict.fromkeys("apologies apologise apologize apologizing apologising".split(), "sorry"),
    **dict.fromkeys("thank thanks appreciate".split(), "thanks"), "assist": "help"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
SENTENCES = re.compile(r"(?<=[.!?;:])\s+|\n+")


def opening(text: str, n: int = OPENING_WORDS) -> str:
    """The reply's opening as a formula repeats it: its first sentence, lower-cased, punctuation and FILLERS dropped,
    at most ``n`` words ("Sorry about that. Guacamole ..." and "Sorry about that. Rice ..." share it).

    >>> opening("I'm sorry for your loss. Your parcel ...")
    'sorry for your'
    >>> opening("I'm so sorry about that! It's usually the timing.") == opening("Sorry about that. Rinse the rice.")
    True
    """
    first = _SENTENCE_END.split(text.strip(), maxsplit=1)[0]
    return " ".join([SAME_RITUAL.get(w, w) for w in words(first) if w not in FILLERS][:n])


def _ramp(share: float, ok: float, zero: float, floor: float) -> float:
    """1 up to ``ok``, falling linearly to ``floor`` at ``zero`` and beyond."""
    return max(floor, 1.0 - (1.0 - floor) * (share - ok) / (zero - ok)) if share > ok else 1.0


def _greedy_shared(asks: list[str], heads: list, greedy: list) -> list[float]:
    """Per reply: the share of the *other* prompts' greedy replies (``greedy`` marks them) that open with its head."""
    probes = {ask: head for ask, head, g in zip(asks, heads, greedy) if g}
    out = []
    for ask, head in zip(asks, heads):
        others = [h for a, h in probes.items() if a != ask]
        out.append(sum(h == head for h in others) / len(others) if head is not None and others else 0.0)
    return out


def _shared(asks: list[str], heads: list, min_others: int = 0) -> list[float]:
    """Per reply: the share of the *other* prompts' replies that open with the same head (None: no head), 0 when the
    head opens the replies to fewer than ``min_others`` other prompts."""
    count, per_prompt = {}, {}
    for ask, head in zip(asks, heads):
        per_prompt[ask] = per_prompt.get(ask, 0) + 1
        if head is not None:
            count[(ask, head)] = count.get((ask, head), 0) + 1
    by_head, prompts = {}, {}
    for (ask, head), c in count.items():
        by_head[head] = by_head.get(head, 0) + c
        prompts[head] = prompts.get(head, 0) + 1
    out = []
    for ask, head in zip(asks, heads):
        others = len(asks) - per_prompt[ask]
        if head is None or prompts[head] - 1 < min_others or not others:
            out.append(0.0)
        else:
            out.append((by_head[head] - count[(ask, head)]) / others)
    return out


def formula_shares(asks: list[str], replies: list[str], opening_words: int = OPENING_WORDS,
                   greedy: list | None = None) -> list[tuple[float, float, float, float]]:
    """Per reply: (share of the other prompts' replies with the same opening, share with the same first word, share
    of its 4-grams that are stock, share of the other prompts' greedy replies with the same opening).

    ``greedy`` (rlft's `greedy_probe` column: True for each prompt's greedy reply) lets the guard see the reply greedy
    decoding gives, which sampling at a temperature rarely draws; without it the last share is 0.

    The first word counts only when it opens the replies to at least ``MIN_PROMPTS`` other prompts (one word
    coincides far more often than three). A 4-gram is stock when the replies to more than ``PHRASE_PROMPTS`` of the
    other prompts contain it. Replies to the same prompt (a GRPO group) are never compared with each other. With
    fewer than ``MIN_PROMPTS`` distinct prompts every share is 0.
    """
    groups = sorted(set(asks))
    if len(groups) < MIN_PROMPTS:
        return [(0.0, 0.0, 0.0, 0.0)] * len(replies)
    heads = [opening(r, opening_words) for r in replies]
    heads = [head if len(head.split()) >= 2 else None for head in heads]  # "Sure." alone is no formula
    firsts = [opening(r, 1) or None for r in replies]
    grams = [{tuple(w[i:i + PHRASE_N]) for i in range(len(w) - PHRASE_N + 1)} for w in map(words, replies)]
    prompts_with = {}
    for ask, gs in zip(asks, grams):
        for g in gs:
            prompts_with.setdefault(g, set()).add(ask)
    stock = [sum(len(prompts_with[g]) - 1 > PHRASE_PROMPTS * (len(groups) - 1) for g in gs) / len(gs) if gs else 0.0
             for gs in grams]
    probed = _greedy_shared(asks, heads, greedy) if greedy is not None else [0.0] * len(replies)
    return list(zip(_shared(asks, heads), _shared(asks, firsts, MIN_PROMPTS), stock, probed))


def greedy_column(columns: dict, n: int) -> list | None:
    """The `greedy_probe` column rlft hands the rewards when a stage probes its greedy replies (None without one)."""
    greedy = columns.get("greedy_probe")
    return list(greedy) if isinstance(greedy, (list, tuple)) and len(greedy) == n else None


def diversity_factors(asks: list[str], replies: list[str], opening_words: int = OPENING_WORDS,
                      greedy: list | None = None) -> list[float]:
    """The batch-level guard in [DIVERSITY_FLOOR, 1]: the lowest of the opening, first-word, stock-phrase and (with
    ``greedy``, see ``formula_shares``) greedy-opening ramps."""
    return diversity_ramps(formula_shares(asks, replies, opening_words, greedy))


def diversity_ramps(shares: list[tuple[float, float, float, float]]) -> list[float]:
    """``formula_shares`` turned into the guard: per reply, the lowest of its four ramps."""
    return [min(_ramp(o, OPENING_SHARE_OK, OPENING_SHARE_ZERO, DIVERSITY_FLOOR),
                _ramp(f, FIRST_WORD_SHARE_OK, FIRST_WORD_SHARE_ZERO, DIVERSITY_FLOOR),
                _ramp(s, STOCK_OK, STOCK_ZERO, DIVERSITY_FLOOR),
                _ramp(g, OPENING_SHARE_OK, OPENING_SHARE_ZERO, DIVERSITY_FLOOR))
            for o, f, s, g in shares]


def diversity_penalty(prompts, completions, opening_words: int = OPENING_WORDS, **columns) -> list[float]:
    """TRL reward: minus what the batch-level diversity guard takes away, in [-0.8, 0] (0 = the reply is its own).

    Give it the whole batch; it compares each reply with the replies to the *other* prompts.

    >>> asks = ["Where is my parcel?", "How do I boil an egg?", "What is APR?", "Fix my wifi"]
    >>> formula = ["I'm sorry for the misunderstanding. " + t for t in ["It ships today.", "Boil it 8 minutes.",
    ...            "The yearly rate.", "Restart the router."]]
    >>> diversity_penalty(asks, formula)
    [-0.8, -0.8, -0.8, -0.8]
    >>> diversity_penalty(asks, ["It ships today.", "Boil it 8 minutes.", "The yearly rate.", "Restart the router."])
    [0.0, 0.0, 0.0, 0.0]
    """
    asks, replies = pair_texts(prompts, completions)
    check_options(columns, len(replies), {"opening_words"}, "diversity_penalty")
    n = int(_number("opening_words", opening_words, 1))
    return [f - 1.0 for f in diversity_factors(asks, replies, n, greedy_column(columns, len(replies)))]


# --- context fit: the right politeness for the situation --------------------------------------------------------
def misplaced(ask: str, reply: str) -> set[str]:
    """Politeness strategies of ``reply`` that do not fit the user's message ``ask``: "condolence" without a
    loss, "apology" without a reported problem or mistake, "gladness" ("glad to hear that") without good news. An
    empty ``ask`` (no context) judges nothing.

    >>> sorted(misplaced("Why does ice float?", "I'm sorry for your loss. Ice is less dense than water."))
    ['apology', 'condolence']
    >>> misplaced("My parcel never arrived.", "I'm sorry about that. Let's track it.")
    set()
    >>> misplaced("My gift card doesn't work.", "I'm glad to hear that. Try the store's help line.")
    {'gladness'}
    >>> misplaced("Thanks, the reset worked!", "Glad to hear it worked! Keep the backup code somewhere safe.")
    set()
    >>> misplaced("Why is my bill so high?", "I'm so glad to know it's on your mind. Check the roaming charges.")
    {'gladness'}
    >>> misplaced("Why is my bill so high?", "Happy to help! Check the roaming charges. Glad you asked.")
    set()
    """
    if not ask.strip():
        return set()
    out = set()
    if _CONDOLENCE.search(reply) and not _LOSS.search(ask):
        out.add("condolence")
    if _APOLOGY.search(reply) and not _TROUBLE.search(ask) and not _LOSS.search(ask):
        out.add("apology")
    first = _SENTENCE_END.split(reply.strip(), maxsplit=1)[0]
    if (_GLADNESS.search(reply) or _GLAD_OPENING.search(first)) and not good_news(ask):
        out.add("gladness")
    return out


def good_news(ask: str) -> bool:
    """Whether the user's message brings good news: a word of it ("fixed", "happy", "thanks") not negated by any of the
    three words before it.

    >>> good_news("Thanks, the reset worked!"), good_news("I'm not happy about it."), good_news("The tap won't stop.")
    (True, False, False)
    >>> good_news("I've called three times and nobody has fixed it.")
    False
    """
    return any(not _NEGATION.search(" ".join(ask[:m.start()].split()[-3:])) for m in _GOOD_NEWS.finditer(ask))


def generic_apology(ask: str, reply: str) -> bool:
    """Whether every apology in ``reply`` is a stock one: no sentence that apologises names anything from the user's
    message ``ask`` ("I'm sorry for the inconvenience." to a gift card that won't work, where "I'm sorry your gift card
    won't work." names it). An empty ``ask`` or a reply without an apology is not generic.

    >>> generic_apology("My gift card won't work online.", "I'm sorry for the inconvenience. Try the app.")
    True
    >>> generic_apology("My gift card won't work online.", "Sorry the card won't work! Try the app.")
    False
    """
    return _names_nothing(ask, reply, _APOLOGY)


def generic_offer(ask: str, reply: str) -> bool:
    """Whether every offer of help in ``reply`` is a stock one: "I'd be happy to help." says the same to any message,
    where "I'd be happy to help with your battery." names the user's. An empty ``ask`` or a reply without an offer is
    not generic.

    >>> generic_offer("My battery dies by lunch.", "I'd be happy to help. Lower the screen brightness.")
    True
    >>> generic_offer("My battery dies by lunch.", "Happy to help with the battery! Lower the screen brightness.")
    False
    """
    return _names_nothing(ask, reply, OFFER)


def _names_nothing(ask: str, reply: str, pattern: re.Pattern) -> bool:
    """Whether ``reply`` has sentences that match ``pattern`` and none of them names anything from ``ask``."""
    said = [s for s in SENTENCES.split(reply) if pattern.search(s)]
    return bool(ask.strip() and said) and not any(overlap(ask, s) > 0 for s in said)


def context_penalty(prompts, completions, **columns) -> list[float]:
    """TRL reward: -1 for a condolence to a message about no loss or gladness at a message without good news, -0.5
    for an apology to a message that reports no problem, 0 otherwise.

    >>> context_penalty(["What is APR?", "My dog died last night.", "The lamp arrived smashed."],
    ...                 ["Sorry for your loss. APR is the yearly rate.", "I'm so sorry for your loss.",
    ...                  "Sorry about that! Ask the seller for a refund."])
    [-1.0, 0.0, 0.0]
    >>> context_penalty(["What is APR?"], ["Sorry! APR is the yearly rate."])
    [-0.5]
    """
    asks, replies = pair_texts(prompts, completions)
    check_options(columns, len(replies), set(), "context_penalty")
    out = []
    for ask, reply in zip(asks, replies):
        wrong = misplaced(ask, reply)
        out.append(-1.0 if wrong & GAFFES else -0.5 if wrong else 0.0)
    return out
