"""The OpenAI provider (official SDK): hosted fine-tuning, Azure OpenAI, and the sandbox."""

from providers.openai.config import OpenAIConfig
from providers.openai.provider import OpenAIProvider

__all__ = ["OpenAIConfig", "OpenAIProvider"]
