"""Errors providers raise. Messages say what failed and what to do; never a secret."""

from __future__ import annotations


class ProviderError(Exception):
    """A provider operation failed. ``code``/``param`` carry the provider's own, if any."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retryable: bool = False,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class ConfigurationError(ProviderError):
    """Missing or wrong configuration (no API key, unknown model directory...)."""


class UnsupportedOperation(ProviderError):
    """The provider cannot do this (its capability flag is off)."""


class SpecRejected(ProviderError):
    """The job spec is invalid for this provider; refused before anything was sent."""
