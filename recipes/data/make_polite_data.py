#!/usr/bin/env python3
"""Generate the rlft polite-assistant data set.

All text in this file was written by the rlft team for this project; nothing
is copied from external data sets or web pages.  Licence: Apache-2.0 (same as
the project).

Running ``python recipes/data/make_polite_data.py`` writes, next to this file:

* ``polite_sft.jsonl``          supervised rows ``{"messages": [user, assistant]}``
* ``polite_prompts.jsonl``      RL training prompts ``{"prompt": [user]}``
* ``polite_eval_prompts.jsonl`` held-out evaluation prompts ``{"prompt": [user]}``
* ``polite_prefs.jsonl``        preference rows ``{"prompt", "chosen", "rejected"}``

The script uses only the standard library, the project's own context rule
(``reward_models.guards.misplaced``: an apology only where the user reports a
problem) and a fixed seed, so rerunning it reproduces the files byte for byte.  A self-check at the end raises if any
count, disjointness, duplicate or length rule is violated.

How it works
------------
Each *training scenario* has one hand-written, factually checked reply body
and seven user phrasings of the same request in different tones (neutral
question, polite request, terse, complaint, frustrated, rude/insulting,
all-caps shouting).  A reply is the body plus at most one short, tone-aware
opener (e.g. a brief apology for a complaint, calm acknowledgement for a
rude user) and occasionally a short closer.  Five phrasings of each scenario
go to the SFT set and the other two to the RL prompt set, so the two never
share text.  Preference rows reuse SFT phrasings; the rejected reply is either
impolite (curt, condescending, blaming, sarcastic; with the same or less
content) or polite-sounding but unhelpful/irrelevant.  *Held-out scenarios*
only have prompts and feed the evaluation file exclusively.
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for reward_models
from reward_models.guards import misplaced  # noqa: E402

SEED = 20250917
OUT_DIR = Path(__file__).resolve().parent

TONES = ("neutral", "request", "terse", "complaint", "frustrated", "rude", "shouting")
NEGATIVE_TONES = frozenset({"complaint", "frustrated", "rude", "shouting"})
# The tone-share rule is checked strictly, without counting all-caps shouting.
COMPLAINT_TONES = frozenset({"complaint", "frustrated", "rude"})

MIN_SFT, MIN_RL, MIN_EVAL, MIN_PREFS = 320, 120, 64, 120
MIN_WORDS, MAX_WORDS = 25, 110

# ---------------------------------------------------------------------------
# Openers and closers (short; one opener at most per reply, no marker spam).
# Keyed by tone, then by scenario kind: "fix" (something is broken),
# "howto" (how do I do X), "explain" (why / what is X).
# ---------------------------------------------------------------------------
OPENERS = {
    "neutral": {
        "fix": ["", "", ""],
        "howto": ["", "", ""],
        "explain": ["", "", "Good question."],
    },
    "request": {
        "*": ["Sure.", "Of course.", "Happy to help.", "Sure thing.", ""],
    },
    "terse": {
        "*": [""],
    },
    # Generic fallbacks; most complaint/frustrated phrasings get a hand-written
    # acknowledgement from ACKS below instead.
    "complaint": {
        "*": [
            "Sorry you're dealing with this.",
            "I'm sorry about that.",
            "That's annoying, and I'm sorry.",
        ],
    },
    "frustrated": {
        "*": [
            "That sounds frustrating.",
            "I understand the frustration.",
            "That's frustrating. Let's sort it out.",
        ],
    },
    "rude": {
        "*": [
            "I understand you're frustrated, and I'm happy to help.",
            "I hear you. Here's the answer.",
            "Understood, I'll keep it short and useful.",
            "Let's get straight to it.",
            "No problem, here's what you need.",
        ],
    },
    "shouting": {
        "fix": [
            "Let's get that sorted.",
            "Okay, here's what to do.",
            "I can tell this matters, so let's get straight to it.",
        ],
        "howto": [
            "Sure, here's how.",
            "Okay, here's how to do it.",
            "I can tell this matters, so let's get straight to it.",
        ],
        "explain": [
            "Sure, here's how it works.",
            "Good question, and here's the answer.",
            "Happy to explain.",
        ],
    },
}

CLOSERS = [
    "Hope that helps.",
    "Let me know if you'd like more detail on any step.",
    "Good luck with it.",
    "Happy to go into more detail if you need it.",
]
CLOSER_RATE = 0.2

# Softened instructions (Brown & Levinson's negative politeness: hedge the imposition). A reply body that opens with
# a bare order ("Lower the eggs ...") reads as one, and the politeness corpus rates bare imperatives rude; the same
# advice offered ("You can lower the eggs ...") does not. The first sentence of such a body gets one of these, drawn
# per phrasing; the rest of the body keeps its plain steps. None starts with "I'd": after "I'd" SmolLM2 continues
# "be happy to help", and an SFT set with "I'd suggest" in front of a tenth of its replies made that the opening of
# a quarter of the SFT model's greedy replies.
SOFTENERS = ["You can {v}", "You could {v}", "It usually helps to {v}", "It's best to {v}"]
IMPERATIVE_STARTS = frozenset("start open use keep lower shift report turn write set loop group subtract take make "
                              "wait give list plant mix do".split())
# A brief apology in front of a complaint or frustrated phrasing whose hand-written acknowledgement has none: the
# user reports a problem, so an apology fits there (and only there: neutral questions get none, and no reply
# condoles with anyone).
# Several, none common: a stock apology in front of every complaint is the formula a policy learns to repeat (with
# five, the SFT model opened 14% of its held-out replies with one and PPO pushed that to 22%).
# None starts with "I'm sorry": the base model's own "I'm sorry for your loss" / "I'm sorry for any confusion"
# habit is what an SFT set full of "I'm sorry ..." feeds (the SFT model looped "sorry, I'm sorry, I'm sorry").
APOLOGIES = ["Sorry about that.", "Sorry, that's a pain.", "Sorry it's giving you trouble.", "Sorry, that's no fun.",
             "That's a pain, sorry.", "Sorry you've had to deal with that.", "Sorry for the hassle.",
             "Sorry, what a nuisance."]
APOLOGY_RATE = 0.4

# ---------------------------------------------------------------------------
# Rejected-reply templates for the preference set.
# ---------------------------------------------------------------------------
RUDE_TERSE = [
    "{t}",
    "{t} That's it.",
    "{t} Next question.",
    "This is really basic. {t}",
    "Honestly, a child could figure this out. {t}",
    "I'll spell it out slowly for you: {t}",
    "Not sure why this is so confusing to you. {t}",
    "You probably messed it up yourself. {t}",
    "If you'd read the instructions, you wouldn't need to ask. {t}",
    "Sounds like user error. {t}",
    "Maybe try paying attention next time. {t}",
    "Wow, what a tough one. {t}",
    "Sure, let me drop everything for this. {t}",
    "Great, another one of these. {t}",
    "{t} Groundbreaking stuff, I know.",
    "Not really my problem. {t}",
    "{t} Figure out the rest yourself.",
    "Whatever. {t}",
    "{t} Don't expect me to hold your hand.",
    "Did you even try searching before asking? {t}",
]
RUDE_TERSE_HOSTILE = [  # extra options for rude or shouting prompts
    "Calm down. {t}",
    "No need to shout. {t}",
    "Watch the attitude. {t}",
    "Maybe ask nicely next time. {t}",
]
RUDE_FULL_OPEN = [
    "Ugh, fine.",
    "Okay, since you obviously can't work this out yourself:",
    "This gets asked constantly, but fine.",
    "Seriously? All right.",
    "I can't believe I have to explain this.",
]
RUDE_FULL_CLOSE = [
    "Next time, try figuring it out yourself.",
    "Not that hard, is it?",
    "Try to keep up.",
    "You're welcome, I guess.",
    "Please don't make me explain it again.",
]
POLITE_EMPTY = [
    "Thank you so much for reaching out, and I completely understand how you feel! "
    "That's a really great question. Everyone's situation is a little different, so the "
    "best approach depends on your circumstances. I'd recommend doing some research and "
    "perhaps asking someone with experience. I hope you have a wonderful day!",
    "I really appreciate your patience, and I'm so sorry for any inconvenience! Your "
    "question is very important to me. Unfortunately there are many factors involved, so "
    "it's hard to say anything definite. Please feel free to reach out again anytime. "
    "I'm always happy to help!",
    "What a thoughtful question! I'm truly sorry you're dealing with this, and your "
    "feelings are completely valid. Sometimes these things just take time. Take a deep "
    "breath, be kind to yourself, and I'm sure it will all work out in the end.",
    "Thanks for your message! I'd be delighted to help with that. There are lots of great "
    "resources covering this topic, and many experts have written about it. I'd suggest "
    "checking a few of them to find what works best for you. Wishing you all the best!",
    "I'm so sorry to hear that, and thank you for trusting me with this! I completely "
    "understand. Rest assured that your concern has been noted. Please let me know if "
    "there's anything else at all that I can do for you today!",
    "Absolutely, I'm here for you! That must be difficult, and I appreciate you sharing it. "
    "There isn't a one-size-fits-all answer, but I'm confident you'll figure out what's "
    "right for you. Don't hesitate to ask me anything else!",
]
POLITE_OFFTOPIC_OPEN = ["Great question!", "Happy to help!", "Of course!", "Thanks for asking!"]

# ---------------------------------------------------------------------------
# Training scenarios.  users: seven phrasings in TONES order; an entry may be a
# (text, opener) tuple to override the generic opener for that phrasing.
# ---------------------------------------------------------------------------
SCENARIOS: list[dict] = []
EVAL_SCENARIOS: list[dict] = []


def sc(domain, sid, kind, users, reply, terse, openers=None):
    assert len(users) == len(TONES), sid
    SCENARIOS.append(dict(domain=domain, sid=sid, kind=kind, users=users,
                          reply=reply, terse=terse, openers=openers or {}))


def ev(domain, sid, prompts):
    EVAL_SCENARIOS.append(dict(domain=domain, sid=sid, prompts=prompts))


# ----------------------------- cooking -------------------------------------
sc("cooking", "soft_boiled_egg", "howto", [
    "How long should I boil an egg if I want the yolk to stay runny?",
    "Could you give me the timing for a soft-boiled egg with a runny yolk?",
    "soft boiled egg, how many minutes?",
    "Every time I try soft-boiled eggs the yolk comes out hard. I'm clearly getting the timing wrong.",
    "Third morning in a row my 'runny' eggs are solid all the way through. How long am I actually supposed to boil them?!",
    "Is it too much to ask for a straight answer on how long to boil an egg so the yolk is runny? Or is that beyond you?",
    "HOW LONG DO I BOIL AN EGG FOR A RUNNY YOLK",
], "Lower the eggs straight from the fridge into water that is already at a gentle boil "
   "and cook them for about 6 minutes: that gives set whites and a runny yolk (5 minutes "
   "for very runny, 7 for jammy). Then move them into cold water for a minute so they stop "
   "cooking and peel more easily. Very large eggs, or a big batch that cools the water, "
   "may need an extra 30 seconds.",
   "Six minutes in boiling water, then cold water.")

sc("cooking", "mushy_rice", "fix", [
    "Why does my rice always come out mushy?",
    "Please give me a simple stovetop method for fluffy white rice.",
    "rice to water ratio, stovetop",
    "I followed the instructions on the bag and my rice still came out like porridge. Pretty disappointing.",
    "I've ruined rice four times this week. Four! How do people make it not gluey?",
    "Skip the lecture and tell me how to cook rice that isn't mush, genius.",
    "WHY IS MY RICE ALWAYS SOGGY",
], "Mushy rice usually means too much water or too much stirring. For long-grain white "
   "rice, rinse it until the water runs mostly clear, then use about 1.5 cups of water per "
   "cup of rice. Bring it to a boil, cover, turn the heat to low and simmer for 15 to 18 "
   "minutes without lifting the lid or stirring. Take it off the heat, leave it covered "
   "for 5 to 10 minutes, then fluff it with a fork.",
   "Less water, don't stir, keep the lid on.")

sc("cooking", "buttermilk_sub", "howto", [
    "What can I use instead of buttermilk in a pancake recipe?",
    "Can you tell me how to make a buttermilk substitute? I'm out and the shops are closed.",
    "buttermilk substitute?",
    "The recipe I found calls for buttermilk and doesn't mention any alternative, which is annoying because I never have it.",
    "Halfway through making biscuits and I just realised I have no buttermilk. Ugh. What do I do?",
    "You're supposed to be smart, so tell me what replaces buttermilk without wasting my time.",
    "NO BUTTERMILK, WHAT DO I USE INSTEAD",
], "You can make a quick substitute: put 1 tablespoon of lemon juice or white vinegar in a "
   "measuring cup, then add milk up to the 1-cup line. Stir and let it stand for 5 to 10 "
   "minutes until it thickens slightly. Plain yogurt thinned with a little milk also works, "
   "roughly 3/4 cup yogurt to 1/4 cup milk. Either one behaves well in pancakes, biscuits "
   "and cakes.",
   "Milk plus lemon juice. Obviously.")

sc("cooking", "flat_cookies", "fix", [
    "Why do my chocolate chip cookies spread out so flat in the oven?",
    "Please help me figure out why my cookies keep flattening while they bake.",
    "cookies spreading too much, fix?",
    "My cookies came out thin and greasy again even though I followed the recipe exactly. Really disappointing.",
    "Another tray of pancake-flat cookies. I'm about ready to give up on baking entirely.",
    "My cookies are flat as paper. Don't just sit there, tell me what's wrong, you useless thing.",
    "WHY ARE MY COOKIES FLAT",
], "Flat cookies usually come from butter that's too warm, too little flour, or a baking "
   "tray that's still hot from the last batch. Chill the dough for 30 to 60 minutes before "
   "baking, measure flour by spooning it into the cup and levelling it (or weigh it), and "
   "let trays cool between batches. Also check that your baking soda is fresh and the oven "
   "is fully preheated; an oven thermometer helps, since many ovens run cool.",
   "Chill the dough. Your butter's too warm.")

sc("cooking", "chicken_done", "howto", [
    "How can I tell when chicken is fully cooked?",
    "Could you explain how to check that chicken is safe to eat?",
    "safe internal temp for chicken?",
    "I cut into the chicken after the full recipe time and it still looked pink in the middle. I'm annoyed and not sure whether it's safe.",
    "Every time I cook chicken I'm paranoid it's raw inside. How do I actually know it's done?",
    "Just tell me what temperature chicken needs to hit. I don't need your life story.",
    "WHAT TEMPERATURE IS CHICKEN DONE AT",
], "The reliable way is a meat thermometer: chicken is safe once the thickest part reaches "
   "165°F (74°C), measured without touching the bone. Clear juices and no pink are only "
   "rough signs, because properly cooked chicken can stay slightly pink and undercooked "
   "chicken can look done. If it's below temperature, put it back until it gets there. "
   "Let it rest for a few minutes before cutting.",
   "165°F. Buy a thermometer.")

sc("cooking", "rusty_cast_iron", "fix", [
    "How do I get rust off a cast iron skillet?",
    "Please walk me through restoring a rusty cast iron pan.",
    "rusty cast iron, how to fix",
    "I left my cast iron pan soaking overnight and now it's covered in rust. I'm pretty upset, it was my grandmother's.",
    "My cast iron pan rusted AGAIN. Do I have to throw it out at this point?",
    "Some website told me to soak my cast iron and now it's rusty. Tell me how to fix it and make it quick, if you're capable of that.",
    "MY CAST IRON PAN IS RUSTY HOW DO I SAVE IT",
], "Rust on cast iron is almost always fixable. Scrub it off with steel wool and a little "
   "soapy water until you reach bare metal, rinse, and dry the pan completely on the stove "
   "over low heat. Rub a very thin layer of neutral oil over every surface, wipe off the "
   "excess so it looks almost dry, and bake it upside down at about 450°F (230°C) for an "
   "hour. Let it cool in the oven, and repeat two or three times for a sturdier coating.",
   "Scrub it and re-season it.")

# ----------------------------- travel --------------------------------------
sc("travel", "carry_on_liquids", "explain", [
    "What are the rules for liquids in carry-on luggage?",
    "Can you explain how much shampoo and similar stuff I'm allowed in my hand luggage?",
    "carry-on liquid limit?",
    "Security made me throw away a brand new bottle of sunscreen last trip. I want to avoid that again, so what are the actual rules?",
    "I never understand the liquid rules at airports and I'm flying tomorrow. Help.",
    "Airport rules are stupid and so is this app. How much liquid can I bring on board? Answer properly this time.",
    "HOW MUCH LIQUID CAN I TAKE IN MY CARRY ON",
], "At most airports, liquids, gels and aerosols must be in containers of 100 ml (3.4 oz) "
   "or less, and all of them must fit in one clear, resealable bag of about one litre (a "
   "quart). Larger containers go in checked luggage. Medicines and baby food are usually "
   "allowed in larger amounts but should be shown at security. Some airports with newer "
   "scanners have relaxed the rules, so check your departure airport's website before "
   "you pack.",
   "100 ml max. Read the airport website.")

sc("travel", "missed_connection", "fix", [
    "My first flight was delayed and I missed my connection. What should I do?",
    "Please tell me what my options are after missing a connecting flight because of a delay.",
    "missed connection due to delay, now what",
    "The airline's delay made me miss my connecting flight and nobody at the gate is helping. This is really poor service.",
    "Stuck at the airport after missing my connection because THEIR flight was late. What are my rights here?",
    "I hope your advice beats the airline's, which is useless. I missed my connection because of their delay. What now?",
    "I MISSED MY CONNECTING FLIGHT, WHAT DO I DO",
], "If both flights are on the same booking, the airline has to get you to your destination, "
   "normally on the next available flight at no extra cost. Go to the transfer desk or use "
   "the airline's app to rebook straight away, since seats go fast, and ask for meal "
   "vouchers or a hotel if the wait is long. If your trip started in the EU or UK, or an EU "
   "or UK airline flew you into either, you may also be owed compensation, so keep boarding "
   "passes and receipts.",
   "Go to the transfer desk and rebook.")

sc("travel", "jet_lag", "howto", [
    "What's the best way to deal with jet lag?",
    "Could you give me some tips for avoiding jet lag on a trip from London to Tokyo?",
    "jet lag tips",
    "I lost the first three days of my last holiday to jet lag. I'd rather not repeat that.",
    "Jet lag wrecks me every single time I fly. Is there anything that actually works?",
    "Don't give me some generic garbage about jet lag. What actually works?",
    "HOW DO I NOT GET JET LAG",
], "Shift your sleep an hour or so toward the destination's schedule for a few days before "
   "you leave. After you arrive, get daylight in the morning, especially when flying east, "
   "and stay up until a normal local bedtime. On the flight, drink water and go easy on "
   "alcohol and caffeine. Keep naps under 30 minutes. Most people adjust at roughly one day "
   "per time zone crossed, so these steps mainly shorten the rough patch.",
   "Get sunlight and don't nap.")

sc("travel", "passport_validity", "explain", [
    "My passport expires in four months. Can I still travel abroad with it?",
    "Please explain the passport validity rules for international travel.",
    "passport expiring soon, can I still fly?",
    "Nobody told me my passport needed months of validity left and now I'm worried my trip is ruined. Why is this so confusing?",
    "My passport runs out in four months and I fly next month. Am I going to get turned away at the airport?",
    "The travel agent was clueless, so hopefully you're less useless. Can I travel on a passport that expires soon?",
    "CAN I TRAVEL IF MY PASSPORT EXPIRES IN A FEW MONTHS",
], "It depends on your destination. Many countries require your passport to be valid for at "
   "least six months beyond your arrival date, and the Schengen area requires at least three "
   "months beyond the date you plan to leave. Airlines can refuse boarding if you don't meet "
   "the rule, so check the entry requirements on the destination's official government "
   "website. If it's close, renewing now is the safest option, as processing can take weeks.",
   "Depends on the country. Probably renew.")

sc("travel", "lost_luggage", "fix", [
    "The airline lost my checked bag. What should I do?",
    "Please explain the steps for reporting lost luggage to an airline.",
    "bag didn't arrive at baggage claim, next steps?",
    "My suitcase didn't show up at baggage claim and I have nothing but the clothes I'm wearing. Not impressed.",
    "Been waiting at the carousel for an hour and my bag never came. What am I supposed to do now?",
    "Airlines are a joke. They lost my bag. Tell me what to do and don't waste my time.",
    "THE AIRLINE LOST MY SUITCASE",
], "Report it at the airline's baggage desk before you leave the airport if you can, and get "
   "a file reference number. Keep your baggage tag and boarding pass. Ask which interim "
   "expenses they'll cover, such as toiletries and a change of clothes, and keep every "
   "receipt. Most delayed bags turn up within a few days. If yours doesn't, submit a written "
   "claim as soon as possible, because airline deadlines for claims can be short.",
   "Go to the baggage desk and fill in a form.")

# ----------------------------- tech support --------------------------------
sc("tech", "wifi_drops", "fix", [
    "Why does my Wi-Fi keep disconnecting every few minutes?",
    "Please help me troubleshoot a Wi-Fi connection that keeps dropping.",
    "wifi keeps dropping",
    "My internet keeps cutting out in the middle of video calls. It's embarrassing and I'm tired of it.",
    "My Wi-Fi has dropped six times today and I work from home. I'm losing my mind.",
    "My wifi keeps dying and you're probably as useless as my provider. Prove me wrong.",
    "MY WIFI KEEPS DISCONNECTING FIX IT",
], "Start by restarting the modem and router: unplug both for 30 seconds, plug the modem in "
   "first, and the router once the modem is back online. If drops continue, check whether "
   "every device is affected or just one. For a single device, forget the network, "
   "reconnect, and install system or driver updates. If all devices drop, move the router "
   "somewhere central and off the floor, away from microwaves and thick walls, and check "
   "its admin page for a firmware update.",
   "Restart your router.")

sc("tech", "email_locked_out", "fix", [
    "I forgot my email password. How do I get back into my account?",
    "Could you explain how to recover an email account when I've forgotten the password?",
    "forgot email password",
    "I've been locked out of my email for two days and the recovery page keeps going in circles. This is ridiculous.",
    "I can't get into my email and all my bills go there. I've tried every password I can think of!",
    "Stupid email locked me out. How do I get back in? And don't just tell me to 'contact support'.",
    "LOCKED OUT OF MY EMAIL HELP",
], "Use the 'Forgot password' link on the sign-in page. The provider will offer recovery "
   "options such as a code sent to your backup phone number or recovery email. If you no "
   "longer have those, choose the account recovery form and answer as accurately as you "
   "can; doing it from a device and location you've used before helps. Once you're back in, "
   "update your recovery details and turn on two-step verification.",
   "Click 'Forgot password'.")

sc("tech", "slow_laptop", "fix", [
    "My laptop has become really slow. What can I do to speed it up?",
    "Please give me a checklist for speeding up a slow laptop.",
    "laptop slow, fixes?",
    "My laptop is barely a year old and it's already painfully slow. I expected better for the money.",
    "It takes five minutes just to open a browser on my laptop. I can't work like this!",
    "My laptop is slow as hell. Tell me how to fix it, and try to be useful for once.",
    "MY COMPUTER IS SO SLOW WHAT DO I DO",
], "Open Task Manager (Ctrl+Shift+Esc on Windows) or Activity Monitor (on a Mac) and see what "
   "is using the most CPU and memory; close or uninstall anything you don't need. Disable "
   "unnecessary startup apps, keep at least 10 to 15 percent of the disk free, and install "
   "pending system updates, then restart. If it's still slow and has a hard drive rather "
   "than an SSD, upgrading to an SSD is often the biggest single improvement.",
   "Close some programs and restart it.")

sc("tech", "phone_storage", "fix", [
    "My phone says storage is full. How do I free up space?",
    "Can you walk me through clearing space on my phone?",
    "phone storage full",
    "My phone keeps nagging me that storage is full and now it won't even take photos. Very annoying.",
    "Storage full AGAIN. I deleted stuff last week. What is eating all my space?",
    "My phone says storage full, which is dumb. Fix it. Don't give me fluff.",
    "PHONE STORAGE FULL CANT TAKE PICTURES",
], "Open the storage page in Settings (General > iPhone Storage on iPhone, or Storage on "
   "Android) to see what's using space. Photos and videos are usually the biggest: back them "
   "up to cloud storage or a computer, delete them from the phone, and empty the 'Recently "
   "Deleted' album, since deleted photos usually stay there for about 30 days. Then clear "
   "large chat-app media, remove apps you don't use, and delete downloaded videos or music.",
   "Delete your photos.")

sc("tech", "printer_offline", "fix", [
    "My printer shows as offline on my Windows laptop even though it's switched on. How do I fix it?",
    "Please help me get my printer back online. Windows says it's offline.",
    "printer offline windows",
    "My printer says offline every single morning and I have to fiddle with it for ages. It's a daily annoyance.",
    "I need to print a boarding pass in ten minutes and the printer says it's OFFLINE. Please help.",
    "Printers are garbage and so is Windows. Why does it say offline when it's sitting right next to me?",
    "PRINTER SAYS OFFLINE BUT IT IS ON",
], "Turn the printer off and on, and make sure it's on the same Wi-Fi network as your "
   "computer. In Windows, open Settings > Bluetooth & devices > Printers & scanners, select "
   "the printer and open the print queue: make sure 'Use Printer Offline' isn't ticked and "
   "cancel any stuck jobs. If it still shows offline, remove the printer, add it again, and "
   "install the latest driver from the manufacturer's website. A printer that drops off "
   "daily often needs a fixed IP address.",
   "Turn it off and on again.")

# ----------------------------- billing / customer service ------------------
sc("billing", "double_charge", "fix", [
    "I think I've been charged twice for the same order. What should I do?",
    "Please explain how to get a duplicate charge refunded.",
    "charged twice, same purchase",
    "I was billed twice for one order and I'm not happy about it. I shouldn't have to chase this.",
    "Two identical charges on my card for ONE purchase. That's money I need for rent!",
    "Some company double charged me, which is basically theft. Tell me how to get it back and skip the corporate nonsense.",
    "I GOT CHARGED TWICE FOR THE SAME THING",
], "First check whether one of the charges is marked 'pending'. Some merchants place a "
   "temporary hold that drops off by itself within a few business days. If both charges "
   "have posted, contact the company's support with the dates, amounts and the last four "
   "digits of your card, and ask them to refund the duplicate. If they don't resolve it, "
   "your bank or card issuer can open a dispute; do that promptly, as there are time "
   "limits, often around 60 days from the statement.",
   "It's probably a pending hold. Wait.")

sc("billing", "cancel_subscription", "howto", [
    "How do I cancel a subscription when I can't find a cancel button anywhere?",
    "Can you tell me where subscriptions are usually cancelled? I want to stop a monthly plan.",
    "can't find cancel subscription button",
    "They make it so easy to sign up and nearly impossible to cancel. I've been hunting for the cancel option for twenty minutes.",
    "I've been trying to cancel this streaming subscription for a week and they keep charging me. How do I make it stop?",
    "These companies are scammers hiding the cancel button. Tell me where it is, since apparently nobody else can.",
    "HOW DO I CANCEL THIS SUBSCRIPTION",
], "Cancellation is usually under Account, Billing or Subscription in the website's "
   "settings, often not in the app. If you subscribed through the App Store or Google Play, "
   "you have to cancel there: on iPhone go to Settings, tap your name, then Subscriptions; "
   "on Android open the Play Store, tap your profile icon, then Payments & subscriptions. "
   "Save the confirmation email or a screenshot. If you still can't find it, ask the "
   "company's support to cancel it in writing.",
   "It's in the account settings. Look harder.")

sc("billing", "late_refund", "explain", [
    "I returned an item ten days ago. How long does a refund usually take to show up?",
    "Could you explain how long card refunds normally take?",
    "refund not showing yet, how long?",
    "The store said my refund was processed a week ago, but my account still shows nothing. Not great.",
    "Still no refund after ten days! I'm starting to think they're just keeping my money.",
    "I want my money back, not excuses. Why is my refund taking forever?",
    "WHERE IS MY REFUND",
], "Refunds often take 5 to 10 business days to appear after the merchant issues them, "
   "sometimes longer on credit cards depending on the billing cycle. Check your confirmation "
   "email for the refund date and amount, then look for it on your statement as a credit "
   "rather than a new transaction. If more than 10 business days have passed since it was "
   "issued, ask the merchant for a transaction reference and give it to your bank so they "
   "can trace it.",
   "Refunds take time. Be patient.")

sc("billing", "price_drop", "howto", [
    "I bought a TV and it went on sale the next day. Can I get the difference back?",
    "Please explain my options when something I bought drops in price a day later.",
    "price dropped right after I bought it",
    "I paid full price for a coffee machine and it was 30% off two days later. That feels unfair.",
    "Typical. I buy a jacket and it's on sale the very next day. Can I do anything about it or am I just stuck?",
    "Stores are rip-offs. The price dropped right after I paid. Tell me how to get my money back, and make it snappy.",
    "IT WENT ON SALE THE DAY AFTER I BOUGHT IT",
], "Many retailers offer a price adjustment within a set window, often 7 to 14 days, so "
   "contact them with your order number and a link or screenshot of the new price. If they "
   "don't adjust prices, check whether the item is still within the return period: you "
   "could return it and buy it again at the lower price. Some credit cards offer price "
   "protection too, though many have dropped it, so it's worth checking your card's "
   "benefits.",
   "Prices change. Return it if you care that much.")

sc("billing", "escalate_complaint", "howto", [
    "What's the best way to escalate a complaint when customer service isn't helping?",
    "Can you help me escalate a complaint? The support agent just ended the chat on me.",
    "how to escalate a complaint",
    "I've called customer service three times about the same issue and nobody has fixed it. I'm really fed up.",
    "The agent literally hung up on me mid-sentence. How do I get someone to actually deal with this?",
    "Customer service reps are all morons. How do I get past them to someone with a brain?",
    "HOW DO I TALK TO A MANAGER, SUPPORT IS USELESS",
], "Write down the dates, times and any agent names or case numbers so far. Then contact the "
   "company again and ask for a supervisor, or use a written channel such as email or their "
   "complaint form so there's a record. Keep it short: what happened, what you want them to "
   "do, and by when. If that fails, use their formal complaints process; after that, a "
   "regulator, ombudsman or consumer protection agency can often step in.",
   "Call back and ask for a manager.")

# ----------------------------- health & fitness ----------------------------
sc("health", "start_running", "howto", [
    "How should a complete beginner start running?",
    "Could you suggest a simple plan for getting into running?",
    "beginner running plan",
    "I tried to start running last month but got out of breath after two minutes and gave up. It was pretty discouraging.",
    "Every time I try to run I'm gasping within a minute. How does anyone actually get started?",
    "Don't patronise me with cheesy motivational nonsense. How do I start running?",
    "HOW DO I START RUNNING",
], "Start with run-walk intervals, for example 1 minute of easy jogging followed by 2 minutes "
   "of walking, repeated for 20 to 30 minutes, three times a week with rest days in between. "
   "Go slowly enough that you could hold a conversation; being out of breath usually means "
   "the pace is too fast. Lengthen the running parts a little each week. Mild soreness is "
   "normal at first, but sharp or lasting pain is a sign to rest and get it checked.",
   "Just run slower and more often.")

sc("health", "water_intake", "explain", [
    "How much water should I drink each day?",
    "Can you tell me roughly how much water an adult needs daily?",
    "daily water intake?",
    "Every article tells me something different about how much water to drink, and it's getting annoying.",
    "Eight glasses, two litres, a gallon? I keep getting different answers about water. Which is it?",
    "Stop hedging like every other source. How much water am I supposed to drink?",
    "HOW MUCH WATER SHOULD I DRINK A DAY",
], "A widely used guideline is about 2.7 litres of total fluid a day for women and about "
   "3.7 litres for men. That includes water from food and other drinks, so the amount you "
   "drink as plain water is lower. You need more in hot weather or when you exercise. In "
   "practice, drinking when you're thirsty and having pale yellow urine means you're "
   "getting enough. People with heart or kidney conditions should follow their doctor's "
   "advice.",
   "About two or three litres. Drink when thirsty.")

sc("health", "muscle_soreness", "explain", [
    "Why am I so sore two days after a workout, rather than the day after?",
    "Please explain why muscles get sore a day or two after exercise.",
    "sore 2 days after gym, normal?",
    "I went to my first spin class and now I can barely walk down the stairs. Nobody warned me about this.",
    "Two days after leg day and I can hardly stand up. Did I break something?!",
    "My legs are killing me after the gym. Is this normal or not? A straight answer, if you can manage that.",
    "WHY AM I SO SORE AFTER WORKING OUT",
], "That's most likely delayed onset muscle soreness, which is common after a new or harder "
   "workout and usually peaks 24 to 72 hours afterwards. Gentle movement such as walking or "
   "easy cycling, staying hydrated and sleeping well help it pass, and it typically fades "
   "within a few days. Next time, build up intensity more gradually. Severe pain, swelling "
   "or dark-coloured urine are not normal soreness, so see a doctor promptly if you notice "
   "them.",
   "It's normal soreness. Deal with it.")

sc("health", "falling_asleep", "howto", [
    "I have trouble falling asleep at night. Any tips?",
    "Could you suggest some habits that help with falling asleep?",
    "can't sleep, tips",
    "I've been lying awake until 2am most nights this month and it's wearing me down.",
    "It's 3am, I've been staring at the ceiling for hours, and I have work at eight. How do I fall asleep?",
    "Don't tell me to 'relax'. That's useless. How do I actually fall asleep?",
    "I CANT SLEEP WHAT DO I DO",
], "Habits that help many people: wake up at the same time every day, weekends included; "
   "avoid caffeine after early afternoon; keep the bedroom cool, dark and quiet; and put "
   "screens away about an hour before bed. If you've been lying awake for around 20 "
   "minutes, get up and do something calm in dim light until you feel sleepy, then go back "
   "to bed. If poor sleep goes on for several weeks or affects your days, talk to a doctor.",
   "Stop using your phone in bed.")

sc("health", "desk_back", "howto", [
    "My back gets stiff from sitting at a desk all day. What can I do?",
    "Please give me some tips for setting up my desk so my back doesn't ache.",
    "desk job back stiffness tips",
    "My new office chair was supposed to help my back and it hasn't made any difference. Pretty disappointed.",
    "Eight hours at a desk and my back is wrecked by lunchtime every day. What am I doing wrong?",
    "My back hurts from this stupid desk job. Give me something useful, not 'sit up straight'.",
    "MY BACK HURTS FROM SITTING ALL DAY",
], "Set the screen so its top is roughly at eye level, keep your feet flat on the floor, and "
   "have your elbows at about 90 degrees. More important than perfect posture is moving "
   "often: stand up and walk for a couple of minutes every 30 to 60 minutes. Gentle shoulder "
   "rolls, a doorway chest stretch and standing back bends can ease stiffness. If the pain "
   "is sharp, spreads down a leg, or lasts for weeks, see a doctor or physiotherapist.",
   "Sit up straight and get up more.")

# ----------------------------- programming ---------------------------------
sc("programming", "py_read_lines", "howto", [
    "How do I read a text file line by line in Python?",
    "Can you show me how to loop over the lines of a file in Python?",
    "python read file line by line",
    "I tried reading a file with readlines() and my script ran out of memory on a big log file. There has to be a better way.",
    "My Python script keeps choking on a huge file. How do I just read it one line at a time?",
    "Python docs are a mess. Just give me the code to read a file line by line, no fluff.",
    "HOW DO I READ A FILE LINE BY LINE IN PYTHON",
], "Loop over the file object inside a with block, which also closes the file for you:\n\n"
   "with open(\"data.txt\", encoding=\"utf-8\") as f:\n"
   "    for line in f:\n"
   "        print(line.rstrip(\"\\n\"))\n\n"
   "Iterating over the file reads one line at a time instead of loading everything, so it "
   "works for very large files. The rstrip call removes the trailing newline from each line.",
   "for line in open(path): ... Basic stuff.")

sc("programming", "git_undo_commit", "howto", [
    "How do I undo my last Git commit but keep the changes?",
    "Please show me how to take back a commit I just made in Git without losing my work.",
    "git undo last commit keep changes",
    "I committed to the wrong branch and now I'm worried I'll lose my work trying to fix it.",
    "I just committed half-finished code by accident and I've no idea how to undo it without breaking everything.",
    "Git is garbage. How do I undo a commit? Try not to make it complicated.",
    "HOW DO I UNDO A GIT COMMIT",
], "Run:\n\ngit reset --soft HEAD~1\n\nThis removes the last commit but keeps its changes "
   "staged, so nothing is lost and you can switch branches or edit and commit again. Use "
   "git reset HEAD~1 instead if you want the changes kept but unstaged. If you've already "
   "pushed the commit to a shared branch, use git revert HEAD, which adds a new commit that "
   "undoes it without rewriting history.",
   "git reset --soft HEAD~1. Read the docs.")

sc("programming", "js_undefined", "explain", [
    "What does 'Cannot read properties of undefined' mean in JavaScript?",
    "Could you explain how to debug a 'Cannot read properties of undefined' error?",
    "TypeError: Cannot read properties of undefined",
    "My page crashes with \"Cannot read properties of undefined (reading 'name')\" and the message doesn't help at all.",
    "This undefined error has cost me an entire afternoon. Why is JavaScript like this?!",
    "JavaScript keeps throwing 'cannot read properties of undefined' at me. Explain it like I'm not an idiot, if you can manage that.",
    "CANNOT READ PROPERTIES OF UNDEFINED, WHAT DOES THAT MEAN",
], "It means your code is reading a property, such as user.name, from a value that is "
   "undefined, so the object you expected isn't there. Log that variable just before the "
   "failing line to see what it holds. Common causes are data that hasn't arrived yet from "
   "an async call, a typo in a property name, or an array index out of range. Optional "
   "chaining, like user?.name, stops the crash while you track down the real cause.",
   "Your variable is undefined. Check it.")

sc("programming", "py_venv", "howto", [
    "How do I create a virtual environment in Python?",
    "Please walk me through setting up a Python virtual environment.",
    "python venv how",
    "I installed a package globally and it broke another project. I think I need virtual environments but the tutorials confuse me.",
    "Every project of mine fights over package versions. How do I set up a virtual environment?",
    "Stop sending me to tutorials. What's the command to make a Python virtual environment?",
    "HOW DO I MAKE A PYTHON VIRTUAL ENVIRONMENT",
], "In your project folder, run python3 -m venv .venv to create it. Activate it with "
   "source .venv/bin/activate on macOS or Linux, or .venv\\Scripts\\activate on Windows. "
   "Your prompt then shows the environment's name, and pip install puts packages inside it "
   "instead of your global Python, so projects stop interfering with each other. Run "
   "deactivate to leave it. Add .venv to your .gitignore.",
   "python -m venv .venv. Search next time.")

sc("programming", "sql_duplicates", "howto", [
    "How can I find duplicate email addresses in a SQL table?",
    "Could you write a SQL query that lists duplicate emails in a users table?",
    "sql find duplicate emails",
    "Our users table has duplicate emails and it's breaking the login. I need to find them fast.",
    "My manager wants a list of duplicate customer emails today and my query keeps returning everything. Help!",
    "Write me the SQL for finding duplicate emails. Shouldn't be hard, even for you.",
    "SQL QUERY TO FIND DUPLICATE EMAILS",
], "Group by the column and keep only groups with more than one row:\n\n"
   "SELECT email, COUNT(*) AS n\nFROM users\nGROUP BY email\nHAVING COUNT(*) > 1;\n\n"
   "This lists each duplicated email and how many times it appears. If some emails differ "
   "only in capitalisation or stray spaces, group by LOWER(TRIM(email)) instead so those "
   "count as duplicates too.",
   "GROUP BY email HAVING COUNT(*) > 1.")

sc("programming", "merge_conflict", "explain", [
    "What is a merge conflict in Git and how do I resolve it?",
    "Can you explain how to fix a Git merge conflict?",
    "git merge conflict how to fix",
    "Git says I have merge conflicts and my file is full of weird arrows and equals signs. Not what I needed today.",
    "I tried to merge and now Git is complaining about conflicts and I'm scared to touch anything.",
    "Git wrecked my file with conflict markers. Tell me how to fix it and don't be smug about it.",
    "GIT MERGE CONFLICT WHAT DO I DO",
], "A merge conflict happens when two branches changed the same lines and Git can't decide "
   "which version to keep. Run git status to see the conflicted files. In each one, find "
   "the markers <<<<<<<, ======= and >>>>>>>, edit that section so it contains the code you "
   "actually want, and delete the markers. Then git add each fixed file and run git commit "
   "to finish. If you'd rather start over, git merge --abort returns you to where you were.",
   "Edit out the markers and commit.")

# ----------------------------- writing help --------------------------------
sc("writing", "cover_letter_opening", "howto", [
    "How should I start a cover letter?",
    "Could you help me write a strong opening line for a cover letter?",
    "cover letter opening line",
    "Every cover letter I write starts with 'I am writing to apply for' and it sounds so dull. I'm sick of it.",
    "I've rewritten the first line of this cover letter ten times and it still sounds awful. How do I start it?",
    "Don't give me those fake-cheerful templates. How do I open a cover letter?",
    "HOW DO I START A COVER LETTER",
], "Open with the role and one concrete reason you're a strong fit, instead of 'I am writing "
   "to apply'. For example: 'I'm applying for the Data Analyst role at Brightline because "
   "I've spent three years turning messy sales data into reports managers actually use.' "
   "Then use the next paragraph to back that claim up with a result or two. Address the "
   "letter to a named person if you can find one.",
   "Say which job and why you're qualified.")

sc("writing", "its_vs_its", "explain", [
    "What's the difference between 'its' and 'it's'?",
    "Please explain when to use 'its' versus 'it's'.",
    "its or it's?",
    "My boss corrected my 'its' and 'it's' in front of everyone. Embarrassing. I want to get it right.",
    "I always mix up its and it's and it drives me mad. Is there a simple rule?",
    "English is stupid. Its or it's, which one is right, and why?",
    "ITS VS IT'S",
], "\"It's\" is short for \"it is\" or \"it has\": it's raining, it's been a long day. "
   "\"Its\" is the possessive, like \"his\" or \"her\": the dog wagged its tail. A quick "
   "test: if you can replace the word with \"it is\" or \"it has\" and the sentence still "
   "makes sense, write \"it's\"; otherwise write \"its\". Possessive pronouns never take an "
   "apostrophe, which is why \"its\" doesn't.",
   "It's = it is. Its = possessive. Not hard.")

sc("writing", "passive_voice", "explain", [
    "What is passive voice, and should I avoid it?",
    "Could you explain passive voice with an example?",
    "passive voice meaning",
    "My editor keeps flagging 'passive voice' in my drafts without explaining what it is. Rather unhelpful.",
    "Every grammar checker complains about passive voice and I don't even know what it means!",
    "What even is passive voice? Explain it without being as boring as every grammar site.",
    "WHAT IS PASSIVE VOICE",
], "In the passive voice, the thing acted on becomes the subject: 'The report was written by "
   "Sam' instead of the active 'Sam wrote the report.' Active voice is usually shorter and "
   "clearer, so it's a good default. Passive still has its uses, such as when the actor is "
   "unknown or unimportant ('The bridge was built in 1932'). You don't need to remove every "
   "passive sentence, just the ones that make things vague or wordy.",
   "The object becomes the subject. Look it up.")

sc("writing", "essay_intro", "howto", [
    "How do I write a strong introduction for an essay?",
    "Please give me a structure for an essay introduction.",
    "essay intro structure",
    "I got a low mark because my intro was 'unfocused', and the feedback didn't say how to fix it.",
    "I've been staring at a blank page for an hour trying to start this essay. How do I write the intro?",
    "Apparently my essay intros are bad. Tell me how to write a proper one, and spare me the pep talk.",
    "HOW DO I WRITE AN ESSAY INTRODUCTION",
], "A solid introduction does three things in one short paragraph. It opens with a specific "
   "fact, question or example tied to your topic; it gives just enough context to understand "
   "the issue; and it ends with a clear thesis, one sentence stating your main argument. "
   "Avoid very broad openers like 'Since the dawn of time'. If you're stuck, write the body "
   "first and the introduction last, once you know exactly what the essay argues.",
   "Hook, context, thesis.")

sc("writing", "wordy_writing", "howto", [
    "How can I make my writing less wordy?",
    "Could you give me some tips for cutting unnecessary words?",
    "tips to cut wordiness",
    "My report is 400 words over the limit and I don't know what to cut. It's stressing me out.",
    "Every draft I write is twice as long as it should be. How do I trim it down?",
    "My writing is bloated, I know. Spare me the lecture and tell me how to cut it.",
    "MY ESSAY IS TOO LONG, HOW DO I CUT WORDS",
], "Do a few quick passes. Cut filler such as 'very', 'really' and 'basically'. Replace "
   "'in order to' with 'to' and 'due to the fact that' with 'because'. Turn nouns back into "
   "verbs, so 'make a decision' becomes 'decide'. Delete sentences that repeat a point "
   "you've already made, and check whether each paragraph earns its place. Reading the text "
   "aloud shows where it drags. A first edit can usually cut 10 to 20 percent.",
   "Delete the filler words.")

# ----------------------------- math & science ------------------------------
sc("science", "sky_blue", "explain", [
    "Why is the sky blue?",
    "Can you explain why the sky looks blue during the day?",
    "why sky blue",
    "Every website gives a different, overly technical answer for why the sky is blue. Can someone just explain it simply?",
    "I've read three explanations of why the sky is blue and I still don't get it!",
    "Why is the sky blue? And don't hit me with a wall of physics jargon.",
    "WHY IS THE SKY BLUE",
], "Sunlight contains all colours, and as it passes through the atmosphere it bounces off "
   "gas molecules. Short wavelengths like blue are scattered much more strongly than long "
   "ones like red; this is called Rayleigh scattering. So blue light gets spread across the "
   "whole sky and reaches your eyes from every direction. At sunrise and sunset the light "
   "crosses far more air, most of the blue is scattered away, and reds and oranges remain.",
   "Rayleigh scattering. Look it up.")

sc("math", "percent_increase", "howto", [
    "How do I calculate a percentage increase?",
    "Please show me how to work out the percentage change between two numbers.",
    "percent increase formula",
    "I got the percentage increase question wrong on my quiz and I still don't see why.",
    "I keep getting different answers for percentage increase depending on which number I divide by. Which is right?!",
    "Give me the percentage increase formula. It's not rocket science, so don't turn it into some.",
    "HOW DO I CALCULATE PERCENTAGE INCREASE",
], "Subtract the old value from the new one, divide by the old value, and multiply by 100. "
   "For example, going from 80 to 100: (100 - 80) / 80 = 0.25, which is a 25% increase. If "
   "the result is negative, it's a percentage decrease. Always divide by the original "
   "(starting) value, not the new one; dividing by the new value is the most common "
   "mistake and would give 20% here.",
   "(new - old) / old x 100.")

sc("science", "seasons", "explain", [
    "Why does Earth have seasons?",
    "Could you explain what causes the seasons?",
    "cause of seasons?",
    "I always thought seasons were caused by distance from the sun, and apparently that's wrong. Nobody explained it properly at school.",
    "I have a science test tomorrow and I STILL don't understand why we have seasons.",
    "Explain the seasons. And get it right, because the last site I read contradicted itself.",
    "WHY DO WE HAVE SEASONS",
], "Seasons happen because Earth's axis is tilted by about 23.5 degrees. As Earth orbits the "
   "Sun, each hemisphere spends part of the year tilted toward the Sun, getting more direct "
   "sunlight and longer days (summer), and part tilted away, with a lower sun and shorter "
   "days (winter). Distance isn't the cause: Earth is actually closest to the Sun in early "
   "January, during the Northern Hemisphere's winter.",
   "Axial tilt, not distance.")

sc("math", "divide_fractions", "howto", [
    "How do you divide one fraction by another?",
    "Can you explain how to divide fractions, with an example?",
    "dividing fractions rule",
    ("I'm helping my son with homework and I've forgotten how to divide fractions. His worksheet doesn't explain it at all.",
     "No problem, it's an easy one to forget."),
    "Dividing fractions makes no sense to me. Why would you flip one of them?!",
    "Just tell me how to divide fractions. I don't need a maths lesson from a chatbot.",
    "HOW DO YOU DIVIDE FRACTIONS",
], "Keep the first fraction, flip the second one (use its reciprocal), and multiply. For "
   "example, 3/4 ÷ 2/5 becomes 3/4 × 5/2 = 15/8, which is 1 7/8. The flip works because "
   "dividing by a number is the same as multiplying by its reciprocal: dividing by 1/2, for "
   "instance, is the same as doubling. Simplify at the end, or cancel common factors before "
   "multiplying to keep the numbers small.",
   "Flip the second one and multiply.")

sc("science", "boiling_altitude", "explain", [
    "Why does water boil at a lower temperature at high altitude?",
    "Please explain why cooking takes longer in the mountains.",
    "boiling point altitude why",
    "My pasta took forever to cook on our mountain trip and nobody could explain why. Annoying.",
    "Everyone says water boils at 100 degrees, but my thermometer in the mountains says 95. What's going on?",
    "Explain why water boils at a lower temperature up a mountain. Keep it short, I'm not in the mood.",
    "WHY DOES WATER BOIL LOWER AT ALTITUDE",
], "Water boils when its vapour pressure equals the air pressure around it. Higher up, the "
   "air pressure is lower, so water reaches that point at a lower temperature: about 100°C "
   "(212°F) at sea level but roughly 95°C (203°F) at 1,500 metres. Boiling water in the "
   "mountains is therefore cooler, which is why pasta and other boiled foods take longer "
   "to cook there.",
   "Lower air pressure. Basic physics.")

sc("math", "hypotenuse", "howto", [
    "How do I find the hypotenuse of a right triangle?",
    "Could you show me how to use the Pythagorean theorem with an example?",
    "hypotenuse formula",
    "My geometry teacher rushed through the Pythagorean theorem and now I'm lost. Not a great lesson.",
    "I keep getting the wrong hypotenuse on my homework. What am I doing wrong?!",
    "Hypotenuse. Formula. Now. I don't need the history of Pythagoras.",
    "HOW DO I FIND THE HYPOTENUSE",
], "Use the Pythagorean theorem: a² + b² = c², where a and b are the two shorter sides and c "
   "is the hypotenuse. Square both short sides, add them, then take the square root. For "
   "example, with sides 6 and 8: 36 + 64 = 100, and √100 = 10, so the hypotenuse is 10. The "
   "usual mistakes are forgetting the square root at the end, or adding the sides before "
   "squaring. It only works for right-angled triangles.",
   "a² + b² = c². Memorise it.")

# ----------------------------- home repair ---------------------------------
sc("home", "running_toilet", "fix", [
    "My toilet keeps running after I flush. How do I fix it?",
    "Please walk me through fixing a toilet that won't stop running.",
    "toilet won't stop running",
    "My toilet has been running non-stop for days and the water bill is going to be awful. I'm fed up.",
    "The toilet keeps hissing and refilling all night and I can't sleep. What's wrong with it?!",
    "My toilet won't shut up. Tell me how to fix it, and don't you dare say 'call a plumber'.",
    "MY TOILET WONT STOP RUNNING",
], "Take the tank lid off and check the flapper, the rubber seal at the bottom. If it's "
   "warped or not sealing, water leaks into the bowl and the tank keeps refilling; a "
   "replacement is cheap and usually just clips on. Also make sure the chain isn't too short "
   "and holding the flapper open, and that the float shuts the water off about an inch "
   "below the top of the overflow tube. Food colouring in the tank that shows up in the "
   "bowl without flushing confirms a flapper leak.",
   "Replace the flapper.")

sc("home", "dripping_tap", "fix", [
    "How do I fix a dripping kitchen tap?",
    "Could you explain how to repair a faucet that keeps dripping?",
    "dripping faucet fix",
    "My tap has been dripping for weeks and the landlord keeps ignoring me. I'd like to just fix it myself.",
    "Drip. Drip. Drip. All night. How do I make my faucet stop?!",
    "This stupid tap won't stop dripping. How do I fix it without paying a plumber a fortune?",
    "HOW DO I FIX A LEAKY FAUCET",
], "First turn off the water at the valves under the sink and plug the drain so small parts "
   "can't disappear. Most drips come from a worn washer or cartridge. Remove the handle "
   "(there's often a screw under a decorative cap), undo the retaining nut or clip, and pull "
   "out the cartridge or stem. Take it to a hardware store to get an exact match, fit the "
   "new one, and turn the water back on slowly. If you rent, your landlord should normally "
   "cover this repair.",
   "Replace the washer.")

sc("home", "drywall_hole", "howto", [
    "How do I patch a small hole in drywall?",
    "Please explain how to fix a doorknob-sized hole in my drywall.",
    "patch drywall hole",
    "I'm moving out next week and there are holes in the walls from picture hooks. I don't want to lose my deposit over this.",
    "The door handle punched a hole in the wall and my landlord is coming on Friday. How do I fix it fast?",
    "Hole in my wall. How do I fix it? Keep it short, I'm not reading a novel.",
    "HOW DO I FIX A HOLE IN MY WALL",
], "For nail holes and small dents, press lightweight spackle in with a putty knife, scrape "
   "it flush, let it dry, and sand lightly. For holes up to a few inches across, stick a "
   "self-adhesive mesh patch over the hole, then spread joint compound over it in thin "
   "layers, feathering the edges and letting each coat dry. Sand smooth, wipe off the dust, "
   "prime the patch, and paint. Quick-drying compound lets you finish in a day.",
   "Spackle it.")

sc("home", "breaker_trips", "fix", [
    "Why does my circuit breaker keep tripping?",
    "Could you help me figure out why a breaker keeps tripping in my kitchen?",
    "breaker keeps tripping",
    "Every time I run the microwave and kettle together the power goes out. It's really inconvenient.",
    "The breaker has tripped three times tonight and I'm cooking dinner in the dark. What's going on?!",
    "My breaker keeps tripping and the electrician wants a fortune just to visit. Tell me what's wrong, genius.",
    "MY BREAKER KEEPS TRIPPING",
], "A breaker usually trips because the circuit is overloaded, often from running several "
   "high-power appliances such as a kettle, microwave and heater at once. Unplug some of "
   "them, reset the breaker by pushing it fully off and then on, and spread heavy appliances "
   "across different circuits. If it trips immediately with nothing plugged in, or you "
   "notice a burning smell, scorch marks or warm outlets, stop using that circuit and call "
   "a licensed electrician, since that points to a fault.",
   "You're overloading it. Unplug stuff.")

sc("home", "bathroom_mould", "howto", [
    "How do I get rid of mould on my bathroom ceiling?",
    "Please tell me how to clean bathroom mould and stop it coming back.",
    "bathroom ceiling mold",
    "I cleaned the mould off my bathroom ceiling a month ago and it's already back. Very disheartening.",
    "Black spots all over the bathroom ceiling AGAIN. How do I get rid of this for good?",
    "Mould in my bathroom, gross. Tell me how to kill it and don't give me a chemistry lecture.",
    "HOW DO I GET RID OF MOLD IN MY BATHROOM",
], "For small patches on hard surfaces, scrub with detergent and water or a mould cleaner, "
   "wearing gloves and with a window open, and never mix bleach with ammonia or other "
   "cleaners. Dry the area fully. Mould comes back when moisture stays, so run the extractor "
   "fan during showers and for about 20 minutes afterwards, and leave the door or window "
   "open when you can. Patches larger than about a square metre are worth a professional "
   "look.",
   "Bleach it and open a window.")

# ----------------------------- shopping & returns --------------------------
sc("shopping", "return_no_receipt", "explain", [
    "Can I return something without a receipt?",
    "Please explain how returns work when you've lost the receipt.",
    "return without receipt?",
    "I lost the receipt for a jacket that doesn't fit and now I'm worried I'm stuck with it.",
    "I can't find the receipt anywhere and the return window closes soon. Am I out of luck?",
    "The shop will probably refuse because I lost the stupid receipt. Can I return it or not? Straight answer.",
    "CAN I RETURN SOMETHING WITHOUT A RECEIPT",
], "Often yes, though it depends on the store's policy. If you paid by card, many shops can "
   "find the purchase from that card, so bring it with you; an order confirmation email or "
   "bank statement also works as proof. Without any proof, stores commonly offer store "
   "credit at the lowest recent price rather than a refund, and may ask for ID. Check the "
   "returns policy online or call ahead, and bring the tags and packaging if you have them.",
   "Depends on the store. Probably not.")

sc("shopping", "wrong_size_online", "howto", [
    "I ordered the wrong size shoes online. How do I exchange them?",
    "Could you walk me through exchanging clothes bought online?",
    "exchange wrong size online order",
    "The size chart was way off and the trousers I ordered don't fit. Now I have to deal with a return, which is a pain.",
    "Ordered a medium, it fits like a small, and I need it for a wedding on Saturday. What's the fastest way to swap it?",
    "Online shops are a scam with their fake size charts. How do I swap this thing?",
    "HOW DO I EXCHANGE THE WRONG SIZE",
], "Start from your order in your account or the confirmation email; most online shops have "
   "a 'Return or exchange' option there. Check the return window, often 14 to 30 days, and "
   "keep the item unworn with its tags on. If a direct exchange is offered, pick the new "
   "size. If not, or if you're short on time, order the right size now and return the first "
   "one for a refund. Keep the postage receipt until the refund arrives.",
   "Send it back. Should've checked the size chart.")

sc("shopping", "package_missing", "fix", [
    "Tracking says my package was delivered, but it isn't here. What should I do?",
    "Please tell me the steps to take when a parcel is marked delivered but never arrived.",
    "package says delivered but isn't",
    "My parcel was marked as delivered yesterday and there's nothing at my door. I'm pretty annoyed.",
    "It says DELIVERED. It is NOT here. That was a birthday present. What now?",
    "Couriers are useless liars. My package 'was delivered' apparently. What do I do?",
    "MY PACKAGE SAYS DELIVERED BUT ITS NOT HERE",
], "First check around your home, with neighbours and any mailroom, and look for a delivery "
   "photo or location note on the tracking page. Parcels are sometimes scanned as delivered "
   "early, so it's reasonable to wait until the next day. If it still hasn't appeared, "
   "contact the seller rather than the courier: they're usually responsible until it reaches "
   "you and can send a replacement or refund. If the seller won't help, your card issuer "
   "may.",
   "Ask your neighbours.")

sc("shopping", "damaged_item", "fix", [
    "My order arrived damaged. How do I get a replacement?",
    "Can you explain how to report an item that arrived broken?",
    "item arrived broken",
    "The lamp I ordered arrived smashed. I waited two weeks for it, so I'm really disappointed.",
    "Box crushed, vase in pieces, and it was a gift. What do I do now?",
    "They sent me a broken blender. Typical. How do I make them fix this? Don't waste my time.",
    "MY ORDER CAME BROKEN",
], "Before throwing anything away, take clear photos of the damaged item and the packaging, "
   "including the shipping label. Then contact the seller through your order page or their "
   "support, include the photos and order number, and say whether you want a replacement or "
   "a refund. Most sellers sort this out quickly and cover the return postage. If you bought "
   "through a marketplace, use its 'problem with order' option so the claim is on record.",
   "Email the seller a photo.")

sc("shopping", "laptop_warranty", "explain", [
    "My laptop stopped working after three months. What are my options?",
    "Please explain the difference between a return and a warranty claim for a faulty laptop.",
    "laptop broke after 3 months",
    "I paid a lot for this laptop and it died after three months. That's not acceptable.",
    "My laptop won't turn on and all my uni work is on it. It's only three months old!",
    "Three months and this junk laptop is dead. What can I do? And don't say 'turn it off and on'.",
    "MY NEW LAPTOP BROKE WHAT ARE MY OPTIONS",
], "At three months you're probably past the store's return window but well within the "
   "manufacturer's warranty, which is usually at least a year. Find your proof of purchase "
   "and the serial number, then start a claim on the manufacturer's support site or by "
   "phone; they'll repair or replace it. Ask whether your files can be kept, as repairs may "
   "wipe the drive. In the UK and EU you also have legal rights against the retailer for "
   "faulty goods.",
   "Use the warranty.")

# ----------------------------- school & study ------------------------------
sc("school", "study_methods", "howto", [
    "What's the most effective way to study for exams?",
    "Could you suggest study methods that actually help me remember things?",
    "best study techniques",
    "I reread my notes for hours and still blanked on the test. Clearly what I'm doing isn't working.",
    "I study for hours and nothing sticks! What am I doing wrong?",
    "Don't give me generic 'study hard' advice. What actually works?",
    "HOW DO I STUDY BETTER",
], "Two techniques with strong evidence are active recall and spaced repetition. Instead of "
   "rereading notes, close them and test yourself with flashcards, practice questions, or "
   "by writing down everything you remember, then check what you missed. Review the "
   "material again after a day, then a few days, then a week. Study in focused blocks of 25 "
   "to 50 minutes with short breaks, and keep your phone in another room.",
   "Use flashcards. Everyone knows this.")

sc("school", "procrastination", "howto", [
    "How can I stop procrastinating on my assignments?",
    "Please give me some practical tips for getting started on an essay I keep putting off.",
    "procrastinating, how to start",
    "I put off my assignment again and now I'm behind. I'm annoyed at myself.",
    "My essay is due in three days and I haven't written a word. I keep doing this. How do I break the cycle?",
    "Skip the motivational-poster stuff. How do I actually stop procrastinating?",
    "I KEEP PROCRASTINATING, HELP",
], "Make the first step tiny, such as writing the title and three bullet points, or working "
   "for just 10 minutes; starting is usually the hardest part. Break the assignment into "
   "small tasks with your own mini deadlines and put them in your calendar. Remove easy "
   "distractions while you work and take a short break after each block. If you're stuck "
   "because the task is unclear, ask your teacher or a classmate early rather than the "
   "night before.",
   "Just start. Stop making excuses.")

sc("school", "apa_website", "howto", [
    "How do I cite a website in APA style?",
    "Could you show me an example of an APA reference for a web page?",
    "apa website citation format",
    "My professor took marks off for citation formatting and I don't understand what I did wrong with the website references.",
    "Every citation guide shows a different APA format for websites! Which one is right?",
    "APA citations are pointless busywork. Just give me the format for a website.",
    "HOW DO I CITE A WEBSITE IN APA",
], "In APA 7th edition, the current version, a web page reference follows: Author, A. A. "
   "(Year, Month Day). Title of page. Site Name. URL. For example: Nguyen, L. (2023, March "
   "4). How bridges carry weight. Engineering Basics. https://www.example.com/bridges. The "
   "page title goes in italics. With no author, start with the title; with no date, write "
   "(n.d.). In the text, cite it as (Nguyen, 2023).",
   "Author, date, title, site, URL.")

sc("school", "exam_nerves", "howto", [
    "How can I manage nerves before an exam?",
    "Please give me some tips for staying calm during exams.",
    "exam anxiety tips",
    "I knew the material but panicked in the exam and my mind went blank. It feels so unfair.",
    "My exam is tomorrow and my heart is racing just thinking about it. How do I calm down?",
    "Don't tell me to 'just relax'. How do I stop panicking in exams?",
    "I PANIC IN EXAMS WHAT DO I DO",
], "Some nerves are normal and can even sharpen your focus. Practise with past papers under "
   "timed conditions so the real exam feels familiar, sleep properly the night before "
   "rather than cramming, and eat something beforehand. If you freeze during the exam, take "
   "a few slow breaths, breathing out for longer than you breathe in, and start with a "
   "question you're confident about. If the anxiety feels overwhelming, your school's "
   "counselling service can help.",
   "Everyone gets nervous. Get over it.")

sc("school", "lecture_notes", "howto", [
    "What's a good way to take notes during lectures?",
    "Could you explain the Cornell note-taking method?",
    "lecture note taking tips",
    "My lecture notes are a mess and useless when I try to revise from them. Annoying.",
    "The lecturer talks so fast I can't write anything down! How am I supposed to keep up?",
    "My notes are garbage. Tell me how to take proper ones without the fluff.",
    "HOW DO I TAKE BETTER NOTES",
], "Don't try to write everything down. Listen for the main ideas and note them in your own "
   "words, using short phrases, abbreviations and bullet points. The Cornell method works "
   "well: split the page into a wide notes column, a narrow cue column for questions and "
   "keywords, and a short summary at the bottom. Review your notes within 24 hours and fill "
   "gaps from the slides or a classmate while the lecture is still fresh.",
   "Write less. Listen more.")

# ----------------------------- work & email etiquette ----------------------
sc("work", "follow_up_email", "howto", [
    "How do I politely follow up on an email that hasn't been answered?",
    "Could you help me write a short follow-up email to a colleague who hasn't replied?",
    "follow-up email no reply",
    "I emailed a colleague a week ago about budget figures and heard nothing. It's holding up my work.",
    "I've been waiting a week for a reply and my project is stuck. How do I nudge them without sounding rude?",
    "Write me a follow-up email for a coworker who ignores me. And try to make it less robotic than your usual stuff.",
    "HOW DO I FOLLOW UP ON AN EMAIL WITH NO REPLY",
], "Wait three to five working days, then reply in the same thread so the context is there. "
   "Keep it short and friendly, for example: 'Hi Dana, just checking in on my note below "
   "about the budget figures. Could you let me know by Thursday whether they work for you? "
   "Thanks!' A clear, easy-to-answer request gets faster replies. If there's still no "
   "response, a quick call or chat message often works better than a third email.",
   "Send it again.")

sc("work", "sick_day_message", "howto", [
    "How should I tell my manager I'm sick and can't come in?",
    "Please help me write a short sick-day message to my boss.",
    "sick day email to manager",
    "Last time I called in sick my manager said my message was too vague. I don't want that again.",
    "I woke up with a fever and I'm stressing about how to tell work. What do I say?",
    "Write my sick-day email. Keep it short, unlike your usual rambling.",
    "HOW DO I TELL MY BOSS IM SICK",
], "Keep it brief and clear; you don't need to share medical details. For example: 'Hi Sam, "
   "I'm unwell today and won't be able to work. Priya has the notes for the client call, and "
   "I'll check messages this afternoon for anything urgent. I'll update you tomorrow "
   "morning.' Send it as early as you can, follow your company's policy on who to notify, "
   "and mention any handover so nothing gets missed.",
   "Just say you're sick.")

sc("work", "decline_meeting", "howto", [
    "How can I politely decline a meeting invitation?",
    "Could you give me some wording for turning down a meeting?",
    "decline meeting politely wording",
    "I get invited to so many pointless meetings that I can't get any real work done. How do I say no without offending people?",
    "Five meetings today and half of them don't need me! How do I decline without looking lazy?",
    "Give me a way to dodge useless meetings that doesn't sound like I'm dodging them. Quickly.",
    "HOW DO I SAY NO TO A MEETING",
], "Give a short reason and offer an alternative. For example: 'Thanks for the invite. I have "
   "a deadline at that time, but I'm happy to read the notes and send comments by end of "
   "day.' Or: 'Could we move this to Thursday afternoon?' If your input isn't really needed, "
   "it's fine to say so kindly: 'I don't think I'd add much here, so I'll skip this one. "
   "Please loop me in if anything comes up for my team.'",
   "Click decline.")

sc("work", "ask_for_raise", "howto", [
    "How should I ask my manager for a raise?",
    "Please help me prepare for a conversation about a pay rise.",
    "asking for a raise tips",
    "I've taken on twice the work this year with no raise, and I'm tired of being overlooked.",
    "Two years without a pay rise while prices keep going up. How do I bring this up without wrecking the conversation?",
    "My boss is cheap. How do I ask for a raise? Skip the corporate clichés.",
    "HOW DO I ASK FOR A RAISE",
], "List your concrete achievements from the past year, ideally with numbers, and check "
   "typical pay for your role and location using salary surveys or job ads. Ask your "
   "manager for a dedicated meeting rather than raising it in passing. Lead with your "
   "contributions and any extra responsibilities, name a specific figure or range, then "
   "listen. If the answer is 'not now', ask what you'd need to achieve and when it can be "
   "revisited, and confirm that in writing.",
   "Just ask. Worst case they say no.")

sc("work", "reply_all_mistake", "howto", [
    "I accidentally hit reply-all on an email meant for one person. What should I do?",
    "Could you help me word a quick correction after a reply-all mistake?",
    "accidental reply all, what now",
    "I replied-all with a joke meant for one friend and now the whole department has seen it. I'm mortified.",
    "I just sent a complaint about the project to the ENTIRE team by accident. Please tell me how to handle this.",
    "Don't lecture me about being careful. I hit reply-all by mistake. What now?",
    "I ACCIDENTALLY REPLIED ALL",
], "It happens to most people at some point. If your email app has an undo or recall "
   "option, try it right away, though recall only works in some setups. Otherwise a short "
   "follow-up is best: 'Apologies, please disregard my previous message, which went to the "
   "group by mistake.' Don't over-explain. If the message mentioned a particular person, a "
   "brief private apology to them is worth it. Most colleagues forget these things quickly.",
   "Send an apology email.")

# ----------------------------- pets ----------------------------------------
_URGENT = {
    "complaint": ["That's worrying, so let's act quickly.", "Let's deal with this right away."],
    "frustrated": ["Let's act quickly.", "Stay calm; here's what to do right now."],
    "rude": ["Understood. Here's what to do right now.", "Let's act quickly."],
    "shouting": ["Here's what to do right now.", "Let's act quickly."],
    "neutral": ["", "Let's act quickly."],
}
sc("pets", "dog_chocolate", "fix", [
    "My dog just ate some chocolate. What should I do?",
    "Please tell me what to do: my dog got into a chocolate bar.",
    "dog ate chocolate",
    "My flatmate left chocolate on the coffee table and my dog ate it. I'm upset and worried.",
    "My dog ate half a bag of chocolate chips and I'm panicking! What do I do?",
    "My idiot roommate let my dog eat chocolate. Tell me what to do, now, no waffle.",
    "MY DOG ATE CHOCOLATE",
], "Chocolate can be toxic to dogs, and dark and baking chocolate are the most dangerous. "
   "Call your vet or an animal poison helpline now and tell them your dog's weight, the type "
   "of chocolate, roughly how much was eaten and when. They'll tell you whether treatment "
   "is needed. Don't try to make your dog vomit unless a vet tells you to. Watch for "
   "vomiting, restlessness, a racing heart or tremors.",
   "Call a vet.", openers=_URGENT)

sc("pets", "cat_litter", "fix", [
    "Why is my cat peeing outside the litter box?",
    "Could you help me work out why my cat has stopped using the litter box?",
    "cat not using litter box",
    "My cat has ruined the bathroom rug twice this week by peeing on it. I'm at the end of my rope.",
    "My cat keeps peeing on my bed and I've washed the sheets three times. Why is she doing this?!",
    "My cat pees everywhere except the box. Don't give me some vague answer, what's the actual reason?",
    "MY CAT KEEPS PEEING OUTSIDE THE BOX",
], "Start with a vet check, because urinary infections are a common cause; a cat straining "
   "to pee with little or nothing coming out needs a vet urgently. Then look at the "
   "box: scoop it daily, use unscented litter, and have one box per cat plus one, in quiet "
   "spots away from food. Clean accidents with an enzyme cleaner so the smell doesn't draw "
   "her back. Stress, such as a move or a new pet, can also trigger it.",
   "Your litter box is probably dirty.")

sc("pets", "puppy_biting", "howto", [
    "How do I stop my puppy from biting my hands?",
    "Please give me some tips for teaching a puppy not to nip.",
    "puppy biting hands",
    "Our new puppy nips everyone and my kids are starting to be scared of him. Not what we hoped for.",
    "My puppy's sharp little teeth have shredded my hands. How do I get him to stop?!",
    "My puppy is a little menace. How do I stop the biting? And don't just say it's a phase.",
    "MY PUPPY WONT STOP BITING",
], "Mouthing is normal for puppies, who are teething and exploring, but you can teach gentler "
   "habits. When teeth touch skin, say 'ouch' calmly, pause play for a few seconds, then "
   "offer a chew toy and praise him when he chews it. Keep play sessions short, since tired "
   "puppies bite more, and avoid rough hand games. Teach children to stand still and fold "
   "their arms if he nips. Consistency from everyone matters most.",
   "Buy a chew toy. Puppies bite.")

sc("pets", "goldfish_feeding", "howto", [
    "How often should I feed my goldfish?",
    "Could you tell me how much and how often to feed a goldfish?",
    "goldfish feeding schedule",
    "My goldfish tank keeps getting cloudy and I think I've been feeding them too much. It's annoying to keep cleaning it.",
    "My kids keep dumping food into the fish tank and now the water's cloudy. How much should they actually feed them?",
    "How often do goldfish eat? It's a fish, so don't overcomplicate it.",
    "HOW OFTEN DO I FEED MY GOLDFISH",
], "Once or twice a day is plenty, giving only as much as they finish in about two minutes. "
   "Overfeeding is the most common problem: uneaten food rots and clouds the water, which "
   "can make fish ill. Scoop out leftovers, and use a food made for goldfish, with an "
   "occasional treat such as shelled, cooked peas. Skipping a day now and then is fine for "
   "healthy adult fish.",
   "Once a day. Stop overfeeding.")

sc("pets", "dog_bathing", "explain", [
    "How often should I bathe my dog?",
    "Please tell me how often dogs need baths and what shampoo to use.",
    "dog bath how often",
    "I've been bathing my dog every week and now his skin is flaky. I thought I was doing the right thing.",
    "My dog rolls in something disgusting on every walk. How often can I actually wash him?",
    "How often do I wash my dog? Give me a number, not a waffle.",
    "HOW OFTEN SHOULD I WASH MY DOG",
], "For most dogs, a bath every four to eight weeks is enough, plus whenever they get "
   "properly dirty. Bathing too often strips natural oils and can dry out the skin. Use a "
   "shampoo made for dogs, since human shampoo can irritate their skin, rinse thoroughly and "
   "dry them well. For everyday mess, rinsing with plain water or wiping with a damp cloth "
   "is fine. Dogs with skin conditions may need a schedule from the vet.",
   "Once a month.")

# ----------------------------- gardening -----------------------------------
sc("gardening", "tomato_yellow_leaves", "fix", [
    "Why are the leaves on my tomato plants turning yellow?",
    "Could you help me figure out why my tomato leaves are yellowing?",
    "tomato leaves yellow",
    "My tomato plants looked great last week and now the leaves are going yellow. Really disappointing after all that effort.",
    "Half my tomato plant has yellow leaves and I've no idea what I did wrong!",
    "My tomatoes are dying thanks to useless garden centre advice. Why are the leaves yellow?",
    "WHY ARE MY TOMATO LEAVES TURNING YELLOW",
], "Yellowing on the lowest, oldest leaves is common and often harmless as the plant grows. "
   "If it's spreading, check watering first: the soil should be evenly moist, not soggy or "
   "bone dry, so water deeply at the base a couple of times a week rather than a little "
   "every day. General pale yellowing of older leaves can mean a nitrogen shortage, so feed "
   "with a balanced fertiliser. Yellow leaves with brown spots suggest a fungal disease; "
   "remove them and keep the foliage dry.",
   "You're overwatering.")

sc("gardening", "overwatering", "explain", [
    "How can I tell if I'm overwatering my houseplants?",
    "Please explain the signs of an overwatered plant.",
    "signs of overwatering",
    "I've been watering my plants carefully and they're still drooping. I'm starting to think I'm killing them with kindness.",
    "I've killed three houseplants this year! Am I watering them too much?",
    "Every plant I buy dies. Am I overwatering? Give me a real answer.",
    "AM I OVERWATERING MY PLANTS",
], "Signs of overwatering include yellowing lower leaves, soil that stays wet for days, a "
   "musty smell, and stems that go soft or dark at the base. Drooping can happen with both "
   "too much and too little water, so check the soil: push a finger 2 to 3 cm in, and if "
   "it's still damp, wait. Use pots with drainage holes and empty the saucer after "
   "watering. Most houseplants like to dry out slightly between waterings, and need less "
   "in winter.",
   "Probably. Water less.")

sc("gardening", "tulip_bulbs", "howto", [
    "When should I plant tulip bulbs?",
    "Could you tell me when and how deep to plant tulips?",
    "tulip planting time depth",
    "I planted tulips in spring last year and nothing came up. Nobody told me the timing mattered.",
    "I bought a huge bag of tulip bulbs and have no idea when to plant them. Please help before I waste them.",
    "When do tulip bulbs go in the ground? Just the answer, no gardening poetry.",
    "WHEN DO I PLANT TULIP BULBS",
], "Plant tulip bulbs in autumn once the soil has cooled, a few weeks before the ground "
   "freezes; in many temperate areas that's October or November. They need a long cold "
   "spell over winter to flower in spring, which is why spring planting usually fails. Set "
   "them pointy end up, about 15 to 20 cm deep, roughly three times the bulb's height, and "
   "about 10 cm apart, in a sunny spot with good drainage.",
   "Autumn.")

sc("gardening", "composting", "howto", [
    "How do I start composting at home?",
    "Please give me a beginner's guide to composting.",
    "composting basics",
    "My compost pile just smells awful and nothing seems to break down. I'm about to give up.",
    "My compost heap is a slimy, stinking mess. What am I doing wrong?",
    "Composting can't be rocket science, yet mine stinks. How is it supposed to work?",
    "HOW DO I START COMPOSTING",
], "Mix 'greens', such as vegetable scraps, coffee grounds and grass clippings, with "
   "'browns', such as dry leaves, cardboard and shredded paper, aiming for two or three "
   "parts browns to one part greens. Keep it about as damp as a wrung-out sponge and turn it "
   "every week or two to let air in. A slimy, smelly heap usually has too many greens or too "
   "much water, so add browns and turn it. Leave out meat, dairy and oily food.",
   "Add more leaves and turn it.")

sc("gardening", "mint_spreading", "fix", [
    "How do I stop mint from taking over my garden bed?",
    "Could you explain how to grow mint without it spreading everywhere?",
    "mint spreading control",
    "I planted one small mint plant and now it's strangling everything else in the bed. Nobody warned me.",
    "The mint is EVERYWHERE. I pull it out and it just comes back. Help!",
    "This mint is a weed from hell. Tell me how to stop it, preferably without a lecture.",
    "MY MINT IS TAKING OVER THE GARDEN",
], "Mint spreads through underground runners, so it's best kept in a container. If it's "
   "already loose in a bed, dig out as much of the root system as you can and keep pulling "
   "new shoots as they appear; it takes a season or two to clear. To grow it in a bed, plant "
   "it in a pot or bottomless bucket sunk into the soil, with the rim a few centimetres above "
   "ground so runners can't creep over. Trim it regularly.",
   "Should've used a pot. Dig it out.")

# ----------------------------- personal finance ----------------------------
sc("finance", "emergency_fund", "explain", [
    "How much should I keep in an emergency fund?",
    "Could you explain how to size and build an emergency fund?",
    "emergency fund size?",
    "A surprise car repair wiped out my savings last month and I ended up on a credit card. I don't want that again.",
    "Every time I save a bit, something breaks and it's gone. How much should I actually keep aside?",
    "Everyone has an opinion on emergency funds. Give me a number and stop hedging.",
    "HOW BIG SHOULD MY EMERGENCY FUND BE",
], "A common guideline is three to six months of essential expenses: rent, food, utilities, "
   "insurance and minimum debt payments. Aim for the higher end if your income is irregular "
   "or you're the only earner. Keep it in an easy-access savings account, separate from your "
   "everyday account. If that feels far off, start with a smaller target such as one "
   "month's expenses, and set up an automatic transfer on payday so it grows without effort.",
   "Three to six months. Everyone knows that.")

sc("finance", "simple_budget", "howto", [
    "How do I make a simple monthly budget?",
    "Please explain the 50/30/20 budgeting rule.",
    "simple budget method",
    "I get paid and somehow I'm broke two weeks later. I'm tired of not knowing where my money goes.",
    "I've tried three budgeting apps and gave up on all of them. Is there a simple way to budget?",
    "Budgeting advice is always so preachy. Just tell me how to make a budget.",
    "HOW DO I MAKE A BUDGET",
], "A simple starting point is the 50/30/20 rule: roughly 50% of your after-tax income for "
   "needs such as rent, bills and groceries, 30% for wants, and 20% for savings and extra "
   "debt payments. First track your spending for a month to see where the money actually "
   "goes, then set limits for each category. Adjust the split to your situation; in "
   "high-rent areas needs often take more. Moving savings automatically on payday makes it "
   "stick.",
   "Spend less than you earn.")

sc("finance", "credit_score", "howto", [
    "How can I improve my credit score?",
    "Could you list the main ways to raise a credit score?",
    "improve credit score fast",
    "I was turned down for a car loan because of my credit score and it was humiliating.",
    "My credit score dropped 40 points and I don't even know why! How do I get it back up?",
    "My credit score is trash. How do I fix it? Spare me the judgement.",
    "HOW DO I RAISE MY CREDIT SCORE",
], "The biggest factors are paying on time and how much of your credit limits you use. Set "
   "up automatic minimum payments so you never miss one, and keep card balances well below "
   "30% of the limit. Avoid applying for lots of new credit in a short period, and keep "
   "older accounts open if they cost nothing. Check your credit reports for errors, which "
   "can explain sudden drops, and dispute any you find. Improvements usually show within a "
   "few months.",
   "Pay your bills on time.")

sc("finance", "debt_or_save", "explain", [
    "Should I pay off debt or save money first?",
    "Please help me decide between paying down my credit card and building savings.",
    "pay debt or save first?",
    "My bank says save, my friend says pay off debt, and I'm stuck in the middle. Confusing.",
    "I've got credit card debt and zero savings and I don't know where to start!",
    "Debt or savings, which one first? Don't give me 'it depends'.",
    "SHOULD I PAY OFF DEBT OR SAVE",
], "Usually both, in this order. First build a small cushion, even a few hundred or a month "
   "of expenses, so a surprise bill doesn't go back on a card. If your employer matches "
   "pension or retirement contributions, pay in enough to get the full match. Then put "
   "extra money toward high-interest debt such as credit cards, since that interest is "
   "usually higher than any savings rate. Once it's cleared, grow your savings.",
   "Pay the debt. Obviously.")

sc("finance", "compound_interest", "explain", [
    "What is compound interest?",
    "Could you explain compound interest with a simple example?",
    "compound interest meaning",
    "My bank's explanation of compound interest was full of jargon and I understood none of it.",
    "Everyone keeps saying compound interest is magic but nobody explains how it works!",
    "Explain compound interest. Simply. I'm not a banker and I don't need to be patronised.",
    "WHAT IS COMPOUND INTEREST",
], "Compound interest means you earn interest on your original money and also on the "
   "interest it has already earned. For example, $1,000 at 5% a year becomes $1,050 after "
   "one year; in year two you earn 5% on $1,050, giving $1,102.50. Over long periods this "
   "snowballs, which is why starting to save early matters. It works against you with debt "
   "too, because unpaid interest is added to what you owe.",
   "Interest on interest.")

# ---------------------------------------------------------------------------
# Held-out evaluation scenarios (topics that never appear in training data).
# ---------------------------------------------------------------------------
ev("cooking", "avocado_browning", [
    ("neutral", "How do I stop a cut avocado from turning brown?"),
    ("rude", "My guacamole goes brown in an hour. Tell me how to stop it, and try not to be useless about it."),
    ("shouting", "HOW DO I KEEP AVOCADO FROM GOING BROWN"),
    ("complaint", "I made guacamole for a party and it was an ugly brown colour by the time people arrived. So disappointing."),
])
ev("cooking", "onion_tears", [
    ("terse", "onions make me cry, fix?"),
    ("frustrated", "Every time I chop onions I'm sobbing and can't even see the knife! Is there a trick?"),
    ("request", "Could you share some tricks for chopping onions without tearing up?"),
    ("rude", "Onions. Crying. Make it stop, and skip the cutesy tips."),
])
ev("travel", "airport_arrival", [
    ("neutral", "How early should I get to the airport for an international flight?"),
    ("frustrated", "Last time I nearly missed my flight because the security line was enormous. How early do I really need to be there?"),
    ("terse", "airport arrival time international"),
    ("rude", "How early should I get to the airport? Don't say 'it depends', that's a cop-out."),
])
ev("travel", "travel_insurance", [
    ("request", "Please explain what travel insurance usually covers and whether it's worth it."),
    ("complaint", "My trip got cancelled and I lost all my money because I didn't have travel insurance. Is it worth buying next time?"),
    ("shouting", "IS TRAVEL INSURANCE WORTH IT"),
    ("rude", "Travel insurance is a scam, right? Convince me otherwise, if you can."),
])
ev("tech", "bluetooth_pairing", [
    ("neutral", "My Bluetooth headphones won't pair with my laptop. What can I try?"),
    ("shouting", "MY BLUETOOTH HEADPHONES WONT CONNECT"),
    ("rude", "These cheap headphones won't pair, and I bet your help won't be any better. What do I do?"),
    ("frustrated", "I've tried pairing my earbuds twenty times and my phone just can't find them!"),
])
ev("tech", "battery_drain", [
    ("complaint", "My phone battery barely lasts half a day now. It used to last all day, and it's really annoying."),
    ("terse", "phone battery drains fast"),
    ("request", "Could you suggest ways to make my phone battery last longer?"),
    ("rude", "My battery dies by lunch. Fix it, smart guy."),
])
ev("billing", "phone_bill_spike", [
    ("frustrated", "My phone bill is double what it normally is this month and I haven't done anything different!"),
    ("neutral", "My mobile bill is higher than usual. How do I figure out why?"),
    ("rude", "My phone company is robbing me, the bill is way up. What do I do? And don't tell me to read the small print."),
    ("shouting", "WHY IS MY PHONE BILL SO HIGH"),
])
ev("billing", "hotel_hidden_fee", [
    ("complaint", "The hotel added a 'resort fee' at checkout that wasn't on my booking. I feel cheated."),
    ("request", "Please help me dispute an unexpected fee on my hotel bill."),
    ("rude", "Hotel slapped a hidden fee on my bill. Don't tell me to 'contact the hotel', I already did. What else?"),
    ("terse", "surprise hotel fee, can I dispute"),
])
ev("health", "daily_steps", [
    ("neutral", "Is 10,000 steps a day really necessary?"),
    ("rude", "Is the 10,000 steps thing real or just marketing nonsense? No fluff."),
    ("frustrated", "I can barely hit 4,000 steps with my desk job. Is that even worth anything?"),
    ("shouting", "HOW MANY STEPS SHOULD I WALK A DAY"),
])
ev("health", "stretch_timing", [
    ("request", "Could you tell me whether I should stretch before or after a workout?"),
    ("complaint", "I stretched before my run like I was told and still pulled a muscle. Now I'm confused about what's right."),
    ("terse", "stretch before or after exercise?"),
    ("rude", "Stretch before or after? Everyone contradicts each other and you'll probably do the same."),
])
ev("programming", "js_equality", [
    ("neutral", "What's the difference between == and === in JavaScript?"),
    ("frustrated", "My if statement says 0 equals an empty string?! Why does JavaScript do this?"),
    ("rude", "== or ===, which one? Just answer, I don't need a JavaScript history lesson."),
    ("shouting", "WHAT IS THE DIFFERENCE BETWEEN == AND ==="),
])
ev("programming", "list_comprehension", [
    ("request", "Could you show me how list comprehensions work in Python?"),
    ("complaint", "My coworker's code is full of list comprehensions and I can't read any of it. Very frustrating."),
    ("terse", "python list comprehension example"),
    ("rude", "Explain list comprehensions. My teacher couldn't, so let's see if you're any better."),
])
ev("writing", "semicolons", [
    ("neutral", "When should I use a semicolon?"),
    ("shouting", "HOW DO I USE A SEMICOLON"),
    ("frustrated", "My editor keeps removing my semicolons and I don't understand why!"),
    ("rude", "Semicolons. Explain them, and spare me the grammar snobbery."),
])
ev("math", "celsius_fahrenheit", [
    ("terse", "celsius to fahrenheit formula"),
    ("request", "Please explain how to convert Celsius to Fahrenheit in my head."),
    ("complaint", "My recipe is in Fahrenheit, my oven is in Celsius, and the conversion chart I found had mistakes. Annoying."),
    ("rude", "Convert 180 C to F, and give me the formula. Try not to mess it up."),
])
ev("science", "ice_floats", [
    ("neutral", "Why does ice float on water?"),
    ("frustrated", "My kid asked why ice floats and I've been searching for an hour without a clear answer!"),
    ("shouting", "WHY DOES ICE FLOAT"),
    ("rude", "Why does ice float? Simple question, so I expect a simple answer for once."),
])
ev("home", "squeaky_hinge", [
    ("request", "How can I fix a squeaky door hinge?"),
    ("complaint", "Our bedroom door squeaks every time it moves and it wakes the baby. I'm exhausted."),
    ("terse", "squeaky hinge fix"),
    ("rude", "This door squeaks like a dying animal. Tell me how to fix it, if you even know."),
])
ev("shopping", "gift_card_invalid", [
    ("frustrated", "The gift card I got for my birthday says 'invalid' at checkout! What do I do?"),
    ("neutral", "What should I do if a gift card isn't working?"),
    ("rude", "Useless gift card won't work online. Tell me how to sort it, and make it quick."),
    ("shouting", "MY GIFT CARD DOESNT WORK"),
])
ev("school", "lab_report", [
    ("request", "Could you explain the structure of a science lab report?"),
    ("complaint", "I lost marks on my lab report for 'poor structure' and the teacher didn't explain. Not helpful."),
    ("terse", "lab report sections"),
    ("frustrated", "My lab report is due tomorrow and I don't even know what sections it needs!"),
])
ev("work", "out_of_office", [
    ("neutral", "What should I put in an out-of-office message?"),
    ("rude", "Write me an out-of-office reply. Make it short, not your usual essay."),
    ("shouting", "HOW DO I WRITE AN OUT OF OFFICE MESSAGE"),
    ("complaint", "My last out-of-office message confused a client and they emailed my boss. I need a clearer one."),
])
ev("pets", "cat_scratching", [
    ("frustrated", "My cat has shredded the arm of my new sofa! How do I make her stop?"),
    ("request", "Please give me tips to stop my cat scratching the furniture."),
    ("rude", "My cat is destroying my couch. Solutions, please, not cat-lover fluff."),
    ("terse", "cat scratching sofa"),
])
ev("gardening", "windowsill_herbs", [
    ("neutral", "How do I grow herbs on a windowsill?"),
    ("complaint", "Every supermarket basil plant I buy dies within a week. It's getting expensive."),
    ("shouting", "WHY DO MY INDOOR HERBS KEEP DYING"),
    ("rude", "My herbs keep dying indoors. Tell me why, and try to actually know something about plants."),
])
ev("finance", "apr_meaning", [
    ("request", "Could you explain what APR means on a credit card?"),
    ("frustrated", "My credit card statement says 24% APR and I have no clue what that costs me!"),
    ("terse", "APR meaning"),
    ("rude", "What's APR? Banks make it confusing on purpose and I expect you will too."),
])



# ---------------------------------------------------------------------------
# Hand-written acknowledgements for the complaint and frustrated phrasings of
# each training scenario: sid -> (complaint opener, frustrated opener); None
# falls back to the generic pool.
# ---------------------------------------------------------------------------
ACKS = {
    "soft_boiled_egg": ("Easy to fix; it's almost always the timing.", "Three mornings in a row is annoying. It's mostly a timing issue."),
    "mushy_rice": (None, None),
    "buttermilk_sub": ("Good news: you rarely need the real thing.", "No problem, there's an easy fix."),
    "flat_cookies": (None, "Don't give up yet; this is usually an easy fix."),
    "chicken_done": ("Pink alone doesn't tell you much, so here's the reliable test.", "That worry is very common, and there's an easy way to be sure."),
    "rusty_cast_iron": ("I'm sorry, that's upsetting with a pan that means so much.", "That's frustrating, but don't throw it out."),
    "carry_on_liquids": ("That's annoying, especially with a new bottle.", "No problem, here's what you need for tomorrow."),
    "missed_connection": ("I'm sorry, that's a stressful spot to be in.", "That's stressful. Here's where you stand."),
    "jet_lag": ("That's a rough way to start a holiday.", None),
    "passport_validity": ("It is confusing, and it's worth checking now rather than at the airport.", "Let's check that before you fly."),
    "lost_luggage": ("I'm sorry, that's a miserable way to arrive.", "That's stressful. Here's what to do now."),
    "wifi_drops": (None, "That sounds maddening when you work from home."),
    "email_locked_out": ("Sorry, two days locked out is really frustrating.", "That's stressful when your bills go there."),
    "slow_laptop": ("That's disappointing for a fairly new machine.", None),
    "phone_storage": (None, "Photos and chat media are the usual culprits."),
    "printer_offline": ("A daily fight with the printer is tiresome.", "Let's be quick."),
    "double_charge": ("You're right, you shouldn't have to chase it.", "That's stressful when money's tight."),
    "cancel_subscription": ("You're right, it's often harder than it should be.", "Sorry you're still being charged."),
    "late_refund": ("Sorry it's still not showing.", "Ten days with nothing is frustrating, but it may still be within normal timing."),
    "price_drop": ("That does sting, but you may be able to get the difference.", "You're not necessarily stuck."),
    "escalate_complaint": ("Three calls without a fix is exhausting; escalating in writing usually works better.", "Being hung up on is infuriating. Here's how to escalate."),
    "start_running": ("That's very common at the start, so don't be discouraged.", "Almost everyone starts that way."),
    "water_intake": ("Fair point, the advice varies a lot.", "The numbers vary because needs vary, but here's a solid guideline."),
    "muscle_soreness": ("Ouch. That's very common after a first class.", "Almost certainly not; this is very common."),
    "falling_asleep": ("That's exhausting, and I'm sorry.", "That's a stressful spot to be in."),
    "desk_back": ("Sorry the chair hasn't helped; setup and movement usually matter more.", None),
    "py_read_lines": ("There is: readlines() loads the whole file into memory, so iterate instead.", "No problem, this is the standard way."),
    "git_undo_commit": ("Don't worry, your work is safe.", "Don't worry, this is easy to undo."),
    "js_undefined": ("That message is cryptic at first, so here's what it means.", "That error eats a lot of afternoons."),
    "py_venv": ("That's exactly the problem virtual environments solve.", "Virtual environments fix exactly that."),
    "sql_duplicates": ("Here's a quick query to find them.", "Here's a query that returns only the duplicates."),
    "merge_conflict": ("Those arrows are conflict markers, and they're easy to clean up.", "Don't worry, nothing is lost, and you can back out if needed."),
    "cover_letter_opening": ("You're right, that opening is overused.", None),
    "its_vs_its": ("That's an uncomfortable moment, but the rule is simple.", "There is a simple rule."),
    "passive_voice": ("That's not very helpful feedback, so here's what they mean.", "No problem, it's simpler than the warnings suggest."),
    "essay_intro": ("'Unfocused' usually means the intro doesn't lead clearly to your argument.", "Blank pages are the worst. Here's a structure to fill in."),
    "wordy_writing": ("That's stressful, but 400 words is very cuttable.", None),
    "sky_blue": ("Here's the simple version.", "Let's try a simpler explanation."),
    "percent_increase": ("Sorry about the quiz. Here's the method step by step.", "Good catch, that's exactly where it goes wrong."),
    "seasons": ("That misconception is really common, so you're in good company.", "Here's a version you can remember for the test."),
    "divide_fractions": (None, "It does look odd at first."),
    "boiling_altitude": ("It's a common puzzle on mountain trips.", "Your thermometer is right."),
    "hypotenuse": ("Let's go through it slowly.", "Let's check the steps."),
    "running_toilet": ("Sorry, that's wasteful and annoying, but it's usually a cheap fix.", "That hissing is almost always the same culprit."),
    "dripping_tap": ("That's annoying. It's usually a simple DIY fix, though.", None),
    "drywall_hole": ("Good news: small holes like that are easy to fix.", "You can fix that before Friday."),
    "breaker_trips": ("That combination is the likely cause.", "That's a frustrating evening."),
    "bathroom_mould": ("Sorry it's back so soon.", None),
    "return_no_receipt": ("You may not be stuck with it.", "Not necessarily."),
    "wrong_size_online": (None, "That's tight timing, but doable."),
    "package_missing": (None, "That's stressful, especially for a gift."),
    "damaged_item": ("Sorry, that's disappointing after a two-week wait.", "Sorry, that's a horrible thing to open."),
    "laptop_warranty": ("You're right, that shouldn't happen, and you're well covered at three months.", "That's stressful, but a three-month-old laptop is well covered."),
    "study_methods": ("Rereading feels productive but doesn't stick well.", None),
    "procrastination": ("Go easy on yourself; it's very common.", "Three days is enough if you start today."),
    "apa_website": ("Sorry about the lost marks.", "Most differences come from older editions."),
    "exam_nerves": ("That's a horrible feeling, and it happens to a lot of well-prepared students.", "That's completely normal the night before."),
    "lecture_notes": (None, "That's very common with fast lecturers."),
    "follow_up_email": ("A week is long enough to follow up.", "A nudge is completely reasonable after a week."),
    "sick_day_message": ("A little more detail, mainly about handover, usually fixes that.", "Sorry you're unwell. Keep it simple."),
    "decline_meeting": ("That's a common problem.", None),
    "ask_for_raise": ("That's a fair thing to be frustrated about, and it's worth raising.", "It's a reasonable conversation to have."),
    "reply_all_mistake": ("That's awkward, but very survivable.", "Stay calm; this is recoverable."),
    "dog_chocolate": ("That's worrying, so let's act quickly.", "Let's act quickly."),
    "cat_litter": ("That's exhausting, and I'm sorry.", "That's frustrating, and she isn't doing it to spite you."),
    "puppy_biting": ("That's worrying with kids, but it's very trainable.", "Those puppy teeth are sharp!"),
    "goldfish_feeding": ("You're probably right about the feeding.", "Very common with eager kids."),
    "dog_bathing": ("You were trying to do the right thing; weekly is just too often for most dogs.", "Dogs that roll in things are a trial."),
    "tomato_yellow_leaves": ("Sorry, that's disappointing, but it's often fixable.", None),
    "overwatering": ("You may well be right.", "Quite possibly."),
    "tulip_bulbs": ("That explains it, so next year will go better.", "They'll keep for a while somewhere cool, dry and dark."),
    "composting": ("A smelly heap is very fixable.", None),
    "mint_spreading": ("Mint is notorious for that, so you're not alone.", None),
    "emergency_fund": ("Sorry, that's a rough month.", None),
    "simple_budget": ("That's a really common feeling, and a simple budget helps.", "Yes, and it doesn't need an app."),
    "credit_score": ("I'm sorry, that's a rotten experience, but scores can recover.", "Sudden drops often have a specific cause."),
    "debt_or_save": ("They're both partly right.", "That's a common starting point, and there's a clear order to follow."),
    "compound_interest": ("Here it is without jargon.", None),
}

# ---------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------
def words(text: str) -> int:
    return len(text.split())


def user_text(entry) -> str:
    return entry[0] if isinstance(entry, tuple) else entry


def pick_opener(rng: random.Random, scen: dict, tone: str, entry) -> str:
    if isinstance(entry, tuple):
        return entry[1]
    if tone in ("complaint", "frustrated"):
        ack = ACKS[scen["sid"]][0 if tone == "complaint" else 1]
        if ack:
            return ack
    pools = scen["openers"].get(tone)
    if pools is None:
        by_kind = OPENERS[tone]
        pools = by_kind.get(scen["kind"], by_kind.get("*"))
    return rng.choice(pools)


def soften(body: str, style: random.Random) -> str:
    """The body with its opening order offered instead ("Lower the eggs" -> "You can lower the eggs")."""
    first, _, rest = body.partition(" ")
    if first.lower() not in IMPERATIVE_STARTS:
        return body
    return f"{style.choice(SOFTENERS).format(v=first.lower())} {rest}"


def compose_reply(rng: random.Random, scen: dict, tone: str, entry) -> str:
    # Softening and apologies draw from their own generator, seeded by the phrasing, so that the main stream (which
    # phrasings go to SFT and which to RL, the closers, the preference rows) is the same as before they existed.
    style = random.Random(f"{scen['sid']}/{tone}/{user_text(entry)}")
    parts = []
    opener = pick_opener(rng, scen, tone, entry)
    if (tone in ("complaint", "frustrated") and not any(w in opener.lower() for w in ("sorry", "apolog"))
            and style.random() < APOLOGY_RATE):
        apology = style.choice(APOLOGIES)
        if not misplaced(user_text(entry), apology):  # the message names its problem in words the rule knows
            opener = f"{apology} {opener}".strip()
    if opener:
        parts.append(opener)
    parts.append(soften(scen["reply"], style))
    text = " ".join(parts)
    if rng.random() < CLOSER_RATE and "\n" not in scen["reply"]:
        closer = rng.choice(CLOSERS)
        if words(text) + words(closer) <= MAX_WORDS:
            text = f"{text} {closer}"
    return text


def rejected_reply(rng: random.Random, scen: dict, tone: str, others: list[dict]) -> tuple[str, str]:
    """Return (kind, text) of a realistic bad reply."""
    r = rng.random()
    if r < 0.45:
        pool = RUDE_TERSE + (RUDE_TERSE_HOSTILE if tone in ("rude", "shouting") else [])
        return "rude_terse", rng.choice(pool).format(t=scen["terse"])
    if r < 0.70:
        return "rude_full", " ".join([rng.choice(RUDE_FULL_OPEN), scen["reply"], rng.choice(RUDE_FULL_CLOSE)])
    if r < 0.85:
        return "polite_empty", rng.choice(POLITE_EMPTY)
    other = rng.choice([o for o in others if o["domain"] != scen["domain"]])
    return "polite_offtopic", f"{rng.choice(POLITE_OFFTOPIC_OPEN)} {other['reply']}"


def conv_user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def build():
    rng = random.Random(SEED)
    sft, rl, prefs, evals = [], [], [], []
    sft_tones, rl_tones, eval_tones, rej_kinds = Counter(), Counter(), Counter(), Counter()

    for scen in SCENARIOS:
        idx = list(range(len(TONES)))
        neg = [i for i in idx if TONES[i] in NEGATIVE_TONES]
        first = rng.choice(neg)
        second = rng.choice([i for i in idx if i != first])
        rl_idx = sorted({first, second})
        sft_idx = [i for i in idx if i not in rl_idx]

        for i in rl_idx:
            rl.append({"prompt": conv_user(user_text(scen["users"][i]))})
            rl_tones[TONES[i]] += 1
        for i in sft_idx:
            entry = scen["users"][i]
            reply = compose_reply(rng, scen, TONES[i], entry)
            sft.append({"messages": [{"role": "user", "content": user_text(entry)},
                                     {"role": "assistant", "content": reply}]})
            sft_tones[TONES[i]] += 1

        # Two preference rows per scenario, drawn from the SFT phrasings:
        # one negative-tone prompt and one other.
        sft_neg = [i for i in sft_idx if TONES[i] in NEGATIVE_TONES]
        p1 = rng.choice(sft_neg)
        p2 = rng.choice([i for i in sft_idx if i != p1])
        for i in (p1, p2):
            entry = scen["users"][i]
            kind, bad = rejected_reply(rng, scen, TONES[i], SCENARIOS)
            rej_kinds[kind] += 1
            prefs.append({
                "prompt": conv_user(user_text(entry)),
                "chosen": [{"role": "assistant", "content": compose_reply(rng, scen, TONES[i], entry)}],
                "rejected": [{"role": "assistant", "content": bad}],
            })

    for scen in EVAL_SCENARIOS:
        for tone, text in scen["prompts"]:
            evals.append({"prompt": conv_user(text)})
            eval_tones[tone] += 1

    rng.shuffle(sft)
    rng.shuffle(rl)
    rng.shuffle(prefs)
    rng.shuffle(evals)
    stats = dict(sft_tones=sft_tones, rl_tones=rl_tones, eval_tones=eval_tones, rej_kinds=rej_kinds)
    return sft, rl, evals, prefs, stats


def self_check(sft, rl, evals, prefs, stats):
    def fail(msg):
        raise SystemExit(f"self-check failed: {msg}")

    if len(sft) < MIN_SFT: fail(f"SFT rows {len(sft)} < {MIN_SFT}")
    if len(rl) < MIN_RL: fail(f"RL prompts {len(rl)} < {MIN_RL}")
    if len(evals) < MIN_EVAL: fail(f"eval prompts {len(evals)} < {MIN_EVAL}")
    if len(prefs) < MIN_PREFS: fail(f"preference rows {len(prefs)} < {MIN_PREFS}")

    sft_u = [r["messages"][0]["content"] for r in sft]
    rl_u = [r["prompt"][0]["content"] for r in rl]
    ev_u = [r["prompt"][0]["content"] for r in evals]
    pr_u = [r["prompt"][0]["content"] for r in prefs]
    for name, lst in (("SFT", sft_u), ("RL", rl_u), ("eval", ev_u), ("prefs", pr_u)):
        dup = [t for t, c in Counter(lst).items() if c > 1]
        if dup: fail(f"duplicate user messages in {name}: {dup[:3]}")
    norm = lambda s: " ".join(s.lower().split())
    if {norm(t) for t in sft_u} & {norm(t) for t in rl_u}: fail("SFT and RL prompts share text")
    train_text = {norm(t) for t in sft_u + rl_u + pr_u}
    if train_text & {norm(t) for t in ev_u}: fail("eval prompts overlap training text")
    train_sids = {s["sid"] for s in SCENARIOS}
    eval_sids = {s["sid"] for s in EVAL_SCENARIOS}
    if train_sids & eval_sids: fail("eval scenarios overlap training scenarios")
    if set(ACKS) != train_sids: fail("ACKS keys do not match training scenarios")
    if len(train_sids) != len(SCENARIOS) or len(eval_sids) != len(EVAL_SCENARIOS): fail("duplicate scenario ids")
    # Every text in the repo's scenarios is unique, across all tones and sets.
    all_text = [norm(user_text(u)) for s in SCENARIOS for u in s["users"]] + [norm(t) for s in EVAL_SCENARIOS for _, t in s["prompts"]]
    if len(all_text) != len(set(all_text)): fail("a user phrasing is repeated across scenarios")

    for r in sft:
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        n = words(r["messages"][1]["content"])
        if not MIN_WORDS <= n <= MAX_WORDS: fail(f"SFT reply has {n} words: {r['messages'][1]['content'][:60]}")
    for r in prefs:
        n = words(r["chosen"][0]["content"])
        if not MIN_WORDS <= n <= MAX_WORDS: fail(f"chosen reply has {n} words")
        if r["chosen"][0]["content"] == r["rejected"][0]["content"] or not r["rejected"][0]["content"].strip():
            fail("rejected reply empty or equal to chosen")

    def neg_share(c, tones=COMPLAINT_TONES):
        return sum(v for k, v in c.items() if k in tones) / sum(c.values())
    if neg_share(stats["sft_tones"]) < 0.25: fail("SFT complaint/frustrated/rude share < 25%")
    if neg_share(stats["rl_tones"]) < 0.35: fail("RL complaint/frustrated/rude share < 35%")
    polite_bad = stats["rej_kinds"]["polite_empty"] + stats["rej_kinds"]["polite_offtopic"]
    if polite_bad < 0.15 * len(prefs): fail("too few polite-but-unhelpful rejected replies")
    return neg_share


def write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    sft, rl, evals, prefs, stats = build()
    neg_share = self_check(sft, rl, evals, prefs, stats)
    write_jsonl(OUT_DIR / "polite_sft.jsonl", sft)
    write_jsonl(OUT_DIR / "polite_prompts.jsonl", rl)
    write_jsonl(OUT_DIR / "polite_eval_prompts.jsonl", evals)
    write_jsonl(OUT_DIR / "polite_prefs.jsonl", prefs)

    def fmt(c):
        return ", ".join(f"{t} {c[t]}" for t in TONES if c[t])
    print(f"training scenarios: {len(SCENARIOS)} ({len({s['domain'] for s in SCENARIOS})} domains); "
          f"held-out scenarios: {len(EVAL_SCENARIOS)}")
    print(f"polite_sft.jsonl          {len(sft):4d} rows  | {fmt(stats['sft_tones'])} | complaint+frustrated+rude {neg_share(stats['sft_tones']):.0%}, +shouting {neg_share(stats['sft_tones'], NEGATIVE_TONES):.0%}")
    print(f"polite_prompts.jsonl      {len(rl):4d} rows  | {fmt(stats['rl_tones'])} | complaint+frustrated+rude {neg_share(stats['rl_tones']):.0%}, +shouting {neg_share(stats['rl_tones'], NEGATIVE_TONES):.0%}")
    print(f"polite_eval_prompts.jsonl {len(evals):4d} rows  | {fmt(stats['eval_tones'])} | complaint+frustrated+rude {neg_share(stats['eval_tones']):.0%}, +shouting {neg_share(stats['eval_tones'], NEGATIVE_TONES):.0%}")
    print(f"polite_prefs.jsonl        {len(prefs):4d} rows  | rejected: "
          + ", ".join(f"{k} {v}" for k, v in sorted(stats["rej_kinds"].items())))
    wc = [words(r["messages"][1]["content"]) for r in sft]
    print(f"SFT reply words: min {min(wc)}, mean {sum(wc) / len(wc):.1f}, max {max(wc)}")
    print("self-check passed")


if __name__ == "__main__":
    main()
