"""Your own rewards: the worked example for recipes/custom_reward.yaml.

A reward is a plain Python function with TRL's contract, so the same function works in rlft and in TRL's
GRPOTrainer unchanged:

    def my_reward(prompts, completions, **kwargs) -> list[float | None]

- `completions` holds one entry per sampled reply: a string, or for chat data a message list whose last message
  is the reply (`completion[-1]["content"]`). `prompts` is aligned with it (each prompt repeated k times).
- Return one number per completion, in order; None means "does not apply here" (skipped, not zero).
- `**kwargs` receives every other column of the prompt data (one value per completion) and what TRL adds
  (`completion_ids`, `trainer_state`, `log_extra`, `log_metric`). Name a column as a parameter to use it.
- Options you bind in the recipe (`kwargs: {target_words: 40}`) arrive as keyword arguments.

rlft checks the function when the recipe is validated (imports, accepts what it will receive) and every value it
returns during training (count, numbers, no NaN/inf). Try it before training:

    rlft rewards check recipes/custom_reward.yaml --n 8
"""

from __future__ import annotations

import re


def _reply(completion) -> str:
    return completion[-1]["content"] if isinstance(completion, list) else completion


def brevity(prompts, completions, target_words: int = 60, **kwargs) -> list[float]:
    """1.0 up to `target_words` words, then falling linearly to 0.0 at twice that.

    >>> brevity(["q", "q"], ["Sure, here it is.", "word " * 90], target_words=60)
    [1.0, 0.5]
    """
    out = []
    for completion in completions:
        n = len(_reply(completion).split())
        out.append(1.0 if n <= target_words else max(0.0, 2.0 - n / target_words))
    return out


def no_shouting(prompts, completions, **kwargs) -> list[float]:
    """Minus the share of ALL-CAPS words (of 3+ letters) in the reply: 0.0 for calm text, -1.0 for all shouting.

    >>> no_shouting(["q", "q"], [[{"role": "assistant", "content": "Happy to help."}],
    ...                          [{"role": "assistant", "content": "STOP SHOUTING, please and thanks"}]])
    [0.0, -0.4]
    """
    out = []
    for completion in completions:
        words = re.findall(r"[A-Za-z]{3,}", _reply(completion))
        out.append(-sum(w.isupper() for w in words) / len(words) if words else 0.0)
    return out
