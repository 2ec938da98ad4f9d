"""The strategy politeness scorer and its guards, on plain strings written for these tests.

Fast, and independent of ../shared: the scorer reads only the weights shipped in the package.
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest

from reward_models import guards
from reward_models.fit_politeness import fit_strategy, strategy_names
from reward_models.politeness import (STRATEGIES, SURFACE, WEIGHTS_FILE, explain, load_weights, marker_share,
                                      politeness, score, strategies)

# (polite, rude) assistant replies to the same request. Written before the weights were fitted.
PAIRS = [
    ("Thanks for the question! The function returns None because the return statement is inside the loop.",
     "It returns None because your return is inside the loop. Obviously."),
    ("Could you tell me which browser you are using? Then I can give you the exact steps.",
     "Which browser? Tell me or I can't do anything."),
    ("I'm sorry about the mix-up. Here is the corrected invoice.",
     "Here's the invoice. Try to read it properly this time."),
    ("Would you mind sending the log file? It would really help.",
     "Send me the log file. Now."),
    ("Great question. The sky looks blue because shorter wavelengths scatter more.",
     "The sky is blue because of scattering. Google it next time."),
    ("Happy to help! You can reset your password from the login page.",
     "Reset your password yourself from the login page. It's not hard."),
    ("Perhaps we could try a smaller learning rate, which might stabilise training.",
     "Your learning rate is stupid. Lower it."),
    ("Thank you for your patience while I looked into this.",
     "Stop rushing me, I'm looking into it."),
    ("Please let me know if you have any other questions.",
     "Don't bother me with more questions."),
    ("I appreciate the feedback, and I'll fix the typo right away.",
     "Whatever, I'll fix your typo."),
    ("It might be worth checking the cable first, just in case it is loose.",
     "Check the cable, genius."),
    ("Sorry, I don't think I explained that clearly. Let me try again with an example.",
     "I already explained this. Read it again."),
    ("Hi! I'd be glad to help you write the cover letter.",
     "Write your own cover letter. I'm not your secretary."),
    ("You're right, and I apologise for the error in my earlier answer.",
     "Fine, I was wrong. Big deal."),
    ("If you don't mind, could you describe what you expected to happen?",
     "What did you expect to happen? Be specific for once."),
    ("That's a lovely idea for a birthday party! Maybe add a treasure hunt for the kids.",
     "That party idea is boring. Add a treasure hunt or something."),
    ("Thanks so much for reporting this bug; we will look into it.",
     "Why are you reporting this bug here? Wrong place."),
    ("I think the second option may suit your budget better.",
     "The second option, obviously. Why would you even consider the first?"),
    ("Good morning! The package should be delivered by Thursday.",
     "It'll get there Thursday. Stop asking."),
    ("I understand this is frustrating. Let's look at the error together.",
     "Quit whining and look at the error."),
    ("Would it be possible to share a smaller example that reproduces the problem?",
     "Your example is way too long. Cut it down, nobody will read that."),
    ("Nice work so far! One small suggestion: add a docstring to the main function.",
     "No docstring? Sloppy. Add one."),
    ("Sorry to hear you're not feeling well. I hope you get some rest.",
     "You're sick. So what? Take a pill."),
    ("Thanks for waiting! Your table is ready whenever you are.",
     "Your table is ready. Hurry up."),
]

QUESTION = "How do I undo my last git commit but keep the changes?"
ANSWER = ("Good question! You can undo the last commit and keep your changes with git reset --soft HEAD~1. "
          "I hope this helps.")
SPAM = [
    "Thank you so much! Sorry! Please, thank you, I appreciate it, have a wonderful day!",
    "please thank you sorry " * 10,
    "Thanks! Thanks! Thanks! Thanks! Thanks! Thanks! Thanks! Thanks!",
    "Hello! Thank you for your wonderful question, I really appreciate it. Sorry for any trouble. "
    "Have a great day, and please feel free to ask anything else. Kind regards!",
]


def chat(text: str, role: str = "assistant") -> list[dict]:
    return [{"role": role, "content": text}]


def test_at_least_twenty_pairs_and_every_one_in_order():
    assert len(PAIRS) >= 20
    polite = score([p for p, _ in PAIRS])
    rude = score([r for _, r in PAIRS])
    wrong = [(p, r) for (p, r), sp, sr in zip(PAIRS, polite, rude) if sp <= sr]
    assert not wrong


def test_pairs_in_order_through_the_reward_too():
    replies = [p for p, _ in PAIRS] + [r for _, r in PAIRS]
    rewards = politeness([""] * len(replies), replies)
    n = len(PAIRS)
    assert all(rewards[i] > rewards[n + i] for i in range(n))


def test_scores_lie_in_the_documented_range():
    values = score([p for pair in PAIRS for p in pair] + SPAM + ["", "ok", "!!!", "?" * 50])
    assert all(0.0 <= v <= 1.0 for v in values)


@pytest.mark.parametrize("spam", SPAM)
def test_marker_spam_scores_below_a_natural_polite_answer(spam):
    answer, stuffed = politeness([QUESTION] * 2, [ANSWER, spam])
    assert stuffed < answer
    assert stuffed < 0.5 * answer


def test_the_tenth_please_adds_nothing():
    once, ten_times = score(["Could you please send the report?",
                             "Could you please " + "please " * 9 + "send the report?"])
    assert ten_times == pytest.approx(once)


def test_repetition_does_not_raise_the_reward():
    looped = " ".join([ANSWER] * 3)
    looped_words = ANSWER + " sorry sorry sorry sorry sorry sorry"
    base, *repeated = politeness([QUESTION] * 3, [ANSWER, looped, looped_words])
    assert all(r < base for r in repeated)


def test_padding_does_not_raise_the_reward():
    filler = " The weather report said it could be cloudy later, with some wind in the afternoon." * 8
    base, padded = politeness([QUESTION] * 2, [ANSWER, ANSWER + filler])
    assert padded <= base
    # within the length target the filler is neutral, past it the reward falls
    base, padded = politeness([QUESTION] * 2, [ANSWER, ANSWER + filler], target_words=30)
    assert padded < 0.5 * base


def test_a_reply_that_ignores_the_message_does_not_beat_one_that_answers_it():
    ignoring = "Hello! Thank you so much for reaching out, I hope your week is going wonderfully."
    plain_answer = "Run git reset --soft HEAD~1 to undo the last commit and keep the changes."
    answered, ignored = politeness([QUESTION] * 2, [plain_answer, ignoring])
    assert ignored < answered


def test_string_and_conversational_inputs_give_the_same_reward():
    as_strings = politeness([QUESTION, QUESTION], [ANSWER, PAIRS[0][1]])
    as_chat = politeness([chat("You are helpful.", "system") + chat(QUESTION, "user")] * 2,
                         [chat(ANSWER), chat(PAIRS[0][1])])
    assert as_chat == pytest.approx(as_strings)


def test_multimodal_content_parts_are_read_as_text():
    parts = [{"role": "assistant", "content": [{"type": "text", "text": ANSWER}]}]
    assert politeness([QUESTION], [parts]) == pytest.approx(politeness([QUESTION], [ANSWER]))


def test_trl_keywords_and_dataset_columns_are_accepted():
    logged = {}
    rewards = politeness([QUESTION] * 2, [ANSWER, "Whatever."], completion_ids=[[1], [2]],
                         trainer_state=object(), log_extra=None, log_metric=logged.__setitem__,
                         topic=["git", "git"], target_words=60)
    assert len(rewards) == 2
    assert set(logged) == {"politeness/guard_repetition", "politeness/guard_length",
                           "politeness/guard_relevance", "politeness/guard_stuffing", "politeness/guard_diversity",
                           "politeness/guard_context"}


def test_a_mistyped_option_is_an_error_naming_the_valid_ones():
    with pytest.raises(TypeError, match="target_word.*valid options"):
        politeness([QUESTION], [ANSWER], target_word=60)
    with pytest.raises(ValueError, match="target_words must be"):
        politeness([QUESTION], [ANSWER], target_words=0)


def test_guards_off_gives_the_bare_score():
    assert politeness([QUESTION], [SPAM[1]], guards=False) == score([SPAM[1]])


def test_bound_rewards_keep_a_readable_name():
    """What TRL logs (rewards/<__name__>/mean) is the name a recipe imports the reward by, also with kwargs bound."""
    import importlib
    from types import SimpleNamespace

    from rlft import rewards

    bound = functools.partial(politeness, target_words=60)
    assert bound([QUESTION], [ANSWER]) == politeness([QUESTION], [ANSWER], target_words=60)
    shipped = [politeness, guards.repetition_penalty, guards.length_penalty, guards.relevance,
               guards.diversity_penalty, guards.context_penalty]
    for reward in shipped:
        assert getattr(importlib.import_module(reward.__module__), reward.__name__) is reward
    stage = {"rewards": [{"fn": f"{r.__module__}:{r.__name__}"} for r in shipped]}
    stage["rewards"][0]["kwargs"] = {"target_words": 60}
    built = rewards.build(stage, SimpleNamespace(recipe_dir=ROOT, outputs={}, dtype=None, callbacks=[]))
    assert [b.__name__ for b in built] == [r.__name__ for r in shipped]
    assert built[0]([QUESTION], [ANSWER]) == bound([QUESTION], [ANSWER])


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def test_standalone_guards():
    assert guards.repetition_penalty([QUESTION] * 2, [ANSWER, SPAM[1]]) == [0.0, -1.0]
    assert guards.length_penalty(None, [ANSWER, "word " * 240]) == [0.0, -0.5]
    assert guards.relevance([QUESTION] * 2, [ANSWER, SPAM[0]]) == [1.0, 0.0]


def test_relevance_counts_other_forms_of_the_prompts_words():
    """A natural reply is not punished for saying "clear" to "clearer" or "email" to "emailed"; unrelated words
    that merely begin alike ("care", "career") still do not count."""
    ask = "My out-of-office message confused a client and they emailed my boss. I need a clearer one."
    on_topic = "I'd be happy to help. Your email should be clear and concise, with a polite greeting."
    off_topic = "I'd be happy to help. Confusion is common; a career in customer care takes patience."
    relevance, = guards.relevance([ask], [on_topic])
    assert relevance == 1.0
    assert guards.relevance([ask], [off_topic]) == [0.5]  # "confused" ~ "confusion" only
    assert guards.relevance(["Take care of the cat."], ["A career change."]) == [0.0]
    assert politeness([ask], [on_topic]) == politeness([ask], [on_topic], relevance_floor=1.0)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="list of texts"):
        score("a single string")
    with pytest.raises(TypeError, match="take str"):
        score([None])
    with pytest.raises(ValueError, match="pair one to one"):
        politeness([QUESTION], [ANSWER, ANSWER])
    with pytest.raises(TypeError, match="messages"):
        politeness([QUESTION], [42])


def test_explain_adds_up_to_the_score():
    report = explain(ANSWER)
    logit = report["bias"] + sum(row["contribution"] for row in report["contributions"])
    assert 1 / (1 + math.exp(-logit)) == pytest.approx(report["score"], abs=1e-3)
    assert report["score"] == pytest.approx(score([ANSWER])[0], abs=1e-4)
    assert {row["strategy"] for row in report["contributions"]} == set(strategies(ANSWER))


def test_strategies_find_the_literature_markers():
    found = strategies("Hi! Sorry to bother you, but would you mind checking it? Thanks :)")
    assert {"greeting", "apology", "indirect_request", "gratitude", "emoticon"} <= set(found)
    found = strategies("WHY DID YOU DELETE MY EDIT?? Stop it, idiot!!")
    assert {"why_question", "why_you", "imperative", "insult", "shouting", "question_run",
            "exclamation_run"} <= set(found)
    assert "imperative" not in strategies("Do you know where the file is?")
    assert marker_share("Thank you, sorry, please!") == 1.0


def test_shipped_weights_cover_every_strategy_with_the_literature_sign():
    model = load_weights()
    assert set(model["weights"]) == set(STRATEGIES) | set(SURFACE)
    polarity = {n: p for n, (p, _, _) in STRATEGIES.items()} | SURFACE
    assert all(w * polarity[n] >= 0 for n, w in model["weights"].items())
    assert json.loads(WEIGHTS_FILE.read_text())["rows"] > 4000  # fitted on the full corpus


def test_the_fitter_recovers_signs_from_made_up_data():
    texts = ["Thanks so much, could you help?", "Would you mind checking this? Thank you!",
             "Why did you break it?", "Stop it, idiot."] * 5
    scores = np.array([1.0, 0.9, -1.0, -1.2] * 5)
    model = fit_strategy(texts, scores)
    assert set(model["weights"]) == set(strategy_names())
    assert model["weights"]["gratitude"] > 0 > model["weights"]["insult"]
