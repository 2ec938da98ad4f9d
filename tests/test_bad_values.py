"""Bad values, models, data files and flags: each one is a clear message with the YAML path, file, line or flag and
the fix, exit code 2, no traceback, no user file touched and no run folder left behind.

Most cases call `rlft.cli.main` in this process (a second each); `test_real_cli_process` runs a few through the real
console script, and `test_learning_rate_written_2e_4_trains` is the one real run.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import messages_rows, preference_rows, prompt_rows, write_jsonl
from rlft.cli import main
from rlft.errors import EXIT_USER_ERROR

REWARD = "{fn: reward_models.guards:repetition_penalty}"


def sft(args: str = "", lora: str = "r: 4, target_modules: all-linear", quant: str = "", data: str = "chat.jsonl",
        model: str = "MODEL") -> str:
    quant_line = f"\n    quantization: {{{quant}}}" if quant else ""
    return (f"name: t\nmodel: {model}\nstages:\n  - name: sft\n    type: sft\n    data: {{train: {data}}}\n"
            f"    lora: {{{lora}}}{quant_line}\n    args: {{max_steps: 1{', ' + args if args else ''}}}\n")


def online(stype: str, args: str = "", data: str = "prompts.jsonl", rewards: str = f"[{REWARD}]") -> str:
    reward_line = f"\n    rewards: {rewards}" if rewards else ""
    return (f"name: t\nmodel: MODEL\nstages:\n  - name: rl\n    type: {stype}\n    data: {{train: {data}}}"
            f"{reward_line}\n    args: {{max_steps: 1{', ' + args if args else ''}}}\n")


# name: (recipe text, [fragments the message must hold]). Fragments name the YAML path, the value and the fix.
RECIPES = {
    # --- args: -> the stage's TRL config, typed by its dataclass fields
    "lr text": (sft("learning_rate: abc"), ["stages[0].args.learning_rate: 'abc' is text",
                                            "SFTConfig.learning_rate takes a number", "e.g. learning_rate: 2.0e-05"]),
    "lr negative": (sft("learning_rate: -0.1"), ["stages[0].args.learning_rate: -0.1 is out of range", "above 0"]),
    "max_steps -5": (sft().replace("max_steps: 1", "max_steps: -5"),
                     ["stages[0].args.max_steps: -5 is out of range", "must be -1", "or at least 1"]),
    "hub id with --": (sft(model="my--org/model"), ["model: 'my--org/model' is not a local folder, and not a valid hub id",
                                                    "Cannot have -- or .."]),
    "max_steps 0": (sft().replace("max_steps: 1", "max_steps: 0"), ["stages[0].args.max_steps: 0 is out of range"]),
    "max_steps word": (sft().replace("max_steps: 1", "max_steps: ten"),
                       ["stages[0].args.max_steps: 'ten' is text", "SFTConfig.max_steps takes an integer"]),
    "max_steps fraction": (sft().replace("max_steps: 1", "max_steps: 8.5"),
                           ["stages[0].args.max_steps: 8.5 is not a whole number", "takes an integer"]),
    "epochs zero": (sft("num_train_epochs: 0"), ["stages[0].args.num_train_epochs: 0 is out of range", "above 0"]),
    "batch size zero": (sft("per_device_train_batch_size: 0"),
                        ["stages[0].args.per_device_train_batch_size: 0 is out of range", "at least 1"]),
    "grad accumulation negative": (sft("gradient_accumulation_steps: -1"),
                                   ["stages[0].args.gradient_accumulation_steps: -1 is out of range"]),
    "bool as text": (sft("bf16: 'yes'"), ["stages[0].args.bf16: 'yes' is text", "takes true or false",
                                          "without quotes"]),
    "bool as number": (sft("use_liger_kernel: 2"), ["stages[0].args.use_liger_kernel: 2 is an integer",
                                                    "takes true or false"]),
    "scheduler typo": (sft("lr_scheduler_type: cosin"), ["stages[0].args.lr_scheduler_type: 'cosin' is not one of",
                                                         "did you mean 'cosine'"]),
    "optimizer unknown": (sft("optim: adamw"), ["stages[0].args.optim: 'adamw' is not one of", "'adamw_torch'"]),
    "strategy unknown": (sft("eval_strategy: hourly"), ["stages[0].args.eval_strategy: 'hourly' is not one of",
                                                       "'steps', 'epoch'"]),
    "number for a string": (sft("run_name: 2024"), ["stages[0].args.run_name: 2024 is an integer",
                                                    "put it in quotes, e.g. run_name: '2024'"]),
    "metadata choices": (sft("truncation_mode: keep_middle"),
                         ["stages[0].args.truncation_mode: 'keep_middle' is not one of 'keep_end', 'keep_start'"]),
    "warmup negative": (sft("warmup_steps: -2"), ["stages[0].args.warmup_steps: -2 is out of range", "0 or more"]),
    "adam beta above 1": (sft("adam_beta1: 1.5"), ["stages[0].args.adam_beta1: 1.5 is out of range", "[0, 1)"]),
    "report_to number": (sft("report_to: 5"), ["stages[0].args.report_to: 5 is an integer",
                                               "takes a string or a list of strings"]),
    "kwargs not a mapping": (sft("model_init_kwargs: [1, 2]"),
                             ["stages[0].args.model_init_kwargs: [1, 2] is a list", "takes a mapping"]),
    "max_length zero": (sft("max_length: 0"), ["stages[0].args.max_length: 0 is out of range", "at least 1 token"]),
    "args seed negative": (sft("seed: -1"), ["stages[0].args.seed: -1 is out of range"]),
    "logging_steps zero": (sft("logging_steps: 0"), ["stages[0].args.logging_steps: 0 is out of range"]),
    "null for a number": (sft("learning_rate: null"), ["stages[0].args.learning_rate: None is empty (null)",
                                                       "takes a number"]),
    "top-level seed negative": ("name: t\nmodel: MODEL\nseed: -3\nstages:\n" + sft().split("stages:\n")[1],
                                ["seed: -3 is out of range", "e.g. seed: 42"]),
    # --- lora: -> peft.LoraConfig
    "lora r zero": (sft(lora="r: 0, target_modules: all-linear"),
                    ["stages[0].lora.r: 0 is out of range", "LoRA rank: at least 1", "e.g. r: 8"]),
    "lora r fraction": (sft(lora="r: 8.5"), ["stages[0].lora.r: 8.5 is not a whole number", "LoraConfig.r"]),
    "lora alpha zero": (sft(lora="r: 4, lora_alpha: 0"), ["stages[0].lora.lora_alpha: 0 is out of range"]),
    "lora dropout 1": (sft(lora="r: 4, lora_dropout: 1.0"), ["stages[0].lora.lora_dropout: 1.0 is out of range",
                                                            "[0, 1)"]),
    "lora dropout text": (sft(lora="r: 4, lora_dropout: abc"), ["stages[0].lora.lora_dropout: 'abc' is text",
                                                               "LoraConfig.lora_dropout takes a number"]),
    "lora bias literal": (sft(lora="r: 4, bias: some"), ["stages[0].lora.bias: 'some' is not one of 'none', 'all', "
                                                        "'lora_only'"]),
    "lora target number": (sft(lora="r: 4, target_modules: 5"),
                           ["stages[0].lora.target_modules: 5 is an integer", "a list of strings or a string"]),
    "lora bool as text": (sft(lora="r: 4, use_rslora: 'true'"), ["stages[0].lora.use_rslora: 'true' is text",
                                                                 "without quotes"]),
    # --- quantization: -> BitsAndBytesConfig (no annotations: the types its docstring documents)
    "quant bool as text": (sft(quant="load_in_4bit: 'yes'"), ["stages[0].quantization.load_in_4bit: 'yes' is text",
                                                              "BitsAndBytesConfig.load_in_4bit takes true or false"]),
    "quant threshold text": (sft(quant="load_in_8bit: true, llm_int8_threshold: abc"),
                             ["stages[0].quantization.llm_int8_threshold: 'abc' is text", "takes a number"]),
    # --- other stages and their config classes
    "grpo one generation": (online("grpo", "num_generations: 1"),
                            ["stages[0].args.num_generations: 1 is out of range", "at least 2"]),
    "grpo temperature zero": (online("grpo", "temperature: 0"), ["stages[0].args.temperature: 0 is out of range"]),
    "grpo beta negative": (online("grpo", "beta: -0.1"), ["stages[0].args.beta: -0.1 is out of range"]),
    "grpo top_p above 1": (online("grpo", "top_p: 1.5"), ["stages[0].args.top_p: 1.5 is out of range", "(0, 1]"]),
    "grpo iterations zero": (online("grpo", "num_iterations: 0"), ["stages[0].args.num_iterations: 0 is out of"]),
    "grpo completion length word": (online("grpo", "max_completion_length: long"),
                                    ["stages[0].args.max_completion_length: 'long' is text", "GRPOConfig"]),
    "ppo lr text": (online("ppo", "learning_rate: abc"), ["stages[0].args.learning_rate: 'abc' is text",
                                                          "GRPOConfig.learning_rate"]),
    "rloo one generation": (online("rloo", "num_generations: 1"), ["stages[0].args.num_generations: 1 is out of",
                                                                   "at least 2"]),
    "dpo beta text": (online("dpo", "beta: abc", data="prefs.jsonl", rewards=""),
                      ["stages[0].args.beta: 'abc' is text", "DPOConfig.beta takes a number"]),
    "dpo label smoothing": (online("dpo", "label_smoothing: 0.7", data="prefs.jsonl", rewards=""),
                            ["stages[0].args.label_smoothing: 0.7 is out of range", "[0, 0.5)"]),
    "dpo prompts only": (online("dpo", data="prompts.jsonl", rewards=""),
                         ["stages[0].data.train: holds prompts only", "add rewards:"]),
    "reward model length": (online("reward_model", "max_length: -3", data="prefs.jsonl", rewards=""),
                            ["stages[0].args.max_length: -3 is out of range"]),
    # --- models
    "model typo looks like hub id": (sft(model="tiny_lama/v1"),
                                     ["model: 'tiny_lama/v1' is not a local folder", "not in the local Hugging Face "
                                      "cache", "HF_HUB_OFFLINE", "did you mean ./tiny_llama?"]),
    "hub id not cached": (sft(model="some-org/not-here"), ["model: 'some-org/not-here'", "not in the local Hugging "
                                                          "Face cache"]),
    "gguf that is text": (sft(model="fake.gguf"), ["fake.gguf is not a GGUF file", "b'GGUF'"]),
    "custom code untrusted": (sft(model="custom"), ["model: custom: the model's config.json needs its own Python code",
                                                    "trust_remote_code: true", "only if you trust"]),
    # --- data files
    "data not utf8": (sft(data="latin1.jsonl"), ["stages[0].data.train", "latin1.jsonl: not UTF-8 text: byte 46",
                                                  "(line 1)", "save the file as UTF-8"]),
    "jsonl line not json": (sft(data="broken.jsonl"), ["broken.jsonl: line 3 is not JSON", "one JSON object per line"]),
    "jsonl line is a list": (sft(data="listline.jsonl"), ["listline.jsonl: line 2 is list", "not a JSON object"]),
    "jsonl only blank lines": (sft(data="blank.jsonl"), ["blank.jsonl: the data set is empty (only blank lines)"]),
    "json malformed": (sft(data="bad.json"), ["bad.json: not valid JSON at line 2"]),
    "empty assistant reply": (sft(data="noreply.jsonl"), ["noreply.jsonl: row 2", "the assistant's reply (the last "
                                                           "message) is empty"]),
    # --- the recipe file itself
    "recipe not utf8": (b"name: caf\xe9\n", ["recipe.yaml: not UTF-8 text: byte 9 (line 1)"]),
    "unclosed quote": ('name: t\nmodel: "MODEL\nseed: 3\nstages:\n  - name: sft\n    type: sft\n',
                       ["malformed YAML at line 2, column 8: a quoted string starts here and is not closed",
                        "Close the quote"]),
}
# these also go through `rlft run`, which must stop before it writes anything
ALSO_RUN = {"lr text", "lora r zero", "gguf that is text", "data not utf8", "custom code untrusted",
            "grpo one generation"}


@pytest.fixture
def workdir(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RLFT_CACHE", str(tmp_path / "cache"))
    write_jsonl(tmp_path / "chat.jsonl", messages_rows())
    write_jsonl(tmp_path / "prompts.jsonl", prompt_rows())
    write_jsonl(tmp_path / "prefs.jsonl", preference_rows())
    rows = messages_rows()
    (tmp_path / "latin1.jsonl").write_bytes(b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n')
    (tmp_path / "broken.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]) + "{messages: [}\n")
    (tmp_path / "listline.jsonl").write_text(json.dumps(rows[0]) + "\n[1, 2]\n")
    (tmp_path / "blank.jsonl").write_text("\n  \n\n")
    (tmp_path / "bad.json").write_text('[{"messages": []},\n {"messages": ]\n')
    rows[1]["messages"][-1]["content"] = "  "
    write_jsonl(tmp_path / "noreply.jsonl", rows)
    (tmp_path / "tiny_llama").symlink_to(tiny_model_dir)
    (tmp_path / "fake.gguf").write_text("this is not a model\n")
    (tmp_path / "custom").mkdir()
    (tmp_path / "custom" / "config.json").write_text(json.dumps(
        {"model_type": "my_arch", "auto_map": {"AutoModelForCausalLM": "modeling_my_arch.MyArchForCausalLM"}}))
    (tmp_path / "notes.txt").write_text("a file of the user's\n")
    return tmp_path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (symlinks not followed) -> sha256, to show nothing was deleted, changed or added."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*")) if not p.is_symlink()}


def run_cli(args, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        main([str(a) for a in args])
    captured = capsys.readouterr()
    return stop.value.code, captured.err + captured.out


def assert_clear(code: int, output: str, fragments: list[str]) -> None:
    assert code == EXIT_USER_ERROR, output
    assert "Traceback" not in output
    flat = " ".join(output.split())
    for fragment in fragments:
        assert fragment in flat, f"{fragment!r} not in:\n{output}"


@pytest.mark.parametrize("case", sorted(RECIPES))
def test_bad_recipe_value(case, workdir, tiny_model_dir, capsys):
    text, fragments = RECIPES[case]
    recipe = workdir / "recipe.yaml"
    if isinstance(text, bytes):
        recipe.write_bytes(text)
    else:
        recipe.write_text(text.replace("MODEL", str(tiny_model_dir)))
    before = snapshot(workdir)
    commands = [["validate", recipe]] + ([["run", recipe, "--output-dir", workdir / "run"]] if case in ALSO_RUN else [])
    for command in commands:
        assert_clear(*run_cli(command, capsys), fragments)
    assert snapshot(workdir) == before  # no user file deleted or changed, no run folder, nothing in the model cache


@pytest.mark.parametrize("override, fragments", [
    ("stages.sft.args.max_steps=ten", ["stages[0].args.max_steps: 'ten' is text", "takes an integer"]),
    ("stages.sft.args.learning_rate=abc", ["stages[0].args.learning_rate: 'abc' is text"]),
    ("stages.0.lora.r=0", ["stages[0].lora.r: 0 is out of range"]),
    ("stages.sft.args.bf16=maybe", ["stages[0].args.bf16: 'maybe' is text", "takes true or false"]),
])
def test_bad_override_value(override, fragments, workdir, tiny_model_dir, capsys):
    recipe = workdir / "recipe.yaml"
    recipe.write_text(sft().replace("MODEL", str(tiny_model_dir)))
    before = snapshot(workdir)
    assert_clear(*run_cli(["validate", recipe, override], capsys), fragments)
    assert snapshot(workdir) == before


def test_every_value_problem_reported_at_once(workdir, tiny_model_dir, capsys):
    recipe = workdir / "recipe.yaml"
    recipe.write_text(sft("learning_rate: abc, learning_rte: 1, optim: adamw", lora="r: 0, lora_dropout: 2")
                      .replace("MODEL", str(tiny_model_dir)))
    code, output = run_cli(["validate", recipe, "stages.sft.args.max_steps=ten"], capsys)
    assert_clear(code, output, ["6 problems", "args.learning_rte: not a field", "args.learning_rate: 'abc'",
                                "args.optim: 'adamw'", "args.max_steps: 'ten'", "lora.r: 0", "lora.lora_dropout: 2"])


def test_numbers_written_as_text_are_converted_with_a_note(workdir, tiny_model_dir, capsys):
    """PyYAML reads 2e-4 as the string '2e-4': rlft converts it (and says so), so the run gets a float."""
    from rlft.stages import load

    recipe = workdir / "recipe.yaml"
    recipe.write_text(sft("learning_rate: 2e-4, warmup_steps: '3'", lora="r: 4, lora_dropout: 1e-1",
                          data="chat.jsonl, eval_split: 2e-1").replace("MODEL", str(tiny_model_dir)))
    resolved = load(recipe, ["stages.sft.args.max_steps=1e1"])
    args, lora = resolved["stages"][0]["args"], resolved["stages"][0]["lora"]
    assert args["learning_rate"] == 2e-4 and isinstance(args["learning_rate"], float)
    assert args["max_steps"] == 10 and isinstance(args["max_steps"], int)
    assert args["warmup_steps"] == 3.0 and lora["lora_dropout"] == 0.1
    assert resolved["stages"][0]["data"]["eval_split"] == 0.2  # rlft's own keys too
    err = capsys.readouterr().err
    assert "note: " in err and "stages[0].args.learning_rate: read '2e-4' as the number 0.0002" in err
    assert "write 0.0002 to skip this note" in err and "stages[0].lora.lora_dropout: read '1e-1'" in err


FLAGS = {
    # name: (argv after `rlft`, [fragments])
    "chat tokens negative": (["chat", "RUN", "--max-new-tokens", "-1"],
                             ["argument --max-new-tokens: -1 must be at least 1", "e.g. --max-new-tokens 200"]),
    "chat tokens zero": (["chat", "RUN", "--max-new-tokens", "0"], ["argument --max-new-tokens: 0 must be at least 1"]),
    "chat temperature negative": (["chat", "RUN", "--temperature", "-1"], ["argument --temperature: -1 must be at "
                                                                           "least 0"]),
    "chat temperature nan": (["chat", "RUN", "--temperature", "nan"], ["argument --temperature: 'nan' is not a "
                                                                       "finite number"]),
    "plan size malformed": (["plan", "RECIPE", "--gpu-mem", "1.2.3GB"],
                            ["argument --gpu-mem: '1.2.3GB': give a size like 80GB"]),
    "plan size zero": (["plan", "RECIPE", "--gpu-mem", "0"], ["argument --gpu-mem: '0': too small"]),
    "plan size absurd": (["plan", "RECIPE", "--gpu-mem", "99999999TB"], ["'99999999TB': more than 64 TiB per device"]),
    "plan gpus negative": (["plan", "RECIPE", "--gpus", "-2"], ["argument --gpus: -2 must be at least 1"]),
    "plan gpus zero": (["plan", "RECIPE", "--gpus", "0"], ["argument --gpus: 0 must be at least 1"]),
    "plan config missing": (["plan", "RECIPE", "--config", "nope.yaml"], ["argument --config: nope.yaml: no such "
                                                                          "file"]),
    "rewards n zero": (["rewards", "check", "RECIPE", "--n", "0"], ["argument --n: 0 must be at least 1"]),
    "rewards n negative": (["rewards", "check", "RECIPE", "--n", "-4"], ["argument --n: -4 must be at least 1"]),
    "rewards k zero": (["rewards", "check", "RECIPE", "--k", "0"], ["argument --k: 0 must be at least 1"]),
    "rewards k word": (["rewards", "check", "RECIPE", "--k", "four"], ["argument --k: 'four' is not an integer"]),
    "rewards completions missing": (["rewards", "check", "RECIPE", "--completions", "nope.jsonl"],
                                    ["argument --completions: nope.jsonl: no such file"]),
    "rewards output-dir is a file": (["rewards", "check", "RECIPE", "--output-dir", "notes.txt"],
                                     ["argument --output-dir: notes.txt is a file, not a folder"]),
    "compare smooth 1.5": (["compare", "RUN", "--smooth", "1.5"], ["argument --smooth: 1.5 must be in [0, 1)"]),
    "compare smooth negative": (["compare", "RUN", "--smooth", "-0.1"], ["argument --smooth: -0.1 must be in [0, 1)"]),
    "eval tokens zero": (["eval", "RUN", "--max-new-tokens", "0"], ["argument --max-new-tokens: 0 must be at least 1"]),
    "eval limit word": (["eval", "RUN", "--limit", "ten"], ["argument --limit: 'ten' is not an integer"]),
    "eval prompts missing": (["eval", "RUN", "--prompts", "nope.jsonl"], ["argument --prompts: nope.jsonl: no such"]),
    "run output-dir is a file": (["run", "RECIPE", "--output-dir", "notes.txt"],
                                 ["notes.txt: is an existing file, not a folder"]),
}


@pytest.mark.parametrize("case", sorted(FLAGS))
def test_bad_flag(case, workdir, tiny_model_dir, capsys):
    argv, fragments = FLAGS[case]
    recipe = workdir / "recipe.yaml"
    recipe.write_text(online("grpo").replace("MODEL", str(tiny_model_dir)))
    before = snapshot(workdir)
    argv = [str(recipe) if a == "RECIPE" else str(workdir) if a == "RUN" else a for a in argv]
    assert_clear(*run_cli(argv, capsys), fragments)
    assert snapshot(workdir) == before  # notes.txt, given as --output-dir, is still there and unchanged


@pytest.mark.parametrize("content, fragments", [
    ('{"prompt": "Hi", "completion": "Hello"}\n{"prompt": "Hi" "completion": "x"}\n',
     ["completions.jsonl: line 2 is not JSON", "one object"]),
    ('{"prompt": "Hi", "completion": "Hello"}\n{"prompt": "Hi"}\n',
     ["completions.jsonl: line 2 must be a JSON object with 'prompt' and 'completion'"]),
    ("\n\n", ["completions.jsonl: no rows"]),
    (b'{"prompt": "Hi", "completion": "caf\xe9"}\n', ["completions.jsonl: not UTF-8 text: byte 35 (line 1)"]),
])
def test_malformed_completions_file(content, fragments, workdir, tiny_model_dir, capsys):
    recipe = workdir / "recipe.yaml"
    recipe.write_text(online("grpo").replace("MODEL", str(tiny_model_dir)))
    path = workdir / "completions.jsonl"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert_clear(*run_cli(["rewards", "check", recipe, "--completions", path], capsys), fragments)


def test_compare_out_folder_resolves_inside_it(workdir, capsys):
    """Where `--out` puts the image: FOLDER/curves.png for a folder (existing or ending in /); an unknown image type
    is refused. (Writing through a real `rlft compare` is in tests/test_compare.py.)"""
    from rlft.compare import image_path
    from rlft.errors import RlftError

    (workdir / "plots").mkdir()
    assert image_path(str(workdir / "plots")) == workdir / "plots" / "curves.png"
    assert image_path(str(workdir / "new") + "/") == workdir / "new" / "curves.png"
    assert image_path(str(workdir / "curves")) == workdir / "curves.png"
    assert image_path("a.svg") == Path("a.svg")
    with pytest.raises(RlftError, match=r"--out a.txt: cannot write a .txt image"):
        image_path("a.txt")


def test_failed_gguf_conversion_leaves_nothing_in_the_cache(tmp_path, monkeypatch):
    """A file with the GGUF magic that is not a model: a clear error, and no lock file or half folder in the cache."""
    from rlft import models

    monkeypatch.setenv("RLFT_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(models.RlftError, match="cannot be read as a GGUF model"):
        models.gguf_to_folder(bad, "broken")
    assert list((tmp_path / "cache" / "models").iterdir()) == []


@pytest.mark.slow
def test_real_cli_process(workdir, tiny_model_dir):
    """The console script as a user runs it: the message on stderr, exit 2, no traceback, nothing else printed."""
    recipe = workdir / "recipe.yaml"
    recipe.write_text(sft("learning_rate: abc").replace("MODEL", str(tiny_model_dir)))
    for argv, fragment in ([["validate", recipe], "stages[0].args.learning_rate: 'abc' is text"],
                           [["plan", recipe, "--gpu-mem", "1.2.3GB"], "argument --gpu-mem: '1.2.3GB'"]):
        proc = subprocess.run([sys.executable, "-m", "rlft.cli", *map(str, argv)], capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == EXIT_USER_ERROR and "Traceback" not in proc.stderr + proc.stdout
        assert fragment in " ".join(proc.stderr.split())
        assert "kernels" not in proc.stderr and "FutureWarning" not in proc.stderr  # no library noise


@pytest.mark.slow
def test_learning_rate_written_2e_4_trains(workdir, tiny_model_dir):
    """`learning_rate: 2e-4` (a string to PyYAML) trains: the run uses the float, and says it converted it."""
    recipe = workdir / "recipe.yaml"
    recipe.write_text(sft("learning_rate: 2e-4, per_device_train_batch_size: 2", lora="r: 4, lora_alpha: 8")
                      .replace("MODEL", str(tiny_model_dir)).replace("max_steps: 1", "max_steps: 2"))
    proc = subprocess.run([sys.executable, "-m", "rlft.cli", "run", str(recipe), "--output-dir", "run"],
                          capture_output=True, text=True, timeout=600, cwd=workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "read '2e-4' as the number 0.0002" in proc.stderr
    assert "FutureWarning" not in proc.stderr and "gemm_4bit" not in proc.stderr
    done = json.loads((workdir / "run" / "stages" / "00_sft" / "stage_complete.json").read_text())
    assert done["metrics"]["train_steps"] == 2
    rates = [row["learning_rate"] for row in map(json.loads, (workdir / "run" / "metrics.jsonl").read_text()
                                                 .splitlines()) if "learning_rate" in row]
    assert rates and all(isinstance(r, float) and 0 < r <= 2e-4 for r in rates)


def test_trainer_refusal_is_a_clear_error_and_the_rerun_starts(workdir, tiny_model_dir, capsys):
    """A combination TRL's trainer refuses only when it is built (SFT's padding_free with max_length but no packing):
    the stage and TRL's reason, exit 2, no traceback; the corrected rerun into the same folder trains."""
    recipe = workdir / "recipe.yaml"
    recipe.write_text(sft("padding_free: true, max_length: 64").replace("MODEL", str(tiny_model_dir)))
    code, output = run_cli(["run", recipe, "--output-dir", workdir / "run"], capsys)
    assert_clear(code, output, ["stages[0] (sft): TRL's SFTTrainer refused the stage's settings",
                                "padding_free=True", "max_length"])
    main(["run", str(recipe), "--output-dir", str(workdir / "run"), "stages.sft.args.padding_free=false"])
    assert (workdir / "run" / "stages" / "00_sft" / "stage_complete.json").exists()
