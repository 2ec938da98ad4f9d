"""Generating text with a causal LM: the one loop behind `rlft rewards check`, DPO's pair sampling, the eval and
`rlft chat`. Each caller keeps its own sampling settings (greedy eval, TRL-like sampling for rewards); the prompt
rendering, left padding, batching and decoding of only the new tokens live here once."""

from __future__ import annotations

from dataclasses import dataclass

from rlft.data import format_prompt
from rlft.text import as_text


@dataclass
class Completion:
    text: str  # decoded up to the first stop token, special tokens skipped, not stripped
    tokens: int  # new tokens up to and including the stop token (EOS), as TRL counts a completion's length


def render(tokenizer, prompt, template: dict | None = None) -> str:
    """A prompt (text or messages) as the model sees it.

    With `template=None`, as TRL renders a prompt: the chat template for messages, plain text as it is. With a stage's
    template (its `rlft_stage.json`), as that stage was trained to see it.
    """
    if template is None:
        if isinstance(prompt, list):
            return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return prompt
    if isinstance(prompt, list) and template.get("kind", "chat") == "chat" and tokenizer.chat_template:
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return format_prompt(tokenizer, template, as_text(prompt))


def generate(model, tokenizer, prompts: list, *, max_new_tokens: int, num_return_sequences: int = 1,
             batch_size: int = 8, template: dict | None = None, **sampling) -> list[list[Completion]]:
    """`num_return_sequences` completions per prompt, in prompt order.

    `sampling` goes to `model.generate` as it is (`do_sample=False` for greedy; `do_sample=True, temperature=...`).
    Prompts are rendered with `render(tokenizer, prompt, template)` and left-padded in batches of `batch_size`.
    """
    import torch  # deferred: `import rlft.rewards` (which samples through this) stays free of torch

    stop = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None}
    stop |= set(_as_list(getattr(model.generation_config, "eos_token_id", None)))
    rendered = [render(tokenizer, p, template) for p in prompts]
    k, groups = num_return_sequences, []
    model.eval()
    for start in range(0, len(rendered), batch_size):
        batch = tokenizer(rendered[start:start + batch_size], return_tensors="pt", padding=True, padding_side="left",
                          add_special_tokens=False).to(model.device)
        with torch.inference_mode():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, num_return_sequences=k,
                                 pad_token_id=tokenizer.pad_token_id, **sampling)
        done = []
        for row in out[:, batch["input_ids"].shape[1]:].tolist():
            end = next((i + 1 for i, t in enumerate(row) if t in stop), len(row))
            done.append(Completion(tokenizer.decode(row[:end], skip_special_tokens=True), end))
        groups += [done[i:i + k] for i in range(0, len(done), k)]
    return groups


def sample(model, tokenizer, prompts: list, k: int, max_new_tokens: int, temperature: float = 1.0,
           batch_size: int = 8) -> list[list]:
    """k completions per prompt sampled as TRL's online trainers sample (top_p 1, no top_k), in TRL's format: a
    message list per completion for chat prompts, a string otherwise."""
    chat = isinstance(prompts[0], list)
    groups = generate(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens, num_return_sequences=k,
                      batch_size=batch_size, do_sample=True, temperature=temperature, top_p=1.0, top_k=0)
    return [[[{"role": "assistant", "content": c.text}] if chat else c.text for c in group] for group in groups]


def _as_list(value) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]
