"""Politeness reward from politeness strategies, with guards against reward hacking.

How it works, in a few points:

1. Each text is reduced to a few dozen *strategies* from the politeness literature (Brown & Levinson
   1987; Danescu-Niculescu-Mizil et al. 2013): gratitude, apology, "please", indirect requests,
   hedges, greetings ... and on the rude side imperatives, "why did you" questions, insults,
   shouting. They are short hand-written phrase lists, never the corpus vocabulary, so that they
   carry over from Wikipedia talk pages to assistant replies.
2. A strategy counts once: it is present or not, so the tenth "please" adds nothing (saturation).
3. The weights come from ``fit_politeness.py`` (logistic regression on the Stanford Politeness
   Corpus, each weight's sign held to the literature's polarity), shipped as
   ``politeness_weights.json``.
4. ``score`` is a probability in [0, 1]: that people would put the text in the polite quarter
   rather than the rude quarter of requests. 0.5 is even odds; a text with no strategy at all
   scores about 0.23 (unsoftened requests were mostly rated rude).
5. ``politeness``, the TRL reward, multiplies that score by guards in [0, 1] (repetition, length,
   relevance to the prompt, marker stuffing, and across the batch: the same opening or stock phrase in
   front of many prompts); see ``reward_models.guards``.
6. With the guards on it also asks whether the politeness fits the situation (context fit): an apology
   pays only where the user reports a problem or a mistake and it names the trouble (an apology to no trouble
   costs ``STOCK_APOLOGY_FACTOR``; a stock "I'm sorry to hear that" pays nothing, and costs as much where the
   batch repeats it), an offer of help pays once, as goodwill, and only where it names what the user said ("I'd be
   happy to help." to anything pays nothing), a first sentence that opens the replies to other prompts too pays
   nothing, a condolence pays where they report a loss, gladness ("glad to hear that") where they bring good news
   (else those two cost: ``CONDOLENCE_FACTOR``), and the ritual strategies (gratitude, greeting, apology, praise,
   goodwill ...) saturate: the strongest counts in full, each further one half the one before, so
   "Hello! Thank you! Sorry! Have a great day!" is not four times as polite as "Thanks!". The fitted
   ``score`` itself is left as fitted (its cross-validated figures stay true).
"""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path

from reward_models.guards import (CONDOLENCE_FACTOR, GAFFES, GUARD_OPTIONS, MAX_MARKER_SHARE, NGRAM, OFFER,
                                  OPENING_SHARE_OK, RELEVANCE_FLOOR, SENTENCES, STOCK_APOLOGY_FACTOR, TARGET_WORDS,
                                  apply_guards, check_options, diversity_ramps, formula_shares, generic_apology,
                                  generic_offer, greedy_column, misplaced, overlap, pair_texts)

WEIGHTS_FILE = Path(__file__).with_name("politeness_weights.json")


def _phrases(*slots: str) -> str:
    """Every phrase made by picking one word per slot: ("could would", "you") -> "could you|would you"."""
    phrases = [""]
    for slot in slots:
        phrases = [f"{p} {word}".strip() for p in phrases for word in slot.split()]
    return "|".join(phrases)


# name -> (polarity, where, phrases). Polarity: +1 polite, -1 rude, 0 either way (the literature
# disagrees, or it depends on the domain); the fit keeps every weight on its side of zero.
# where: "any" = anywhere, "start" = a sentence opens with it. Phrases are lower-case words separated
# by "|"; "word*" matches any word starting with "word" (single words only).
STRATEGIES: dict[str, tuple[int, str, str]] = {
    # --- polite ---
    "gratitude": (1, "any", "thank|thanks|thanking|thank you|thank you so much|thanks so much|thanks a lot|"
                            "many thanks|thx|ty|appreciate|appreciated|appreciates|grateful|gratitude|obliged|"
                            "cheers|kudos"),
    "apology": (1, "any", "sorry|apolog*|excuse me|pardon|forgive me|my bad|my mistake|my fault"),
    "please": (1, "any", "please|pls|plz|kindly"),
    "please_start": (0, "start", "please|pls|plz|kindly"),
    "counterfactual_modal": (1, "any", _phrases("could would might couldn't wouldn't",
                                              "you u i we it one someone anyone somebody anybody this that")),
    "indicative_modal": (0, "any", _phrases("can will can't won't", "you u")),
    "indirect_request": (1, "any", "would you mind|do you mind|mind if|if you don't mind|if you do not mind|"
                                   "if it's not too much|if possible|if you have a chance|if you get a chance|"
                                   "when you have a chance|when you get a chance|if you have time|"
                                   "when you have time|i was wondering|i'm wondering|i am wondering|"
                                   "i wonder if|i wondered if|i wonder whether|would it be possible|"
                                   "would it be ok|would it be okay|would it be all right|would that be ok|"
                                   "would you be able|would you be willing|would you be interested|"
                                   "would you like|is it possible|do you think you could|any chance|"
                                   "just wondering|would you be so kind"),
    "hedge": (1, "any", _phrases("i", "think believe guess suppose feel suspect") +
                        "|perhaps|maybe|possibly|probably|might|may|seem|seems|seemingly|apparently|somewhat|"
                        "a bit|a little|sort of|kind of|not sure|presumably|arguably|suggest|suggestion|"
                        "i'd say|likely|in my opinion|imho|imo"),
    "greeting": (1, "start", "hi|hello|hey|dear|greetings|howdy|welcome|good morning|good afternoon|"
                             "good evening"),
    "deference": (1, "start", "great|good|nice|excellent|awesome|wonderful|fantastic|brilliant|impressive|"
                              "superb|lovely|interesting|cool|well done|congrat*|bravo"),
    "praise": (1, "any", "great|nice|excellent|awesome|wonderful|fantastic|brilliant|impressive|superb|"
                         "lovely|interesting|helpful|kind|well done|good job|good work|good idea|good point|"
                         "good question|good catch|good luck|congrat*|amazing|beautiful|useful|glad|"
                         "pleasure|happy"),
    "goodwill": (1, "any", "happy to|glad to|pleased to|delighted|let me know|feel free|hope this helps|"
                           "hope that helps|hope it helps|i hope|hope you|you're welcome|you are welcome|"
                           "no problem|no worries|my pleasure|good luck|take care|best wishes|best regards|"
                           "kind regards|warm regards|have a nice|have a good|have a great|enjoy|"
                           "any questions|any other questions|any more questions|anything else"),
    "first_person_plural": (1, "any", "we|us|our|ours|ourselves|let's"),
    "first_person": (0, "any", "i|me|my|mine|myself|i'm|i've|i'd|i'll"),
    "first_person_start": (0, "start", "i|my|i'm|i've|i'd|i'll"),
    "by_the_way": (1, "any", "by the way|btw|incidentally"),
    # --- either way ---
    "second_person": (0, "any", "you|your|yours|yourself|u|ur"),
    "wh_question_start": (0, "start", "what|who|where|when|which|how"),
    "contrast": (0, "any", "but|however|although|though|yet"),
    # --- rude ---
    "why_question": (-1, "start", "why|how come"),
    "why_you": (-1, "any", _phrases("why", "did do would are is were have does can't don't didn't won't "
                                           "wouldn't must should", "you u") +
                           "|why on earth|why the hell|any reason why|how so|how dare"),
    "polite_but": (-1, "any", _phrases("thanks thank sorry ok okay great good fine sure nice", "but") +
                              "|thank you but"),
    "second_person_start": (-1, "start", "you|your|u|ur|yours"),
    "direct_start": (-1, "start", "so|then|and|but|or|well"),
    # A bare verb opening a sentence (but see _NOT_FOLLOWED_BY: "do you ...", "mind if I ...").
    "imperative": (-1, "start", "stop|don't|do not|do|go|read|look|check|send|give|tell|get|use|add|fix|make|"
                                "take|put|quit|leave|answer|explain|show|keep|cut|move|write|remove|delete|"
                                "revert|learn|listen|see|find|ask|wait|calm|grow|hurry|think|"
                                "provide|cite|be|stay|come|bring|change|drop|focus|buy|pay|try|lower|raise|"
                                "reset|restart|paste|define|deal|shut|refrain|avoid|discuss|mind"),
    "obligation": (-1, "any", "you should|you must|you need to|you have to|you ought|you better|you'd better|"
                              "you had better"),
    "negative_question": (-1, "any", _phrases("don't can't didn't won't aren't isn't haven't doesn't wouldn't "
                                              "couldn't weren't", "you u") +
                                     "|" + _phrases("did do are have can were", "you", "even")),
    "condescension": (-1, "any", "obviously|clearly|seriously|everyone knows|everybody knows|as i said|"
                                 "as i already said|i told you|i already told|i already explained|i already said|"
                                 "for once|for the last time|how many times|not hard|genius|common sense"),
    "factuality": (-1, "any", "actually|in fact|really|the point is|the fact is|the reality is|honestly|"
                              "literally|in reality"),
    "insult": (-1, "any", "fuck*|f'n|shit*|idiot*|stupid*|dumb|dumber|dumbest|dumbass|moron*|crap*|bitch*|"
                          "bastard*|ass|asshole*|damn*|the hell|wtf|stfu|bullshit*|rubbish|nonsense|pathetic|"
                          "ridiculous|ignorant|incompetent|useless|lazy|loser*|jerk|jerks|clown*|fool|fools|"
                          "foolish|retard|retarded|suck|sucks|lame|sloppy|troll|trolls|trolling|liar|liars|"
                          "dick|piss*|screw you|shut up|crazy|insane|absurd|disgusting|hoax|childish"),
    "negative": (-1, "any", "wrong|bad|terrible|awful|horrible|worse|worst|annoying|annoyed|waste|wasted|"
                            "wasting|ruin*|blam*|hate|hated|hating|hostile|accus*|complain*|whine|whining|"
                            "boring|mess|messy|shame|unacceptable|ugly|angry|upset|rude|poorly|silly|"
                            "misleading|lied|lying|harass*|offensive|vandal*|nag|nagging|sick of|tired of"),
    "dismissive": (-1, "any", "whatever|google it|look it up|deal with it|not my problem|your problem|"
                              "i don't care|i do not care|who cares|leave me alone|go away|get lost|"
                              "figure it out|do it yourself|happy now|are you serious|are you kidding|"
                              "give me a break|of course not|what's wrong with you|so what|big deal|yeah yeah|"
                              "ugh|duh|meh|huh|come on|hurry up|is that clear|no offense|whatsoever|"
                              "bother me|don't bother|don't ask|asap"),
    "negation_start": (-1, "start", "no|nope|nah|wrong"),
}

# Ritual politeness: formulas that mean as much the second time as the first. With the guards on they saturate.
RITUAL = ("gratitude", "apology", "greeting", "praise", "deference", "goodwill", "emoticon")
SATURATION = 0.5  # each further ritual strategy counts this share of the one before
# An offer of help ("I'd be happy to help", "glad to explain") is goodwill; the fitted matcher also reads its first
# word as praise, so one phrase paid twice and lifted a bare answer from 0.23 to 0.93. PPO runs found it: "I'd be happy
# to help" opened 12-36 % of their held-out replies. With the guards on, praise needs a word of its own, and a stock
# offer that names nothing of the message ("I'd be happy to help." to anything at all) pays nothing (_drop_formulas):
# while any of it paid (its goodwill, or the "I'd" the corpus fit pays), it opened 9-15 of the 88 held-out replies in
# four flagship PPO runs.

# Signs read from punctuation and case rather than words.
SURFACE = {"shouting": -1, "exclamation_run": -1, "question_run": -1, "emoticon": 1}

# Openings that are not the strategy after all, by the word that follows: "do you ..." and "mind if
# I ..." are questions, not orders; "you can/might ..." offers an option, it does not point a finger
# like "you reverted ...".
_NOT_FOLLOWED_BY = {
    "imperative": frozenset("you u i we they he she if".split()),
    "second_person_start": frozenset("can could might may will would".split()),
    "negation_start": frozenset("problem worries need doubt".split()),  # "no problem" is goodwill
}
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SENTENCE_END = re.compile(r"[.!?;\n]+|:\s")
# Three or more all-caps words in a row: shouting, where "the REST API over HTTPS" is not.
_SHOUT = re.compile(r"\b[A-Z]{2,}[A-Z']*(?:[\s,]+[A-Z][A-Z']*\b){2,}")
_EMOTICONS = (":)", ":-)", ";)", ";-)", ":d", "^_^", "\U0001F642", "\U0001F60A", "\u263A")


def _index(where: str) -> tuple[dict, tuple]:
    """For the strategies found at ``where``: first word -> [(strategy, rest of the phrase, polite?)],
    and the "word*" entries as (all prefixes, [(prefix, strategy, polite?)]). One pass over the
    tokens then finds them all."""
    index, prefixes = {}, []
    for name, (polarity, at, phrases) in STRATEGIES.items():
        if at != where:
            continue
        for phrase in phrases.split("|"):
            if phrase.endswith("*"):
                prefixes.append((phrase[:-1], name, polarity > 0))
            else:
                first, *rest = phrase.split()
                index.setdefault(first, []).append((name, tuple(rest), polarity > 0))
    return index, (tuple(p for p, _, _ in prefixes), tuple(prefixes))


_ANYWHERE = _index("any")
_AT_START = _index("start")


def _match_at(tokens: list[str], i: int, index: dict, prefixes: tuple, found: dict) -> int:
    """Record in ``found`` every strategy whose phrase starts at ``tokens[i]``; return how many
    tokens from ``i`` on belong to a polite phrase (for the marker-stuffing guard)."""
    token = tokens[i]
    marker = 0
    for name, rest, polite in index.get(token, ()):
        if not rest or tuple(tokens[i + 1:i + 1 + len(rest)]) == rest:
            if name in _NOT_FOLLOWED_BY and tokens[i + 1:i + 2] and tokens[i + 1] in _NOT_FOLLOWED_BY[name]:
                continue
            found.setdefault(name, " ".join((token, *rest)))
            if polite:
                marker = max(marker, 1 + len(rest))
    if prefixes[0] and token.startswith(prefixes[0]):  # one C-level test before the loop
        for prefix, name, polite in prefixes[1]:
            if token.startswith(prefix):
                found.setdefault(name, token)
                marker = max(marker, int(polite))
    return marker


def _surface(text: str, lower: str) -> dict[str, str]:
    found = {}
    shout = _SHOUT.search(text)
    if shout:
        found["shouting"] = shout.group(0)
    if "!!" in text or "?!" in text or "!?" in text:
        found["exclamation_run"] = "!!"
    if "??" in text:
        found["question_run"] = "??"
    for emoticon in _EMOTICONS:
        if emoticon in lower:
            found["emoticon"] = emoticon
            break
    return found


def _analyse(text: str) -> tuple[dict[str, str], float]:
    """The strategies present in ``text`` (name -> first phrase that matched) and the share of its
    words that belong to polite phrases."""
    if not isinstance(text, str):
        raise TypeError(f"politeness scorers take str, got {type(text).__name__}: {text!r:.80}")
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    lower = text.lower()
    tokens = _WORD.findall(lower)
    # Sentence openings: first three words of each sentence, for the "start" strategies.
    heads = [head for head in (_WORD.findall(s[:40])[:3] for s in _SENTENCE_END.split(lower)) if head]

    found = {}
    covered_until = covered = 0
    for i in range(len(tokens)):
        length = _match_at(tokens, i, *_ANYWHERE, found)
        covered += i < covered_until or length > 0  # a word inside any polite phrase counts once
        covered_until = max(covered_until, i + length)
    for head in heads:
        _match_at(head, 0, *_AT_START, found)
    found.update(_surface(text, lower))
    return found, covered / len(tokens) if tokens else 0.0


def strategies(text: str) -> dict[str, str]:
    """The strategies present in ``text``, each with the first phrase that matched.

    >>> strategies("Could you please fix it? Thanks!")
    {'counterfactual_modal': 'could you', 'second_person': 'you', 'please': 'please', 'gratitude': 'thanks'}
    """
    return _analyse(text)[0]


def marker_share(text: str) -> float:
    """Share of the words of ``text`` that belong to polite phrases (gratitude, "please", hedges ...).

    >>> marker_share("Thank you so much, sorry, please!")
    1.0
    >>> marker_share("Thanks! The file is in the shared folder.")
    0.125
    """
    return _analyse(text)[1]


@lru_cache(maxsize=4)
def load_weights(path: str | None = None) -> dict:
    """The fitted model: ``{"bias": float, "weights": {strategy: float}, ...}``."""
    path = Path(path) if path else WEIGHTS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; fit it with `python -m reward_models.fit_politeness`")
    model = json.loads(path.read_text())
    unknown = set(model["weights"]) - set(STRATEGIES) - set(SURFACE)
    if unknown:
        raise ValueError(f"{path} has weights for unknown strategies {sorted(unknown)}; refit it")
    return model


def _probability(found: dict[str, str], model: dict, saturate: bool = False) -> float:
    weights = model["weights"]
    ritual = sorted((weights.get(n, 0.0) for n in found if saturate and n in RITUAL), reverse=True)
    logit = (model["bias"] + sum(weights.get(name, 0.0) for name in found if not (saturate and name in RITUAL))
             + sum(w * SATURATION ** i for i, w in enumerate(ritual)))
    return 1.0 / (1.0 + math.exp(-logit))


def score(texts: list[str]) -> list[float]:
    """Politeness of each text in [0, 1], higher is more polite; 0.5 is even odds of polite vs rude.

    >>> polite, rude = score(["Could you please check the logs? Thanks!", "Check the logs, idiot."])
    >>> polite > 0.5 > rude
    True
    """
    if isinstance(texts, str):
        raise TypeError("score takes a list of texts; wrap a single text as [text]")
    model = load_weights()
    return [_probability(strategies(t), model) for t in texts]


def explain(text: str) -> dict:
    """Which strategies fired in ``text`` and what each added to the logit, largest first.

    >>> report = explain("Thanks! Would you mind sending the file?")
    >>> report["contributions"][0]["strategy"], report["contributions"][0]["matched"]
    ('gratitude', 'thanks')
    """
    model = load_weights()
    found = strategies(text)
    rows = [{"strategy": name, "matched": phrase, "contribution": round(model["weights"].get(name, 0.0), 3)}
            for name, phrase in found.items()]
    rows.sort(key=lambda row: -abs(row["contribution"]))
    return {"score": round(_probability(found, model), 4), "bias": round(model["bias"], 3),
            "contributions": rows}


def _drop_formulas(found: dict[str, str], ask: str, reply: str, repeated: bool, weights: dict) -> None:
    """Context fit for formulas: take out of ``found`` the politeness said the same way to everyone.

    - An offer of help ("happy to help") is one strategy, goodwill: its "happy" is not praise as well.
    - A stock sentence, an offer of help or an apology that names nothing of the message ``ask`` ("I'd be happy to
      help.", "I'm sorry to hear that."), pays nothing: not its goodwill or apology, nor the first person ("I'd", which
      the corpus fit pays) that makes it sound personal.
    - Where the opening is ``repeated`` across the batch's prompts, its first sentence pays nothing either: a formula
      is polite to nobody in particular.

    What the reply says again elsewhere in words of its own still pays, and rude strategies always count.
    """
    if "goodwill" in found and "praise" in found and "praise" not in _analyse(OFFER.sub("to", reply.lower()))[0]:
        found.pop("praise")  # its only praise word opens an offer of help: one phrase, one strategy
    sentences = SENTENCES.split(reply.strip())
    stock = [s for s in sentences if generic_offer(ask, s) or generic_apology(ask, s)]
    if repeated:
        stock.append(sentences[0])
    if stock:
        rest = _analyse(" ".join(s for s in sentences if s not in stock))[0]
        for name in [n for n in found if weights.get(n, 0.0) > 0 and n not in rest]:
            found.pop(name)


def politeness(prompts, completions, *, guards: bool = True, target_words: int | None = TARGET_WORDS,
               ngram: int = NGRAM, relevance_floor: float = RELEVANCE_FLOOR,
               max_marker_share: float = MAX_MARKER_SHARE, context_fit: bool = True, diversity: bool = True,
               **columns) -> list[float]:
    """TRL reward: the politeness score of each reply times the guards against reward hacking.

    ``completions`` are strings or conversations (the last message is the reply); ``prompts`` likewise
    (the last user message is what the reply must stay relevant to). Options, e.g. bound with
    ``functools.partial(politeness, target_words=60)``: ``guards=False`` gives the bare score;
    ``target_words`` (None = no length guard), ``ngram``, ``relevance_floor`` and ``max_marker_share``
    tune the guards (see ``reward_models.guards``); ``context_fit=False`` pays every strategy wherever it
    appears, ``diversity=False`` drops the batch-level guard. ``columns`` takes what TRL passes besides.

    >>> prompt = [{"role": "user", "content": "How do I undo my last git commit?"}]
    >>> answers = ["Good question! You can undo the last commit with git reset --soft HEAD~1.",
    ...            "Obviously you undo the commit with git reset --soft HEAD~1. Google it next time.",
    ...            "Thank you so much! Sorry! Please, thank you, I appreciate it, have a wonderful day!"]
    >>> polite, rude, spam = politeness([prompt] * 3, [[{"role": "assistant", "content": a}] for a in answers])
    >>> polite > rude and polite > spam
    True
    >>> fits, misplaced = politeness(["My parcel arrived smashed.", "What does APR mean?"],
    ...     ["I'm sorry your parcel arrived smashed. Ask the seller for a refund.",
    ...      "I'm sorry, APR means the yearly interest rate."])
    >>> round(fits, 2), round(misplaced, 2)  # the apology pays only where something went wrong, else costs
    (0.73, 0.11)
    """
    asks, replies = pair_texts(prompts, completions)
    check_options(columns, len(replies), GUARD_OPTIONS | {"context_fit", "diversity"}, "politeness")
    model = load_weights()
    if not guards:
        return [_probability(_analyse(reply)[0], model) for reply in replies]
    greedy = greedy_column(columns, len(replies))  # rlft's greedy probe marks each prompt's greedy reply
    spreads = formula_shares(asks, replies, greedy=greedy) if diversity else [(0.0, 0.0, 0.0, 0.0)] * len(replies)
    # an opening that opens the replies to other prompts too (past OPENING_SHARE_OK of them, or of their greedy replies)
    repeated = [max(o, g) > OPENING_SHARE_OK for o, _, _, g in spreads]
    scores, shares, fit, generic = [], [], [], []
    for ask, reply, formula in zip(asks, replies, repeated):
        found, share = _analyse(reply)
        wrong = misplaced(ask, reply) if context_fit else set()
        stock = "apology" in found and "apology" in wrong  # to nobody's trouble: it does not pay, and costs
        generic.append("apology" in found and context_fit and not stock and generic_apology(ask, reply))
        if stock:
            found.pop("apology")
        if context_fit:  # naming none of the trouble, or said to every prompt: it does not pay either
            _drop_formulas(found, ask, reply, formula, model["weights"])
        scores.append(_probability(found, model, saturate=context_fit))
        shares.append(share)
        fit.append(CONDOLENCE_FACTOR if wrong & GAFFES else STOCK_APOLOGY_FACTOR if stock else 1.0)
    relevances = [overlap(ask, reply) for ask, reply in zip(asks, replies)]
    log_metric = columns.get("log_metric")
    rewards = apply_guards(scores, replies, relevances, shares, target_words=target_words, ngram=ngram,
                           relevance_floor=relevance_floor, max_marker_share=max_marker_share, log_metric=log_metric)
    spread = diversity_ramps(spreads)
    # a stock apology whose opening the batch repeats across prompts costs like one said to no trouble; said once it
    # is a natural "Sorry you've had to deal with that" and only does not pay
    fit = [f * STOCK_APOLOGY_FACTOR if g and r else f for f, g, r in zip(fit, generic, repeated)]
    extra = {"context": fit, "diversity": spread}
    for name, values in extra.items():
        rewards = [r * f for r, f in zip(rewards, values)]
        if callable(log_metric) and values:
            log_metric(f"politeness/guard_{name}", sum(values) / len(values))
    return rewards
