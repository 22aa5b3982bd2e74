"""Fine-tuning providers: the contract (base.py, types.py), the registry, and the built-in
providers, which register through the same ``ftm.providers`` entry points as plugins.

Never imports textual or app/ (a test checks it). Heavy imports (torch and friends) happen
only inside the local training worker.
"""
