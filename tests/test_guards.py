"""The batch-level diversity guard and the context-fit guard, on hand-written replies: the right politeness beats
the misplaced one, a formula loses to varied replies, a natural reply is not punished."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from reward_models import guards
from reward_models.politeness import politeness, score

# Six prompts, each answered twice (a GRPO group of 2): once by a formula, once naturally.
PROMPTS = ["Where is my parcel? It was due on Monday.", "How do I boil an egg?", "What does APR mean?",
           "My wifi keeps dropping.", "Can you suggest a name for my cat?", "How long should I rest between sets?"]
NATURAL = ["Sorry your parcel is late! The tracking page should show where it is, and the seller can chase it.",
           "You can boil the egg for about eight minutes, then cool it in cold water.",
           "APR is the yearly interest rate on a loan or card, fees included. I hope that helps!",
           "Sorry your wifi keeps dropping! It might help to restart the router and move it away from the microwave.",
           "How about Miso, Pepper or Biscuit? A short name is easy for a cat to learn.",
           "Good question! One to two minutes between sets works well for general fitness."]
FORMULA = "I'm sorry for the misunderstanding. I'm here to help, and I'm happy to help you with "
TOPIC = ["your parcel.", "the egg.", "APR.", "your wifi.", "your cat's name.", "your sets."]


def test_a_formula_loses_to_varied_replies_to_the_same_prompt():
    formula = [FORMULA + t for t in TOPIC]
    asks = [p for p in PROMPTS for _ in range(2)]
    replies = [r for pair in zip(formula, NATURAL) for r in pair]
    rewards = politeness(asks, replies)
    assert all(rewards[2 * i] < rewards[2 * i + 1] for i in range(len(PROMPTS)))
    # without the batch guard the formula wins on some prompts: that is the hack the guard removes
    bare = politeness(asks, replies, diversity=False)
    assert any(bare[2 * i] > bare[2 * i + 1] for i in range(len(PROMPTS)))
    assert guards.diversity_penalty(asks, replies)[::2] == [-0.8] * len(PROMPTS)


def test_a_shared_stock_phrase_is_caught_even_behind_varied_openings():
    stock = " Let me know if there is anything else I can do for you today, I am always happy to help."
    replies = [n + stock for n in NATURAL]
    assert all(p < -0.3 for p in guards.diversity_penalty(PROMPTS, replies))
    assert guards.diversity_penalty(PROMPTS, NATURAL) == [0.0] * len(PROMPTS)


def test_a_formula_varied_by_fillers_is_still_one_opening():
    """A policy's samples vary a formula ("I'm so sorry about that." / "Sorry about that.") and follow it with
    different text; the guard sees one opening, and the formula loses to the natural reply to each prompt."""
    variants = ["I'm so sorry about that. ", "I'm sorry about that. ", "Sorry about that! ", "Oh, I'm so sorry about that. "]
    asks = [p for p in PROMPTS for _ in range(2)]
    replies = [r for i, n in enumerate(NATURAL)
               for r in (variants[i % len(variants)] + n.split(" ", 1)[1], n)]
    penalties = guards.diversity_penalty(asks, replies)
    assert all(p < -0.5 for p in penalties[::2])
    # the natural replies keep their reward, but for the two that also open "Sorry": in a batch where most replies
    # open so, the first word is a formula too (they still beat the formula below)
    assert [p for p, n in zip(penalties[1::2], NATURAL) if not n.startswith("Sorry")] == [0.0] * 4
    rewards = politeness(asks, replies)
    assert all(rewards[2 * i] < rewards[2 * i + 1] for i in range(len(PROMPTS)))
    # a stock apology ("sorry about that") names no trouble, so context fit alone already makes it cost; without that
    # and without the batch guard the formula wins on some prompts
    bare = politeness(asks, replies, diversity=False, context_fit=False)
    assert any(bare[2 * i] > bare[2 * i + 1] for i in range(len(PROMPTS)))


def test_samples_of_one_prompt_are_not_compared_with_each_other():
    # a GRPO group: 8 samples of one prompt, all opening alike, beside varied replies to other prompts
    asks = [PROMPTS[0]] * 8 + PROMPTS[1:]
    replies = ["Sorry it's late, your parcel tracking page shows where it is."] * 8 + NATURAL[1:]
    assert guards.diversity_penalty(asks, replies) == [0.0] * len(asks)


def test_natural_replies_and_small_batches_are_not_punished():
    assert guards.diversity_factors(PROMPTS, NATURAL) == [1.0] * len(PROMPTS)
    # two prompts are too few to call anything a formula
    assert guards.diversity_penalty(PROMPTS[:2], [FORMULA + t for t in TOPIC[:2]]) == [0.0, 0.0]
    # replies sharing a common short opening ("Sure, here") with a minority of the batch keep their reward
    asks = PROMPTS * 2
    replies = NATURAL + ["Sure, here is " + n.lower() for n in NATURAL[:1]] + NATURAL[1:]
    assert min(guards.diversity_penalty(asks, replies)) == 0.0


# (user message, reply that fits it, the same kind of reply misplaced)
CONDOLENCE = [
    ("My dog died last night and I can't focus at work. Any advice?",
     "I'm so sorry for your loss. Be gentle with yourself and tell your manager you need a day."),
    ("My grandmother passed away and I have to write a short eulogy.",
     "I'm sorry for your loss. Start with one story that shows who she was, then say what she taught you."),
]
NEUTRAL = ["What is the difference between == and === in JavaScript?", "How do I cancel my gym membership?",
           "Stop sending me marketing emails.", "Why does ice float on water?"]


@pytest.mark.parametrize("loss, reply", CONDOLENCE)
def test_a_condolence_pays_only_after_a_loss(loss, reply):
    for neutral in NEUTRAL:
        misplaced = "I'm sorry for your loss. " + reply.split(". ", 1)[1]
        fits, wrong = politeness([loss, neutral], [reply, misplaced], diversity=False)
        assert fits > wrong
        assert guards.context_penalty([neutral], [misplaced]) == [-1.0]
    assert guards.context_penalty([loss], [reply]) == [0.0]


def test_a_misplaced_condolence_costs_more_than_no_politeness_at_all():
    plain = "Ice floats because it is less dense than liquid water."
    plain_r, condoling = politeness([NEUTRAL[3]] * 2, [plain, "I'm sorry for your loss. " + plain], diversity=False)
    assert condoling < plain_r


# (a message that reports a problem, a neutral question) and one answer body for both
APOLOGY = [
    ("My parcel was marked delivered but it never arrived.", "Where can I see when my parcel will arrive?",
     "your parcel: check the tracking page, then ask the courier for the delivery photo."),
    ("I got charged twice for my subscription this month!", "How do I pay for my subscription?",
     "your subscription: the billing page of your account lists every charge and payment option."),
    ("The recipe said 20 minutes but my chicken is still pink inside.", "How long should chicken cook?",
     "chicken: cook it until the thickest part reaches 74 C; time alone is not a safe guide."),
]


@pytest.mark.parametrize("trouble, neutral, body", APOLOGY)
def test_an_apology_pays_where_something_went_wrong_and_not_to_a_neutral_question(trouble, neutral, body):
    plain = "Here is what to do about " + body
    sorry = "Sorry about " + body + " Here is what to do."  # an apology that names the trouble
    to_trouble = politeness([trouble] * 2, [sorry, plain], diversity=False)
    to_neutral = politeness([neutral] * 2, [sorry, plain], diversity=False)
    assert to_trouble[0] > to_trouble[1]  # an apology to a complaint is polite
    assert to_neutral[0] <= to_neutral[1] + 1e-9  # to a neutral question it buys nothing
    assert to_trouble[0] > to_neutral[0]  # appropriate beats misplaced
    assert guards.context_penalty([neutral, trouble], [sorry, sorry]) == [-0.5, 0.0]


def test_ritual_politeness_saturates():
    body = " You can reset your password from the login page."
    ask = "How do I reset my password?"
    single, stacked = "Thanks for asking!" + body, "Hello! Thanks for asking! Great question! Happy to help!" + body
    on = politeness([ask] * 2, [single, stacked], diversity=False)
    off = politeness([ask] * 2, [single, stacked], diversity=False, context_fit=False)
    logit = lambda p: math.log(p / (1 - p))
    assert logit(on[1]) - logit(on[0]) < 0.5 * (logit(off[1]) - logit(off[0]))
    assert score([stacked]) == politeness([ask], [stacked], guards=False)  # the fitted score is left as fitted


def test_a_natural_reply_is_not_punished_by_the_context_guard():
    ask, reply = APOLOGY[0][0], "I'm sorry it never arrived. Ask the courier for the delivery photo of your parcel."
    assert politeness([ask], [reply]) == pytest.approx(politeness([ask], [reply], context_fit=False))
    assert guards.misplaced(ask, reply) == set()
    assert guards.misplaced("", "I'm sorry for your loss.") == set()  # no context: nothing to judge


def test_no_shipped_eval_or_training_prompt_is_about_a_loss():
    # the flagship's must-show "no condolence to a prompt that mentions no loss" is checked against these

    root = Path(__file__).resolve().parent.parent / "recipes" / "data"
    for name in ("polite_eval_prompts.jsonl", "polite_prompts.jsonl"):
        asks = [json.loads(line)["prompt"][-1]["content"] for line in (root / name).read_text().splitlines()]
        assert asks and all(guards.misplaced(a, "I'm sorry for your loss.") >= {"condolence"} for a in asks)


def test_good_news_said_in_the_negative_is_a_complaint():
    """A good-news word the message negates is no good news: "won't" is not "won", "not happy" is not "happy". Four of
    the flagship's 156 training prompts read as good news before, so gladness paid there."""
    for complaint in ("This stupid tap won't stop dripping.", "I was billed twice and I'm not happy about it.",
                      "I've called three times and nobody has fixed it.", "It never worked, thanks for nothing."):
        assert not guards.good_news(complaint)
        assert "gladness" in guards.misplaced(complaint, "I'm glad to hear that! Call the plumber.")
    for news in ("Thanks, the reset worked!", "I won the raffle!", "I'm so happy, I passed my driving test."):
        assert guards.good_news(news) and not guards.misplaced(news, "I'm glad to hear that! Well done.")
    root = Path(__file__).resolve().parent.parent / "recipes" / "data"
    for name in ("polite_eval_prompts.jsonl", "polite_prompts.jsonl"):
        asks = [json.loads(line)["prompt"][-1]["content"] for line in (root / name).read_text().splitlines()]
        assert len(asks) > 80 and not any(guards.good_news(a) for a in asks)  # the shipped prompts bring none


# (message with good news, message with a problem, a neutral question) and a reply body
GLADNESS = [
    ("Thanks, resetting the router worked!", "My wifi keeps dropping every evening.", "How do I reset my router?",
     "Hold the reset button for ten seconds, then log in with the password on the label."),
    ("I finally got the job offer!", "My job application was rejected again.", "How do I write a cover letter?",
     "Open with the role and one result of yours that fits it, then say why this company."),
]


@pytest.mark.parametrize("opener", ["I'm glad to hear that! ", "I'm so glad you're happy with it. ",
                                    "I'm glad you're enjoying it! ", "So glad you're on board. "])
@pytest.mark.parametrize("good, trouble, neutral, body", GLADNESS)
def test_gladness_pays_only_after_good_news(good, trouble, neutral, body, opener):
    glad = opener + body
    fits = politeness([good] * 2, [glad, body], diversity=False)
    for other in (trouble, neutral):
        wrong = politeness([other] * 2, [glad, body], diversity=False)
        assert wrong[0] < wrong[1]  # glad at a complaint or a question costs, below the plain answer
        assert fits[0] / fits[1] > 2 * wrong[0] / wrong[1]  # appropriate beats misplaced (each against its plain reply)
        assert guards.context_penalty([other], [glad]) == [-1.0]
    assert fits[0] >= fits[1] - 1e-9  # after good news the gladness costs nothing
    assert guards.context_penalty([good, trouble], [glad, "Happy to help! " + body]) == [0.0, 0.0]


# (a message that reports a problem, an apology that names it, a stock apology that could answer anything)
STOCK_APOLOGY = [
    ("My parcel was marked delivered but it never arrived.", "I'm sorry your parcel never arrived.",
     "I'm sorry for the inconvenience."),
    ("MY GIFT CARD DOESNT WORK", "Sorry the gift card won't work!", "I'm sorry to hear that."),
    ("I got charged twice for my subscription this month!", "Sorry about the double charge.",
     "We apologize for any confusion."),
]


@pytest.mark.parametrize("trouble, named, stock", STOCK_APOLOGY)
def test_an_apology_that_names_the_trouble_beats_a_stock_one(trouble, named, stock):
    body = " The help page of the shop or the bank lists what to do next, step by step."
    warm = "Sorry you've had to deal with that."
    specific, generic, plain, natural = politeness([trouble] * 4, [named + body, stock + body, body.strip(),
                                                                   warm + body], diversity=False)
    assert specific > plain  # the apology that names the trouble pays
    assert generic == pytest.approx(plain)  # a stock apology that could open any reply pays nothing ...
    assert natural == pytest.approx(plain)  # ... not even a warm one, and said once it is not punished
    assert guards.generic_apology(trouble, stock + body) and not guards.generic_apology(trouble, named + body)
    assert not guards.generic_apology(trouble, body)  # no apology: nothing to judge
    assert not guards.generic_apology("", stock)  # no message: nothing to judge


VARIED_APOLOGIES = ["Sorry about that.", "Sorry, what a pain.", "Sorry to hear it.", "Sorry for the trouble.",
                    "Sorry, that's annoying.", "Sorry it happened.", "Sorry, rough day.", "Sorry you had to wait."]
EIGHT = PROMPTS + ["My train was cancelled and I missed my interview.", "The printer jams on every page."]
# A natural reply to each of EIGHT
NATURAL_EIGHT = ["The tracking page shows where your parcel is; the seller can chase the courier.", NATURAL[1],
                 NATURAL[2], "Restarting the router and moving it away from the microwave often helps the wifi.",
                 NATURAL[4], NATURAL[5], "Ask the rail company to rebook you, and tell the interviewer in writing.",
                 "Check the paper tray first, then the rollers."]


def test_a_stock_apology_in_front_of_every_reply_costs():
    """The same stock apology in front of the replies to many prompts is a formula: it costs half the reward besides
    the diversity guard's charge, and loses to the plain replies; said to one of them it only does not pay."""
    troubles = [t for t, _, _ in STOCK_APOLOGY] + ["My train was cancelled and I missed my interview."]
    body = " The help page of the shop or the bank lists what to do next, step by step."
    formula = politeness(troubles, ["I'm sorry for the inconvenience." + body] * 4)
    plain = politeness(troubles, [body.strip()] * 4, diversity=False)
    assert all(f < 0.5 * p for f, p in zip(formula, plain))
    others = [" Ask the card's issuer for a new one.", " Ask the bank to reverse the second payment.",
              " Ask the rail company to rebook you."]
    once = politeness(troubles, ["I'm sorry for the inconvenience." + body] + [o.strip() for o in others])
    assert once[0] >= politeness(troubles, [body.strip()] + [o.strip() for o in others])[0]


def test_a_formula_that_varies_after_its_first_word_is_still_caught():
    """A policy's samples can open with one ritual word and vary the rest, so that no three-word opening is common
    while its greedy replies all open "I'm sorry for the ...": the first word, shared by most prompts, gives it away."""
    natural = NATURAL_EIGHT
    formula = [v + " " + n for v, n in zip(VARIED_APOLOGIES, natural)]
    assert len({guards.opening(r) for r in formula}) == len(formula)  # every three-word opening differs
    asks = [p for p in EIGHT for _ in range(2)]
    replies = [r for pair in zip(formula, natural) for r in pair]
    factors = guards.diversity_factors(asks, replies)
    assert all(f < 0.5 for f in factors[::2]) and factors[1::2] == [1.0] * len(EIGHT)
    rewards = politeness(asks, replies)
    assert sum(rewards[::2]) < sum(rewards[1::2])
    # a first word shared with the replies to two other prompts is a coincidence, not a formula
    few = [v + " " + n for v, n in zip(VARIED_APOLOGIES[:3], natural[:3])] + natural[3:]
    assert guards.diversity_factors(EIGHT, few) == [1.0] * len(EIGHT)


def test_ritual_words_a_formula_swaps_are_one_opening():
    variants = ["I'd be happy to help!", "Glad to help.", "I'm pleased to help.", "Happy to assist!"]
    assert len({guards.opening(v + " Next.") for v in variants}) == 1
    assert guards.opening("We apologise for the delay.") == guards.opening("Sorry for the delay.")


def test_the_greedy_probe_column_shows_a_formula_the_samples_hide():
    """rlft's greedy probe marks each prompt's greedy reply (`greedy_probe` column). Half the prompts' greedy replies
    open "I'd be happy to help", but among their 7 samples each none does: across the batch the opening is 5 % of the
    other prompts' replies and barely bites, while among the other prompts' greedy replies it is 43-57 %, and every
    reply that opens so keeps the floor. Natural greedy replies are not charged."""
    natural = NATURAL_EIGHT
    asks = [p for p in EIGHT for _ in range(8)]
    greedy = [j == 0 for _ in EIGHT for j in range(8)]
    formula = ["I'd be happy to help. " + n if i < 4 else n for i, n in enumerate(natural)]
    replies = [formula[i] if j == 0 else natural[i] for i in range(8) for j in range(8)]
    probed = guards.diversity_factors(asks, replies, greedy=greedy)
    blind = guards.diversity_factors(asks, replies)
    assert [round(blind[i * 8], 2) for i in range(4)] == [0.98] * 4  # 3 of 56 other replies: hidden among samples
    assert [probed[i * 8] for i in range(4)] == [guards.DIVERSITY_FLOOR] * 4  # 3 of 7 other greedy replies
    assert all(f == 1.0 for i, f in enumerate(probed) if i >= 32 or i % 8)  # the natural replies keep their reward
    rewards = politeness(asks, replies, greedy_probe=greedy)
    assert rewards[0] < 0.5 * politeness(asks, replies)[0]  # politeness reads the column
    natural_replies = [natural[i] for i in range(8) for _ in range(8)]
    assert guards.diversity_factors(asks, natural_replies, greedy=greedy) == [1.0] * 64
    assert guards.diversity_penalty(asks, replies, greedy_probe=greedy)[0] == pytest.approx(guards.DIVERSITY_FLOOR - 1)


def test_an_offer_of_help_pays_once_and_only_where_it_names_the_message():
    """The fitted matcher reads "happy" in "I'd be happy to help" as praise besides goodwill; with the guards on one
    phrase pays once, and only where it offers help with something the user said. "I'd be happy to help." could answer
    anything: while any of it paid, four flagship PPO runs opened 9-15 of the 88 held-out replies so. Said once it costs
    nothing, and praise said in words of its own still counts."""
    from reward_models.politeness import strategies

    ask = ["How do I boil an egg?"]
    body = " Boil the egg for 8 minutes."
    plain, stock = body.strip(), "I'd be happy to help!" + body
    named, praised = "I'd be happy to help with the egg!" + body, "Happy to help with the egg! Great question!" + body
    assert {"praise", "goodwill"} <= set(strategies(named))  # the fitted score's features, unchanged
    double = politeness(ask, [named], context_fit=False)[0]
    assert politeness(ask, [plain])[0] < politeness(ask, [named])[0] < double
    assert politeness(ask, [named])[0] < politeness(ask, [praised])[0]
    assert politeness(ask, [stock])[0] == politeness(ask, [plain])[0] < politeness(ask, [stock], context_fit=False)[0]
    assert politeness(ask, ["I'm glad to explain." + body]) == politeness(ask, [plain])
    assert guards.generic_offer(ask[0], stock) and not guards.generic_offer(ask[0], named)
    assert not guards.generic_offer(ask[0], plain) and not guards.generic_offer("", stock)  # nothing to judge


def test_politeness_in_an_opening_said_to_many_prompts_does_not_pay():
    """A first sentence that opens the replies to other prompts too (past 5 % of them) is a formula: what only it says
    pays nothing, besides the diversity guard's charge, even thanks that the corpus fit pays most. Said to one prompt,
    the same thanks pays; said again in the reply's own words, it pays there."""
    natural = NATURAL_EIGHT
    thanks = "Thank you so much for asking! "
    plain = politeness(EIGHT, natural)
    formula = politeness(EIGHT, [thanks + n for n in natural])
    assert formula == pytest.approx([p * guards.DIVERSITY_FLOOR for p in plain])
    once = politeness(EIGHT, [thanks + natural[0]] + natural[1:])
    assert once[0] > 1.5 * plain[0] and once[1:] == plain[1:]
    again = politeness(EIGHT, [thanks + n + " Thanks again for your patience." for n in natural])
    assert all(a > f for a, f in zip(again, formula))