"""rlft: RLHF-style fine-tuning from one YAML recipe, through TRL."""

from rlft import compat as _compat

_compat.quiet_library_noise()  # bitsandbytes' CPU-kernel notice, PEFT 0.21's is_gradient_checkpointing warning
