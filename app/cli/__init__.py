"""The scriptable face of ftm: one click command group per area, over app/ use-cases."""
