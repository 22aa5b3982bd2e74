"""The Azure OpenAI provider: OpenAI's fine-tuning API on an Azure resource, with its own
settings, lifecycle and deployment step (see provider.py)."""

from providers.azure.config import AzureConfig, AzureSettings
from providers.azure.provider import AzureOpenAIProvider

__all__ = ["AzureConfig", "AzureOpenAIProvider", "AzureSettings"]
