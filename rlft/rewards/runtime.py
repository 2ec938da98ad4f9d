"""The rewards handed to TRL: each recipe reward wrapped so every call is checked, timed and time-limited.

1. Every call is checked: a wrong number of values, a non-number, NaN/inf or an exception stops the run with an
   `RlftError` naming the reward, the sample and the value (TRL sums a NaN away as 0 with `nansum`).
   `nan_as_none: true` on a reward makes NaN mean None instead.
2. An `async def` reward (or a reward server) stays async: the wrapper is itself an `async def` function, so TRL's
   GRPOTrainer and RLOOTrainer still gather it concurrently with the other async rewards on their event loop.
   rlft's own callers (`rlft rewards check`, eval, DPO pair ranking) gather them too (`call_all`). Trainers that
   only call rewards synchronously (online DPO) get a synchronous wrapper that runs the coroutine to completion.
3. A call has a time limit (`timeout:`, default 300 s). A sync reward runs in a worker thread so that the run can
   stop when it does not return; Python cannot kill a thread, so a stuck call keeps its thread (a daemon, gone when
   the process ends) and the run stops with an error. An async reward is cancelled at its limit, unless it blocks
   the event loop without awaiting.
4. A stage whose rewards all return None for a whole batch stops: TRL would sum the batch to 0 (loss 0) and train
   on nothing, with exit 0. None for some samples stays allowed, as in TRL.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import numbers
import threading
import time
import traceback
from pathlib import Path

from rlft.errors import RlftError
from rlft.rewards import remote
from rlft.rewards.checks import local, model_name
from rlft.rewards.contract import ALWAYS_PASSED, DEFAULT_TIMEOUT, entries
from rlft.rewards.loading import error_line, load_function
from rlft.rewards.model import ModelReward
from rlft.text import as_text


def build(stage: dict, ctx, concurrent: bool = True, stop_on_all_none: bool = True) -> list:
    """Callables for the trainer, in recipe order: checked wrappers around functions, reward models and servers.

    `concurrent=False` makes async rewards synchronous (for trainers that do not await rewards). A callback in
    `ctx.callbacks` with a `record` method (rlft.run_logs.SamplesCallback) is handed every scored batch.
    """
    recorder = next((c for c in getattr(ctx, "callbacks", None) or () if hasattr(c, "record")), None)
    stage_entries = entries(stage)
    guard = AllNoneGuard(len(stage_entries)) if stop_on_all_none else None
    out = []
    for entry in stage_entries:
        timeout = entry["timeout"] or DEFAULT_TIMEOUT
        if entry["fn"] is not None:
            fn = load_function(entry["fn"], ctx.recipe_dir)
            fn = bind_kwargs(fn, entry["kwargs"]) if entry["kwargs"] else fn
            name = entry["name"] or getattr(fn, "__name__", type(fn).__name__)
        elif entry["url"] is not None:
            fn = remote.RemoteReward(entry["url"], entry["timeout"], entry["max_batch"], entry["concurrency"],
                                     entry["retries"], entry["headers"], entry["name"])
            name, timeout = fn.__name__, None  # bounded by its requests' own timeout
        else:
            folder = resolve_model(entry["model"], ctx)
            name = entry["name"] or (f"rm_{entry['model']}" if entry["model"] in ctx.outputs else
                                     model_name(entry["model"], folder))
            fn = ModelReward(folder, ctx.dtype)
        checked = CheckedReward(fn, name, entry["nan_as_none"], recorder, timeout, guard)
        out.append(as_async(checked) if checked.is_async and concurrent else checked)
    return out


def bind_kwargs(fn, kwargs: dict):
    """`fn` with `kwargs` bound, keeping its name (and its being async)."""
    if is_async_callable(fn):
        async def bound(prompts, completions, **columns):
            return await fn(prompts=prompts, completions=completions, **columns, **kwargs)
    else:
        def bound(prompts, completions, **columns):
            return fn(prompts=prompts, completions=completions, **columns, **kwargs)

    bound.__name__ = getattr(fn, "__name__", type(fn).__name__)
    bound.__wrapped__ = fn
    try:  # what the bound function still takes: a check of it must not ask again for what `kwargs` supplies
        sig = inspect.signature(fn)
        bound.__signature__ = sig.replace(parameters=[p for p in sig.parameters.values() if p.name not in kwargs])
    except (TypeError, ValueError):  # a callable without a signature: the checks skip it anyway
        pass
    return bound


def resolve_model(spec: str, ctx) -> Path:
    if spec in ctx.outputs:
        return Path(ctx.outputs[spec])
    folder = local(spec, ctx.recipe_dir)
    if folder is None:
        raise RlftError(f"reward model {spec!r}: no such stage output or folder")
    return folder


def is_async_callable(fn) -> bool:
    """Whether calling `fn` gives a coroutine: an `async def`, or an object whose `__call__` is one (as TRL checks)."""
    while hasattr(fn, "func") and hasattr(fn, "args"):  # functools.partial
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def as_async(checked: CheckedReward):
    """`checked` as an `async def` function (what `inspect.iscoroutinefunction` and TRL recognise), same name."""
    async def reward(prompts, completions, **kwargs):
        return await checked.acall(prompts, completions, **kwargs)

    reward.__name__ = reward.__qualname__ = checked.__name__
    reward.checked = checked  # its state: recent values, call count, time
    return reward


def state(reward) -> CheckedReward:
    """The CheckedReward behind a built reward (sync wrappers are their own state)."""
    return getattr(reward, "checked", reward)


class CheckedReward:
    """A reward under TRL's contract whose every return value is checked; raises `RlftError` on a bad one.

    >>> r = CheckedReward(lambda prompts, completions, **kw: [len(c) / 10 for c in completions], "length")
    >>> r(prompts=["Hi", "Hi"], completions=["Hello!", "Hey"])
    [0.6, 0.3]
    >>> CheckedReward(lambda prompts, completions, **kw: [float("nan")] * 2, "bad")(["a", "b"], ["x", "y"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    rlft.errors.RlftError: reward 'bad' returned nan for sample 0 of 2 (completion: 'x'). Return None ...
    """

    def __init__(self, fn, name: str, nan_as_none: bool = False, recorder=None, timeout: float | None = DEFAULT_TIMEOUT,
                 guard: AllNoneGuard | None = None):
        self.fn = fn
        self.recorder = recorder  # keeps a few scored completions for samples.jsonl
        self.__name__ = name  # what TRL logs: rewards/<name>/mean
        self.nan_as_none, self.timeout, self.guard = nan_as_none, timeout, guard
        self.is_async = is_async_callable(fn)
        self.calls, self.seconds = 0, 0.0
        self.recent: list[float] | None = None  # values since the last log, kept once `log_callback` asks for them

    def __call__(self, prompts, completions, **kwargs):
        """Synchronous call (an async reward is run to completion here)."""
        if self.is_async:
            return run_coroutine(self.acall(prompts, completions, **kwargs))
        started = time.perf_counter()
        values = self._guarded(self._in_thread, prompts, completions, kwargs)
        return self._finish(values, prompts, completions, started)

    async def acall(self, prompts, completions, **kwargs):
        """Asynchronous call: awaits an async reward under its time limit (a sync one runs in a thread)."""
        started = time.perf_counter()
        if not self.is_async:
            values = await asyncio.to_thread(self._guarded, self._in_thread, prompts, completions, kwargs)
            return self._finish(values, prompts, completions, started)
        try:
            values = await asyncio.wait_for(self.fn(prompts=prompts, completions=completions, **kwargs), self.timeout)
        except asyncio.TimeoutError:
            raise RlftError(self._too_slow(completions)) from None
        except RlftError:
            raise
        except Exception as e:
            raise RlftError(self._raised(e, completions)) from e
        return self._finish(values, prompts, completions, started)

    def _guarded(self, call, prompts, completions, kwargs):
        try:
            return call(prompts, completions, kwargs)
        except RlftError:
            raise
        except Exception as e:
            raise RlftError(self._raised(e, completions)) from e

    def _in_thread(self, prompts, completions, kwargs):
        if self.timeout is None:
            return self.fn(prompts=prompts, completions=completions, **kwargs)
        box = {}

        def target():
            try:
                box["values"] = self.fn(prompts=prompts, completions=completions, **kwargs)
            except BaseException as e:  # handed to the caller's thread
                box["error"] = e

        worker = threading.Thread(target=target, name=f"reward {self.__name__}", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            raise RlftError(self._too_slow(completions))
        if "error" in box:
            raise box["error"]
        return box["values"]

    def _too_slow(self, completions) -> str:
        return (f"reward {self.__name__!r} did not return within its time limit of {self.timeout:g} s (scoring "
                f"{len(completions)} completions). If it is just slow, raise timeout: on this reward (or rlft rewards "
                "check --timeout); if it hangs, fix it. A stuck synchronous call cannot be killed: its thread is left "
                "behind until the process ends")

    def _raised(self, e: Exception, completions) -> str:
        return (f"reward {self.__name__!r} raised {error_line(e)}{_where(e)} while scoring samples "
                f"0-{len(completions) - 1} (sample 0: {_preview(completions[0])}). Fix the function; try it with: "
                "rlft rewards check RECIPE")

    def _finish(self, values, prompts, completions, started: float) -> list[float | None]:
        self.seconds += time.perf_counter() - started
        self.calls += 1
        out = self._checked(values, completions)
        if self.recent is not None:
            self.recent.extend(v for v in out if v is not None)
        if self.recorder is not None:
            self.recorder.record(self.__name__, prompts, completions, out)
        if self.guard is not None:
            self.guard.report(completions, self.__name__, out)
        return out

    def _checked(self, values, completions) -> list[float | None]:
        n = len(completions)
        if isinstance(values, (str, bytes, dict)) or not hasattr(values, "__len__"):
            raise RlftError(f"reward {self.__name__!r} returned {_show(values)} ({type(values).__name__}) instead of "
                            f"a list of {n} numbers (one per completion)")
        if len(values) != n:
            raise RlftError(f"reward {self.__name__!r} returned {len(values)} value{'s' * (len(values) != 1)} for {n} "
                            "completions; it must return exactly one value (a number or None) per completion, in order")
        out = []
        for i, value in enumerate(values):
            number = _number(value)
            if value is not None and number is None:
                raise RlftError(f"reward {self.__name__!r} returned {_show(value)} ({type(value).__name__}) for "
                                f"sample {i} of {n} (completion: {_preview(completions[i])}); a reward must be a "
                                "number, or None to skip the sample")
            if number is not None and math.isnan(number) and self.nan_as_none:
                number = None
            elif number is not None and not math.isfinite(number):
                fix = ("Return None for samples the reward does not apply to, or set nan_as_none: true on this reward"
                       if math.isnan(number) else "Rewards must be finite; clip the value")
                raise RlftError(f"reward {self.__name__!r} returned {number} for sample {i} of {n} (completion: "
                                f"{_preview(completions[i])}). {fix}")
            out.append(number)
        return out


class AllNoneGuard:
    """Stops a stage when every one of its rewards returned None for every completion of one batch.

    TRL hands all rewards of a batch the same `completions` list, so the batch is known by that list's identity.
    """

    def __init__(self, n_rewards: int):
        self.n_rewards = n_rewards
        self.batches: dict[int, tuple[int, bool]] = {}
        self.lock = threading.Lock()  # sync rewards report from TRL's thread, async ones from its event loop

    def report(self, completions, name: str, values: list) -> None:
        with self.lock:
            seen, any_value = self.batches.pop(id(completions), (0, False))
            seen, any_value = seen + 1, any_value or any(v is not None for v in values)
            if seen < self.n_rewards:
                self.batches[id(completions)] = (seen, any_value)
                return
        if not any_value:
            which = "the stage's only reward" if self.n_rewards == 1 else f"all {self.n_rewards} rewards"
            raise RlftError(f"{which} returned None for every one of the {len(completions)} completions of a batch "
                            f"(last: {name!r}, sample 0: {_preview(completions[0])}); the trainer would train on "
                            "nothing with loss 0. Check that the rewards apply to this data (the columns they read, "
                            "the format they expect); try them with: rlft rewards check RECIPE")


def run_coroutine(coro):
    """Run a coroutine to completion from synchronous code, also when the calling thread has a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    worker = threading.Thread(target=target, daemon=True)  # its own loop: this thread's is busy calling us
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def trl_extras() -> dict:
    """What TRL's GRPOTrainer passes to every reward besides the data (contract.ALWAYS_PASSED), for rlft's own calls."""
    from transformers import TrainerState

    values = {"completion_ids": None, "trainer_state": TrainerState(), "log_extra": lambda *a, **k: None,
              "log_metric": lambda *a, **k: None}
    return {key: values[key] for key in ALWAYS_PASSED}


def call_all(rewards: list, prompts: list, completions: list, columns: dict,
             return_exceptions: bool = False) -> list:
    """Call every reward as TRL's GRPOTrainer does (same keyword arguments); one list of values per reward.

    Sync rewards run one after the other, then the async ones concurrently (asyncio.gather), as in TRL. With
    `return_exceptions` an `RlftError` takes the place of a failed reward's values instead of being raised.
    """
    kwargs = {"prompts": prompts, "completions": completions, **columns, **trl_extras()}
    results: list = [None] * len(rewards)
    waiting = []
    for i, reward in enumerate(rewards):
        if inspect.iscoroutinefunction(reward):
            waiting.append(i)
            continue
        try:
            results[i] = reward(**kwargs)
        except RlftError as e:
            if not return_exceptions:
                raise
            results[i] = e

    async def gather():
        return await asyncio.gather(*(rewards[i](**kwargs) for i in waiting), return_exceptions=return_exceptions)

    if waiting:
        for i, value in zip(waiting, run_coroutine(gather())):
            if isinstance(value, BaseException) and not isinstance(value, RlftError):
                raise value
            results[i] = value
    return results


def weighted(per_reward: list[list[float | None]], weights: list[float]) -> list[float | None]:
    """Per-sample weighted sum, skipping None (TRL's nansum); None where every reward skipped the sample."""
    out = []
    for values in zip(*per_reward):
        present = [w * v for w, v in zip(weights, values) if v is not None]
        out.append(sum(present) if present else None)
    return out


def recent_means(rewards: list) -> dict:
    """`rewards/<name>/mean` and `/std` over the values since the last call (for trainers that do not log them)."""
    logs = {}
    for r in map(state, rewards):
        if r.recent:  # None (not collecting) or empty: nothing to log
            mean = sum(r.recent) / len(r.recent)
            logs[f"rewards/{r.__name__}/mean"] = mean
            logs[f"rewards/{r.__name__}/std"] = (sum((v - mean) ** 2 for v in r.recent) / len(r.recent)) ** 0.5
            r.recent.clear()
    return logs


def log_callback(rewards: list):
    """A TrainerCallback that adds `recent_means` to every log, before metrics.jsonl is written."""
    from transformers import TrainerCallback

    for reward in rewards:
        state(reward).recent = []

    class RewardMeans(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs is not None and "loss" in logs:
                logs.update(recent_means(rewards))

    return RewardMeans()


def _number(value) -> float | None:
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # 0-d torch tensor / numpy array
        item = value.item()
        return float(item) if isinstance(item, numbers.Real) else None
    return None


def _preview(completion, width: int = 60) -> str:
    text = as_text(completion).replace("\n", " ")
    return repr(text[:width] + ("..." if len(text) > width else ""))


def _show(value, width: int = 40) -> str:
    text = repr(value)
    return text[:width] + ("..." if len(text) > width else "")


def _where(e: BaseException) -> str:
    frames = traceback.extract_tb(e.__traceback__)
    if len(frames) < 2:
        return ""
    last = frames[-1]
    return f" at {Path(last.filename).name}:{last.lineno}"
