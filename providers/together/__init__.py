"""Together AI hosted fine-tuning (the ``together`` SDK, imported only when a client is
built)."""

from providers.together.provider import TogetherProvider

__all__ = ["TogetherProvider"]
