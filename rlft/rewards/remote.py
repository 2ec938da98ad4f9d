"""Rewards served over HTTP: the client behind `- url: http://host:8000/score` in a recipe.

The protocol (served by `rlft serve-reward`, see README "Reward servers"; a URL ending in /get_reward is spoken to
in OpenRLHF's remote reward model protocol instead, see `openrlhf_body`):

    POST /score   {"prompts": [...], "completions": [...], "<column>": [...], ...}  ->  {"rewards": [...]}
    GET  /health  -> {"status": "ok", ...}

How it behaves:
  1. It is an async reward, so TRL's GRPOTrainer / RLOOTrainer await it beside the other async rewards; a call is
     split into requests of `max_batch` completions, `concurrency` of them in flight at once.
  2. Connection errors and HTTP 5xx are retried `retries` times with exponential backoff (0.5 s, 1 s, 2 s, ...); a
     4xx is the request's fault and is never retried; a request taking over `timeout` seconds is an error.
  3. Header values may name environment variables (`Bearer ${RM_TOKEN}`), expanded only when a request is sent, so
     the recipe, and with it the run folder, holds the variable's name and never the secret.
  4. Data columns are sent with each request; TRL's own keyword arguments (trainer state, logging callbacks,
     completion ids) are not.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
from functools import lru_cache
from urllib.parse import urlsplit

from rlft.errors import RlftError
from rlft.rewards.contract import REMOTE_TIMEOUT, TRL_REWARD_KWARGS

_VAR = re.compile(r"\$\{(\w+)\}")
_SENSITIVE = re.compile(r"auth|token|key|secret|cookie|password", re.I)


def check_entry(ctx, entry: dict, where: str) -> str:
    """Recipe checks of a url: reward (no network): the URL's shape, the numbers, secrets kept out of the recipe."""
    problem = url_problem(entry["url"])
    if problem:
        ctx.add(f"{where}.url", problem)
    for key in ("max_batch", "concurrency"):
        if isinstance(entry.get(key), int) and entry[key] < 1:
            ctx.add(f"{where}.{key}", f"{entry[key]} must be at least 1")
    if isinstance(entry.get("retries"), int) and entry["retries"] < 0:
        ctx.add(f"{where}.retries", f"{entry['retries']} must be 0 or more")
    if entry.get("kwargs"):
        ctx.add(f"{where}.kwargs", "applies to fn: rewards; give a served function its kwargs with "
                "rlft serve-reward SPEC --kwargs '{...}'")
    for header, value in (entry.get("headers") or {}).items():
        if not isinstance(value, str):
            ctx.add(f"{where}.headers.{header}", f"expected a string, got {value!r}")
        elif _SENSITIVE.search(str(header)) and not _VAR.search(value):
            ctx.add(f"{where}.headers.{header}", "holds a literal secret, which would be saved in the run folder; "
                    "write it as an environment variable, e.g. 'Bearer ${RM_TOKEN}', and export RM_TOKEN")
        else:
            missing = [v for v in _VAR.findall(value) if not os.environ.get(v)]
            if missing:
                ctx.add(f"{where}.headers.{header}", f"environment variable {missing[0]} is not set; export it "
                        "before the run")
    return entry.get("name") or (entry["url"] if problem else default_name(entry["url"]))


def url_problem(url: str) -> str | None:
    """What is wrong with a reward server URL, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a port that is not a number in range
    except ValueError as e:
        return f"{url!r} is not a valid URL ({e}); e.g. http://127.0.0.1:8000/score"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL with a host; e.g. http://127.0.0.1:8000/score"
    if parts.username or parts.password:  # https://TOKEN@host/... puts a token in the user name
        return "holds credentials (user name or password); send credentials as a header from an environment variable instead: " \
               "headers: {Authorization: 'Bearer ${RM_TOKEN}'}"
    return None


def default_name(url: str) -> str:
    """Log name of a reward server: `remote_<host>_<port>`."""
    parts = urlsplit(url)
    return re.sub(r"\W", "_", f"remote_{parts.hostname}" + (f"_{parts.port}" if parts.port else ""))


def health_url(url: str) -> str:
    """`/health` beside the scoring endpoint: http://h:8000/rm/score -> http://h:8000/rm/health."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    base = path.rsplit("/", 1)[0] if "/" in path else ""
    return parts._replace(path=f"{base}/health", query="", fragment="").geturl()


def expand_headers(headers: dict, url: str) -> dict:
    def value(header, text):
        def sub(match):
            if not os.environ.get(match.group(1)):
                raise RlftError(f"reward server {url}: header {header} needs environment variable {match.group(1)}, "
                                "which is not set; export it")
            return os.environ[match.group(1)]
        return _VAR.sub(sub, str(text))

    return {str(h): value(h, v) for h, v in (headers or {}).items()}


class RemoteReward:
    """A reward server as an async TRL reward: `await RemoteReward(url)(prompts=..., completions=..., **columns)`."""

    def __init__(self, url: str, timeout: float | None = None, max_batch: int = 64, concurrency: int = 4,
                 retries: int = 3, headers: dict | None = None, name: str | None = None):
        # http://h/score/ would get a redirect (Starlette's redirect_slashes), which httpx does not follow
        parts = urlsplit(url)
        self.url, self.timeout = parts._replace(path=parts.path.rstrip("/")).geturl(), float(timeout or REMOTE_TIMEOUT)
        self.max_batch, self.concurrency, self.retries = max_batch, concurrency, retries
        self.headers = dict(headers or {})
        self.__name__ = name or default_name(url)
        self._loop = self._http = None
        self.openrlhf = urlsplit(url).path.rstrip("/").endswith("/get_reward")  # OpenRLHF's protocol

    async def __call__(self, prompts, completions, **kwargs) -> list:
        n = len(completions)
        columns = {k: v for k, v in kwargs.items() if k not in TRL_REWARD_KWARGS and isinstance(v, (list, tuple))
                   and len(v) == n}
        limit = asyncio.Semaphore(self.concurrency)
        client = self._client()

        async def one(start: int):
            stop = min(start + self.max_batch, n)
            body = {"prompts": list(prompts[start:stop]), "completions": list(completions[start:stop]),
                    **{k: list(v[start:stop]) for k, v in columns.items()}}
            if self.openrlhf:
                body = openrlhf_body(body)
            async with limit:
                return await self._post(client, body)

        answers = await asyncio.gather(*(one(s) for s in range(0, n, self.max_batch)))
        if len(answers) == 1:
            return answers[0]  # whatever it is: the caller's checks report a wrong shape as for a local reward
        if not all(isinstance(a, list) for a in answers):
            bad = next(a for a in answers if not isinstance(a, list))
            return bad
        return [v for a in answers for v in a]

    def _client(self):
        """One client (and its open connections) per event loop: TRL keeps one loop for the whole run."""
        import httpx  # deferred: only url: rewards need it

        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._http = httpx.AsyncClient(timeout=self.timeout, headers=expand_headers(self.headers, self.url),
                                           verify=_ssl_context())
        return self._http

    async def _post(self, client, body: dict):
        import httpx

        content = json.dumps(body, default=str)
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = await client.post(self.url, content=content, headers={"Content-Type": "application/json"})
            except httpx.TimeoutException:
                raise RlftError(f"reward server {self.url} did not answer within {self.timeout:g} s (timeout: "
                                f"{self.timeout:g} on this reward). Raise timeout:, lower max_batch "
                                f"({self.max_batch}), or check the server") from None
            except httpx.TransportError as e:  # refused, reset, dropped mid-answer
                if last:
                    raise RlftError(unreachable(self.url, e, attempt + 1)) from None
            else:
                if response.status_code < 500 or last:
                    return self._rewards(response)
            await asyncio.sleep(min(0.5 * 2 ** attempt, 8.0))

    def _rewards(self, response):
        if response.status_code >= 400:
            fix = ("set the token the server expects: headers: {Authorization: 'Bearer ${RM_TOKEN}'} and export "
                   "RM_TOKEN" if response.status_code in (401, 403) else
                   "fix the request or the server (its message above)")
            raise RlftError(f"reward server {self.url} answered HTTP {response.status_code}: "
                            f"{server_message(response)}; {fix}")
        try:
            answer = response.json()
        except ValueError:
            raise RlftError(f"reward server {self.url} answered with something that is not JSON "
                            f"({response.text[:80]!r}); is it a scoring endpoint (rlft serve-reward: /score)?"
                            ) from None
        if not isinstance(answer, dict) or "rewards" not in answer:
            raise RlftError(f"reward server {self.url} answered {str(answer)[:80]!r}, without a \"rewards\" list; "
                            "the protocol is {\"rewards\": [one number or null per completion]}")
        return answer["rewards"]


def openrlhf_body(body: dict) -> dict:
    """rlft's request as OpenRLHF's remote reward model takes it: {"query": prompt + response, "prompts", "labels"}.

    OpenRLHF's queries are the templated text; for conversational data, without the policy's chat template, each
    message list is sent as its contents joined by newlines.
    """
    def text(item) -> str:
        return item if isinstance(item, str) else "\n".join(str(m.get("content", "")) for m in item)

    prompts = [text(p) for p in body["prompts"]]
    out = {"query": [p + text(c) for p, c in zip(prompts, body["completions"])], "prompts": prompts}
    if "labels" in body or "label" in body:
        out["labels"] = body.get("labels", body.get("label"))
    return out


@lru_cache(maxsize=1)
def _ssl_context():
    """Built once: httpx would load the CA bundle again for every client (tens of ms)."""
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def unreachable(url: str, error: Exception, attempts: int) -> str:
    reason = str(error) or type(error).__name__
    port = urlsplit(url).port or 8000
    return (f"cannot reach reward server {url} ({reason}; {attempts} attempt{'s' * (attempts > 1)}): is the server "
            f"running? Start it with: rlft serve-reward SPEC --port {port} (SPEC: module:function or a reward_model "
            "stage folder)")


def server_message(response) -> str:
    try:
        answer = response.json()
        return str(answer.get("error", answer) if isinstance(answer, dict) else answer)[:300]
    except ValueError:
        return response.text[:300] or response.reason_phrase


def health(url: str, headers: dict | None = None, timeout: float = 10.0) -> dict:
    """GET the server's /health; raises RlftError saying what to do when it does not answer."""
    import httpx

    target = health_url(url)
    try:
        response = httpx.get(target, headers=expand_headers(headers or {}, url), timeout=timeout)
    except httpx.TimeoutException:
        raise RlftError(f"reward server {target} did not answer within {timeout:g} s") from None
    except httpx.TransportError as e:
        raise RlftError(unreachable(url, e, 1)) from None
    if response.status_code != 200:
        raise RlftError(f"reward server {target} answered HTTP {response.status_code}: {server_message(response)}")
    try:
        return response.json()
    except ValueError:
        raise RlftError(f"reward server {target} answered with something that is not JSON") from None
