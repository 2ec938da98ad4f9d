"""rlft: RLHF-style fine-tuning from one YAML recipe, through TRL."""

import logging

# PEFT imports bitsandbytes whenever it is installed, and bitsandbytes' CPU backend then warns on every command that
# an optional speed-up kernel (the `kernels` package) is missing, with or without quantization in the recipe. It
# has a working fallback, so the line says nothing about the user's run; other bitsandbytes messages still show.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
