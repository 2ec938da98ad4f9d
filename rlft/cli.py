"""The `rlft` command: run, validate, merge, chat, rewards check, serve-reward, compare, eval.

User mistakes (`RlftError`) print one clear message and exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rlft import command_line
from rlft.command_line import existing_file, folder, number, size
from rlft.errors import RlftError, user_errors
from rlft.runfolder import RunFolder, check_export_target, stage_info


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlft", description="RLHF-style fine-tuning from one YAML recipe, through TRL.")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a recipe (same as: accelerate launch rlft/run.py RECIPE)")
    command_line.add_run_arguments(run)

    val = sub.add_parser("validate", help="check a recipe without loading any model")
    val.add_argument("recipe")
    val.add_argument("overrides", nargs="*")

    merge = sub.add_parser("merge", help="merge a LoRA stage into full weights")
    merge.add_argument("path", help="run folder (its last stage) or stage folder")
    merge.add_argument("--out", required=True, help="folder to write the merged model to (new or empty)")
    merge.add_argument("--force", action="store_true", help="replace --out if it holds a model folder from an "
                       "earlier merge (only model and tokenizer files; anything else is refused)")

    chat = sub.add_parser("chat", help="talk to a trained stage, with the template it was trained with")
    chat.add_argument("path", help="run folder (its last stage) or stage folder")
    chat.add_argument("--prompt", help="answer this one prompt and exit")
    chat.add_argument("--max-new-tokens", type=number("--max-new-tokens", int, 1, example="200"), default=200)
    chat.add_argument("--temperature", type=number("--temperature", float, 0, example="0.7"), default=0.0,
                      help="0 = greedy")

    plan = sub.add_parser("plan", help="estimate each stage's peak memory per device and whether it fits; no download")
    plan.add_argument("recipe")
    plan.add_argument("overrides", nargs="*")
    plan.add_argument("--gpus", type=number("--gpus", int, 1, example="8"),
                      help="processes (GPUs) to plan for (default: the config's num_processes "
                      "or 1)")
    plan.add_argument("--gpu-mem", type=size, default="80GB", help="memory per device, e.g. 24GB, 80GB (default 80GB)")
    plan.add_argument("--config", type=existing_file("accelerate config"),
                      help="accelerate profile it will be launched with, e.g. configs/zero3.yaml")
    plan.add_argument("--model-config", type=existing_file("model's config.json"),
                      help="the model's config.json, for a hub model not in the local cache")
    plan.add_argument("--cpu", action="store_true", help="plan for CPU processes (bf16 on a CPU with AMX, else fp32; "
                      "no gradient checkpointing)")

    rewards = sub.add_parser("rewards", help="work with a recipe's reward functions")
    rewards_sub = rewards.add_subparsers(dest="rewards_command", required=True)
    check = rewards_sub.add_parser("check", help="run every reward on a few samples and print its statistics")
    check.add_argument("recipe")
    check.add_argument("overrides", nargs="*")
    check.add_argument("--n", type=number("--n", int, 1, example="16"), default=16, help="data rows (prompts) to score")
    check.add_argument("--k", type=number("--k", int, 1, example="4"),
                       help="completions per prompt (default: the stage's num_generations)")
    check.add_argument("--stage", help="only this stage (default: every stage with rewards)")
    check.add_argument("--completions", type=existing_file("completions .jsonl"),
                       help=".jsonl of {prompt, completion} to score instead of sampling")
    check.add_argument("--output-dir", type=folder,
                       help="run folder whose finished stages to sample from (default runs/<name>)")
    check.add_argument("--timeout", type=float, help="seconds one reward call may take (default: each reward's "
                       "timeout:, else 300)")

    serve = sub.add_parser("serve-reward", help="serve a reward over HTTP (POST /score, OpenRLHF's POST /get_reward, "
                           "GET /health), for a recipe's url: rewards")
    serve.add_argument("spec", help="module.path:function, file.py:function, or a reward model folder")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                       "only; 0.0.0.0 for every interface, with --token-env)")
    serve.add_argument("--port", type=number("--port", int, 0, below=65536, example="8000"), default=8000,
                       help="default 8000; 0 = any free port (printed)")
    serve.add_argument("--token-env", help="environment variable holding a bearer token every request must send")
    serve.add_argument("--kwargs", help="JSON object of keyword arguments bound to the function, as kwargs: in a "
                       "recipe")
    serve.add_argument("--max-batch", type=number("--max-batch", int, 1, example="64"), default=64,
                       help="a reward model scores up to this many "
                       "completions of concurrent requests at once (default 64)")
    serve.add_argument("--max-request-mb", type=number("--max-request-mb", float, 0.001, example="32"), default=32,
                       help="largest request body (default 32 MB)")
    serve.add_argument("--timeout", type=float, default=300, help="seconds one reward call may take (default 300)")

    compare = sub.add_parser("compare", help="overlay runs' curves in one PNG; table per run and stage; recipe diff")
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR")
    compare.add_argument("--metric", default="reward", help="reward (default), kl, entropy, length, loss or any "
                         "logged key, e.g. rewards/politeness/mean")
    compare.add_argument("--smooth", type=number("--smooth", float, 0, below=1, example="0.9"), default=0.9,
                         help="EMA weight in [0, 1); 0 = raw")
    compare.add_argument("--x", choices=("step", "samples"), default="step", help="x axis: optimizer steps or "
                         "training samples seen")
    compare.add_argument("--out", default="curves.png", help="PNG to write (default curves.png); a folder gets "
                         "FOLDER/curves.png")

    evaluation = sub.add_parser("eval", help="(re)run a run's held-out evaluation: base, every stage, final model")
    evaluation.add_argument("run", metavar="RUN_DIR")
    evaluation.add_argument("--prompts", type=existing_file("held-out prompts .jsonl"),
                            help="held-out prompts .jsonl (default: the recipe's eval.prompts)")
    evaluation.add_argument("--max-new-tokens", type=number("--max-new-tokens", int, 1, example="96"))
    evaluation.add_argument("--limit", type=number("--limit", int, 1, example="20"), help="only the first N prompts")
    return p


def parse(argv: list[str] | None = None):
    """The parsed command line; `key=value` overrides may come before or after the options."""
    return command_line.parse_args(parser(), argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    # Each command imports its module when it runs: they pull in torch and TRL (run, merge, plan, rewards, eval) or
    # uvicorn (serve-reward), so `rlft --help` and `rlft compare` start fast. No cycle.
    with user_errors():
        if args.command == "run":
            from rlft.run import run  # imports torch and TRL: deferred, so `rlft compare` and `--help` start fast

            run(args.recipe, args.overrides, args.output_dir, args.dry_run, args.fresh, args.profile)
        elif args.command == "validate":
            validate(args.recipe, args.overrides)
        elif args.command == "merge":
            from rlft.stage_models import merge_adapter

            stage, out = stage_folder(args.path), Path(args.out)
            check_export_target(stage, out, args.force)
            earlier = out.is_dir() and any(out.iterdir())  # a model folder from an earlier merge (--force)
            merge_adapter(stage, out, replace=True)
            print(f"merged model written to {out}{' (it replaced the model folder there)' if earlier else ''}; loads "
                  "with AutoModelForCausalLM.from_pretrained")
        elif args.command == "chat":
            chat(stage_folder(args.path), args.prompt, args.max_new_tokens, args.temperature)
        elif args.command == "plan":
            from rlft.plan import plan, print_plan

            print_plan(plan(args.recipe, args.overrides, args.gpus, args.gpu_mem, args.config, args.model_config,
                            args.cpu))
        elif args.command == "rewards":
            from rlft.rewards_check import preflight

            preflight(args.recipe, args.overrides, args.n, args.k, args.stage, args.completions, args.output_dir,
                      args.timeout)
        elif args.command == "serve-reward":
            from rlft.reward_server import serve

            serve(args.spec, args.host, args.port, args.token_env, args.max_batch, args.kwargs, args.max_request_mb,
                  args.timeout)
        elif args.command == "compare":
            from rlft.compare import compare

            compare(args.runs, args.metric, args.smooth, args.out, args.x)
        elif args.command == "eval":
            from rlft.evaluation import evaluate_folder

            evaluate_folder(args.run, args.prompts, args.max_new_tokens, args.limit)


def validate(recipe_path: str, overrides: list[str]) -> None:
    from rlft.stages import load  # imports torch and TRL: deferred, so `rlft compare` and `--help` start fast

    recipe = load(recipe_path, overrides)
    stages = ", ".join(f"{s['name']} ({s['type']})" for s in recipe["stages"])
    print(f"{recipe_path}: OK - {len(recipe['stages'])} stage(s): {stages}")


def stage_folder(path: str) -> Path:
    """A stage folder as given, or the last finished stage of a run folder."""
    folder = Path(path)
    if (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file():
        return folder
    done = list(RunFolder(folder, is_main=False).finished_stages().values())
    if not folder.is_dir():
        raise RlftError(f"{path}: no such folder; give a run folder (runs/NAME) or one of its stages/NN_name folders")
    if not done:
        raise RlftError(f"{path}: not a finished run or stage folder (no stages/*/stage_complete.json, no model "
                        "files); run the recipe first, or point at a stage folder")
    return done[-1]


def chat(folder: Path, prompt: str | None, max_new_tokens: int, temperature: float) -> None:
    from rlft.generation import generate  # imports torch when called: deferred with the models, as above
    from rlft.stage_models import load_for_inference

    template = stage_info(folder).get("template", {})
    model, tokenizer = load_for_inference(folder)
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}

    def answer(text: str) -> str:
        return generate(model, tokenizer, [text], max_new_tokens=max_new_tokens, template=template,
                        **sampling)[0][0].text.strip()

    if prompt is not None:
        print(answer(prompt))
        return
    print(f"chatting with {folder} (empty line or Ctrl-D to quit)")
    while True:
        try:
            text = input("you> ").strip()
        except EOFError:
            break
        if not text:
            break
        print(f"model> {answer(text)}")


if __name__ == "__main__":
    main()
