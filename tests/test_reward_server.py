"""Reward servers with real processes and real HTTP (no mocks): `rlft serve-reward` on a free port, a recipe's
`url:` reward against it in a real GRPO run, and the client's errors against a real misbehaving server."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import prompt_rows, write_jsonl, write_recipe
from rlft import rewards
from rlft.errors import RlftError

ROOT = Path(__file__).resolve().parent.parent
HTTP = httpx.Client(timeout=120)  # generous: CI machines are busy
pytestmark = pytest.mark.slow  # starts server processes

# A stand-in for somebody else's reward server (stdlib only, a real process): each path misbehaves one way.
BAD_SERVER = r'''
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

hits = {}

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, kind="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.answer(200, json.dumps(hits))

    def do_POST(self):
        hits[self.path] = hits.get(self.path, 0) + 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = len(body["completions"])
        if self.path == "/short":
            self.answer(200, json.dumps({"rewards": [0.5] * (n - 1)}))
        elif self.path == "/slow":
            time.sleep(5)
            self.answer(200, json.dumps({"rewards": [0.5] * n}))
        elif self.path == "/html":
            self.answer(200, "<html>hello</html>", "text/html")
        elif self.path == "/bad":
            self.answer(400, json.dumps({"error": "completions must be strings"}))
        elif self.path == "/down":
            self.answer(503, json.dumps({"error": "warming up"}))

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
'''


def _port_from(process: subprocess.Popen, pattern: str, seconds: float = 120) -> int:
    """Read the process's first line(s) until the port it printed appears."""
    deadline = time.monotonic() + seconds
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if pattern == "" and line.strip().isdigit():
            return int(line)
        if pattern and pattern in line:
            return int(line.split(pattern)[1].split("/")[0])
    process.kill()
    raise AssertionError(f"server did not start: {''.join(lines)}{process.stderr.read() if process.stderr else ''}")


@pytest.fixture(scope="module")
def token():
    return secrets.token_hex(16)


@pytest.fixture(scope="module")
def politeness_server(token):
    """`rlft serve-reward reward_models.politeness:politeness` on a free port, with a bearer token."""
    env = {**os.environ, "RM_TOKEN": token, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "rlft.cli", "serve-reward", "reward_models.politeness:politeness",
                                "--port", "0", "--token-env", "RM_TOKEN", "--max-batch", "8",
                                "--max-request-mb", "0.05"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    port = _port_from(process, "http://127.0.0.1:")
    yield f"http://127.0.0.1:{port}"
    process.send_signal(signal.SIGTERM)  # graceful: exits 0 and says so
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0 and "reward server stopped" in out, out


@pytest.fixture
def bad_server(tmp_path):
    script = tmp_path / "bad_server.py"
    script.write_text(BAD_SERVER)
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    yield process, f"http://127.0.0.1:{_port_from(process, '', 30)}"
    process.kill()
    process.wait()


def test_score_health_openrlhf_and_token(politeness_server, token):
    from reward_models.politeness import politeness

    auth = {"Authorization": f"Bearer {token}"}
    assert HTTP.get(f"{politeness_server}/health").status_code == 401  # the token guards every endpoint
    assert HTTP.get(f"{politeness_server}/health", headers=auth).json()["reward"] == "politeness"
    prompts, completions = ["You are useless.", "Hi"], ["Sorry about that! I'd be glad to help.", "whatever"]
    refused = HTTP.post(f"{politeness_server}/score", json={"prompts": prompts, "completions": completions})
    assert refused.status_code == 401 and "bearer token" in refused.json()["error"]
    wrong = HTTP.post(f"{politeness_server}/score", json={"prompts": prompts, "completions": completions},
                       headers={"Authorization": "Bearer " + "0" * 32})
    assert wrong.status_code == 401
    answer = HTTP.post(f"{politeness_server}/score", json={"prompts": prompts, "completions": completions},
                        headers=auth)
    assert answer.json()["rewards"] == pytest.approx(politeness(prompts, completions))
    # OpenRLHF's remote reward model protocol: the query is prompt + response
    queries = [p + c for p, c in zip(prompts, completions)]
    openrlhf = HTTP.post(f"{politeness_server}/get_reward", json={"query": queries, "prompts": prompts,
                                                                   "labels": ["", ""]}, headers=auth)
    assert openrlhf.json()["rewards"] == pytest.approx(politeness(prompts, completions))
    for body, status, message in [
        ({"prompts": ["a"], "completions": ["b", "c"]}, 422, 'give "prompts" and "completions"'),
        ({"prompts": ["a"], "completions": ["b"], "topic": [1, 2]}, 422, "column 'topic' must be a list"),
        ({"query": "not a list"}, 422, 'give "query"'),
    ]:
        route = "/get_reward" if "query" in body else "/score"
        got = HTTP.post(politeness_server + route, json=body, headers=auth)
        assert got.status_code == status and message in got.json()["error"], got.text
    assert HTTP.post(f"{politeness_server}/score", content=b"{nope", headers=auth).status_code == 400
    huge = HTTP.post(f"{politeness_server}/score", json={"prompts": ["p"], "completions": ["x" * 60_000]}, headers=auth)
    assert huge.status_code == 413 and "larger than the server's limit" in huge.json()["error"]
    assert HTTP.get(f"{politeness_server}/nothing", headers=auth).json()["error"].startswith("GET /nothing")


SLEEPERS = '''
import asyncio, json, time

async def _sleep(name, completions):
    start = time.monotonic()
    await asyncio.sleep(0.5)
    with open("intervals.jsonl", "a") as f:
        f.write(json.dumps({"name": name, "start": start, "end": time.monotonic()}) + "\\n")
    return [0.0] * len(completions)

async def judge_a(prompts, completions, **kwargs):
    return await _sleep("a", completions)

async def judge_b(prompts, completions, **kwargs):
    return await _sleep("b", completions)
'''


def test_reward_stage_against_the_server(politeness_server, token, tmp_path, tiny_model_dir, monkeypatch, capsys):
    """A 2-step GRPO run whose rewards are the server and two async functions; TRL gathers the async ones."""
    from rlft import cli

    monkeypatch.setenv("RM_TOKEN", token)
    monkeypatch.chdir(tmp_path)  # the sleepers write intervals.jsonl here
    (tmp_path / "sleepers.py").write_text(SLEEPERS)
    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    recipe = write_recipe(tmp_path / "recipe.yaml", f"""
name: remote
model: {tiny_model_dir}
seed: 0
stages:
  - name: rl
    type: grpo
    data: {{train: prompts.jsonl}}
    rewards:
      - url: {politeness_server}/score
        name: politeness
        headers: {{Authorization: "Bearer ${{RM_TOKEN}}"}}
        max_batch: 1            # two requests per call, in flight together
      - {{fn: sleepers.py:judge_a, weight: 0.0}}
      - {{fn: sleepers.py:judge_b, weight: 0.0}}
    args: {{max_steps: 2, per_device_train_batch_size: 2, num_generations: 2, max_completion_length: 8,
            steps_per_generation: 1}}
""")
    cli.main(["validate", str(recipe)])
    cli.main(["run", str(recipe), "--output-dir", str(tmp_path / "run")])
    stage = tmp_path / "run" / "stages" / "00_rl"
    assert (stage / "stage_complete.json").is_file()
    metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/politeness/mean" in row for row in metrics)
    calls = [json.loads(line) for line in (tmp_path / "intervals.jsonl").read_text().splitlines()]
    assert len(calls) >= 4
    for a, b in zip(calls[::2], calls[1::2]):  # each pair ran at the same time: both began before either ended
        assert {a["name"], b["name"]} == {"a", "b"} and max(a["start"], b["start"]) < min(a["end"], b["end"])
    for path in (tmp_path / "run").rglob("*"):  # the secret never lands in the run folder
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert token.encode() not in path.read_bytes(), path
    capsys.readouterr()
    # rlft rewards check asks /health first, then scores
    completions = write_jsonl(tmp_path / "c.jsonl", [{"prompt": "Hi", "completion": c} for c in ("Thanks!", "No.")])
    cli.main(["rewards", "check", str(recipe), "--completions", str(completions)])
    assert "│ politeness" in capsys.readouterr().out


def _remote(url: str, **options):
    reward = rewards.CheckedReward(rewards.RemoteReward(url, **options), "judge", timeout=None)
    return lambda: reward(prompts=["p", "q"], completions=["a", "b"])


def test_client_errors_against_a_real_misbehaving_server(bad_server):
    process, url = bad_server
    local = rewards.CheckedReward(lambda prompts, completions, **kw: [0.5] * (len(completions) - 1), "judge")
    with pytest.raises(RlftError) as same:
        local(prompts=["p", "q"], completions=["a", "b"])
    with pytest.raises(RlftError) as remote:
        _remote(f"{url}/short")()
    assert str(remote.value) == str(same.value)  # the same message as a local reward of the wrong length
    with pytest.raises(RlftError, match=r"did not answer within 0.5 s \(timeout: 0.5 on this reward\)"):
        _remote(f"{url}/slow", timeout=0.5)()
    with pytest.raises(RlftError, match="answered with something that is not JSON"):
        _remote(f"{url}/html")()
    with pytest.raises(RlftError, match="answered HTTP 400: completions must be strings"):
        _remote(f"{url}/bad", retries=3)()
    with pytest.raises(RlftError, match="answered HTTP 503: warming up"):
        _remote(f"{url}/down", retries=2)()
    hits = HTTP.get(url).json()
    assert hits["/bad"] == 1 and hits["/down"] == 3  # a 4xx is never retried; a 5xx is, with backoff


def test_server_killed_mid_call(bad_server):
    process, url = bad_server
    call = _remote(f"{url}/slow", timeout=30, retries=1)
    started = time.monotonic()
    import threading

    threading.Timer(1.0, process.kill).start()  # dies while the request is in flight
    with pytest.raises(RlftError, match=r"cannot reach reward server .*/slow .*is the server running\? Start it with: "
                                        r"rlft serve-reward SPEC --port"):
        call()
    assert time.monotonic() - started < 20


def test_rewards_check_says_when_no_server_listens(tmp_path, tiny_model_dir, capsys):
    import socket

    from rlft import cli

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    recipe = write_recipe(tmp_path / "recipe.yaml", f"""
name: down
model: {tiny_model_dir}
stages:
  - name: rl
    type: grpo
    data: {{train: prompts.jsonl}}
    rewards: [{{url: "http://127.0.0.1:{port}/score"}}]
""")
    with pytest.raises(SystemExit) as stop:
        cli.main(["rewards", "check", str(recipe)])
    err = " ".join(capsys.readouterr().err.split())
    assert stop.value.code == 2 and "Traceback" not in err
    assert f"cannot reach reward server http://127.0.0.1:{port}/score" in err and "rlft serve-reward" in err


def test_serve_reward_start_errors(tmp_path):
    def start(*args, env=None):
        return subprocess.run([sys.executable, "-m", "rlft.cli", "serve-reward", *args], cwd=ROOT, text=True,
                              capture_output=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})

    unset = start("reward_models.politeness:politeness", "--token-env", "RLFT_NO_SUCH_VAR")
    assert unset.returncode == 2 and "RLFT_NO_SUCH_VAR: that environment variable is not set" in unset.stderr
    missing = start("reward_models.politeness:nope", "--port", "0")
    assert missing.returncode == 2 and "has no 'nope'" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "config.json").write_text("{}")
    assert "--kwargs applies to functions" in start(str(tmp_path), "--kwargs", '{"a": 1}').stderr


def test_a_reward_model_folder_served_in_batches(tmp_path, tiny_model_dir):
    """A reward_model-style folder (sequence classifier, one logit) behind the server: concurrent requests are scored
    together, with the values the in-process ModelReward gives."""
    import asyncio

    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    config = AutoConfig.from_pretrained(tiny_model_dir, num_labels=1)
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(tmp_path / "rm")
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(tmp_path / "rm")
    process = subprocess.Popen([sys.executable, "-m", "rlft.cli", "serve-reward", str(tmp_path / "rm"), "--port", "0"],
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{_port_from(process, 'http://127.0.0.1:')}"
        prompts = [f"Question {i}: " for i in range(8)]
        completions = [f"answer number {i}" * (i + 1) for i in range(8)]
        remote = rewards.RemoteReward(f"{url}/score", max_batch=1, concurrency=8, timeout=120)  # 8 requests at once
        served = asyncio.run(remote(prompts=prompts, completions=completions))
        assert served == pytest.approx(rewards.ModelReward(tmp_path / "rm")(prompts, completions), abs=1e-4)
        scored = HTTP.get(f"{url}/health").json()["scored"]
        assert scored["requests"] == 8 and scored["batches"] < 8  # requests that arrived together, scored together
        openrlhf = rewards.RemoteReward(f"{url}/get_reward")  # rlft's client speaking OpenRLHF's protocol
        assert asyncio.run(openrlhf(prompts=prompts[:2], completions=completions[:2])) == pytest.approx(served[:2],
                                                                                                          abs=1e-4)
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_kwargs_that_bind_a_required_parameter_are_served(tmp_path):
    """`--kwargs` supplying a parameter the function requires: every request is scored (was refused as missing it);
    the URL with a trailing slash reaches the same endpoint."""
    import asyncio

    (tmp_path / "scorers.py").write_text("def near(prompts, completions, target, **kwargs):\n"
                                         "    return [-abs(len(c) - target) for c in completions]\n")
    process = subprocess.Popen([sys.executable, "-m", "rlft.cli", "serve-reward", "scorers.py:near", "--port", "0",
                                "--kwargs", '{"target": 5}'], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{_port_from(process, 'http://127.0.0.1:')}"
        for endpoint in (f"{url}/score", f"{url}/score/"):
            remote = rewards.RemoteReward(endpoint, timeout=60)
            assert asyncio.run(remote(prompts=["a", "b"], completions=["12345", "1"])) == [0, -4]
    finally:
        process.terminate()
        process.wait(timeout=60)
