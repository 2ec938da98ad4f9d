"""The greedy probe of the group-sampling stages (grpo, ppo, rloo): `greedy_probe: true` on a stage.

The eval, `rlft chat` and most users decode greedily, and at a sampling temperature the greedy reply itself is rarely
drawn. A policy can then carry a formula on its greedy path ("I'm sorry to hear that." in front of a fifth of the
replies) while its samples vary after the first words, so a batch-level guard that compares the replies across prompts
never sees it. With the probe, the first of each prompt's k completions is its greedy decode:

  1. Generation: in the same `generate` call as the samples, a logits processor leaves that row only its likeliest
     token at every step (`GreedyRows`); the other k - 1 rows are sampled as before.
  2. Rewards: every reward scores the greedy reply beside the samples, and gets a `greedy_probe` column (True on
     each prompt's greedy reply, as TRL hands a dataset column), so a batch-level guard can compare each reply with
     the other prompts' greedy replies: the politeness diversity guard takes reward from every reply that opens like
     many of them (the same opening ramp as across the batch). Within the samples alone a greedy formula hardly
     shows.
  3. Training: the greedy reply is trained on only when it scores below the mean of its group's samples, so a formula
     on the greedy path is pushed down where it shows; otherwise its rewards become NaN, which TRL treats as
     unscorable (out of the group baseline, advantage 0). A greedy reply is coherent text and usually beats the
     group's samples: trained on always, its positive advantages narrowed the replies (a flagship run opened 36 % of
     the held-out replies with "I'd be happy to help"); never trained on, the formula still formed on the greedy
     path (24 % and 31 % in two runs), where only the samples that shared it were charged.
  4. Logs: `greedy_probe/reward` (the greedy replies' summed weighted reward) and `greedy_probe/opening_share` (the
     share of the batch's greedy replies that open with its most common opening, as the eval measures it) show
     during training what the eval will see.

So each prompt trains on k - 1 samples (k - 2 where a process's share of the generation batch splits a group: each
part has a probe). It works with transformers' `generate` (not vLLM or continuous batching; the recipe check refuses
those).
"""

from __future__ import annotations

import functools
import json

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from rlft import compat
from rlft.text import as_text, openings

COLUMN = "greedy_probe"  # the column that marks the greedy replies for the rewards: True on each prompt's probe


def install(trainer) -> bool:
    """Install the probe on a built GRPO or RLOO trainer; False where TRL does not generate with `generate`."""
    args = trainer.args
    if getattr(args, "use_vllm", False) or getattr(args, "use_transformers_continuous_batching", False):
        return False
    model = trainer.accelerator.unwrap_model(trainer.model)
    plain_generate = model.generate

    @functools.wraps(plain_generate)
    def generate(*args, **kwargs):
        rows = first_of_groups(kwargs.get("input_ids", args[0] if args else None), kwargs.get("attention_mask"))
        config = kwargs.get("generation_config") or getattr(model, "generation_config", None)
        if rows is not None and getattr(config, "do_sample", False):
            kwargs["logits_processor"] = LogitsProcessorList([*(kwargs.get("logits_processor") or []),
                                                              GreedyRows(rows)])
        return plain_generate(*args, **kwargs)

    model.generate = generate
    compat.wrap_trl_rewards(trainer, functools.partial(_scoring_probes, trainer))
    return True


def _scoring_probes(trainer, plain_rewards):
    """The trainer's reward step, marking each group's first row for the rewards and leaving out of the loss the
    probes that score above their samples."""

    @functools.wraps(plain_rewards)
    def calculate_rewards(inputs, prompts, completions, completion_ids_list):
        keys = [json.dumps(p, sort_keys=True, default=str) for p in prompts]
        probes = [(i == 0 or k != keys[i - 1]) and i + 1 < len(keys) and k == keys[i + 1] for i, k in enumerate(keys)]
        for row, probe in zip(inputs, probes):
            row[COLUMN] = probe  # TRL hands every input key to the rewards as a column
        rewards = plain_rewards(inputs, prompts, completions, completion_ids_list)  # gathered over the processes
        local = torch.tensor(probes, device=rewards.device)
        greedy = trainer.accelerator.gather(local)
        if greedy.any():
            weights = trainer.reward_weights.to(rewards.device)
            total = (rewards * weights).nansum(1)
            compat.log_trl_metric(trainer, "greedy_probe/reward", total[greedy].mean().item())
            texts = [as_text(c) for c, g in zip(completions, local.tolist()) if g]
            compat.log_trl_metric(trainer, "greedy_probe/opening_share", openings(texts, top=1)["share"])
            rewards[greedy & ~below_samples(total, greedy)] = torch.nan
        return rewards

    return calculate_rewards


def below_samples(total: torch.Tensor, greedy: torch.Tensor) -> torch.Tensor:
    """Per row: whether its reward is below the mean reward of its group's samples. A group is a probe and the rows
    after it up to the next probe (the batch order TRL samples in), whatever its size (eval batches may use another
    k than training).

    >>> below_samples(torch.tensor([0.1, 0.5, 0.3, 0.9, 0.5, 0.3]), torch.tensor([1, 0, 0, 1, 0, 0]).bool()).tolist()
    [True, False, True, False, False, True]
    >>> below_samples(torch.tensor([0.1, 0.5, 0.9, 0.5, 0.3, 1.0]), torch.tensor([1, 0, 1, 0, 0, 0]).bool()).tolist()
    [True, False, False, True, True, False]
    """
    group = greedy.long().cumsum(0)
    counted = ~greedy & ~torch.isnan(total)
    sums = torch.zeros(int(group.max()) + 1, dtype=total.dtype, device=total.device)
    sums.index_add_(0, group, torch.where(counted, total, torch.zeros_like(total)))
    count = torch.zeros_like(sums).index_add_(0, group, counted.to(total.dtype))
    return total < (sums / count.clamp(min=1))[group]


def first_of_groups(input_ids, attention_mask=None) -> torch.Tensor | None:
    """Boolean per row: the first row of each run of two or more identical rows (a prompt's group); None if none.

    >>> first_of_groups(torch.tensor([[1, 2], [1, 2], [3, 4], [5, 6], [5, 6], [5, 6]])).tolist()
    [True, False, False, True, False, False]
    """
    if input_ids is None or input_ids.dim() != 2 or input_ids.size(0) < 2:
        return None
    rows = input_ids if attention_mask is None else torch.cat([input_ids, attention_mask.to(input_ids.dtype)], -1)
    same = (rows[1:] == rows[:-1]).all(-1)  # row i + 1 repeats row i
    first = torch.zeros(rows.size(0), dtype=torch.bool, device=rows.device)
    first[:-1] = same
    first[1:] &= ~same
    return first if first.any() else None


class GreedyRows(LogitsProcessor):
    """Logits processor: the rows marked in `rows` keep only their likeliest token, so sampling draws it."""

    def __init__(self, rows: torch.Tensor):
        self.rows = rows

    def __call__(self, input_ids, scores):
        rows = self.rows.to(scores.device)
        picked = scores[rows]
        top = picked.argmax(-1, keepdim=True)
        scores = scores.clone()
        scores[rows] = torch.full_like(picked, float("-inf")).scatter(1, top, picked.gather(1, top))
        return scores
