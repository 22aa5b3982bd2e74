"""The local PEFT backend: LoRA, QLoRA and full fine-tuning as detached worker processes."""

from providers.local.provider import LocalProvider

__all__ = ["LocalProvider"]
