"""rlft entry point: run a recipe's stages in order.

    accelerate launch rlft/run.py recipes/polite_assistant.yaml [stages.sft.args.max_steps=5 ...]
        [--output-dir DIR] [--dry-run] [--fresh] [--profile]

parse -> validate -> for each stage: run it from the previous policy stage's output -> eval (if the recipe has
one) -> summary.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # `accelerate launch rlft/run.py` puts rlft/ itself first on sys.path; put the repository root there instead,
    # so `rlft` imports as a package and none of its module names can shadow a library.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import contextlib  # noqa: E402
import ctypes  # noqa: E402
import gc  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from rlft import command_line, compat, evaluation, models, stage_models  # noqa: E402
from rlft.errors import RlftError, user_errors  # noqa: E402
from rlft.launch import on_main_process  # noqa: E402
from rlft.report import print_summary  # noqa: E402
from rlft.provenance import section_hash  # noqa: E402
from rlft.runfolder import RunFolder  # noqa: E402
from rlft.stages import STAGES, common, load  # noqa: E402

def run(recipe_path: str | Path, overrides: list[str] = (), output_dir: str | None = None,
        dry_run: bool = False, fresh: bool = False, profile: bool = False) -> Path:
    """Run every stage of a recipe; returns the run folder (for a dry run: the temporary one, already removed).
    `profile` writes stages/NN_name/profile.json."""
    recipe_path = Path(recipe_path)
    state = distributed_state()  # first: validation builds TRL configs, which read the world size
    try:
        # a dry run writes into a temporary folder, removed when it ends: it leaves nothing behind
        with tempfile.TemporaryDirectory(prefix="rlft-dry-run-") if dry_run else contextlib.nullcontext() as scratch:
            root = _run(state, recipe_path, overrides, scratch or output_dir, dry_run, fresh, profile)
            state.wait_for_everyone()
    finally:
        shutdown(state)
    return root


def _run(state, recipe_path: Path, overrides, output_dir, dry_run, fresh, profile=False) -> Path:
    from transformers import set_seed

    recipe = load(recipe_path, overrides)
    recipe_dir = recipe_path.resolve().parent
    root = output_dir or recipe["output_dir"] or f"runs/{recipe['name']}"
    label = f"--output-dir {root}" if output_dir else f"output_dir: {root} (recipe)" if recipe["output_dir"] else None
    # absolute, so paths recorded in stage outputs (an adapter's base model) do not depend on the working directory
    folder = RunFolder(Path(root).absolute(), state.is_main_process, label)
    folder.check()  # every process: a refused folder stops them all, before anything is written
    state.wait_for_everyone()
    folder.prepare(fresh)
    state.wait_for_everyone()
    base = models.resolve(recipe["model"], recipe_dir)
    folder.write_resolved(recipe)
    folder.write_lock(recipe_path, recipe, recipe_dir, base)
    set_seed(recipe["seed"])

    outputs, summaries, previous, template = {}, [], "", {"kind": "chat"}
    for index, stage in enumerate(recipe["stages"]):
        stage_dir = folder.stage_dir(index, stage["name"])
        digest = section_hash(previous, stage, recipe, recipe_dir)
        previous = digest
        status, checkpoint = folder.stage_state(stage_dir, digest)
        produced = str(stage_dir)
        if status == "complete":
            summaries.append({**folder.completed_summary(stage_dir), "stage": stage["name"], "skipped": True})
        else:
            source = outputs.get(stage["init_from"], outputs.get("__last__", base))
            ctx = common.StageContext(
                index=index, stage_dir=stage_dir, model_source=stage_models.policy_source(source, state),
                recipe=recipe, recipe_dir=recipe_dir, dtype=models.pick_dtype(recipe["dtype"]),
                tensorboard_dir=folder.tensorboard_dir(stage["name"]),
                callbacks=[folder.metrics_callback(stage["name"]), folder.samples_callback(stage["name"])],
                resume=checkpoint, run_dir=folder.root,
                dry_run=dry_run, template=template, outputs={k: v for k, v in outputs.items() if k != "__last__"},
                profile_path=folder.profile_path(stage_dir) if profile and not dry_run else None,
            )
            folder.mark_started(stage_dir, digest)
            state.wait_for_everyone()  # the main process may have reset the stage folder
            started = time.time()
            metrics = STAGES[stage["type"]].run(stage, ctx)
            free_memory()  # the stage's model, reference and trainer go before the next stage loads its own
            template = ctx.template
            summary = {"stage": stage["name"], "type": stage["type"], "seconds": round(time.time() - started, 1),
                       "output": str(stage_dir), "metrics": _plain(metrics)}
            if ctx.profile_path is not None and ctx.profile_path.is_file():
                summary["profile"] = folder.read_profile(stage_dir)
            state.wait_for_everyone()
            if not dry_run:
                folder.mark_complete(stage_dir, digest, summary)
            else:  # nothing was trained or saved: the next stage loads what this one started from
                produced = ctx.model_source
            summaries.append(summary)
        outputs[stage["name"]] = produced
        if STAGES[stage["type"]].POLICY:  # reward_model: the next stage starts from the policy before it
            outputs["__last__"] = produced
    if recipe["eval"] is not None and not dry_run:
        # generation is short next to training: one process does it, the others wait (and hear if it fails)
        on_main_process(state, "the eval", evaluation.after_run, folder.root, recipe, recipe_dir, previous)
    if state.is_main_process:
        print_summary(folder.root, summaries, dry_run)
    return folder.root


def distributed_state():
    """This process's accelerate state, created before anything else reads it.

    Launched as several processes (torchrun, `accelerate launch --config_file configs/cpu_multi.yaml`) on a machine
    without GPUs, accelerate would give every rank distributed type NO and rank 0: each would train on all the data and
    write the run folder. ACCELERATE_USE_CPU makes it (and every TrainingArguments built later) use gloo CPU processes.
    """
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    has_accelerator = torch.accelerator.is_available() if hasattr(torch, "accelerator") else torch.cuda.is_available()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not has_accelerator:
        os.environ["ACCELERATE_USE_CPU"] = "true"
    if not has_accelerator:
        torch.set_num_threads(cpu_threads())
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def cpu_threads() -> int:
    """Torch threads for this process on a machine without GPUs.

    `accelerate launch` without a config that says use_cpu exports OMP_NUM_THREADS=1 to the script, so a single
    process would train on one core and leave the rest idle (half of a 2-core machine, 1/16 of a 16-core one). rlft
    gives each process its share of the cores instead, unless OMP_NUM_THREADS says something else or RLFT_NUM_THREADS
    sets the number (`RLFT_NUM_THREADS=1` keeps one thread).
    """
    import torch

    wanted = os.environ.get("RLFT_NUM_THREADS", "").strip()
    if wanted:
        if not wanted.isdigit() or int(wanted) < 1:
            raise RlftError(f"RLFT_NUM_THREADS={wanted!r}: expected a whole number of threads >= 1, "
                            "e.g. RLFT_NUM_THREADS=4")
        return int(wanted)
    launched = "ACCELERATE_MIXED_PRECISION" in os.environ  # exported by `accelerate launch`, with OMP_NUM_THREADS
    if not launched or os.environ.get("OMP_NUM_THREADS") != "1":
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def free_memory() -> None:
    """Collect the last stage's model, optimizer and trainer (they hold reference cycles); return cached GPU memory."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    release_heap()


def release_heap() -> None:
    """Hand freed heap memory back to the OS (glibc keeps it, so the next stage would start with the last one's peak
    RSS); a no-op off glibc."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def shutdown(state) -> None:
    """Destroy the process group before the interpreter exits (without it, a rank can abort at exit), and forget the
    accelerate state so a later run in this process starts clean."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
        compat.reset_accelerate_state()


def _plain(metrics: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()
            if isinstance(v, (int, float, str))}


def main(argv: list[str] | None = None) -> None:
    """`accelerate launch rlft/run.py RECIPE [key=value ...] [--output-dir DIR] [--dry-run] [--fresh]`."""
    p = argparse.ArgumentParser(prog="rlft run", description="run a recipe")
    args = command_line.parse_args(command_line.add_run_arguments(p), argv)
    with user_errors():
        run(args.recipe, args.overrides, args.output_dir, args.dry_run, args.fresh, args.profile)


if __name__ == "__main__":
    main()
