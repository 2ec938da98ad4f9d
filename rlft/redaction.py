"""Secrets never reach the run folder: request headers in a recipe, or set by an override on the command line, are
written down only when they merely name environment variables. Pure Python, below both the run folder and rewards."""

from __future__ import annotations

import re

# A header value that only names environment variables (optionally after a scheme word): safe to write down.
_REFERENCE_ONLY = re.compile(r"^\s*(\w+\s+)?(\$\{\w+\}\s*)+$")
REDACTED = "<redacted>"
# Keys whose value is a credential wherever it appears: any `*token` (TrainingArguments' `hub_token`, a `token` in
# `model_init_kwargs`, a reward's `hf_token`), API, access, private and secret keys, passwords, credentials ...
SECRET_KEY = re.compile(r"^(\w*token|\w*(api|access|private|secret)_?key|\w*secret|\w*passw(or)?d|\w*credentials?|"
                        r"authorization)$", re.IGNORECASE)
# ... except the `*_token` keys that name vocabulary entries (SFTConfig's `pad_token`, `eos_token`, a reward's
# `stop_token`), and values that look like one ("<|im_end|>"): a credential has no angle brackets.
_VOCABULARY_KEY = re.compile(r"^(pad|eos|bos|unk|sep|cls|mask|start|end|stop|image|audio|video)_token$", re.IGNORECASE)
_VOCABULARY_VALUE = re.compile(r"^\s*<.*>\s*$")


def is_secret_key(key, value) -> bool:
    """True for a secret-named key holding a non-empty string (a ${VAR} reference included).

    >>> is_secret_key("hf_token", "${HF_TOKEN}"), is_secret_key("pad_token", "x"), is_secret_key("token", "<|end|>")
    (True, False, False)
    """
    return (isinstance(key, str) and bool(SECRET_KEY.match(key)) and not _VOCABULARY_KEY.match(key)
            and isinstance(value, str) and bool(value.strip()) and not _VOCABULARY_VALUE.match(value))


def is_secret(key, value) -> bool:
    """True for a credential written out: a secret-named key holding a string that is not a ${VAR} reference.

    >>> is_secret("hub_token", "hf_abc"), is_secret("hub_token", "${HF_TOKEN}"), is_secret("pad_token", "<pad>")
    (True, False, False)
    >>> is_secret("hf_token", "hf_abc"), is_secret("openai_api_key", "sk-1"), is_secret("db_password", "pw")
    (True, True, True)
    """
    return is_secret_key(key, value) and not _REFERENCE_ONLY.match(value)


def redact(node):
    """`node` (a recipe, a stage, reward entries, a trainer config) with every header value that is not an environment
    variable reference, and every secret-named value (`is_secret`), replaced by "<redacted>": what the run folder may
    keep. Validation refuses both in a recipe already; this is the defence behind it.

    >>> headers = {"Authorization": "Bearer ${RM_TOKEN}", "X-Key": "abc"}
    >>> redact({"rewards": [{"url": "http://h/score", "headers": headers}]})["rewards"][0]["headers"]
    {'Authorization': 'Bearer ${RM_TOKEN}', 'X-Key': '<redacted>'}
    >>> redact({"args": {"hub_token": "hf_abc", "pad_token": "<pad>"}})
    {'args': {'hub_token': '<redacted>', 'pad_token': '<pad>'}}
    """
    if isinstance(node, list):
        return [redact(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "headers" and isinstance(value, dict):
            out[key] = {h: v if isinstance(v, str) and _REFERENCE_ONLY.match(v) else REDACTED for h, v in value.items()}
        elif is_secret(key, value):
            out[key] = REDACTED
        else:
            out[key] = redact(value)
    return out


def redact_argument(arg: str) -> str:
    """A command-line override that sets a header or a secret-named key keeps its key only: `...headers.X=<redacted>`.

    >>> redact_argument("stages.sft.args.hub_token=hf_abc"), redact_argument("stages.sft.args.max_steps=3")
    ('stages.sft.args.hub_token=<redacted>', 'stages.sft.args.max_steps=3')
    """
    key, sep, value = arg.partition("=")
    secret = "headers" in key or is_secret(key.rsplit(".", 1)[-1], value)
    return f"{key}={REDACTED}" if sep and secret and not _REFERENCE_ONLY.match(value) else arg
