"""Cost estimates: hosted and local training, inference per request, break-even against
the few-shot baseline, and estimate-versus-actual when a job ends.

Entry points:
- `app.costs.compare.compare(session, dataset, ...)` -> `Comparison` (the side-by-side table)
- `app.costs.launch.estimate_for_launch(session, job)` -> dict (snapshot before launch)
- `app.costs.actuals.record_actual(session, job)` -> dict (when a job ends)
- `app.costs.catalog.load_catalog()` -> `Catalog` (prices, with sources and dates)
"""

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy, so importing app.costs.errors (the TUI does at start) stays cheap.
    if name == "estimate_for_launch":
        from app.costs.launch import estimate_for_launch

        return estimate_for_launch
    if name == "record_actual":
        from app.costs.actuals import record_actual

        return record_actual
    raise AttributeError(name)
