"""rlft entry point: run a recipe's stages in order.

    accelerate launch rlft/run.py recipes/polite_assistant.yaml [stages.sft.args.max_steps=5 ...]
        [--output-dir DIR] [--dry-run] [--fresh]

parse -> validate -> for each stage: run it from the previous policy stage's output -> summary.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:
    # `accelerate launch rlft/run.py` puts rlft/ itself first on sys.path; put the repository root there instead,
    # so `rlft` imports as a package and none of its module names can shadow a library.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import tempfile  # noqa: E402
import time  # noqa: E402

from rlft import models, recipe as recipes  # noqa: E402
from rlft.errors import RlftError  # noqa: E402
from rlft.runfolder import RunFolder, section_hash  # noqa: E402
from rlft.stages import common, dpo, grpo, online_dpo, ppo, reward_model, rloo, sft  # noqa: E402

# stage type -> module with STAGE_KEYS, check(stage, path, ctx) and run(stage, ctx)
STAGES = {
    "sft": sft,
    "ppo": ppo,
    "grpo": grpo,
    "rloo": rloo,
    "dpo": dpo,
    "online_dpo": online_dpo,
    "reward_model": reward_model,  # POLICY = False: the next stage starts from the policy before it
}


def load(recipe_path: str | Path, overrides: list[str] = ()) -> dict:
    """Read, override and validate a recipe; raises RecipeError listing every problem."""
    recipe_path = Path(recipe_path)
    raw = recipes.read_yaml(recipe_path)
    raw = recipes.apply_overrides(raw, list(overrides), str(recipe_path))
    return recipes.validate(raw, str(recipe_path), STAGES, recipe_path.resolve().parent)


def run(recipe_path: str | Path, overrides: list[str] = (), output_dir: str | None = None,
        dry_run: bool = False, fresh: bool = False) -> Path:
    """Run every stage of a recipe; returns the run folder."""
    from accelerate import PartialState
    from transformers import set_seed

    recipe_path = Path(recipe_path)
    recipe = load(recipe_path, overrides)
    recipe_dir = recipe_path.resolve().parent
    state = PartialState()
    root = output_dir or recipe["output_dir"] or f"runs/{recipe['name']}"
    folder = RunFolder(tempfile.mkdtemp(prefix="rlft-dry-run-") if dry_run else root, state.is_main_process)
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
        status = folder.stage_state(stage_dir, digest)
        if status == "complete":
            summaries.append({**folder.completed_summary(stage_dir), "stage": stage["name"], "skipped": True})
        else:
            source = outputs.get(stage["init_from"], outputs.get("__last__", base))
            ctx = common.StageContext(
                index=index, stage_dir=stage_dir, model_source=policy_source(source, state),
                recipe=recipe, recipe_dir=recipe_dir, dtype=models.pick_dtype(recipe["dtype"]),
                tensorboard_dir=folder.tensorboard_dir(stage["name"]), callbacks=[folder.metrics_callback(stage["name"])],
                resume=status == "interrupted" and any(stage_dir.glob("checkpoints/checkpoint-*")),
                dry_run=dry_run, template=template, outputs={k: v for k, v in outputs.items() if k != "__last__"},
            )
            folder.mark_started(stage_dir, digest)
            started = time.time()
            metrics = STAGES[stage["type"]].run(stage, ctx)
            template = ctx.template
            summary = {"stage": stage["name"], "type": stage["type"], "seconds": round(time.time() - started, 1),
                       "output": str(stage_dir), "metrics": _plain(metrics)}
            state.wait_for_everyone()
            if not dry_run:
                folder.mark_complete(stage_dir, digest, summary)
            summaries.append(summary)
        outputs[stage["name"]] = str(stage_dir)
        if getattr(STAGES[stage["type"]], "POLICY", True):
            outputs["__last__"] = str(stage_dir)
    if state.is_main_process:
        from rlft.report import print_summary

        print_summary(folder.root, summaries, dry_run)
    return folder.root


def policy_source(source: str, state) -> str:
    """A stage output with a LoRA adapter is merged into full weights once (stage/merged), so the next stage's
    policy and its KL reference both start from the fine-tuned model, not the base model under the adapter."""
    path = Path(source)
    if not (path / "adapter_config.json").is_file():
        return source
    merged = path / "merged"
    if state.is_main_process and not (merged / "config.json").is_file():
        models.merge_adapter(path, merged)
    state.wait_for_everyone()
    return str(merged)


def _plain(metrics: dict) -> dict:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()
            if isinstance(v, (int, float, str))}


def main(argv: list[str] | None = None) -> None:
    from rlft.cli import main as cli_main

    cli_main(["run", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
