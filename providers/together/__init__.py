"""The Together AI provider (the ``together`` SDK, an optional extra)."""
