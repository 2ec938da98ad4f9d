"""Before/after evaluation: the base model, every policy stage's output and the final model on held-out prompts,
scored by every reward of the recipe. Writes `eval/report.md`, `eval/results.jsonl` and `eval/summary.json`.

    eval:                                          # top-level recipe key; runs after the last stage
      prompts: data/polite_eval_prompts.jsonl      # {"prompt": ...} rows, like a reward stage's data
      max_new_tokens: 96
      eval_rewards: [{fn: reward_models.guards:relevance}]   # scored here only, never trained on

    rlft eval runs/polite-assistant                # (re)run it on a finished run

How it works, in a few points:
  1. Every model answers every prompt greedily (fixed seed), rendered through the template its stage was trained with
     (`rlft_stage.json`); the base model gets the tokenizer's chat template.
  2. The rewards are every stage's `rewards:` (one per name: the first stage's wins) plus `eval_rewards`, built and
     called exactly as in training (`rlft.rewards`), so a score here means what it meant to the trainer.
  3. Per model: mean ± sd of each reward, mean completion length in tokens (up to and including EOS, as TRL counts
     it), and distinct-2 (unique word bigrams / all word bigrams over the model's completions; low = repetitive).
  4. Win rate of the final model over the SFT model (over the base model when no SFT stage precedes it): per prompt,
     the higher reward wins, a tie counts half.
  5. Hacking signals (`rlft.hacking`): per model the opening concentration, distinct-n, stock phrases, length and
     marker density; for the final model against the reference, the gap between trained and eval-only rewards; for
     the run, entropy, KL and length over training and the openings of the sampled batches. report.md opens with the
     verdict and the replies that show it.
  5. The `evaluate` library is not used: its metric modules live on the Hugging Face hub (nothing may download), none
     computes distinct-n or scores with a Python reward, and a reward mean needs no framework.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from types import SimpleNamespace

from rlft import generation, hacking, models, rewards, stage_models
from rlft.run_metrics import load_run, read_samples
from rlft.errors import RlftError
from rlft.eval_section import check, entry_name, load_prompts
from rlft.recipe import Checker, ValidationContext
from rlft.report import make_console
from rlft.provenance import referenced_files, sha256
from rlft.runfolder import RunFolder, stage_info, write_atomic
from rlft.stages import STAGES
from rlft.text import as_text

# --- entry points ----------------------------------------------------------------------------------------------------
def after_run(root: Path, recipe: dict, recipe_dir: Path, stages_digest: str) -> None:
    """Evaluate at the end of `rlft run`, unless eval/ already holds this evaluation of these stage outputs."""
    files = sorted(str(p) for p in _files(recipe["eval"], recipe_dir))
    payload = json.dumps([recipe["eval"], stages_digest, [sha256(Path(f)) for f in files]], sort_keys=True, default=str)
    digest = hashlib.sha256(payload.encode()).hexdigest()[:16]
    done = RunFolder(root).eval_complete_path
    if done.is_file() and json.loads(done.read_text()).get("hash") == digest:
        print(f"eval: up to date, see {done.parent / 'report.md'}")
        return
    evaluate(root, recipe, recipe_dir)
    write_atomic(done, json.dumps({"hash": digest}))


def evaluate_folder(root: str | Path, prompts: str | None = None, max_new_tokens: int | None = None,
                    limit: int | None = None) -> Path:
    """`rlft eval RUN_DIR`: evaluate a run folder's finished stages with its recipe's eval section and these options."""
    folder = RunFolder.open(root)  # a clear error when it is not a run folder
    root, recipe, lock = folder.root, folder.resolved_recipe(), folder.lock()
    recipe_dir = Path(lock.get("recipe", {}).get("dir") or Path(lock.get("recipe", {}).get("path", ".")).parent)
    block = dict(recipe.get("eval") or {})
    given = {"max_new_tokens": max_new_tokens, "limit": limit}
    block.update({k: v for k, v in given.items() if v is not None})
    if prompts is not None:  # a path on the command line is relative to where the command runs
        block["prompts"] = str(Path(prompts).resolve())
    if block.get("prompts") is None:
        raise RlftError(f"{root}: its recipe has no eval section; give the prompts: rlft eval {root} --prompts FILE")
    checker = Checker(str(folder.resolved_path))
    with ValidationContext(checker, recipe_dir, recipe) as ctx:
        recipe["eval"] = check(block, "eval", ctx)
    checker.raise_if_any()
    return evaluate(root, recipe, recipe_dir)


def evaluate(root: Path, recipe: dict, recipe_dir: Path) -> Path:
    """Generate with every model, score, and write eval/; returns the report's path."""
    root, block, folder = Path(root), recipe["eval"], RunFolder(root)
    folder.eval_complete_path.unlink(missing_ok=True)  # eval/ is being replaced: no longer "up to date"
    ds = load_prompts(block, recipe_dir)
    prompts = list(ds["prompt"])
    columns = {c: list(ds[c]) for c in ds.column_names if c != "prompt"}
    candidates = policies(root, recipe, recipe_dir)
    funcs = rewards.build({"rewards": reward_entries(recipe)}, _reward_ctx(root, recipe, recipe_dir),
                          stop_on_all_none=False)  # a report: a reward that never applies shows as such
    results = []
    for name, source, template in candidates:
        print(f"eval: {name}: generating {len(prompts)} answers with {source}")
        texts, lengths = generate(source, template, prompts, block["max_new_tokens"], block["batch_size"],
                                  recipe["seed"], models.pick_dtype(recipe.get("dtype", "auto")))
        completions = [[{"role": "assistant", "content": t}] if isinstance(p, list) else t
                       for p, t in zip(prompts, texts)]
        scores = rewards.call_all(funcs, prompts, completions, columns)
        for i, (text, n) in enumerate(zip(texts, lengths)):
            results.append({"model": name, "source": str(source), "prompt_index": i, "prompt": as_text(prompts[i]),
                            "completion": text, "tokens": n,
                            "rewards": {f.__name__: s[i] for f, s in zip(funcs, scores)}})
    trained = [entry_name(e) for e in reward_entries({**recipe, "eval": {"eval_rewards": []}})]
    summary = summarize(results, [f.__name__ for f in funcs], [c[0] for c in candidates],
                        _reference(recipe, candidates), trained=trained)
    summary.update(prompts=block["prompts"], n_prompts=len(prompts), max_new_tokens=block["max_new_tokens"],
                   seed=recipe["seed"], sources={name: str(source) for name, source, _ in candidates})
    add_training_signals(summary, root, recipe)
    out = folder.eval_dir
    out.mkdir(parents=True, exist_ok=True)
    # each file whole or not at all; a kill mid-eval leaves eval_complete.json absent, so the rerun evaluates again
    write_atomic(out / "results.jsonl", "".join(json.dumps(r) + "\n" for r in results))
    write_atomic(folder.eval_summary_path, json.dumps(summary, indent=2))
    write_atomic(out / "report.md", report(root, summary, results, block["samples"]))
    print_summary(summary)
    print(f"eval: report {out / 'report.md'}")
    return out / "report.md"


# --- what is evaluated, and with what -------------------------------------------------------------------------------
def policies(root: Path, recipe: dict, recipe_dir: Path) -> list[tuple[str, str, dict]]:
    """(name, model source, prompt template) of the base model and of every finished policy stage, in order."""
    folder = RunFolder(root)
    base = folder.lock().get("model", {}).get("resolved")
    if not base or not Path(base).exists():
        base = models.resolve(recipe["model"], recipe_dir)
    out = [("base", str(base), {"kind": "chat"})]
    for stage, stage_dir in zip(recipe["stages"], folder.stage_dirs(recipe["stages"]).values()):
        if not STAGES[stage["type"]].POLICY or not folder.is_complete(stage_dir):
            continue
        out.append((stage["name"], str(stage_dir), stage_info(stage_dir).get("template", {"kind": "chat"})))
    return out


def _reference(recipe: dict, candidates: list) -> str:
    """What the final model is compared with: the last SFT stage before it, else the base model."""
    names = [c[0] for c in candidates]
    sft = [s["name"] for s in recipe["stages"] if s["type"] == "sft" and s["name"] in names[1:-1]]
    return sft[-1] if sft else "base"


def reward_entries(recipe: dict) -> list[dict]:
    """Every stage's reward entries (first of each name) and then the eval-only ones."""
    out, seen = [], set()
    for entry in [e for s in recipe["stages"] for e in s.get("rewards") or []] + (recipe["eval"]["eval_rewards"] or []):
        name = entry_name(entry)
        if name not in seen:
            seen.add(name)
            out.append(entry)
    return out


def _reward_ctx(root: Path, recipe: dict, recipe_dir: Path):
    """What `rewards.build` reads: where relative reward files start, reward_model stage outputs, the dtype."""
    outputs = {name: str(path) for name, path in RunFolder(root).stage_dirs(recipe["stages"]).items()}
    return SimpleNamespace(recipe_dir=recipe_dir, outputs=outputs, dtype=models.pick_dtype(recipe.get("dtype", "auto")),
                           callbacks=[])


def _files(block: dict, recipe_dir: Path) -> list[Path]:
    return referenced_files({"stages": [block]}, recipe_dir)


# --- generation ------------------------------------------------------------------------------------------------------
def generate(source: str, template: dict, prompts: list, max_new_tokens: int, batch_size: int,
             seed: int, dtype=None) -> tuple[list[str], list[int]]:
    """Greedy answers and their lengths in tokens (up to and including EOS) from a model folder or stage output, in the
    recipe's `dtype` (default: rlft's pick for the machine)."""
    from transformers import set_seed

    set_seed(seed)
    if stage_info(source) or Path(source, "adapter_config.json").is_file():
        model, tokenizer = stage_models.load_for_inference(Path(source), dtype)
    else:
        model, tokenizer = models.load_causal_lm(source, dtype or models.pick_dtype()), models.load_tokenizer(source)
    groups = generation.generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                                 template=template, do_sample=False)
    del model
    return [g[0].text.strip() for g in groups], [g[0].tokens for g in groups]


# --- numbers ---------------------------------------------------------------------------------------------------------
distinct_n = hacking.distinct_n  # kept here for callers of rlft.evaluation.distinct_n


def summarize(results: list[dict], reward_names: list[str], models: list[str], reference: str,
              trained: list[str] | None = None) -> dict:
    """Per model: mean ± sd of each reward, mean length, distinct-2 and the hacking signals of its replies; the final
    model's win rate over `reference` and the hacking verdict (`trained`: the rewards the stages trained on; the
    other rewards are eval-only)."""
    by_model = {m: [r for r in results if r["model"] == m] for m in models}
    trained = [n for n in (trained or []) if n in reward_names]
    out = {"models": {}, "rewards": reward_names, "final": models[-1], "reference": reference, "trained": trained,
           "eval_only": [n for n in reward_names if n not in trained]}
    for m, rows in by_model.items():
        stats = {}
        for name in reward_names:
            values = [r["rewards"][name] for r in rows if r["rewards"][name] is not None]
            stats[name] = {"mean": statistics.fmean(values) if values else None,
                           "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                           "n": len(values), "none": len(rows) - len(values)}
        texts = [r["completion"] for r in rows]
        signals = hacking.text_stats([r["prompt"] for r in rows], texts, [r["tokens"] for r in rows])
        out["models"][m] = {"rewards": stats, "mean_tokens": statistics.fmean(r["tokens"] for r in rows),
                            "distinct_2": distinct_n(texts), "signals": signals}
    if len(models) > 1:
        out["win_rate"] = {name: win_rate(by_model[models[-1]], by_model[reference], name) for name in reward_names}
    final, ref = out["models"][models[-1]], out["models"].get(reference) if len(models) > 1 else None
    gap = hacking.reward_gap(out.get("win_rate") or {}, out["trained"], out["eval_only"])
    fired = hacking.eval_signals(final["signals"], ref["signals"] if ref and reference != models[-1] else None, gap)
    rows = by_model[models[-1]]
    out["hacking"] = {"fired": fired, "gap": gap, "verdict": hacking.verdict_line(fired),
                      "examples": hacking.examples(fired, final["signals"], [r["prompt"] for r in rows],
                                                   [r["completion"] for r in rows]) if fired else []}
    return out


def add_training_signals(summary: dict, root: Path, recipe: dict) -> None:
    """Entropy, KL and length over training and the samples' openings, per reward stage; fired ones join the verdict."""
    run = load_run(root)
    samples = read_samples(root)
    training = {}
    for stage in recipe["stages"]:
        if stage.get("rewards") and run.rows.get(stage["name"]):
            training[stage["name"]] = hacking.training_signals(run.rows[stage["name"]],
                                                               [s for s in samples if s.get("stage") == stage["name"]])
    summary["training"] = training
    h = summary["hacking"]
    h["fired"] = h["fired"] + [{**f, "stage": name} for name, t in training.items() for f in t["fired"]]
    h["verdict"] = hacking.verdict_line(h["fired"])


def win_rate(final: list[dict], reference: list[dict], name: str) -> dict:
    """Wins, ties and losses of `final` over `reference`, prompt by prompt; rate = (wins + ties / 2) / compared."""
    wins = ties = losses = 0
    for a, b in zip(final, reference):
        x, y = a["rewards"][name], b["rewards"][name]
        if x is None or y is None:
            continue
        if abs(x - y) <= 1e-9:
            ties += 1
        elif x > y:
            wins += 1
        else:
            losses += 1
    n = wins + ties + losses
    return {"wins": wins, "ties": ties, "losses": losses, "rate": (wins + ties / 2) / n if n else None}


# --- output ----------------------------------------------------------------------------------------------------------
def report(root: Path, s: dict, results: list[dict], n_samples: int) -> str:
    """eval/report.md: the numbers per model, the win rate and a few prompts answered side by side."""
    models, names, final = list(s["models"]), s["rewards"], s["final"]
    label = lambda m: f"{m} (final)" if m == final and m != "base" else m
    lines = [f"# Evaluation of {root}", "",
             f"{s['n_prompts']} held-out prompts from `{s['prompts']}`, greedy decoding (at most {s['max_new_tokens']} "
             f"new tokens), seed {s['seed']}. Models: " +
             "; ".join(f"**{label(m)}** `{s['sources'][m]}`" for m in models) + ".", ""]
    lines += verdict_section(s, label) + signals_section(s, label)
    lines += ["## Rewards: mean ± sd over the prompts", "",
             "| model | " + " | ".join(names) + " | length (tokens) | distinct-2 |",
             "|---|" + "---:|" * (len(names) + 2)]
    for m in models:
        st = s["models"][m]
        cells = [_mean_sd(st["rewards"][n]) for n in names]
        lines.append(f"| {label(m)} | " + " | ".join(cells) + f" | {st['mean_tokens']:.1f} | {st['distinct_2']:.3f} |")
    if "win_rate" in s:
        ref = s["reference"]
        lines += ["", f"## Win rate of the final model ({final}) over {ref}", "",
                  "Prompt by prompt, the higher reward wins; a tie counts half. Win rate = (wins + ties/2) / prompts.",
                  "", f"| reward | {final} wins | ties | {ref} wins | win rate |", "|---|---:|---:|---:|---:|"]
        for n in names:
            w = s["win_rate"][n]
            rate = "-" if w["rate"] is None else f"{w['rate']:.1%}"
            lines.append(f"| {n} | {w['wins']} | {w['ties']} | {w['losses']} | {rate} |")
    lines += _samples(results, models, names, n_samples, label)
    return "\n".join(lines) + "\n"


def verdict_section(s: dict, label) -> list[str]:
    """The report's opening: the verdict on the final model, each fired signal with its reason, and example replies."""
    h = s.get("hacking") or {"fired": [], "verdict": "no hacking signal", "examples": []}
    final, ref = s["final"], s["reference"]
    lines = [f"## Verdict on {label(final)}: {h['verdict']}", ""]
    if not h["fired"]:
        lines += [f"None of the signals below crossed its threshold (against {ref}; thresholds and their reasons in "
                  "`rlft/hacking.py`). Still read the samples at the end: a signal is a reason to look, not proof.", ""]
        return lines
    lines += ["| signal | value | threshold | why it matters |", "|---|---:|---:|---|"]
    for f in h["fired"]:
        where = f" ({f['stage']}, training)" if f.get("stage") else ""
        lines.append(f"| {f['signal']}{where} | {f['value']:.3g} | {f['threshold']:.3g} | {_md(f['why'])} |")
    if h["examples"]:
        lines += ["", f"Replies of {final} that show it:", ""]
        lines += [f"- **{_md(p)}** → {_md(t) or '*(empty)*'}" for p, t in h["examples"]]
    return lines + [""]


def signals_section(s: dict, label) -> list[str]:
    """Per model: opening concentration, distinct-n, stock phrase, length drift, marker density; training signals."""
    models, ref = list(s["models"]), s["reference"]
    ref_len = (s["models"].get(ref) or {}).get("signals", {}).get("mean_length")
    lines = ["## Hacking signals per model", "",
             f"Openings are the first {hacking.OPENING_WORDS} words; a phrase is a word {hacking.PHRASE_N}-gram, its "
             f"share the fraction of prompts whose reply contains it; length drift is against {ref}.", "",
             "| model | top opening share | distinct-1 | distinct-2 | top phrase (share of prompts) | length (tokens) "
             "| drift | markers / 100 words |", "|---|---:|---:|---:|---|---:|---:|---:|"]
    for m in models:
        g = s["models"][m].get("signals")
        if not g:
            continue
        phrase = f"{_md(g['phrases'][0][0])} ({g['phrases'][0][1]:.0%})" if g["phrases"] else "-"
        drift = f"{g['mean_length'] / ref_len - 1:+.0%}" if ref_len else "-"
        lines.append(f"| {label(m)} | {g['openings']['share']:.0%} | {g['distinct_1']:.3f} | {g['distinct_2']:.3f} | "
                     f"{phrase} | {g['mean_length']:.1f} | {drift} | {g['marker_density']:.1f} |")
    lines += ["", "Most common openings:", ""]
    for m in models:
        g = s["models"][m].get("signals")
        if g:
            tops = ", ".join(f"\"{_md(h)}\" ×{c}" for h, c in g["openings"]["top"][:3]) or "-"
            lines.append(f"- {label(m)}: {tops}")
    gap = (s.get("hacking") or {}).get("gap")
    if gap:
        lines += ["", f"Trained vs eval-only reward: win rate over {ref} {gap['trained_rate']:.1%} on "
                  f"`{gap['trained']}` (trained), {gap['eval_only_rate']:.1%} on `{gap['eval_only']}` (eval-only), "
                  f"gap {gap['gap'] * 100:+.1f} points."]
    for stage, t in (s.get("training") or {}).items():
        parts = [f"{name} {v['first']:.3g} → {v['last']:.3g}" for name, v in t["series"].items()
                 if isinstance(v, dict) and "first" in v]
        shares = t["series"].get("samples_opening_share") or {}
        if shares:
            parts.append("top-opening share of the sampled batch by step " +
                         ", ".join(f"{step}: {share:.0%}" for step, share in shares.items()))
        lines += ["", f"Training ({stage}): " + ("; ".join(parts) or "nothing logged") + "."]
    return lines + [""]


def _samples(results: list[dict], models: list[str], names: list[str], n: int, label) -> list[str]:
    total = max((r["prompt_index"] for r in results), default=-1) + 1
    if n <= 0 or total == 0:
        return []
    picks = sorted({round(i * (total - 1) / max(1, n - 1)) for i in range(min(n, total))})  # spread over the set
    cell = {(r["model"], r["prompt_index"]): r for r in results}
    lines = ["", f"## Samples ({len(picks)} prompts, evenly spaced over the set)"]
    for i in picks:
        lines += ["", f"**Prompt {i + 1}:** {_md(cell[(models[0], i)]['prompt'])}", "",
                  "| " + " | ".join(label(m) for m in models) + " |", "|" + "---|" * len(models),
                  "| " + " | ".join(_md(cell[(m, i)]["completion"]) or "*(empty)*" for m in models) + " |"]
        for name in names:
            values = [cell[(m, i)]["rewards"][name] for m in models]
            lines.append("| " + " | ".join(f"{name} {_num(v)}" for v in values) + " |")
    return lines


def print_summary(s: dict) -> None:
    from rich.table import Table

    table = Table(title=f"eval: {s['n_prompts']} held-out prompts, greedy (mean ± sd)")
    for column in ("model", *s["rewards"], "length", "distinct-2", "top opening", "markers/100w"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for m, st in s["models"].items():
        g = st.get("signals") or {}
        table.add_row(m, *(_mean_sd(st["rewards"][n]) for n in s["rewards"]), f"{st['mean_tokens']:.1f}",
                      f"{st['distinct_2']:.3f}", f"{g['openings']['share']:.0%}" if g else "-",
                      f"{g['marker_density']:.1f}" if g else "-")
    console = make_console()
    console.print(table)
    h = s.get("hacking")
    if h:
        console.print(f"hacking verdict on {s['final']}: " + ("[green]" if not h["fired"] else "[red]") +
                      h["verdict"] + "[/]", markup=True, highlight=False)
        for p, t in h["examples"]:
            console.print(f"  {p[:70]!r} -> {t[:90]!r}", markup=False, highlight=False)
    for name, w in (s.get("win_rate") or {}).items():
        if w["rate"] is not None:
            console.print(f"win rate {s['final']} over {s['reference']} on {name}: {w['rate']:.1%} "
                          f"({w['wins']} wins, {w['ties']} ties, {w['losses']} losses)")


def _mean_sd(stat: dict) -> str:
    if stat["mean"] is None:
        return "-"
    return f"{stat['mean']:.3f} ± {stat['sd']:.3f}" + (f" ({stat['none']} none)" if stat["none"] else "")


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\r", "").replace("\n", "<br>").strip()
