"""Secrets never reach the run folder: request headers in a recipe, or set by an override on the command line, are
written down only when they merely name environment variables. Pure Python, below both the run folder and rewards."""

from __future__ import annotations

import re

# A header value that only names environment variables (optionally after a scheme word): safe to write down.
_REFERENCE_ONLY = re.compile(r"^\s*(\w+\s+)?(\$\{\w+\}\s*)+$")
REDACTED = "<redacted>"


def redact(node):
    """`node` (a recipe, a stage, reward entries) with every header value that is not an environment variable
    reference replaced by "<redacted>": what the run folder may keep. `url:` credentials are refused at validation.

    >>> headers = {"Authorization": "Bearer ${RM_TOKEN}", "X-Key": "abc"}
    >>> redact({"rewards": [{"url": "http://h/score", "headers": headers}]})["rewards"][0]["headers"]
    {'Authorization': 'Bearer ${RM_TOKEN}', 'X-Key': '<redacted>'}
    """
    if isinstance(node, list):
        return [redact(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "headers" and isinstance(value, dict):
            out[key] = {h: v if isinstance(v, str) and _REFERENCE_ONLY.match(v) else REDACTED for h, v in value.items()}
        else:
            out[key] = redact(value)
    return out


def redact_argument(arg: str) -> str:
    """A command-line override that sets a header keeps its key only: `...headers.X=<redacted>`."""
    key, sep, value = arg.partition("=")
    return f"{key}={REDACTED}" if sep and "headers" in key and not _REFERENCE_ONLY.match(value) else arg
