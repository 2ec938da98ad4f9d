"""TRL's reward contract as rlft reads it: the recipe keys of a reward, and what TRL passes to every reward.

Nothing here imports user code or a model; everything else in `rlft.rewards` builds on these names.
"""

from __future__ import annotations

from rlft.redaction import redact

DEFAULT_TIMEOUT = 300.0  # seconds one reward call may take before the run stops; generous: LLM judges are slow

REWARDS_KEY = (list, None, "reward functions / reward models with weights, e.g. [{fn: my_rewards.py:brevity}]")
REWARD_KEYS = {
    "fn": (str, None, "module.path:function or file.py:function (relative to the recipe)"),
    "model": (str, None, "an earlier reward_model stage's name, or a folder with a sequence classifier"),
    "url": (str, None, "an HTTP reward server's scoring endpoint, e.g. http://rm-host:8000/score (rlft serve-reward)"),
    "weight": (float, 1.0, "weight in the summed reward (TRL's reward_weights)"),
    "kwargs": (dict, {}, "keyword arguments bound to the function"),
    "name": (str, None, "name in logs; default: the function's name, rm_<stage> for a reward model, the URL's host "
                        "for a server"),
    "nan_as_none": (bool, False, "treat a NaN return as None (skip the sample) instead of stopping the run"),
    "timeout": (float, None, f"seconds one call may take (default {DEFAULT_TIMEOUT:g}); for url: seconds per HTTP "
                             "request (default 30)"),
    # url: only
    "max_batch": (int, 64, "url: completions per HTTP request"),
    "concurrency": (int, 4, "url: requests in flight at once"),
    "retries": (int, 3, "url: retries after a connection error or HTTP 5xx, with backoff (never after a 4xx)"),
    "headers": (dict, {}, "url: HTTP headers; write secrets as environment variables: "
                          "{Authorization: 'Bearer ${RM_TOKEN}'}"),
}
URL_ONLY = ("max_batch", "concurrency", "retries", "headers")
REMOTE_TIMEOUT = 30.0  # url: seconds per request when the recipe gives none

# What TRL 1.16 passes to a reward besides prompts, completions and the data columns: the one list rlft keeps.
# Source: trl/trainer/grpo_trainer.py and rloo_trainer.py, `_calculate_rewards` (completion_ids= in the call,
# reward_kwargs[...] for the rest); tests/test_rewards.py reads those sources and fails when TRL changes them.
TRL_REWARD_KWARGS = {
    "completion_ids": "token ids of each completion",
    "trainer_state": "the transformers TrainerState (shape rewards by training progress)",
    "log_extra": "log_extra(column, values): a column in the logged completions table",
    "log_metric": "log_metric(name, value): a scalar in the logs",
    "environments": "GRPOTrainer with environment_factory only: the environment of each completion",
}
ALWAYS_PASSED = ("completion_ids", "trainer_state", "log_extra", "log_metric")  # every batch, every trainer above


def entries(stage: dict) -> list[dict]:
    """The stage's reward entries with defaults filled in."""
    return [{k: v for k, (_, v, _) in REWARD_KEYS.items() if k not in URL_ONLY or raw.get("url")} | raw
            for raw in stage.get("rewards") or []]


def weights(stage: dict) -> list[float]:
    return [float(e["weight"]) for e in entries(stage)]


def described(stage: dict) -> list[dict]:
    """The stage's reward entries as the stage folder records them (rlft_stage.json): secrets redacted."""
    return redact(entries(stage))
