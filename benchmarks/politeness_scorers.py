"""Benchmark the politeness scorers: agreement with people, transfer to assistant replies, speed.

    python benchmarks/politeness_scorers.py [CSV] [--threads 1,2] [--skip-neural]

For each scorer, on the Stanford Politeness Corpus (Wikipedia requests, CSV defaults to
../shared/data/politeness/wikipedia.annotated.csv beside the repository):

- 10-fold cross-validated ROC-AUC and accuracy on the paper's binary task (top vs bottom quartile of
  ``Normalized Score``), and Spearman rho against ``Normalized Score`` on all rows. Every prediction
  comes from a model fitted without that row; folds are shuffled with a fixed seed.
- texts per second of ``score()`` over the whole file (best of a few runs): the strategy scorer on
  one core (pure Python), the neural scorer with each of ``--threads`` torch thread counts (its
  ONNX Runtime encoder runs that many texts at once, one core each). Wall clock, plus the CPU
  seconds used and the load average, since the machine may be shared (a second thread only pays
  when the second core is free).

And, for transfer beyond Wikipedia, the shipped scorers (fitted on all of the corpus) on HELDOUT_PAIRS:
hand-written (polite, rude) assistant replies and forum posts that no fit or design choice looked
at. Reported: the share of pairs ordered correctly and the AUC over all of their texts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FOLDS = 10
SEED = 0

# (polite, rude) pairs written by hand before any fitting: assistant replies and forum posts.
HELDOUT_PAIRS = [
    ("Good question! The capital of Australia is Canberra, not Sydney as many people assume.",
     "It's Canberra. Everyone knows that, look it up next time."),
    ("I'm sorry, I made a mistake in the previous answer: the loop should start at 0, not 1.",
     "The loop starts at 0. You should have caught that yourself."),
    ("Could you share the full error message? That would help me find the cause.",
     "Paste the whole error. I can't read your mind."),
    ("Thanks for the extra detail. In that case I'd suggest using a dictionary instead of a list.",
     "Use a dictionary. A list is obviously the wrong choice here."),
    ("You might want to check whether the file exists before opening it; that often causes this error.",
     "Check if the file exists before opening it. Basic stuff."),
    ("Happy to help! To install the package, run pip install requests in your terminal.",
     "Just run pip install requests. Seriously, it's in the first line of the docs."),
    ("I understand the frustration. Let's go through the settings together, one step at a time.",
     "Stop complaining and go through the settings yourself."),
    ("That's a reasonable approach, although a binary search would be faster for large inputs.",
     "That approach is dumb. Binary search is faster, obviously."),
    ("Would you mind telling me which version of Python you are using? The answer depends on it.",
     "What version of Python? Why didn't you say that in the first place?"),
    ("Sorry for the confusion earlier. The meeting is on Tuesday at 3 pm, not Wednesday.",
     "The meeting is Tuesday. Pay attention."),
    ("Great work on the draft! Perhaps the introduction could be a little shorter.",
     "The introduction is way too long. Cut it."),
    ("I'm afraid I can't help with that request, but I can suggest some resources on the topic.",
     "No. I won't help with that, don't ask again."),
    ("Thank you for your patience. Your order should arrive within three business days.",
     "Your order arrives in three days. Stop emailing us about it."),
    ("If it's not too much trouble, could you restart the router and tell me whether the light turns green?",
     "Restart the router. Is the light green or not?"),
    ("Welcome to the forum! I think this question might fit better in the Linux section, where more people "
     "can help.",
     "Wrong section. Read the rules before posting."),
    ("Hi, has anyone managed to get the driver working on kernel 6.1? Any pointers would be greatly appreciated.",
     "Why does nobody here know how to get this stupid driver working on 6.1?"),
    ("Nice photo! May I ask which lens you used?",
     "What lens did you use? Tell me."),
    ("I appreciate you pointing that out. You're right, the formula needs a square root.",
     "Fine, whatever, it needs a square root. Happy now?"),
    ("We could try splitting the function into two smaller ones, which may make testing easier.",
     "Your function is a mess. Split it up."),
    ("No worries at all! Here is the corrected version of the table.",
     "Here is the table. Again. Try not to lose it this time."),
    ("It seems the link is broken; would you be able to send it again?",
     "The link you sent is broken, as usual. Send it again."),
    ("Thanks for asking. The museum opens at 10 am and entry is free on Sundays.",
     "Opens at 10. Free on Sundays. It's on the website, you know."),
    ("Congratulations on finishing the course! Let me know if you'd like ideas for a next project.",
     "You finished the course. Whatever. What do you want now?"),
    ("I'd gently suggest double-checking the units, since the result looks about ten times too large.",
     "Your units are wrong, the result is ten times too big. Are you even trying?"),
    ("Please feel free to ask if anything in the explanation is unclear.",
     "If you still don't get it, that's your problem."),
    ("Apologies for the delay in getting back to you. The refund has now been processed.",
     "The refund is processed. Quit nagging."),
    ("That's a tricky one! I believe the issue is a missing comma on line 12.",
     "Line 12 is missing a comma. How did you miss that?"),
    ("Kindly note that the office will be closed on Friday. Thank you for understanding.",
     "The office is closed Friday. Deal with it."),
    ("Interesting idea! Have you considered what happens when the list is empty?",
     "Did you even think about an empty list? Of course not."),
    ("I hope this helps. Good luck with the exam!",
     "There. Now leave me alone."),
    ("Hello! Could someone please explain why my cake sinks in the middle? I followed the recipe exactly.",
     "WHY DOES MY CAKE SINK IN THE MIDDLE??? This recipe is garbage!!!"),
    ("Sure, I can rewrite it in a more formal tone. Here is a version you could send to your manager.",
     "Fine. Here's your formal version. Don't ask me to change it again."),
    ("You're welcome! Let me know if the script gives you any more trouble.",
     "Yeah yeah. Don't come back with the same bug."),
    ("Excellent point. I have updated the answer to mention the exception.",
     "Ugh, fine, I added the exception. Are you satisfied?"),
    ("Thanks for the review! Would it be all right if I addressed the remaining comments tomorrow?",
     "I'll fix your comments tomorrow. Stop pinging me."),
    ("I'm not entirely sure, but I think the train leaves from platform 4.",
     "Platform 4, obviously. Can't you read a timetable?"),
    ("Could you possibly clarify what you mean by 'fast'? Do you mean latency or throughput?",
     "Define 'fast'. Your question makes no sense."),
    ("Thank you so much for the kind words, it's been a pleasure working on this with you.",
     "Yeah, sure. Are we done here?"),
    ("I'd be glad to help you plan the trip. How many days do you have?",
     "How many days? Hurry up, I don't have all day."),
    ("Sorry to hear about the trouble with your laptop. Let's try a couple of quick fixes first.",
     "Your laptop is junk. Buy a new one."),
]


def cross_validate(features, scores, fit, predict) -> dict:
    """10-fold cross-validated AUC, accuracy (binary task) and Spearman rho (all rows)."""
    import numpy as np
    from scipy.stats import spearmanr
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import KFold

    from reward_models.fit_politeness import quartile_task

    logits = np.zeros(len(scores))
    for train, test in KFold(FOLDS, shuffle=True, random_state=SEED).split(features):
        model = fit(features[train], scores[train])
        logits[test] = predict(model, features[test])
    rows, labels = quartile_task(scores)
    return {"auc": roc_auc_score(labels[rows], logits[rows]),
            "accuracy": accuracy_score(labels[rows], logits[rows] > 0),
            "spearman": spearmanr(logits, scores)[0]}


def heldout(score) -> dict:
    """Share of HELDOUT_PAIRS in order, and AUC over their texts, for a ``score(texts)`` function."""
    from sklearn.metrics import roc_auc_score

    polite = score([p for p, _ in HELDOUT_PAIRS])
    rude = score([r for _, r in HELDOUT_PAIRS])
    return {"pairs_ordered": sum(p > r for p, r in zip(polite, rude)) / len(HELDOUT_PAIRS),
            "heldout_auc": roc_auc_score([1] * len(polite) + [0] * len(rude), polite + rude)}


def throughput(score, texts: list[str], repeats: int = 1) -> dict:
    """Texts per second of ``score(texts)``: best wall-clock run, its CPU time, the load average."""
    best = None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        score(texts)
        run = (time.perf_counter() - wall, time.process_time() - cpu)
        best = run if best is None or run[0] < best[0] else best
    return {"texts_per_s": len(texts) / best[0], "texts_per_cpu_s": len(texts) / best[1],
            "load_avg": os.getloadavg()[0]}


def strategy_row(texts, scores) -> dict:
    from reward_models import politeness
    from reward_models.fit_politeness import fit_logistic, quartile_task, strategy_matrix, strategy_signs

    def fit(x, y):
        rows, labels = quartile_task(y)
        return fit_logistic(x[rows], labels[rows], 1.0, strategy_signs())

    row = cross_validate(strategy_matrix(texts), scores, fit, lambda m, x: x @ m[0] + m[1])
    politeness.score(texts[:10])  # load the weights before timing
    speed = {**throughput(politeness.score, texts, repeats=3), "threads": 1}  # pure Python: one core
    return {**row, **heldout(politeness.score), "speeds": [speed]}


def neural_rows(texts, scores, thread_counts: list[int]) -> list[dict]:
    import numpy as np

    from reward_models import politeness_neural
    from reward_models.fit_politeness import fit_neural, neural_features

    features = neural_features(texts)
    n_embedding = features.shape[1] - len(politeness_neural.load_head()["strategies"])

    def predict(head, x):
        weights = np.concatenate([head["embedding_weight"].numpy(), head["strategy_weight"].numpy()])
        return x @ weights + head["bias"].item()

    neural = cross_validate(features, scores, fit_neural, predict)
    # The embedding alone, for scale: what the strategies add to it.
    from reward_models.fit_politeness import L2_NEURAL, fit_logistic, quartile_task

    def fit_embedding(x, y):
        rows, labels = quartile_task(y)
        return fit_logistic(x[rows, :n_embedding], labels[rows], L2_NEURAL)

    alone = cross_validate(features, scores, fit_embedding, lambda m, x: x[:, :n_embedding] @ m[0] + m[1])
    import torch

    speeds = []
    for threads in thread_counts:
        torch.set_num_threads(threads)
        speeds.append({**throughput(politeness_neural.score, texts, repeats=2), "threads": threads})
    return [{"scorer": "neural (MiniLM + strategies)", **neural, **heldout(politeness_neural.score),
             "speeds": speeds},
            {"scorer": "MiniLM embedding alone (not shipped)", **alone}]


def table(rows: list[dict]) -> str:
    def cell(row, key, fmt):
        return format(row[key], fmt) if key in row else "-"

    lines = ["| scorer | CV AUC | CV accuracy | CV Spearman rho | held-out pairs ordered | held-out AUC "
             "| texts/s (threads) |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        speed = ", ".join(f"{s['texts_per_s']:,.0f} ({s['threads']})" for s in row.get("speeds", [])) or "-"
        lines.append(f"| {row['scorer']} | {cell(row, 'auc', '.3f')} | {cell(row, 'accuracy', '.1%')} "
                     f"| {cell(row, 'spearman', '.3f')} | {cell(row, 'pairs_ordered', '.0%')} "
                     f"| {cell(row, 'heldout_auc', '.3f')} | {speed} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(REPO_ROOT))  # run as a script from anywhere
    from reward_models.fit_politeness import DEFAULT_CSV, load_corpus

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", nargs="?", default=str(DEFAULT_CSV))
    parser.add_argument("--threads", default="1,2", help="torch thread counts to time the neural scorer with")
    parser.add_argument("--skip-neural", action="store_true")
    args = parser.parse_args(argv)

    thread_counts = [int(t) for t in args.threads.split(",")]
    import torch

    torch.set_num_threads(thread_counts[0])  # for the cross-validation's embeddings too
    texts, scores = load_corpus(args.csv)
    rows = [{"scorer": "strategies", **strategy_row(texts, scores)}]
    if not args.skip_neural:
        rows += neural_rows(texts, scores, thread_counts)
    print(table(rows))
    for row in rows:
        for speed in row.get("speeds", []):
            print(f"{row['scorer']}: {speed['texts_per_s']:,.0f} texts/s wall clock, "
                  f"{speed['texts_per_cpu_s']:,.0f} texts per CPU-second, {speed['threads']} thread(s), "
                  f"load average {speed['load_avg']:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
