"""Fixtures of the evaluation tests: the shared tiny model for local end-to-end runs."""

from tests.tiny import tiny_model  # noqa: F401  (shared session fixture)
