"""Shared fixtures of the promotion tests."""

from tests.tiny import tiny_model  # noqa: F401  (shared session fixture)
