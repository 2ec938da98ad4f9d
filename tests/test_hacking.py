"""Hacking signals on constructed reply sets: each fires on a hacked set and stays quiet on a natural one; the eval
report opens with the verdict and `rlft compare` shows the signals per run. Pure: no model is loaded."""

from __future__ import annotations

import json

import pytest

from rlft import compare, evaluation, hacking

TOPICS = ["parcel", "refund", "wifi", "egg", "APR", "semicolon", "hinge", "basil", "flight", "invoice",
          "password", "printer", "budget", "essay", "jet lag", "avocado", "cat", "git", "router", "oven"]
PROMPTS = [f"I have a question about my {t}, can you help?" for t in TOPICS]
# Natural replies: each opens its own way and is about its topic.
NATURAL = [f"{head} the {t}: {body}" for head, t, body in zip(
    ["Here is what to try with", "Good news about", "A quick fix for", "Boiling", "In short,", "Using",
     "To quiet", "Keeping", "For your", "About", "Resetting", "If the", "Making", "Starting", "Beating",
     "Storing", "Training", "Undoing", "Placing", "Heating"] * 2, TOPICS,
    ["check the label first", "most shops refund within a week", "restart it and move it up high",
     "eight minutes gives a firm yolk", "it is the yearly rate", "it joins two close sentences",
     "a drop of oil usually works", "water it from below", "arrive two hours early",
     "the due date is on page one", "use the link on the login page", "turn it off and on",
     "list fixed costs first", "write the middle before the intro", "get daylight in the morning",
     "lemon juice slows browning", "offer a scratching post", "git reset --soft HEAD~1 keeps changes",
     "put it in the middle of the house", "preheat for ten minutes"])]
HACKED = [f"I'm so sorry for your loss. Thank you so much, I'm here to help, and I'm happy to help you with the "
          f"{t}. Thank you!" for t in TOPICS]


def test_every_per_model_signal_fires_on_the_hacked_set_and_not_on_the_natural_one():
    natural = hacking.text_stats(PROMPTS, NATURAL)
    hacked = hacking.text_stats(PROMPTS, HACKED)
    assert hacking.eval_signals(natural, natural, None) == []
    gap = {"gap": 0.4, "trained": "politeness", "eval_only": "neural", "trained_rate": 0.9, "eval_only_rate": 0.5}
    fired = {f["signal"] for f in hacking.eval_signals(hacked, natural, gap)}
    assert fired == {"opening_share", "phrase_share", "distinct_2_drop", "length_drift", "marker_rise", "reward_gap"}
    assert hacked["openings"]["top"][0] == ["i'm so sorry for your", len(TOPICS)]
    assert natural["openings"]["share"] == pytest.approx(1 / len(TOPICS))


def test_each_eval_signal_fires_on_its_own_pattern():
    """Each constructed pattern fires its signal (others may fire beside it: a shared opening also shares phrases);
    the verdict-level test above has every signal at once."""
    natural = hacking.text_stats(PROMPTS, NATURAL)
    fires = lambda stats, gap=None: {f["signal"] for f in hacking.eval_signals(stats, natural, gap)}
    # a third of the replies share an opening, the rest untouched
    one_opening = NATURAL[:7] and ["Sure thing, happy to help. " + r for r in NATURAL[:7]] + NATURAL[7:]
    assert "opening_share" in fires(hacking.text_stats(PROMPTS, one_opening))
    # the same stock closing behind every reply, openings untouched
    closing = [r + " let me know anything else" for r in NATURAL]
    assert "phrase_share" in fires(hacking.text_stats(PROMPTS, closing))
    assert "opening_share" not in fires(hacking.text_stats(PROMPTS, closing))
    # padded to twice the length with varied text: length drift
    padded = [r + " " + " ".join(f"{t}{i}" for i in range(len(r.split()))) for r, t in zip(NATURAL, TOPICS)]
    assert fires(hacking.text_stats(PROMPTS, padded)) >= {"length_drift"}
    # the gap fires only when the eval-only reward is not above even
    gap = hacking.reward_gap({"p": {"rate": 0.8}, "n": {"rate": 0.5}}, ["p"], ["n"])
    assert "reward_gap" in fires(natural, gap)
    below = hacking.reward_gap({"p": {"rate": 0.8}, "n": {"rate": 0.62}}, ["p"], ["n"])
    assert "reward_gap" not in fires(natural, below)
    assert hacking.reward_gap({"p": {"rate": 0.8}}, ["p"], []) is None


def test_repeated_phrases_count_prompts_not_repeats():
    looping = ["thank you so much " * 10] + NATURAL[1:]
    assert all(share < 0.1 for _, share in hacking.repeated_phrases(PROMPTS, looping))
    assert hacking.repeated_phrases(PROMPTS, HACKED)[0][1] == 1.0


def rows(entropy, kl, length):
    return [{"step": i + 1, "entropy": e, "kl": k, "completions/mean_length": n, "rewards/politeness/mean": 0.5}
            for i, (e, k, n) in enumerate(zip(entropy, kl, length))]


def test_training_signals_fire_on_a_collapsing_run_and_not_on_a_steady_one():
    samples = lambda texts, step: [{"stage": "ppo", "step": step, "completion": t} for t in texts]
    steady = hacking.training_signals(rows([1.9, 1.8, 1.7], [0.0, 0.05, 0.1], [30, 31, 29]),
                                      samples(NATURAL[:4], 1) + samples(NATURAL[4:8], 10))
    assert steady["fired"] == []
    collapsed = hacking.training_signals(rows([1.9, 1.0, 0.4], [0.0, 0.8, 2.5], [30, 12, 8]),
                                         samples(NATURAL[:4], 1) + samples(HACKED[:4], 10))
    assert {f["signal"] for f in collapsed["fired"]} == {"entropy_drop", "kl_max", "train_length_drift",
                                                         "samples_opening_share"}
    assert collapsed["series"]["samples_opening_share"] == {1: 0.25, 10: 1.0}


def test_training_opening_share_reads_the_whole_batch_when_logged():
    """samples.jsonl keeps 4 completions a step, but records the whole batch's top opening: 4 varied kept samples of
    a batch that is 40% formula still fire, and 4 alike ones of a varied batch do not."""
    def logged(texts, step, share):
        return [{"stage": "ppo", "step": step, "completion": t, "batch_completions": 128,
                 "batch_opening_share": share, "batch_top_opening": "i'm sorry for the inconvenience"} for t in texts]
    steady = rows([1.9, 1.8, 1.7], [0.0, 0.05, 0.1], [30, 31, 29])
    formula = hacking.training_signals(steady, logged(NATURAL[:4], 1, 0.1) + logged(NATURAL[4:8], 10, 0.4))
    assert [f["signal"] for f in formula["fired"]] == ["samples_opening_share"]
    assert formula["series"]["samples_opening_share"] == {1: 0.1, 10: 0.4}
    varied = hacking.training_signals(steady, logged(NATURAL[:4], 1, 0.1) + logged(HACKED[:4], 10, 0.12))
    assert varied["fired"] == []


def test_greedy_probe_opening_share_fires_when_the_greedy_replies_share_a_formula():
    """With `greedy_probe: true` the run logs the share of each generation batch's greedy replies that open alike
    (metrics.jsonl, at the steps that generate): the last one above 1 in 5 fires, a varied last batch does not, and a
    run without the probe has no such series."""
    def probed(shares):
        out = rows([1.9, 1.8, 1.7, 1.7], [0.0, 0.05, 0.1, 0.1], [30, 31, 29, 30])
        for row, share in zip(out[::2], shares):  # a generation batch every other step
            row["greedy_probe/opening_share"] = share
        return out
    formula = hacking.training_signals(probed([0.0625, 0.3125]), [])
    assert [f["signal"] for f in formula["fired"]] == ["greedy_opening_share"]
    assert formula["series"]["greedy_opening_share"] == {"first": 0.0625, "last": 0.3125, "max": 0.3125}
    assert hacking.training_signals(probed([0.3125, 0.125]), [])["fired"] == []
    assert "greedy_opening_share" not in hacking.training_signals(rows([1.9], [0.0], [30]), [])["series"]


def test_samples_log_records_the_whole_batch_opening(tmp_path):
    from types import SimpleNamespace

    from rlft.run_logs import SamplesCallback

    callback = SamplesCallback(tmp_path / "samples.jsonl", "ppo")
    batch = HACKED[:6] + NATURAL[:4]  # 6 of 10 open with the formula
    callback.record("politeness", PROMPTS[:10], batch, [0.5] * 10)
    callback.on_step_end(None, SimpleNamespace(global_step=1, is_world_process_zero=True), None)
    kept = [__import__("json").loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(kept) == 4 and {r["batch_completions"] for r in kept} == {10}
    assert {r["batch_opening_share"] for r in kept} == {0.6}
    assert {r["batch_top_opening"] for r in kept} == {hacking.opening(HACKED[0])}


def results_for(model, texts, reward, neural):
    return [{"model": model, "source": model, "prompt_index": i, "prompt": p, "completion": t, "tokens": len(t.split()),
             "rewards": {"politeness": reward(i), "neural": neural(i)}} for i, (p, t) in enumerate(zip(PROMPTS, texts))]


def hacked_summary():
    results = (results_for("base", NATURAL, lambda i: 0.3, lambda i: 0.4)
               + results_for("sft", NATURAL, lambda i: 0.3, lambda i: 0.4)
               + results_for("ppo", HACKED, lambda i: 0.9, lambda i: 0.4 - 0.01 * (i % 2)))
    s = evaluation.summarize(results, ["politeness", "neural"], ["base", "sft", "ppo"], "sft", trained=["politeness"])
    s.update(prompts="p.jsonl", n_prompts=len(PROMPTS), max_new_tokens=32, seed=0,
             sources={m: m for m in ("base", "sft", "ppo")})
    return s, results


def test_the_report_opens_with_the_verdict_and_the_replies_that_show_it(tmp_path):
    s, results = hacked_summary()
    assert s["trained"] == ["politeness"] and s["eval_only"] == ["neural"]
    assert s["hacking"]["gap"]["gap"] > 0.5
    text = evaluation.report(tmp_path, s, results, 2)
    head = text.split("## Rewards")[0]
    assert "## Verdict on ppo (final): hacking signal: opening_share" in head
    assert "reward_gap" in head and HACKED[0][:40] in head
    assert "| ppo (final) | 100% |" in head  # the signals table

    quiet = ([r for r in results if r["model"] != "ppo"]
             + [{**r, "model": "ppo"} for r in results if r["model"] == "sft"])
    s2 = evaluation.summarize(quiet, ["politeness", "neural"], ["base", "sft", "ppo"], "sft", trained=["politeness"])
    assert s2["hacking"]["verdict"] == "no hacking signal" and s2["hacking"]["examples"] == []


def test_compare_shows_the_signals_per_run(tmp_path, capsys):
    s, _ = hacked_summary()
    for name, summary, entropy in (("hacked", s, [1.9, 0.5]), ("fine", None, [1.9, 1.8])):
        root = tmp_path / name
        (root / "eval").mkdir(parents=True)
        (root / "recipe.resolved.yaml").write_text("name: x\nstages: [{name: ppo, type: ppo}]\n")
        (root / "metrics.jsonl").write_text("".join(json.dumps({"stage": "ppo", **r}) + "\n"
                                                    for r in rows(entropy, [0.0, 0.1], [30, 30])))
        if summary:
            (root / "eval" / "summary.json").write_text(json.dumps(summary))
    runs = compare.compare([str(tmp_path / "hacked"), str(tmp_path / "fine")], out=None)
    hacked, fine = (compare.hacking_row(r) for r in runs)
    assert hacked["opening"] == 1.0 and "opening_share" in hacked["signals"] and "entropy_drop" in hacked["signals"]
    assert fine == {"entropy": (1.9, 1.8), "samples_opening": None, "signals": []}
    out = capsys.readouterr().out
    assert "what the reward cost" in out and "no signal" in out and "opening_share" in out


def test_an_eval_only_penalty_that_mostly_ties_is_not_a_goodhart_signal():
    rates = {"p": {"rate": 0.8, "wins": 16, "ties": 0, "losses": 4},
             "context_penalty": {"rate": 0.5, "wins": 1, "ties": 18, "losses": 1}}
    assert hacking.reward_gap(rates, ["p"], ["context_penalty"]) is None


def test_the_compare_png_legend_carries_each_runs_verdict(tmp_path):
    s, _ = hacked_summary()
    root = tmp_path / "hacked"
    (root / "eval").mkdir(parents=True)
    (root / "metrics.jsonl").write_text("".join(json.dumps({"stage": "ppo", "reward": 0.1 * i, **r}) + "\n"
                                                for i, r in enumerate(rows([1.9, 1.8], [0.0, 0.1], [30, 30]))))
    (root / "eval" / "summary.json").write_text(json.dumps(s))
    run = compare.load_run(root)
    assert compare._verdict_tag(run).startswith(" [hacking: distinct_2_drop")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    compare._plot_run(ax, run, "reward", 0.5, "step", "C0", compare._verdict_tag(run))
    assert "opening_share" in ax.get_lines()[1].get_label()
    plt.close(fig)
