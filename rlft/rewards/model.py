"""Models as rewards: the part of `rlft.rewards` that loads a torch model (sampling from a policy is
`rlft.generation`).

`ModelReward` scores the way TRL's GRPOTrainer scores an `nn.Module` reward (chat template over prompt +
completion, the logit of the last token), behind the same contract as a function, so it is checked, named and usable
for ranking DPO pairs and by `rlft serve-reward`.
"""

from __future__ import annotations

from pathlib import Path


class ModelReward:
    """A trained reward model (sequence classifier, one logit) as a TRL-contract reward, scored the way TRL does."""

    def __init__(self, folder: Path, dtype=None, batch_size: int = 16):
        import torch
        from accelerate import PartialState
        from transformers import AutoModelForSequenceClassification

        from rlft.models import load_tokenizer  # deferred with torch: `import rlft.rewards` stays light (pure rewards)

        self.tokenizer = load_tokenizer(str(folder))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=1,
                                                                        dtype=dtype or torch.float32)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(PartialState().device).eval()
        self.batch_size = batch_size

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        import torch
        from trl.data_utils import apply_chat_template, is_conversational

        if is_conversational({"prompt": prompts[0]}):
            texts = [apply_chat_template({"messages": p + c}, self.tokenizer)["text"] for p, c in zip(prompts, completions)]
        else:
            texts = [p + c for p, c in zip(prompts, completions)]
        scores = []
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                   padding_side="right", add_special_tokens=False).to(self.model.device)
            with torch.inference_mode():
                scores += self.model(**batch).logits[:, 0].float().tolist()
        return scores

