"""rlft: RLHF-style fine-tuning from one YAML recipe, through TRL."""

import logging
import warnings

# PEFT imports bitsandbytes whenever it is installed, and bitsandbytes' CPU backend then warns on every command that
# an optional speed-up kernel (the `kernels` package) is missing, with or without quantization in the recipe. It
# has a working fallback, so the line says nothing about the user's run; other bitsandbytes messages still show.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)

# PEFT 0.21 reads `model.is_gradient_checkpointing`, which transformers 5 renamed (`is_activation_checkpointing`) and
# warns about on every LoRA run; the user can do nothing about it. Remove once PEFT reads the new name.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
