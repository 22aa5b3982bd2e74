"""Deployments: models made callable, as billed records (issue 13)."""
