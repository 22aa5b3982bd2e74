"""Promotion: aliases per task pointing at a model, gates, history and rollback, export,
sunset dates and migration to another provider."""
