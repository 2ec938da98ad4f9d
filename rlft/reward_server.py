"""`rlft serve-reward SPEC`: any rlft reward behind HTTP, for recipes' `url:` rewards and for OpenRLHF.

SPEC is what a recipe's `fn:` takes (`module.path:function`, `file.py:function`, relative to the working directory;
`--kwargs` binds options) or a reward model folder (a `reward_model` stage's output). The protocol:

    POST /score       {"prompts": [...], "completions": [...], "<column>": [...]}  ->  {"rewards": [...]}
    POST /get_reward  OpenRLHF's remote reward model: {"query": [prompt + response, ...], "prompts": [...],
                      "labels": [...]}  ->  {"rewards": [...]}; the completion is the query less its prompt
    GET  /health      {"status": "ok", "reward": NAME, "max_batch": N, "scored": {"requests": R, "batches": B}}

How it behaves:
  1. Every answer is checked as in training (one finite number or null per completion); a request that is not
     valid JSON, lacks prompts/completions or has columns of the wrong length gets a 4xx with {"error": "..."}.
  2. A reward model batches: requests arriving together are scored as one batch of up to --max-batch completions.
     Functions are called once per request (async ones awaited, sync ones in a worker thread).
  3. Safe defaults: binds 127.0.0.1 unless --host says otherwise; with --token-env VAR every request must carry
     `Authorization: Bearer $VAR` (compared in constant time); bodies over --max-request-mb are refused (413).
  4. SIGTERM or Ctrl-C stops it gracefully: no new connections, requests in flight are answered first.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import signal
import socket
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rlft.errors import RlftError
from rlft.rewards.checks import model_name, signature_problem
from rlft.rewards.contract import ALWAYS_PASSED, DEFAULT_TIMEOUT
from rlft.rewards.loading import load_function
from rlft.rewards.model import ModelReward
from rlft.rewards.runtime import CheckedReward, bind_kwargs, trl_extras

BATCH_WINDOW = 0.005  # seconds a reward model waits after a request for others to score with it


def load_reward(spec: str, kwargs: dict | None = None, timeout: float = DEFAULT_TIMEOUT) -> CheckedReward:
    """The reward SPEC names, checked on every call like a recipe's reward."""
    folder = Path(spec)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise RlftError(f"{spec}: a folder without config.json; give a reward model folder (a reward_model "
                            "stage's output) or module:function")
        if kwargs:
            raise RlftError("--kwargs applies to functions, not to a reward model folder")
        return CheckedReward(ModelReward(folder), model_name(spec, folder), timeout=timeout)
    fn = load_function(spec, Path.cwd())
    problem = signature_problem(fn, {"prompts", "completions", *ALWAYS_PASSED}, kwargs or {})
    if problem and not problem.startswith("requires"):  # a required column may come with each request
        raise RlftError(f"{spec} {problem}")
    name = getattr(fn, "__name__", type(fn).__name__)
    if kwargs:
        fn = bind_kwargs(fn, kwargs)
    return CheckedReward(fn, name, timeout=timeout)


class Batcher:
    """Scores the completions of requests that arrive together in one call of the reward (up to `max_batch`)."""

    def __init__(self, reward: CheckedReward, max_batch: int):
        self.reward, self.max_batch = reward, max_batch
        self.queue: asyncio.Queue | None = None

    async def score(self, prompts: list, completions: list) -> list:
        if self.queue is None:  # created on the server's event loop
            self.queue = asyncio.Queue()
            asyncio.get_running_loop().create_task(self._work())
        done = asyncio.get_running_loop().create_future()
        await self.queue.put((prompts, completions, done))
        return await done

    async def _work(self) -> None:
        while True:
            batch = [await self.queue.get()]
            await asyncio.sleep(BATCH_WINDOW)  # let requests sent together arrive
            size = len(batch[0][1])
            while not self.queue.empty() and size + len(self.queue._queue[0][1]) <= self.max_batch:
                batch.append(self.queue.get_nowait())
                size += len(batch[-1][1])
            prompts = [p for b in batch for p in b[0]]
            completions = [c for b in batch for c in b[1]]
            try:
                values = await self.reward.acall(prompts, completions, **trl_extras())
            except Exception as e:  # every request of the batch gets the error
                for *_, done in batch:
                    if not done.done():  # a client that gave up cancelled its future
                        done.set_exception(e)
                continue
            start = 0
            for _, part, done in batch:
                if not done.done():
                    done.set_result(values[start:start + len(part)])
                start += len(part)


def make_app(reward: CheckedReward, token: str | None = None, max_batch: int = 64, max_bytes: int = 32 << 20):
    """The Starlette app serving `reward`."""
    batcher = Batcher(reward, max_batch) if isinstance(reward.fn, ModelReward) else None
    requests = [0]  # scoring requests answered through the batcher

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status,
                            headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)

    def refused(request: Request) -> JSONResponse | None:
        if token is None:
            return None
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return error(401, "missing or wrong bearer token; send Authorization: Bearer <token> (the server's "
                         "--token-env variable)")
        return None

    async def body_of(request: Request):
        if int(request.headers.get("content-length") or 0) > max_bytes:
            return error(413, f"request larger than the server's limit of {max_bytes / (1 << 20):g} MB; send smaller "
                         "batches (max_batch: on the reward) or raise --max-request-mb")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                return error(413, f"request larger than the server's limit of {max_bytes / (1 << 20):g} MB")
            chunks.append(chunk)
        try:
            body = json.loads(b"".join(chunks))
        except ValueError as e:
            return error(400, f"the body is not JSON ({e})")
        return body if isinstance(body, dict) else error(422, "the body must be a JSON object")

    async def score(prompts: list, completions: list, columns: dict) -> JSONResponse:
        for key, values in columns.items():
            if not isinstance(values, list) or len(values) != len(completions):
                return error(422, f"column {key!r} must be a list with one value per completion "
                             f"({len(completions)})")
        if not completions:
            return JSONResponse({"rewards": []})
        problem = batcher is None and signature_problem(reward.fn, {"prompts", "completions", *ALWAYS_PASSED,
                                                                    *columns}, {})
        if problem:
            return error(422, f"reward {reward.__name__!r} {problem}")
        try:
            if batcher is not None:
                requests[0] += 1
                values = await batcher.score(prompts, completions)
            else:
                values = await reward.acall(prompts, completions, **columns, **trl_extras())
        except RlftError as e:
            return error(500, str(e))
        return JSONResponse({"rewards": values})

    async def score_route(request: Request) -> JSONResponse:
        body = refused(request) or await body_of(request)
        if isinstance(body, JSONResponse):
            return body
        prompts, completions = body.pop("prompts", None), body.pop("completions", None)
        if not isinstance(prompts, list) or not isinstance(completions, list) or len(prompts) != len(completions):
            return error(422, 'give "prompts" and "completions": two lists of the same length, one prompt per '
                         "completion (other keys are data columns, one value per completion)")
        return await score(prompts, completions, body)

    async def openrlhf_route(request: Request) -> JSONResponse:
        body = refused(request) or await body_of(request)
        if isinstance(body, JSONResponse):
            return body
        queries = body.get("query")
        prompts = body.get("prompts") or [""] * len(queries or [])
        if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries) or \
                not isinstance(prompts, list) or len(prompts) != len(queries):
            return error(422, 'give "query": a list of prompt + response strings, and optionally "prompts" (one per '
                         'query) and "labels"')
        completions = [q[len(p):] if isinstance(p, str) and q.startswith(p) else q for q, p in zip(queries, prompts)]
        columns = {"labels": body["labels"]} if body.get("labels") is not None else {}
        return await score(prompts, completions, columns)

    async def health(request: Request) -> JSONResponse:
        scored = {"requests": reward.calls if batcher is None else requests[0], "batches": reward.calls}
        return refused(request) or JSONResponse({"status": "ok", "reward": reward.__name__, "max_batch": max_batch,
                                                 "scored": scored})

    async def not_found(request: Request, exc) -> JSONResponse:
        return error(exc.status_code, f"{request.method} {request.url.path}: not served here; the endpoints are "
                     "POST /score, POST /get_reward and GET /health")

    routes = [Route("/score", score_route, methods=["POST"]), Route("/get_reward", openrlhf_route, methods=["POST"]),
              Route("/health", health, methods=["GET"])]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


def serve(spec: str, host: str = "127.0.0.1", port: int = 8000, token_env: str | None = None, max_batch: int = 64,
          kwargs: str | None = None, max_request_mb: float = 32, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Load the reward, bind the port, and serve until SIGTERM / Ctrl-C."""
    import uvicorn

    for flag, value, low in (("--port", port, 0), ("--max-batch", max_batch, 1)):
        if value < low or (flag == "--port" and value > 65535):
            raise RlftError(f"{flag} {value}: out of range" + (" (0-65535; 0 = any free port)" if flag == "--port"
                                                              else "; give 1 or more"))
    for flag, value in (("--max-request-mb", max_request_mb), ("--timeout", timeout)):
        if not value > 0:
            raise RlftError(f"{flag} {value:g}: give a number > 0")
    token = None
    if token_env:
        token = os.environ.get(token_env)
        if not token:
            raise RlftError(f"--token-env {token_env}: that environment variable is not set or empty; export "
                            f"{token_env}=<secret> first (clients send it as Authorization: Bearer <secret>)")
    try:
        options = json.loads(kwargs) if kwargs else {}
    except ValueError as e:
        raise RlftError(f"--kwargs {kwargs!r} is not JSON ({e}); e.g. --kwargs '{{\"target_words\": 40}}'") from None
    if not isinstance(options, dict):
        raise RlftError(f"--kwargs {kwargs!r} must be a JSON object, e.g. '{{\"target_words\": 40}}'")
    reward = load_reward(spec, options, timeout)
    trl_extras()  # imports transformers now, not during the first request
    sock = _listen(host, port)
    app = make_app(reward, token, max_batch, int(max_request_mb * (1 << 20)))
    bound = sock.getsockname()[1]
    where = f"http://{host if ':' not in host else f'[{host}]'}:{bound}"
    print(f"serving reward {reward.__name__!r} on {where}/score (also POST /get_reward, GET /health)"
          f"{'; bearer token from $' + token_env if token else ''}. Stop with Ctrl-C or SIGTERM.", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1") and token is None:
        print(f"warning: listening on {host} without a token: anyone who reaches this port can call the reward; "
              "set --token-env VAR", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=30)
    # uvicorn answers SIGTERM / SIGINT by finishing the requests in flight, then raises the signal again for the
    # previous handler: make that a clean exit 0 rather than a kill or rlft's "interrupted" message.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stopped)
    uvicorn.Server(config).run(sockets=[sock])


def _stopped(signum, frame) -> None:
    print("reward server stopped", flush=True)
    sys.exit(0)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on such sockets, and without it every answer (headers,
    # then body) waits ~40 ms for the client's delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise RlftError(f"cannot listen on {host}:{port} ({e.strerror}); is another server using the port? Choose "
                        "another with --port (0 = any free port)") from None
    sock.listen(128)
    return sock
