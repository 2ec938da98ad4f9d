"""Rewards: TRL's reward contract, loaded from a recipe, checked when the recipe is validated and on every call.

A reward is exactly what TRL's `GRPOTrainer` takes: a callable `(prompts, completions, **columns) -> list[float |
None]`, one value per completion (None = "does not apply to this sample"). Completions are strings, or message lists
for conversational data. TRL also passes the keyword arguments in `contract.TRL_REWARD_KWARGS` and every other column
of the prompt data, so a function that does not name them all needs `**kwargs`. `async def` rewards work too.

A stage lists its rewards:

    rewards:
      - fn: reward_models.politeness:politeness   # dotted path: module:function
        weight: 1.0
      - fn: my_rewards.py:brevity                 # a .py file, relative to the recipe
        weight: 0.2
        kwargs: {target_words: 60}               # bound to the function; the log name stays "brevity"
      - model: rm                                 # an earlier reward_model stage, or a sequence-classifier folder
      - url: http://127.0.0.1:8000/score          # a reward server (rlft serve-reward), called over HTTP
        timeout: 30                               # seconds per request

The package, by job:
  contract.py  the recipe keys of a reward and the one list of what TRL passes to rewards
  loading.py   importing user code without lasting changes to sys.path / sys.modules
  checks.py    recipe checks at `rlft validate` (signatures against the data's columns, names, weights, URLs)
  runtime.py   the checked, time-limited wrappers handed to the trainers; `call_all` for rlft's own calls
  model.py     reward models (`ModelReward`)
  remote.py    the HTTP client for reward servers (`rlft serve-reward` is the server: rlft/reward_server.py)
"""

from __future__ import annotations

from rlft.rewards.checks import check, check_init_from, data_columns, model_name, signature_problem
from rlft.rewards.contract import (ALWAYS_PASSED, DEFAULT_TIMEOUT, REWARD_KEYS, REWARDS_KEY, TRL_REWARD_KWARGS, described,
                                   entries, redact, weights)
from rlft.rewards.loading import load_function, load_module
from rlft.rewards.model import ModelReward
from rlft.rewards.remote import RemoteReward
from rlft.rewards.runtime import (CheckedReward, as_async, build, call_all, log_callback, recent_means, state,
                                  weighted)

__all__ = ["ALWAYS_PASSED", "DEFAULT_TIMEOUT", "REWARD_KEYS", "REWARDS_KEY", "TRL_REWARD_KWARGS", "CheckedReward",
           "ModelReward", "RemoteReward", "as_async", "build", "call_all", "check", "check_init_from",
           "data_columns", "described", "entries", "load_function", "load_module", "log_callback", "model_name",
           "recent_means", "redact", "signature_problem", "state", "weighted", "weights"]
