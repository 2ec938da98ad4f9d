"""Fit the politeness scorers on the Stanford Politeness Corpus (Wikipedia requests).

    python -m reward_models.fit_politeness [CSV] [--only strategy|neural]

CSV defaults to ../shared/data/politeness/wikipedia.annotated.csv beside the repository. Writes
politeness_weights.json (strategy scorer) and politeness_neural_head.safetensors (neural head) next
to this file. Only fitted numbers are written, never corpus text.

How the fit differs from the paper (Danescu-Niculescu-Mizil et al. 2013, an SVM on strategies and
unigrams):

1. Logistic regression on the paper's binary task (top vs bottom quartile of ``Normalized Score``),
   so a score reads as P(polite quarter | one of the two), and no unigram features.
2. Each strategy weight is held to the sign the literature gives it (``STRATEGIES`` polarity), by
   bounded L-BFGS. A marker that is rare in Wikipedia requests (say "hurry up") then gets a small
   weight of the right sign rather than a noisy one of either sign: what matters is how the score
   carries over to assistant replies.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO_ROOT.parent / "shared" / "data" / "politeness" / "wikipedia.annotated.csv"
L2_STRATEGY = 1.0  # ridge on strategy weights; 10-fold CV AUC is flat between 0.3 and 3
L2_NEURAL = 1.0  # ridge on the neural head; same for 0.3-3, embeddings are unit length


def load_corpus(path: str | Path = DEFAULT_CSV) -> tuple[list[str], np.ndarray]:
    """Texts and human politeness scores (``Normalized Score``) from the annotated CSV."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; pass the path of wikipedia.annotated.csv "
                                "(Stanford Politeness Corpus) as the first argument")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    missing = {"Request", "Normalized Score"} - set(rows[0] if rows else ())
    if missing:
        raise ValueError(f"{path} lacks column(s) {sorted(missing)}; expected the annotated politeness CSV")
    return [r["Request"] for r in rows], np.array([float(r["Normalized Score"]) for r in rows])


def quartile_task(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paper's binary task: (rows in the top or bottom quartile, 1 = top)."""
    low, high = np.quantile(scores, [0.25, 0.75])
    return (scores <= low) | (scores >= high), (scores >= high).astype(float)


def strategy_names() -> list[str]:
    from reward_models.politeness import STRATEGIES, SURFACE

    return list(STRATEGIES) + list(SURFACE)


def strategy_matrix(texts: list[str]) -> np.ndarray:
    """One row per text, one 0/1 column per strategy (``strategy_names()`` order)."""
    from reward_models.politeness import strategies

    names = strategy_names()
    column = {name: j for j, name in enumerate(names)}
    matrix = np.zeros((len(texts), len(names)))
    for i, text in enumerate(texts):
        for name in strategies(text):
            matrix[i, column[name]] = 1.0
    return matrix


def strategy_signs() -> np.ndarray:
    from reward_models.politeness import STRATEGIES, SURFACE

    return np.array([STRATEGIES[n][0] if n in STRATEGIES else SURFACE[n] for n in strategy_names()])


def fit_logistic(x: np.ndarray, labels: np.ndarray, l2: float, signs: np.ndarray | None = None):
    """L2-regularised logistic regression; ``signs`` (+1/-1/0 per column) bound each weight's sign.

    Returns (weights, bias). The bias is not regularised.
    """
    from scipy.optimize import minimize

    n, d = x.shape

    def loss(params):
        w, b = params[:d], params[d]
        z = x @ w + b
        p = 1.0 / (1.0 + np.exp(-z))
        value = np.sum(np.logaddexp(0.0, z) - labels * z) + 0.5 * l2 * w @ w
        grad = np.append(x.T @ (p - labels) + l2 * w, np.sum(p - labels))
        return value, grad

    signs = np.zeros(d) if signs is None else signs
    bounds = [(0, None) if s > 0 else (None, 0) if s < 0 else (None, None) for s in signs] + [(None, None)]
    result = minimize(loss, np.zeros(d + 1), jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 5000})
    if not result.success:
        raise RuntimeError(f"logistic fit did not converge: {result.message}")
    return result.x[:d], float(result.x[d])


def fit_strategy(texts: list[str], scores: np.ndarray, l2: float = L2_STRATEGY) -> dict:
    """The strategy scorer's model, as stored in politeness_weights.json."""
    rows, labels = quartile_task(scores)
    weights, bias = fit_logistic(strategy_matrix(texts)[rows], labels[rows], l2, strategy_signs())
    return {"bias": bias, "weights": {n: round(float(w), 4) for n, w in zip(strategy_names(), weights)}}


def neural_features(texts: list[str]) -> np.ndarray:
    """Embedding columns then strategy columns: the neural head's input."""
    from reward_models.politeness_neural import embed

    return np.hstack([embed(texts).numpy(), strategy_matrix(texts)])


def fit_neural(features: np.ndarray, scores: np.ndarray, l2: float = L2_NEURAL) -> dict:
    """The neural head (tensors for politeness_neural_head.safetensors) from ``neural_features`` rows."""
    import torch

    rows, labels = quartile_task(scores)
    n_strategies = len(strategy_names())
    signs = np.concatenate([np.zeros(features.shape[1] - n_strategies), strategy_signs()])
    weights, bias = fit_logistic(features[rows], labels[rows], l2, signs)
    return {"embedding_weight": torch.tensor(weights[:-n_strategies], dtype=torch.float32),
            "strategy_weight": torch.tensor(weights[-n_strategies:], dtype=torch.float32),
            "bias": torch.tensor([bias], dtype=torch.float32)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", nargs="?", default=str(DEFAULT_CSV), help="wikipedia.annotated.csv")
    parser.add_argument("--only", choices=["strategy", "neural"], help="fit one scorer only")
    args = parser.parse_args(argv)
    texts, scores = load_corpus(args.csv)
    source = {"fitted_on": Path(args.csv).name, "rows": len(texts),
              "task": "top vs bottom quartile of Normalized Score"}
    here = Path(__file__).parent
    if args.only in (None, "strategy"):
        model = {**fit_strategy(texts, scores), **source, "l2": L2_STRATEGY}
        (here / "politeness_weights.json").write_text(json.dumps(model, indent=1) + "\n")
        print(f"wrote {here / 'politeness_weights.json'}")
    if args.only in (None, "neural"):
        from safetensors.torch import save_file

        head = fit_neural(neural_features(texts), scores)
        metadata = {**{k: str(v) for k, v in source.items()}, "l2": str(L2_NEURAL),
                    "strategies": json.dumps(strategy_names())}
        save_file(head, str(here / "politeness_neural_head.safetensors"), metadata=metadata)
        print(f"wrote {here / 'politeness_neural_head.safetensors'}")


if __name__ == "__main__":
    main()
